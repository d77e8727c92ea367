"""Where a generated arithmetic rationale first goes wrong, measured from the predictions.

Every rationale design writes one annotated equation `<<a+b=c>>` per step, so the equations
of a generation can be set against the problem its question states: the first step that
differs is classified as

* `stopped early`: the rationale ends before the problem's last step;
* `skipped a sentence`: the step uses the amount of a later sentence of the question;
* `repeated a sentence`: it uses the amount of an earlier sentence again;
* `wrong amount`: an operator and amount that no sentence of the question has;
* `wrong total carried`: its first operand is not the previous step's result;
* `wrong result`: its own arithmetic is wrong (the calculator in the loop prevents this);
* `extra steps`: every step is right but the rationale goes on past the last one.
"""
from __future__ import annotations

import collections
import json
import pathlib
import re
from collections.abc import Mapping, Sequence

from t5x_cot.demo import arithmetic
from t5x_cot.eval import PREDICTIONS_FILE

RIGHT = "all steps right"
KINDS = (RIGHT, "stopped early", "skipped a sentence", "repeated a sentence", "wrong amount",
         "wrong total carried", "wrong result", "extra steps")
_EQUATION = re.compile(r"<<(\d+)([+-])(\d+)=(\d+)>>")


def first_error(question: str, generated: str) -> tuple[str, int | None]:
    """(kind, 1-based step) of the first step of `generated` that departs from the problem of
    `question`; (RIGHT, None) when every step is the problem's."""
    problem = arithmetic.parse_question(question)
    equations = [(int(a), op, int(b), int(c)) for a, op, b, c in _EQUATION.findall(generated)]
    before = problem.start
    for k, step in enumerate(problem.steps):
        if k >= len(equations):
            return "stopped early", k + 1
        left, op, amount, result = equations[k]
        if (op, amount) != step:
            if (op, amount) in problem.steps[k + 1:]:
                return "skipped a sentence", k + 1
            if (op, amount) in problem.steps[:k]:
                return "repeated a sentence", k + 1
            return "wrong amount", k + 1
        if left != before:
            return "wrong total carried", k + 1
        if result != (left + amount if op == "+" else left - amount):
            return "wrong result", k + 1
        before = result
    if len(equations) > len(problem.steps):
        return "extra steps", len(problem.steps) + 1
    return RIGHT, None


def first_errors(eval_dir: pathlib.Path, size_of: Mapping[str, int]
                 ) -> dict[int, collections.Counter]:
    """Per size: how many generations of the eval's predictions first go wrong in each way,
    counted by (kind, step)."""
    counts: dict[int, collections.Counter] = {}
    with open(eval_dir / PREDICTIONS_FILE, encoding="utf-8") as f:
        for line in f:
            record = json.loads(line)
            counts.setdefault(size_of[record["task"]], collections.Counter())[
                first_error(record["question"], record["rationale"])] += 1
    return dict(sorted(counts.items()))


def format_table(label_counts: Sequence[tuple[str, Mapping[int, collections.Counter]]],
                 unit: str) -> str:
    """A markdown table: one row per (student, size), the % of each kind of first error, and
    the step it happens at most often."""
    lines = [f"| student | {unit} | " + " | ".join(KINDS) + " | most common first wrong step |",
             "| --- | ---: | " + " | ".join("---:" for _ in KINDS) + " | --- |"]
    for label, by_size in label_counts:
        for size, counter in by_size.items():
            total = sum(counter.values())
            by_kind = collections.Counter()
            for (kind, _), n in counter.items():
                by_kind[kind] += n
            wrong = [(key, n) for key, n in counter.most_common() if key[0] != RIGHT]
            common = (f"{wrong[0][0][0]} at step {wrong[0][0][1]} "
                      f"({100.0 * wrong[0][1] / total:.0f}%)" if wrong else "-")
            lines.append(f"| {label} | {size} | "
                         + " | ".join(f"{100.0 * by_kind[k] / total:.0f}" for k in KINDS)
                         + f" | {common} |")
    return "\n".join(lines)
