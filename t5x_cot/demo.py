"""`t5x-cot demo`: Coinflip chain-of-thought distillation end to end on a CPU.

    t5x-cot demo [--out demo_out] [--quick]

1. data: Coinflip questions with 2 people for training, test sets with 2 people (in
   distribution, none of them a training question) and 3 and 4 people (out of distribution).
2. teacher: `t5x-cot generate --teacher symbolic --error-rate 0.1` writes a rationale for every
   training question, 10% of them deliberately wrong; the answer filter drops those.
3. vocabulary: a small SentencePiece model trained on the generated text (the T5 vocabulary
   lives in the data directory, which a fresh machine lacks).
4. tasks: SeqIO tasks for the CoT targets, the answer-only targets and each test set.
5. training: two small T5 1.1 models from scratch with the project's trainer and Adafactor
   (gin/runs/demo.gin): the CoT student on `<rationale> The answer is <answer>.`, the
   baseline on `The answer is <answer>.`.
6. evaluation: greedy decoding of every test set, answers extracted from the text.
7. report: the table printed and written to `results.md` / `results.csv`, the plot
   `accuracy_by_people.png` and `predictions.jsonl` (every test question, both students).

Why the rationales trace the coin instead of following Wei et al.'s exemplars: the
exemplar rationale ("The coin was flipped by Ka and Sherrie. So the coin was flipped 2 times,
which is an even number. ...") asks the student to count the flips, and a model trained
from scratch on 2 people never sees the counts 3 and 4, so nothing carries over to 3 or 4
people. The trace style ("The coin starts heads up. Ka flips it, so it is tails up. Sherrie
does not flip it, so it is still tails up.") is made of steps that each read one person's
action and the previous side: the same step, repeated once more per person, solves the
out-of-distribution questions. (The paper's students start from pretrained T5, which already
counts; the rationale's job there is the same: spell the solution as steps the student can
extend.) The answer-only baseline has no such steps and must compute the parity in one go.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import os
import pathlib
import shutil
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

from t5x_cot.data import Example, coinflip

TRAIN_PEOPLE = 2
TEST_PEOPLE = (2, 3, 4)
ERROR_RATE = 0.1
RATIONALE_STYLE = "trace"
STUDENTS = {"cot": "CoT (trace rationale)", "answer_only": "answer only"}
GIN_FILES = ("gin/models/t5_1_1/tiny.gin", "gin/runs/finetune.gin", "gin/runs/demo.gin")
SEEDS = {"train": 1, "test": 2}


@dataclasses.dataclass(frozen=True)
class Settings:
    """Sizes of one demo run."""

    num_train: int
    num_test: int
    cot_steps: int
    answer_only_steps: int


FULL = Settings(num_train=6000, num_test=300, cot_steps=1500, answer_only_steps=1500)
QUICK = Settings(num_train=200, num_test=16, cot_steps=4, answer_only_steps=4)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Register the demo's flags."""
    parser.add_argument("--out", default="demo_out",
                        help="output directory (results, plot, predictions, models)")
    parser.add_argument("--quick", action="store_true",
                        help="tiny sets and a few steps: checks the pipeline, learns nothing")
    parser.add_argument("--steps", type=int, default=None,
                        help="training steps of each student (default 1500; --quick: 4)")


class StageTimer:
    """Wall time of each named stage, printed as each one ends."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}

    @contextmanager
    def __call__(self, name: str) -> Iterator[None]:
        print(f"\n== {name}", flush=True)
        start = time.perf_counter()
        yield
        self.seconds[name] = time.perf_counter() - start
        print(f"== {name}: {self.seconds[name]:.1f} s", flush=True)


def test_sets(train: Sequence[Example], num_test: int) -> dict[int, list[Example]]:
    """One test set per number of people; 2-people questions seen in training are left out."""
    seen = {e.question for e in train}
    sets = {}
    for people in TEST_PEOPLE:
        drawn = coinflip.generate(num_test * 6 // 5 + 8, people, SEEDS["test"] + people, "test")
        sets[people] = [e for e in drawn if e.question not in seen][:num_test]
    return sets


def run_teacher(records_path: pathlib.Path, num_train: int) -> dict[str, Any]:
    """`t5x-cot generate` with the symbolic teacher; returns its summary."""
    from t5x_cot import cli
    from t5x_cot.teacher import generate

    argv = ["generate", "--task", "coinflip", "--split", "train", "--teacher", "symbolic",
            "--rationale-style", RATIONALE_STYLE, "--error-rate", str(ERROR_RATE),
            "--num-people", str(TRAIN_PEOPLE), "--num-examples", str(num_train),
            "--seed", str(SEEDS["train"]), "--out", str(records_path)]
    print("t5x-cot " + " ".join(argv), flush=True)
    if cli.main(argv) != 0:
        raise RuntimeError("the symbolic teacher failed (see above)")
    return json.loads(pathlib.Path(generate.summary_path(records_path)).read_text("utf-8"))


def train_student(task: str, model_dir: pathlib.Path, steps: int,
                  lengths: Mapping[str, int], vocab_size: int) -> None:
    """Train one student with the project's trainer, configured by gin."""
    from t5x_cot import gin_utils

    if model_dir.exists():
        shutil.rmtree(model_dir)
    bindings = [f"MODEL_DIR = {str(model_dir)!r}", f"MIXTURE_OR_TASK_NAME = {task!r}",
                f"TRAIN_STEPS = {steps}", f"TASK_FEATURE_LENGTHS = {dict(lengths)!r}",
                f"network.T5Config.vocab_size = {vocab_size}",
                f"train.log_every = {max(1, min(100, steps // 10))}"]
    gin_utils.register_configurables()
    gin_utils.parse_gin(GIN_FILES, bindings)
    gin_utils.call_configurable("t5x_cot.train.train")


def evaluate_student(model_dir: pathlib.Path, task_names: Sequence[str], out_dir: pathlib.Path,
                     vocabulary: Any, lengths: Mapping[str, int]) -> dict[str, dict[str, Any]]:
    """Greedy-decode every test task with the checkpoint in `model_dir`; {task: metrics}."""
    from t5x_cot import checkpoints
    from t5x_cot import eval as eval_lib
    from t5x_cot.decoding.predict import DecodeConfig

    params, config = checkpoints.load_params(model_dir)
    decode = DecodeConfig(strategy="greedy", max_decode_length=lengths["targets"])
    return eval_lib.evaluate_tasks(config, params, task_names, decode_config=decode,
                                   batch_size=100, input_length=lengths["inputs"],
                                   output_dir=out_dir, vocabulary=vocabulary, progress=False)


def _round_up(value: int, multiple: int = 8) -> int:
    return -(-value // multiple) * multiple


def run(args: argparse.Namespace) -> int:
    """Run the demo; returns the exit status."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    from t5x_cot import demo_report, demo_tasks, demo_vocab

    settings = QUICK if args.quick else FULL
    if args.steps is not None:
        settings = dataclasses.replace(settings, cot_steps=args.steps, answer_only_steps=args.steps)
    out = pathlib.Path(args.out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    timer = StageTimer()
    start = time.perf_counter()

    with timer("data"):
        train = coinflip.generate(settings.num_train, TRAIN_PEOPLE, SEEDS["train"], "train")
        tests = test_sets(train, settings.num_test)
        print(f"train: {len(train)} questions with {TRAIN_PEOPLE} people; test: "
              + ", ".join(f"{len(v)} with {k} people" for k, v in tests.items()))

    with timer("teacher"):
        records_path = out / "cot" / "coinflip.jsonl"
        summary = run_teacher(records_path, settings.num_train)

    with timer("vocabulary"):
        import seqio

        from t5x_cot.tasks import sources

        cot_rows = sources.record_rows("coinflip", records_path)
        answer_rows = [demo_tasks.example_row(e, "") for e in train]
        test_rows = {people: [demo_tasks.example_row(
            e, coinflip.symbolic_rationale(coinflip.parse_question(e.question), RATIONALE_STYLE))
            for e in examples] for people, examples in tests.items()}
        every_row = [*cot_rows, *answer_rows, *(r for rows in test_rows.values() for r in rows)]
        spm_path = demo_vocab.train_sentencepiece(
            [text for row in (*cot_rows, *answer_rows) for text in (row["inputs"], row["targets"])]
            + list(coinflip.default_names()),
            out / "vocab",
            must_spell=[*coinflip.default_names(), "yes", "no", *(r["inputs"] for r in every_row)])
        vocabulary = seqio.SentencePieceVocabulary(str(spm_path), extra_ids=0)
        model_vocab = demo_vocab.padded_size(vocabulary.vocab_size)
        print(f"{spm_path}: {vocabulary.vocab_size} pieces (model vocab {model_vocab})")

    with timer("tasks"):
        test_tasks = demo_tasks.register_tasks(cot_rows, answer_rows, test_rows, vocabulary)
        train_lengths = {"cot": demo_tasks.max_lengths(cot_rows, vocabulary),
                         "answer_only": demo_tasks.max_lengths(answer_rows, vocabulary)}
        eval_lengths = demo_tasks.max_lengths([r for rows in test_rows.values() for r in rows],
                                              vocabulary)
        eval_lengths = {k: _round_up(v) + 8 for k, v in eval_lengths.items()}
        print(f"tasks: {demo_tasks.COT_TASK} ({len(cot_rows)}), {demo_tasks.ANSWER_ONLY_TASK} "
              f"({len(answer_rows)}), " + ", ".join(test_tasks))

    metrics: dict[str, dict[str, dict[str, Any]]] = {}
    task_of = {"cot": demo_tasks.COT_TASK, "answer_only": demo_tasks.ANSWER_ONLY_TASK}
    steps_of = {"cot": settings.cot_steps, "answer_only": settings.answer_only_steps}
    for student in STUDENTS:
        model_dir = out / "models" / student
        with timer(f"train {student}"):
            lengths = {k: _round_up(v) for k, v in train_lengths[student].items()}
            train_student(task_of[student], model_dir, steps_of[student], lengths, model_vocab)
        with timer(f"evaluate {student}"):
            metrics[student] = evaluate_student(model_dir, test_tasks, out / "eval" / student,
                                                vocabulary, eval_lengths)

    with timer("report"):
        table = demo_report.results_table(
            {student: {people: metrics[student][demo_tasks.eval_task_name(people)]
                       for people in TEST_PEOPLE} for student in STUDENTS},
            STUDENTS, TRAIN_PEOPLE)
        demo_report.write_outputs(out, table, summary, timer.seconds, settings,
                                  {student: out / "eval" / student for student in STUDENTS})
    total = time.perf_counter() - start
    print("\n" + demo_report.format_markdown(table))
    print("\nteacher: " + demo_report.teacher_line(summary))
    print("wall time: " + ", ".join(f"{k} {v:.0f} s" for k, v in timer.seconds.items())
          + f"; total {total:.0f} s")
    print(f"outputs: {out}")
    return 0


if __name__ == "__main__":
    from t5x_cot import cli as _cli

    sys.exit(_cli.main(["demo", *sys.argv[1:]]))
