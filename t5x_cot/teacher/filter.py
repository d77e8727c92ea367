"""Judge teacher completions against the gold answer and turn them into CoT records.

A completion is kept when the teacher's final answer (parsed by `t5x_cot.answers`)
matches gold. Otherwise it is dropped for one reason:

    truncated       the endpoint stopped at max_tokens (finish_reason "length")
    no_answer       no "The answer is X." the grammar can read
    empty_rationale an answer with no reasoning before it
    wrong_answer    an answer that does not match gold
    duplicate       a correct rationale identical to one already kept for the question
    endpoint_error  the request failed for good (no completion to judge)

With several samples per question, up to that many *distinct* correct rationales are
kept (whitespace-normalised comparison), in sample order.
"""
from __future__ import annotations

import collections
import dataclasses
from collections.abc import Iterable, Mapping
from typing import Any

from t5x_cot.data.example import Example

DROP_REASONS = ("wrong_answer", "no_answer", "truncated", "endpoint_error", "empty_rationale",
                "duplicate")


@dataclasses.dataclass(frozen=True)
class Verdict:
    """The outcome for one completion: "kept" or a drop reason, plus what was parsed."""

    status: str
    rationale: str
    teacher_answer: str | None


def judge(text: str, finish_reason: str | None, gold: str, answer_type: str) -> Verdict:
    """Classify one completion (see the module docstring)."""
    from t5x_cot import answers
    text = text.split("\nQ:", 1)[0].strip()
    predicted = answers.extract_answer(text, answer_type)
    rationale = " ".join(answers.split_rationale(text)[0].split())
    if finish_reason == "length":
        return Verdict("truncated", rationale, predicted)
    if predicted is None:
        return Verdict("no_answer", rationale, None)
    if not rationale:
        return Verdict("empty_rationale", rationale, predicted)
    if not answers.is_correct(predicted, gold, answer_type):
        return Verdict("wrong_answer", rationale, predicted)
    return Verdict("kept", rationale, predicted)


@dataclasses.dataclass
class Summary:
    """Counts over one generation run; `dropped` is keyed by reason."""

    questions: int = 0
    requested: int = 0
    answered: int = 0
    kept: int = 0
    questions_kept: int = 0
    tokens: int = 0
    dropped: collections.Counter = dataclasses.field(default_factory=collections.Counter)

    def as_dict(self) -> dict[str, Any]:
        """JSON-able form with every drop reason present."""
        out = dataclasses.asdict(self)
        out["dropped"] = {reason: self.dropped.get(reason, 0) for reason in DROP_REASONS}
        out["kept_fraction"] = round(self.kept / self.answered, 6) if self.answered else 0.0
        return out

    def text(self) -> str:
        """One human-readable paragraph."""
        drops = ", ".join(f"{r} {self.dropped.get(r, 0)}" for r in DROP_REASONS)
        pct = 100.0 * self.kept / self.answered if self.answered else 0.0
        return (f"questions {self.questions}, requested {self.requested}, answered "
                f"{self.answered}, kept {self.kept} ({pct:.1f}% of answered; "
                f"{self.questions_kept} questions with a rationale), tokens {self.tokens}; "
                f"dropped: {drops}")


def make_record(example: Example, verdict: Verdict, teacher: Mapping[str, Any], prompt_id: str,
                sample_index: int, usage: Mapping[str, int]) -> dict[str, Any]:
    """A CoT record (schema in `t5x_cot.data.records`)."""
    return {
        "id": example.id, "task": example.task, "split": example.split,
        "question": example.question, "answer": example.answer,
        "rationale": verdict.rationale, "teacher_answer": verdict.teacher_answer,
        "correct": verdict.status == "kept", "teacher": dict(teacher), "prompt_id": prompt_id,
        "sample_index": sample_index, "usage": dict(usage),
    }


def select(example: Example, entries: Iterable[tuple[int, dict | None]], answer_type: str,
           teacher: Mapping[str, Any], prompt_id: str, summary: Summary) -> list[dict]:
    """Records for the distinct correct completions of one question; updates `summary`.

    `entries` are (sample_index, stored completion or None when the request failed).
    """
    summary.questions += 1
    seen: set[str] = set()
    records = []
    for sample_index, entry in entries:
        summary.requested += 1
        if entry is None:
            summary.dropped["endpoint_error"] += 1
            continue
        summary.answered += 1
        usage = entry.get("usage") or {}
        summary.tokens += int(usage.get("total_tokens", 0))
        verdict = judge(entry["text"], entry.get("finish_reason"), example.answer, answer_type)
        if verdict.status == "kept" and verdict.rationale in seen:
            verdict = dataclasses.replace(verdict, status="duplicate")
        if verdict.status != "kept":
            summary.dropped[verdict.status] += 1
            continue
        seen.add(verdict.rationale)
        records.append(make_record(example, verdict, teacher, prompt_id, sample_index, usage))
    summary.kept += len(records)
    summary.questions_kept += bool(records)
    return records
