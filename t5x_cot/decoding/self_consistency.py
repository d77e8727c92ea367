"""Self-consistency (Wang et al. 2023): sample k rationales per question and majority-vote
the extracted answers; accuracy for several k from prefixes of the same samples."""
from __future__ import annotations

import collections
from collections.abc import Mapping, Sequence

from t5x_cot import answers

DEFAULT_KS = (1, 5, 10, 20)


def majority_vote(candidates: Sequence[str | None]) -> str | None:
    """The most frequent extracted answer (None = no answer, never voted for); ties go to the
    answer seen first."""
    counts = collections.Counter(a for a in candidates if a is not None)
    if not counts:
        return None
    best = max(counts.values())
    return next(a for a in candidates if a is not None and counts[a] == best)


def vote(texts: Sequence[str], answer_type: str, k: int) -> str | None:
    """Majority answer of the first `k` sampled rationales."""
    return majority_vote([answers.extract_answer(t, answer_type) for t in texts[:k]])


def accuracy_by_k(samples: Sequence[Sequence[str]], golds: Sequence[str], answer_type: str,
                  ks: Sequence[int] = DEFAULT_KS) -> dict[int, float]:
    """Percent correct of the majority answer of the first k samples, per question, for each k
    not larger than the number of samples per question."""
    if len(samples) != len(golds):
        raise ValueError(f"{len(samples)} sample lists for {len(golds)} gold answers")
    result: dict[int, float] = {}
    for k in ks:
        if not samples or k > min(len(s) for s in samples):
            continue
        flags = []
        for texts, gold in zip(samples, golds):
            predicted = vote(texts, answer_type, k)
            flags.append(predicted is not None and answers.is_correct(predicted, gold, answer_type))
        result[k] = 100.0 * sum(flags) / len(flags)
    return result


def format_accuracy_by_k(table: Mapping[int, float]) -> dict[str, float]:
    """JSON-friendly keys: {"accuracy@k": value}."""
    return {f"accuracy@{k}": value for k, value in sorted(table.items())}
