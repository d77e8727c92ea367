"""Stage 2, teacher: a symbolic teacher writes a rationale for every training question, a
share of them deliberately wrong, and the project's answer filter drops the wrong ones.

Coinflip goes through `t5x-cot generate --teacher symbolic`. The arithmetic problems are the
demo's own, so their teacher lives here: it reads each problem back from the question text,
writes the annotated steps in the run's rationale design (`rationales`) and, for a deterministic `error_rate` share of questions, slips
in one step (a result off by one to three, carried on to a wrong final answer). Its texts go
through the same planner, answer filter and record writer as `t5x-cot generate`
(`t5x_cot.teacher.generate.plan_jobs` / `finish`).
"""
from __future__ import annotations

import json
import pathlib
import random
from collections.abc import Sequence
from typing import Any

from t5x_cot.data import Example
from t5x_cot.demo import arithmetic, rationales
from t5x_cot.demo.data import SEEDS, DemoTask

ERROR_RATE = 0.1
TEACHER_NAME = "symbolic-arithmetic"


def arithmetic_text(example: Example, error_rate: float, seed: int,
                    style: str = rationales.DEFAULT_STYLE) -> str:
    """The symbolic teacher's completion for one arithmetic question, its rationale of
    design `style` (`rationales`)."""
    from t5x_cot import answers
    from t5x_cot.teacher.offline import is_corrupted

    problem = arithmetic.parse_question(example.question)
    totals = problem.totals()
    if is_corrupted(example, error_rate, seed):
        rng = random.Random(f"{seed}:{example.id}:step")
        step = rng.randrange(len(totals))
        slip = rng.choice((-3, -2, -1, 1, 2, 3))
        totals = [t + slip if i >= step else t for i, t in enumerate(totals)]
    return answers.format_target(rationales.write(problem, style, totals), str(totals[-1]))


def _run_arithmetic(task: DemoTask, train: Sequence[Example], records_path: pathlib.Path,
                    error_rate: float) -> dict[str, Any]:
    from t5x_cot.answers import ANSWER_TYPES
    from t5x_cot.teacher import generate

    style = task.rationale_style
    params = {"error_rate": error_rate, "seed": SEEDS["train"], "rationale_style": style}
    jobs = generate.plan_jobs(train, [ex.question for ex in train], "offline", TEACHER_NAME,
                              params, 1)
    lookup = {job.keys[0]: {"text": arithmetic_text(job.example, error_rate, SEEDS["train"],
                                                    style),
                            "finish_reason": "stop", "usage": {}} for job in jobs}
    teacher = {"endpoint": "offline", "model": TEACHER_NAME, "params": params}
    summary = generate.finish(jobs, lookup, ANSWER_TYPES[arithmetic.DATASET], teacher,
                              f"{arithmetic.DATASET}-{TEACHER_NAME}", records_path,
                              {"task": arithmetic.DATASET, "split": "train", "teacher": teacher})
    print(summary.text())
    return json.loads(pathlib.Path(generate.summary_path(records_path)).read_text("utf-8"))


def _run_coinflip(task: DemoTask, num_train: int, records_path: pathlib.Path,
                  error_rate: float) -> dict[str, Any]:
    from t5x_cot import cli
    from t5x_cot.teacher import generate

    argv = ["generate", "--task", "coinflip", "--split", "train", "--teacher", "symbolic",
            "--rationale-style", task.rationale_style, "--error-rate", str(error_rate),
            "--num-people", str(task.train_sizes[0]), "--num-examples", str(num_train),
            "--seed", str(SEEDS["train"]), "--out", str(records_path)]
    print("t5x-cot " + " ".join(argv), flush=True)
    if cli.main(argv) != 0:
        raise RuntimeError("the symbolic teacher failed (see above)")
    return json.loads(pathlib.Path(generate.summary_path(records_path)).read_text("utf-8"))


def run_teacher(task: DemoTask, train: Sequence[Example], records_path: pathlib.Path,
                error_rate: float = ERROR_RATE) -> dict[str, Any]:
    """Write the filtered CoT records of `train` to `records_path`; returns the summary."""
    records_path.parent.mkdir(parents=True, exist_ok=True)
    if task.name == "coinflip":
        return _run_coinflip(task, len(train), records_path, error_rate)
    return _run_arithmetic(task, train, records_path, error_rate)


def teacher_line(summary: dict[str, Any]) -> str:
    """The teacher's counts in one line."""
    dropped = {k: v for k, v in summary["dropped"].items() if v}
    return (f"{summary['answered']} rationales generated, {summary['kept']} kept, "
            f"{summary['answered'] - summary['kept']} dropped by the answer filter {dropped}")
