"""Answer-accuracy metrics for CoT tasks, as seqio postprocessor and metric functions.

The postprocessor turns a decoded text into a `Scored` dict: the text, the answer
extracted with `answers.extract_answer` (for targets: the gold answer of the example),
the answer type and the length in tokens. Metric functions take lists of those
(`targets`, `predictions`) and return percentages, as T5 metrics do.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, TypedDict

import numpy as np

from t5x_cot import answers, calculator


class Scored(TypedDict):
    """A postprocessed target or prediction."""

    text: str
    answer: str | None
    answer_type: str
    num_tokens: int


def _text(value: Any) -> str:
    if isinstance(value, bytes):
        return value.decode("utf-8")
    if hasattr(value, "item"):  # numpy scalar
        return _text(value.item())
    return str(value)


def postprocess(output: str | bytes, example: Mapping[str, Any] | None = None,
                is_target: bool = False, *, answer_type: str, vocabulary=None) -> Scored:
    """seqio postprocess_fn: extract the final answer (targets: the example's gold answer).

    `num_tokens` counts SentencePiece tokens when `vocabulary` is given, else words.
    """
    text = _text(output)
    if is_target and example is not None and "answer" in example:
        answer = _text(example["answer"])
    else:
        answer = answers.extract_answer(text, answer_type)
    num_tokens = len(vocabulary.encode(text)) if vocabulary is not None else len(text.split())
    return Scored(text=text, answer=answer, answer_type=answer_type, num_tokens=num_tokens)


def _percent(flags: Sequence[bool]) -> float:
    return 100.0 * float(np.mean(flags)) if len(flags) else 0.0


def accuracy(targets: Sequence[Scored], predictions: Sequence[Scored]) -> dict[str, float]:
    """Percentage of predictions whose extracted answer equals the gold answer."""
    return {"accuracy": _percent([
        p["answer"] is not None and answers.is_correct(p["answer"], t["answer"], t["answer_type"])
        for t, p in zip(targets, predictions, strict=True)])}


def answer_found(targets: Sequence[Scored], predictions: Sequence[Scored]) -> dict[str, float]:
    """Percentage of predictions in which an answer could be extracted at all."""
    del targets
    return {"answer_found": _percent([p["answer"] is not None for p in predictions])}


def mean_length(targets: Sequence[Scored], predictions: Sequence[Scored]) -> dict[str, float]:
    """Mean generated length (tokens; words when postprocessed without a vocabulary)."""
    del targets
    values = [p["num_tokens"] for p in predictions]
    return {"mean_generated_length": float(np.mean(values)) if values else 0.0}


def corrected_answer(text: str) -> str | None:
    """The answer after Wei et al.'s post-hoc calculator: every equation recomputed, corrected
    results carried into later equations, answer re-extracted."""
    return answers.extract_answer(calculator.correct_rationale(text), "number")


def calculator_accuracy(targets: Sequence[Scored],
                        predictions: Sequence[Scored]) -> dict[str, float]:
    """Accuracy after calculator correction of the generated rationale (GSM8K)."""
    flags = []
    for t, p in zip(targets, predictions, strict=True):
        answer = corrected_answer(p["text"])
        flags.append(answer is not None and answers.is_correct(answer, t["answer"], "number"))
    return {"calculator_accuracy": _percent(flags)}


ANSWER_METRICS = (accuracy, answer_found, mean_length)
GSM8K_METRICS = ANSWER_METRICS + (calculator_accuracy,)


def metric_fns_for(task: str) -> tuple:
    """The metric functions of a dataset (`gsm8k` adds the calculator-corrected accuracy)."""
    return GSM8K_METRICS if task == "gsm8k" else ANSWER_METRICS
