"""Deterministic, id-keyed assignment of questions to validation and to dataset fractions.

A question's place depends only on its id (a SHA-256 hash mapped to [0, 1)), so every
variant of a dataset (teacher CoT, gold CoT, answer only, fractions) holds out the same
validation questions, all rationales of a question stay together, and fractions nest:
the 12.5% subset lies inside the 25% one, which lies inside the 50% one.
"""
from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Sequence
from typing import TypeVar

T = TypeVar("T")

VALIDATION_FRACTION = 0.1
FRACTIONS = {"frac12": 0.125, "frac25": 0.25, "frac50": 0.5}


def unit_hash(key: str, salt: str) -> float:
    """A uniform number in [0, 1) determined by `salt` and `key` (stable across runs)."""
    digest = hashlib.sha256(f"{salt}:{key}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2.0**64


def is_validation(question_id: str) -> bool:
    """Whether a training-set question is held out for validation (10% of questions)."""
    return unit_hash(question_id, "validation") < VALIDATION_FRACTION


def in_fraction(question_id: str, fraction: float) -> bool:
    """Whether a question belongs to the `fraction` subset; subsets nest as fraction grows."""
    return unit_hash(question_id, "fraction") < fraction


def split_training_set(items: Iterable[T], split: str, key: Callable[[T], str]) -> list[T]:
    """The `train` or `validation` part of a training set, keyed by question id."""
    if split not in ("train", "validation"):
        raise ValueError(f"split must be 'train' or 'validation', got {split!r}")
    want_validation = split == "validation"
    return [item for item in items if is_validation(key(item)) == want_validation]


def take_fraction(items: Sequence[T], fraction: float, key: Callable[[T], str]) -> list[T]:
    """The items whose question id falls in the nested `fraction` subset."""
    return [item for item in items if in_fraction(key(item), fraction)]
