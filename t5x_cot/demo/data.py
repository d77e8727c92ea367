"""Stage 1, data: the demo's two tasks, their training questions and test sets.

`arithmetic` (the default): GSM8K-style word problems with 1-4 steps in training, tested on
2-4 steps (in distribution) and 5-7 steps (out of distribution). `coinflip`: Wei et al.'s
setting, 2 people in training, tested on 2 (in distribution) and 3 and 4 (out of
distribution). Test questions are never training questions.
"""
from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence

from t5x_cot.data import Example, coinflip
from t5x_cot.demo import arithmetic, rationales
from t5x_cot.errors import UserError

SEEDS = {"train": 1, "test": 2}


class RationaleStyleError(UserError, ValueError):
    """A rationale design the task's teacher does not write."""


@dataclasses.dataclass(frozen=True)
class DemoTask:
    """What one demo task trains on and is tested on.

    `dataset` names the answer grammar and metrics (and prefixes the SeqIO task names);
    `sizes` are the step counts (people) per question; `students` maps each student to its
    label; `rationale_style` is the symbolic teacher's rationale design, one of
    `RATIONALE_STYLES[name]`.
    """

    name: str
    dataset: str
    unit: str
    train_sizes: tuple[int, ...]
    test_sizes: tuple[int, ...]
    students: Mapping[str, str]
    ranges: arithmetic.NumberRanges = arithmetic.NumberRanges()
    rationale_style: str = "trace"

    def in_distribution(self, size: int) -> bool:
        return size in self.train_sizes


ARITHMETIC = DemoTask(
    name="arithmetic", dataset=arithmetic.DATASET, unit="steps", train_sizes=(1, 2, 3, 4),
    test_sizes=(2, 3, 4, 5, 6, 7),
    students={"answer_only": "answer only", "cot": "CoT",
              "cot_calculator": "CoT + calculator"},
    ranges=arithmetic.NumberRanges(start=(1, 9), operand=(1, 9), max_total=20),
    rationale_style=rationales.DEFAULT_STYLE)
COINFLIP = DemoTask(
    name="coinflip", dataset="coinflip", unit="people", train_sizes=(2,), test_sizes=(2, 3, 4),
    students={"answer_only": "answer only", "cot": "CoT (trace rationale)"})
TASKS = {task.name: task for task in (ARITHMETIC, COINFLIP)}
RATIONALE_STYLES = {"arithmetic": rationales.STYLES, "coinflip": coinflip.RATIONALE_STYLES}
OBJECTIVES = ("cot", "dsbs")
DSBS_LABEL = "DSbS (label task)"
DSBS_RATIONALE_LABEL = "DSbS (rationale task)"


def with_objective(task: DemoTask, objective: str) -> DemoTask:
    """The task's students for `objective`: `cot` as they are; `dsbs` adds the distilling
    step-by-step student (`dsbs`), scored on its label task."""
    if objective not in OBJECTIVES:
        raise ValueError(f"objective {objective!r}; expected one of {', '.join(OBJECTIVES)}")
    if objective == "cot":
        return task
    return dataclasses.replace(task, students={**task.students, "dsbs": DSBS_LABEL})


def with_rationale(task: DemoTask, style: str | None) -> DemoTask:
    """The task with the teacher's rationale design `style` (None: the task's default)."""
    if style is None:
        return task
    if style not in RATIONALE_STYLES[task.name]:
        raise RationaleStyleError(f"--rationale {style!r} is not one of the {task.name} designs "
                         f"({', '.join(RATIONALE_STYLES[task.name])})")
    return dataclasses.replace(task, rationale_style=style)


@dataclasses.dataclass
class DemoData:
    """The training questions and one test set per size."""

    train: list[Example]
    tests: dict[int, list[Example]]


def _generate(task: DemoTask, num: int, sizes: int | Sequence[int], seed: int, split: str,
              exclude: frozenset[str] = frozenset()) -> list[Example]:
    if task.name == "coinflip":
        size = sizes if isinstance(sizes, int) else sizes[0]
        if not exclude:
            return coinflip.generate(num, size, seed, split)
        drawn = coinflip.generate(num * 6 // 5 + 8, size, seed, split)
        return [e for e in drawn if e.question not in exclude][:num]
    return arithmetic.generate(num, sizes, seed, split, task.ranges, exclude,
                               task.rationale_style)


def make_data(task: DemoTask, num_train: int, num_test: int) -> DemoData:
    """Training questions (sizes cycling through `task.train_sizes`) and the test sets."""
    train = _generate(task, num_train, task.train_sizes, SEEDS["train"], "train")
    seen = frozenset(e.question for e in train)
    tests = {size: _generate(task, num_test, size, SEEDS["test"] + size, "test", seen)
             for size in task.test_sizes}
    return DemoData(train, tests)


def gold_rationale(task: DemoTask, example: Example) -> str:
    """The reference rationale of a question (test targets carry it; only answers are scored)."""
    if task.name == "coinflip":
        return coinflip.symbolic_rationale(coinflip.parse_question(example.question),
                                           task.rationale_style)
    return example.rationale or ""
