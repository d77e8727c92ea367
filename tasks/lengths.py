"""Token lengths of every task under the T5 vocabulary, and truncation counts.

Lengths include the EOS token the task appends, so a feature of length L is truncated
exactly when its measured length exceeds L.
"""
from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping, Sequence

import numpy as np
import seqio

from t5x_cot.tasks import sources
from t5x_cot.tasks.vocab import TASK_VOCABULARY

FEATURES = ("inputs", "targets")
PERCENTILES = (50, 95, 99)


def _source(task_name: str) -> sources.RowSource:
    source = seqio.get_mixture_or_task(task_name).source
    if not isinstance(source, sources.RowSource):
        raise TypeError(f"{task_name} does not read a t5x_cot RowSource")
    return source


def token_lengths(task_name: str, split: str) -> dict[str, np.ndarray]:
    """Per-example token counts (EOS included) of `inputs` and `targets` of one split."""
    rows = _source(task_name).rows(split)
    tokenizer = TASK_VOCABULARY.tokenizer
    return {f: np.array([len(ids) + 1 for ids in tokenizer.encode([r[f] for r in rows])],
                        dtype=np.int64) for f in FEATURES}


def length_table(task_names: Iterable[str], splits: Sequence[str] = sources.SPLITS) -> list[dict]:
    """Rows {task, split, feature, n, p50, p95, p99, max} for each task, split and feature.

    Tasks whose CoT records file is missing are skipped with a log line.
    """
    table = []
    for name in task_names:
        source = _source(name)
        try:
            per_split = {s: token_lengths(name, s) for s in splits if s in source.splits}
        except sources.MissingRecordsError as e:
            logging.info("lengths: skipping %s (%s)", name, e)
            continue
        for split, lengths in per_split.items():
            for feature in FEATURES:
                values = lengths[feature]
                row = {"task": name, "split": split, "feature": feature, "n": int(values.size)}
                for p in PERCENTILES:
                    row[f"p{p}"] = int(np.percentile(values, p)) if values.size else 0
                row["max"] = int(values.max()) if values.size else 0
                table.append(row)
    return table


def format_length_table(table: Sequence[Mapping]) -> str:
    """A fixed-width text table of `length_table` rows."""
    columns = ("task", "split", "feature", "n", "p50", "p95", "p99", "max")
    cells = [[str(row[c]) for c in columns] for row in table]
    widths = [max([len(c)] + [len(r[i]) for r in cells]) for i, c in enumerate(columns)]
    lines = ["  ".join(c.ljust(w) if i < 3 else c.rjust(w)
                       for i, (c, w) in enumerate(zip(columns, widths)))]
    for r in cells:
        lines.append("  ".join(v.ljust(w) if i < 3 else v.rjust(w)
                               for i, (v, w) in enumerate(zip(r, widths))))
    return "\n".join(lines)


def count_truncated(task_name: str, split: str, feature_lengths: Mapping[str, int]) -> dict:
    """How many examples of a split exceed `feature_lengths` (per feature), with the total."""
    lengths = token_lengths(task_name, split)
    counts = {f: int((lengths[f] > feature_lengths[f]).sum()) for f in FEATURES
              if f in feature_lengths}
    return {"task": task_name, "split": split, "examples": int(lengths["targets"].size),
            "truncated": counts}


_REPORTED: dict[tuple, list[dict]] = {}


def check_truncation(task_name: str, feature_lengths: Mapping[str, int]) -> list[dict]:
    """Counts truncated examples in every split of a task; logs a warning when any are.

    Called by the task pipeline whenever a dataset is built with feature lengths, so
    truncation is always reported; the result is memoised per task, lengths and data size.
    """
    source = _source(task_name)
    sizes = tuple(len(source.rows(s)) for s in source.splits)
    key = (task_name, tuple(sorted(feature_lengths.items())), sizes)
    if key not in _REPORTED:
        reports = [count_truncated(task_name, s, feature_lengths) for s in source.splits]
        for report in reports:
            if any(report["truncated"].values()):
                logging.warning(
                    "%s %s: truncating %s of %d examples at feature lengths %s", task_name,
                    report["split"], report["truncated"], report["examples"],
                    dict(feature_lengths))
        _REPORTED[key] = reports
    return _REPORTED[key]
