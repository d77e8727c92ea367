"""Python-side data for every task: rows of (id, inputs, targets, answer) per split.

Examples come from `t5x_cot.data.load_examples` and CoT record files read with
`t5x_cot.data.records.read_records`; `RowSource` feeds them to seqio as a DataSource.

Splits (the paper's): `train` and `validation` partition each training set by question
id (10% validation, see `splits.py`); `test` is GSM8K test (1319), StrategyQA dev (229) or
Coinflip in-distribution (2 people). `inputs` is the plain question text (no "Q:"/"A:"
markers); `targets` is `<rationale> The answer is <answer>.`. Both have whitespace
collapsed to single spaces (the T5 vocabulary has no newline) and ×, ÷, − written as
*, /, - (the vocabulary lacks them). `<task>_cot` test targets carry the gold rationale
(GSM8K solution, StrategyQA facts, Coinflip symbolic steps): no teacher rationale exists
for test questions, and only the answer is scored there.
"""
from __future__ import annotations

import dataclasses
import functools
import logging
import os
import pathlib
from collections.abc import Callable, Mapping, Sequence

import gin
import numpy as np
import seqio
import tensorflow as tf

from t5x_cot import answers, calculator
from t5x_cot.data import DataError, Example, default_data_dir, load_examples
from t5x_cot.data.records import read_records
from t5x_cot.tasks import splits as splits_lib
from t5x_cot.tensorflow_devices import probe_devices_quietly

# TensorFlow probes its devices once per process: now, before any op, without the false
# "failed call to cuInit" error it prints on a machine that has no GPU.
probe_devices_quietly()

TASKS = ("gsm8k", "strategyqa", "coinflip")
SPLITS = ("train", "validation", "test")
TEST_SPLIT = {"gsm8k": "test", "strategyqa": "dev", "coinflip": "test"}
FEATURES = ("id", "inputs", "targets", "answer")

Row = dict[str, str]


@dataclasses.dataclass(frozen=True)
class CoinflipSet:
    """One generated Coinflip set: how many examples, with how many people, from which seed."""

    num_examples: int
    num_people: int
    seed: int


# Wei et al. 2022 setup: train in-distribution on 2 people, test on 2 (in-distribution) and
# 3 / 4 people (out of distribution). The 10,000 training questions give ~9,000 train and
# ~1,000 validation after the id-hash split; each test set has 1,000 questions, none of
# them a training question.
COINFLIP_SETS = {
    "train": CoinflipSet(10_000, 2, seed=1),
    "test": CoinflipSet(1_000, 2, seed=2),
    "test_ood3": CoinflipSet(1_000, 3, seed=3),
    "test_ood4": CoinflipSet(1_000, 4, seed=4),
}


class MissingRecordsError(DataError):
    """A task's CoT records file does not exist."""


# Arithmetic symbols the T5 vocabulary lacks (they would decode as unknown), as ASCII.
_ASCII_MATH = str.maketrans({"×": "*", "÷": "/", "−": "-"})


def clean_text(text: str) -> str:
    """Whitespace collapsed to single spaces, arithmetic symbols T5 cannot spell as ASCII."""
    return " ".join(text.translate(_ASCII_MATH).split())


@functools.lru_cache(maxsize=32)
def _cached_examples(task: str, split: str, data_dir: str) -> tuple[Example, ...]:
    if task != "coinflip":
        return tuple(load_examples(task, split, data_dir))
    spec, train = COINFLIP_SETS[split], COINFLIP_SETS["train"]
    if split == "train" or spec.num_people != train.num_people:
        return tuple(load_examples(task, split, data_dir, num_people=spec.num_people,
                                   num_examples=spec.num_examples, seed=spec.seed))
    # Independent draws share ~4.5% of 2-people questions with train: leave those out.
    seen = {e.question for e in _cached_examples(task, "train", data_dir)}
    drawn = load_examples(task, split, data_dir, num_people=spec.num_people,
                          num_examples=spec.num_examples * 6 // 5, seed=spec.seed)
    fresh = tuple(e for e in drawn if e.question not in seen)[:spec.num_examples]
    if len(fresh) < spec.num_examples:
        raise DataError("coinflip", f"only {len(fresh)} {split} questions not in train")
    return fresh


def dataset_examples(task: str, split: str) -> tuple[Example, ...]:
    """Examples of one dataset split as the reader gives them (`split`: the dataset's name)."""
    return _cached_examples(task, split, str(default_data_dir()))


def examples_for(task: str, split: str) -> list[Example]:
    """Examples of our `train` / `validation` / `test` split of a dataset."""
    if split == "test":
        return list(dataset_examples(task, TEST_SPLIT[task]))
    return splits_lib.split_training_set(dataset_examples(task, "train"), split, lambda e: e.id)


def gold_rationale(example: Example, keep_annotations: bool = False) -> str:
    """The human or symbolic rationale; GSM8K `<<expr=result>>` markup stripped unless kept."""
    if not example.rationale:
        raise DataError(example.task, f"example {example.id} has no gold rationale",
                        field="rationale")
    text = example.rationale
    if example.task == "gsm8k" and not keep_annotations:
        text = calculator.strip_annotations(text)
    return clean_text(text)


def _row(example: Example, rationale: str) -> Row:
    return {"id": example.id, "inputs": clean_text(example.question),
            "targets": answers.format_target(rationale, example.answer), "answer": example.answer}


def gold_cot_rows(task: str, split: str) -> list[Row]:
    """Targets with the gold rationale."""
    return [_row(e, gold_rationale(e)) for e in examples_for(task, split)]


def gold_cot_calc_rows(task: str, split: str) -> list[Row]:
    """Gold rationales that keep GSM8K's `<<expr=result>>` calculator annotations.

    The T5 vocabulary has no `<`, so `<<` becomes the unknown token: a student trained on
    these targets learns to open an annotation with it, which is what the decoder's
    calculator-in-the-loop (`USE_CALCULATOR=True`) watches for.
    """
    return [_row(e, gold_rationale(e, keep_annotations=True)) for e in examples_for(task, split)]


def answer_only_rows(task: str, split: str) -> list[Row]:
    """Targets `The answer is <answer>.` (the paper's baseline)."""
    return [_row(e, "") for e in examples_for(task, split)]


def coinflip_ood_rows(people: int, split: str) -> list[Row]:
    """Coinflip with `people` people (out of distribution); only a `test` split."""
    if split != "test":
        raise ValueError(f"coinflip_ood{people} has only a 'test' split, got {split!r}")
    return [_row(e, gold_rationale(e)) for e in dataset_examples("coinflip", f"test_ood{people}")]


@gin.configurable("cot_records_file", module="t5x_cot.tasks")
def cot_records_file(task: str, paths: Mapping[str, str] | None = None,
                     cot_dir: str | None = None) -> pathlib.Path:
    """Where `<task>_cot` reads its CoT records.

    In order: gin `cot_records_file.paths = {"gsm8k": ...}`, env `T5X_COT_<TASK>_COT`
    (a file), gin `cot_records_file.cot_dir` or env `T5X_COT_COT_DIR` (a directory holding
    `<task>.jsonl`), else `$T5X_COT_DATA_DIR/cot/<task>.jsonl`. As a flag:
    `--gin.cot_records_file.cot_dir="'/path/to/cot'"`.
    """
    if paths and task in paths:
        return pathlib.Path(paths[task])
    env_file = os.environ.get(f"T5X_COT_{task.upper()}_COT")
    if env_file:
        return pathlib.Path(env_file)
    directory = cot_dir or os.environ.get("T5X_COT_COT_DIR")
    base = pathlib.Path(directory) if directory else default_data_dir() / "cot"
    return base / f"{task}.jsonl"


@functools.lru_cache(maxsize=16)
def _cached_record_rows(task: str, path: str, _mtime_ns: int, _size: int) -> tuple[Row, ...]:
    records = read_records(path)
    rows, skipped_incorrect, skipped_split = [], 0, 0
    for number, record in enumerate(records, 1):
        if record["task"] != task:
            raise DataError(path, f"record {number} has task {record['task']!r}, expected "
                                  f"{task!r}", field="task")
        if not record["correct"]:
            skipped_incorrect += 1
            continue
        if record["split"] != "train":
            skipped_split += 1
            continue
        rationale, _ = answers.split_rationale(record["rationale"])
        rows.append({"id": str(record["id"]), "inputs": clean_text(record["question"]),
                     "targets": answers.format_target(clean_text(rationale), str(record["answer"])),
                     "answer": str(record["answer"])})
    if skipped_incorrect or skipped_split:
        logging.warning("%s: kept %d of %d CoT records (%d with a wrong teacher answer, %d from "
                        "splits other than 'train' dropped)", path, len(rows), len(records),
                        skipped_incorrect, skipped_split)
    return tuple(rows)


def record_rows(task: str, path: str | os.PathLike | None = None) -> tuple[Row, ...]:
    """All usable rows of a CoT records file (default: the task's); validated, so a malformed
    file raises DataError naming file and line. Records whose teacher answer was wrong or
    that come from another split than `train` are dropped (and counted in the log)."""
    path = pathlib.Path(path) if path else cot_records_file(task)
    try:
        stat = path.stat()
    except FileNotFoundError:
        raise MissingRecordsError(
            path, f"no CoT records for {task}; write them with `t5x-cot generate --task {task} "
                  f"--out {path}` or point T5X_COT_{task.upper()}_COT / T5X_COT_COT_DIR / "
                  "gin cot_records_file at them") from None
    return _cached_record_rows(task, str(path), stat.st_mtime_ns, stat.st_size)


def cot_rows(task: str, split: str, fraction: float | None = None) -> list[Row]:
    """Teacher rationales (train/validation by question id; `fraction` subsets train only)."""
    if split == "test":
        return gold_cot_rows(task, split)
    rows = splits_lib.split_training_set(record_rows(task), split, lambda r: r["id"])
    if fraction is not None and split == "train":
        rows = splits_lib.take_fraction(rows, fraction, lambda r: r["id"])
    return rows


class RowSource(seqio.DataSource):
    """A seqio DataSource over rows built in Python by `load(split)`.

    Rows are loaded when a dataset is requested (not at registration), so a malformed
    records file raises DataError when the task's dataset is built, before training.
    """

    def __init__(self, load: Callable[[str], Sequence[Row]], splits: Sequence[str] = SPLITS):
        self._load = load
        super().__init__(splits=splits)

    def __repr__(self) -> str:
        return f"RowSource({self._load!r}, splits={self.splits})"

    @property
    def supports_arbitrary_sharding(self) -> bool:
        return True

    def rows(self, split: str) -> Sequence[Row]:
        """The rows of `split`, in their deterministic source order."""
        if split not in self.splits:
            raise ValueError(f"unknown split {split!r}; expected one of {self.splits}")
        return self._load(split)

    def list_shards(self, split: str) -> Sequence[str]:
        return [split]

    def num_input_examples(self, split: str) -> int:
        return len(self.rows(split))

    def get_dataset(self, split: str = "train", shuffle: bool = True, seed: int | None = None,
                    shard_info: seqio.ShardInfo | None = None, *, sequence_length=None,
                    use_cached: bool = False, num_epochs: int | None = 1) -> tf.data.Dataset:
        del sequence_length, use_cached, num_epochs  # handled by the Task
        rows = list(self.rows(split))
        if shuffle:
            order = np.random.default_rng(seed).permutation(len(rows))
            rows = [rows[i] for i in order]
        columns = {k: tf.constant([r[k] for r in rows], dtype=tf.string) for k in FEATURES}
        ds = tf.data.Dataset.from_tensor_slices(columns)
        if shard_info is not None and shard_info.num_shards > 1:
            ds = ds.shard(shard_info.num_shards, shard_info.index)
        return ds
