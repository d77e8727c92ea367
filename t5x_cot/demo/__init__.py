"""`t5x-cot demo`: chain-of-thought distillation end to end on a CPU, stage by stage.

    t5x-cot demo [--task arithmetic|coinflip] [--objective cot|dsbs] [--seeds 2]
                 [--rationale DESIGN] [--out demo_out] [--quick]

One module per stage, each calling the entry points a user calls:

1. `data`: the questions. Default: GSM8K-style arithmetic word problems (`arithmetic`),
   1-4 steps in training, 2-4 (in distribution) and 5-7 steps (out of distribution) in test.
   `--task coinflip`: Wei et al.'s Coinflip, 2 people in training, 2/3/4 in test.
2. `teacher`: a symbolic teacher writes a rationale for every training question, 10% of
   them deliberately wrong; the project's answer filter drops those. `--rationale` picks
   its design (`rationales`: `equations`, `clauses`, `remaining` for the arithmetic
   problems; `trace`, `exemplar` for Coinflip).
3. `vocab`: a small SentencePiece model trained on the generated text (`<<`, `=`, `>>`
   atomic, digits split; with `--objective dsbs` also `[label]` and `[rationale]`, so every
   student of that run shares one vocabulary).
4. `tasks`: SeqIO tasks for the CoT targets, the answer-only targets and each test set;
   `--objective dsbs` adds distilling step-by-step (`t5x_cot.tasks.dsbs`): the mixture of
   `[label] q -> The answer is <answer>.` and `[rationale] q -> <rationale>` over the same
   filtered CoT rows (rationale weight 1), and the label and rationale task of each test set.
5. `train`: small T5 1.1 students from scratch with the project's gin trainer
   (gin/runs/demo.gin), one per seed: CoT on `<rationale> The answer is <answer>.`, the
   baseline on `The answer is <answer>.`; then greedy decoding of every test set, the CoT
   student also with the calculator in the loop (the paper's GSM8K columns); the DSbS student
   (with `--objective dsbs`, same steps and batch) on its label tasks for the table and on
   its rationale tasks for inspection.
6. `report`: per-seed tables and the mean ± half range over seeds, printed and written to
   `results.md` / `results.csv`, the plot `accuracy_vs_<steps|people>.png` with error bars
   and `predictions.jsonl`; for the arithmetic problems also where the CoT students'
   rationales first go wrong (`analysis`: which step, and how).
`pipeline` drives the stages and times each.
"""
from __future__ import annotations

import argparse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Register the demo's flags."""
    from t5x_cot.demo import pipeline  # pylint: disable=import-outside-toplevel
    pipeline.add_arguments(parser)


def run(args: argparse.Namespace) -> int:
    """Run the demo; returns the exit status."""
    from t5x_cot.demo import pipeline  # pylint: disable=import-outside-toplevel
    return pipeline.run(args)
