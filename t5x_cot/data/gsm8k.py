"""GSM8K (Cobbe et al. 2021): grade-school math word problems with human solutions.

Each line of `gsm8k/{train,test}.jsonl` is `{"question": ..., "answer": ...}` where `answer`
is the step-by-step solution with `<<expr=result>>` calculator annotations and a final line
`#### N`. The Example's answer is N normalised ("1,080" -> "1080", "18.0" -> "18"); its
rationale is the solution without the `####` line, annotations kept (strip them with
`t5x_cot.calculator.strip_annotations`). Ids are `gsm8k-<split>-<index>` with the 0-based
position in the file, five digits wide.
"""
from __future__ import annotations

import pathlib
import re

from t5x_cot.data.example import Example
from t5x_cot.data.fields import Location, iter_jsonl, require

SPLITS = ("train", "test")
FINAL_ANSWER_MARK = "####"

_NUMBER = re.compile(r"(?P<sign>[-+]?)(?P<int>\d{1,3}(?:,\d{3})+|\d+)(?:\.(?P<frac>\d+))?")


def split_path(data_dir: pathlib.Path, split: str) -> pathlib.Path:
    """Where a split lives under the data dir."""
    return data_dir / "gsm8k" / f"{split}.jsonl"


def normalize_number(text: str) -> str | None:
    """Canonical text of a plain decimal number ("1,000" -> "1000", "-3.50" -> "-3.5") or None."""
    match = _NUMBER.fullmatch(text.strip())
    if match is None:
        return None
    integer = str(int(match["int"].replace(",", "")))
    frac = (match["frac"] or "").rstrip("0")
    number = f"{integer}.{frac}" if frac else integer
    return "-" + number if match["sign"] == "-" and number != "0" else number


def parse_solution(solution: str, where: Location) -> tuple[str, str]:
    """(rationale, normalised final answer) of a solution ending in `#### N`."""
    rationale, mark, final = solution.rpartition(FINAL_ANSWER_MARK)
    if not mark:
        raise where.error(f"expected the solution to end with a line '{FINAL_ANSWER_MARK} N'",
                          "answer")
    answer = normalize_number(final)
    if answer is None:
        raise where.error(f"expected a number after '{FINAL_ANSWER_MARK}', got {final.strip()!r}",
                          "answer")
    rationale = rationale.strip()
    if not rationale:
        raise where.error(f"expected solution steps before '{FINAL_ANSWER_MARK} {final.strip()}'",
                          "answer")
    return rationale, answer


def load(split: str, data_dir: pathlib.Path) -> list[Example]:
    """All examples of a GSM8K split (`train` or `test`)."""
    if split not in SPLITS:
        raise ValueError(f"gsm8k has splits {SPLITS}, got {split!r}")
    examples = []
    for index, (where, obj) in enumerate(iter_jsonl(split_path(data_dir, split))):
        question = require(obj, "question", str, where).strip()
        rationale, answer = parse_solution(require(obj, "answer", str, where), where)
        examples.append(Example(id=f"gsm8k-{split}-{index:05d}", task="gsm8k", split=split,
                                question=question, answer=answer, rationale=rationale))
    return examples
