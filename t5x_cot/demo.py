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
   `accuracy_vs_coin_flips.png` and `predictions.jsonl` (every test question, both students).

Why the rationales trace the coin instead of following Wei et al.'s exemplars: the
exemplar rationale ("The coin was flipped by Ka and Sherrie. So the coin was flipped 2 times,
which is an even number. ...") asks the student to count the flips, and a model trained from
scratch on 2 people never sees the counts 3 and 4. The trace style ("The coin starts heads
up. Ka flips it, so it is tails up. Sherrie does not flip it, so it is still tails up.") is
made of steps that each read one person's action and the previous side, so the same step
repeated once more per person would solve 3 and 4 people.

What this small student actually learns: in distribution both students are perfect, and out
of distribution neither is reliably better than chance. The CoT student writes exactly two
steps whatever the number of people, reading its "first" and "second" person from positions
in the question rather than following the people in turn: with only 2-people questions to
learn from, "the next person" and "the last person" are the same person, and a 2-layer model
trained from scratch picks the positional rule. The demo prints how many generated rationales
are right step by step and says plainly whether the CoT student beats the baseline out of
distribution. The paper's OOD gain (13.10 -> 86.70, T5 XXL) comes from a pretrained student
that already knows how to walk through a list; reproducing it needs the pretrained
checkpoints (see the README's paper recipe), not this CPU-sized model.
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


FULL = Settings(num_train=6000, num_test=300, cot_steps=1000, answer_only_steps=1000)
QUICK = Settings(num_train=200, num_test=16, cot_steps=4, answer_only_steps=4)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Register the demo's flags."""
    parser.add_argument("--out", default="demo_out",
                        help="output directory (results, plot, predictions, models)")
    parser.add_argument("--quick", action="store_true",
                        help="tiny sets and a few steps: checks the pipeline, learns nothing")
    parser.add_argument("--steps", type=int, default=None,
                        help=f"training steps of each student (default {FULL.cot_steps}; --quick: "
                             f"{QUICK.cot_steps})")


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


def make_test_sets(train: Sequence[Example], num_test: int) -> dict[int, list[Example]]:
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
                     vocabulary: Any, lengths: Mapping[str, int],
                     batch_size: int) -> dict[str, dict[str, Any]]:
    """Greedy-decode every test task with the checkpoint in `model_dir`; {task: metrics}."""
    from t5x_cot import checkpoints
    from t5x_cot import eval as eval_lib
    from t5x_cot.decoding.predict import DecodeConfig

    params, config = checkpoints.load_params(model_dir)
    decode = DecodeConfig(strategy="greedy", max_decode_length=lengths["targets"])
    return eval_lib.evaluate_tasks(config, params, task_names, decode_config=decode,
                                   batch_size=batch_size, input_length=lengths["inputs"],
                                   output_dir=out_dir, vocabulary=vocabulary, progress=False)


def _round_up(value: int, multiple: int = 8) -> int:
    return -(-value // multiple) * multiple


@dataclasses.dataclass
class DemoData:
    """Task rows: CoT (teacher records), answer only (every training question), tests by people."""

    cot: Sequence[Mapping[str, str]]
    answer_only: Sequence[Mapping[str, str]]
    tests: dict[int, list[Mapping[str, str]]]


def build_rows(records_path: pathlib.Path, train: Sequence[Example],
               tests: Mapping[int, Sequence[Example]]) -> DemoData:
    """Rows of every demo task; test targets carry the gold trace (only answers are scored)."""
    from t5x_cot import demo_tasks
    from t5x_cot.tasks import sources

    def gold(example: Example) -> str:
        return coinflip.symbolic_rationale(coinflip.parse_question(example.question),
                                           RATIONALE_STYLE)

    return DemoData(cot=sources.record_rows("coinflip", records_path),
                    answer_only=[demo_tasks.example_row(e, "") for e in train],
                    tests={people: [demo_tasks.example_row(e, gold(e)) for e in examples]
                           for people, examples in tests.items()})


def make_vocabulary(data: DemoData, out_dir: pathlib.Path) -> Any:
    """A SentencePiece vocabulary trained on the training rows (test inputs must spell too)."""
    import seqio

    from t5x_cot import demo_vocab

    train_rows = [*data.cot, *data.answer_only]
    test_inputs = [row["inputs"] for rows in data.tests.values() for row in rows]
    path = demo_vocab.train_sentencepiece(
        [text for row in train_rows for text in (row["inputs"], row["targets"])]
        + list(coinflip.default_names()), out_dir,
        must_spell=[*coinflip.default_names(), "yes", "no", *test_inputs])
    return seqio.SentencePieceVocabulary(str(path), extra_ids=0)


def exact_rationales(eval_dir: pathlib.Path, data: DemoData) -> dict[int, float]:
    """Per number of people: % of generated texts equal to the gold trace and answer."""
    from t5x_cot import demo_tasks
    from t5x_cot.eval import PREDICTIONS_FILE

    gold = {(demo_tasks.eval_task_name(people), row["id"]): row["targets"]
            for people, rows in data.tests.items() for row in rows}
    hits: dict[str, list[bool]] = {}
    with open(eval_dir / PREDICTIONS_FILE, encoding="utf-8") as f:
        for line in f:
            record = json.loads(line)
            hits.setdefault(record["task"], []).append(
                record["rationale"] == gold[record["task"], record["id"]])
    percent = {task: 100.0 * sum(flags) / len(flags) for task, flags in hits.items()}
    return {people: percent[demo_tasks.eval_task_name(people)] for people in data.tests}


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
        tests = make_test_sets(train, settings.num_test)
        print(f"train: {len(train)} questions with {TRAIN_PEOPLE} people; test: "
              + ", ".join(f"{len(v)} with {k} people" for k, v in tests.items()))
    with timer("teacher"):
        records_path = out / "cot" / "coinflip.jsonl"
        summary = run_teacher(records_path, settings.num_train)
    with timer("vocabulary"):
        data = build_rows(records_path, train, tests)
        vocabulary = make_vocabulary(data, out / "vocab")
        model_vocab = demo_vocab.padded_size(vocabulary.vocab_size)
        print(f"{vocabulary.sentencepiece_model_file}: {vocabulary.vocab_size} pieces "
              f"(model vocabulary {model_vocab})")
    with timer("tasks"):
        test_tasks = demo_tasks.register_tasks(data.cot, data.answer_only, data.tests, vocabulary)
        all_tests = [row for rows in data.tests.values() for row in rows]
        eval_lengths = {k: _round_up(v) + 8
                        for k, v in demo_tasks.max_lengths(all_tests, vocabulary).items()}
        print(f"tasks: {demo_tasks.COT_TASK} ({len(data.cot)}), {demo_tasks.ANSWER_ONLY_TASK} "
              f"({len(data.answer_only)}), " + ", ".join(test_tasks))

    metrics: dict[str, dict[str, dict[str, Any]]] = {}
    students = {"cot": (demo_tasks.COT_TASK, data.cot, settings.cot_steps),
                "answer_only": (demo_tasks.ANSWER_ONLY_TASK, data.answer_only,
                                settings.answer_only_steps)}
    for student, (task, rows, steps) in students.items():
        model_dir, eval_dir = out / "models" / student, out / "eval" / student
        with timer(f"train {student}"):
            lengths = {k: _round_up(v) for k, v in demo_tasks.max_lengths(rows, vocabulary).items()}
            train_student(task, model_dir, steps, lengths, model_vocab)
        with timer(f"evaluate {student}"):
            metrics[student] = evaluate_student(model_dir, test_tasks, eval_dir, vocabulary,
                                                eval_lengths, min(100, settings.num_test))
            demo_report.set_num_people(eval_dir, {
                demo_tasks.eval_task_name(people): people for people in TEST_PEOPLE}, TRAIN_PEOPLE)

    with timer("report"):
        table = demo_report.results_table(
            {student: {people: metrics[student][demo_tasks.eval_task_name(people)]
                       for people in TEST_PEOPLE} for student in STUDENTS},
            STUDENTS, TRAIN_PEOPLE)
        findings = [f"teacher: {demo_report.teacher_line(summary)}",
                    demo_report.rationale_line(exact_rationales(out / "eval" / "cot", data)),
                    demo_report.verdict(table, "cot", "answer_only")]
        demo_report.write_outputs(out, table, findings, timer.seconds, settings,
                                  {student: out / "eval" / student for student in STUDENTS})
    print("\n" + demo_report.format_markdown(table) + "\n")
    print("\n".join(findings))
    print("wall time: " + ", ".join(f"{k} {v:.0f} s" for k, v in timer.seconds.items())
          + f"; total {time.perf_counter() - start:.0f} s")
    print(f"outputs: {out}")
    return 0


if __name__ == "__main__":
    from t5x_cot import cli as _cli

    sys.exit(_cli.main(["demo", *sys.argv[1:]]))
