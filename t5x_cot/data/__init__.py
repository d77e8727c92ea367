"""Datasets of the paper as `Example`s: GSM8K and StrategyQA from their files, Coinflip generated.

    >>> from t5x_cot.data import load_examples
    >>> load_examples("gsm8k", "train")[0].answer                      # doctest: +SKIP
    '72'
    >>> load_examples("coinflip", "test", num_people=3, num_examples=4)  # doctest: +SKIP

Files are read from `data_dir`, by default `default_data_dir()`; `t5x-cot download` fetches
them. Pure Python: no TensorFlow or JAX here.
"""
from __future__ import annotations

import os
import pathlib

from t5x_cot.data import coinflip, gsm8k, strategyqa
from t5x_cot.data.example import DataError, Example
from t5x_cot.data.fields import MissingDataError

__all__ = ["DataError", "Example", "MissingDataError", "TASKS", "default_data_dir",
           "load_examples"]

TASKS = ("gsm8k", "strategyqa", "coinflip")
DATA_DIR_ENV = "T5X_COT_DATA_DIR"


def default_data_dir() -> pathlib.Path:
    """`$T5X_COT_DATA_DIR`, or `~/.cache/t5x_cot/data` when it is unset."""
    value = os.environ.get(DATA_DIR_ENV)
    if value:
        return pathlib.Path(value).expanduser()
    return pathlib.Path.home() / ".cache" / "t5x_cot" / "data"


def load_examples(task: str, split: str, data_dir: str | os.PathLike | None = None,
                  *, num_people: int = 2, num_examples: int = 1000, seed: int = 0
                  ) -> list[Example]:
    """All examples of one split of a task, in file order.

    gsm8k: splits train, test. strategyqa: train, dev ("test" is dev). coinflip: any split
    name; `num_people`, `num_examples` and `seed` choose the generated set (data_dir unused).
    Malformed files raise DataError naming the file, line or index, and field; a missing
    file raises MissingDataError.
    """
    if task == "coinflip":
        return coinflip.generate(num_examples, num_people, seed, split)
    directory = pathlib.Path(data_dir).expanduser() if data_dir else default_data_dir()
    if task == "gsm8k":
        return gsm8k.load(split, directory)
    if task == "strategyqa":
        return strategyqa.load(split, directory)
    raise ValueError(f"unknown task {task!r}; expected one of {TASKS}")
