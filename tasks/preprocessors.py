"""The preprocessing chain shared by every task (tokenize, cache point, report truncation, EOS)."""
from __future__ import annotations

import functools
from collections.abc import Mapping

import seqio
import tensorflow as tf

from t5x_cot.tasks import lengths


def report_truncation(dataset: tf.data.Dataset, sequence_length: Mapping[str, int] | None = None,
                      *, task_name: str) -> tf.data.Dataset:
    """Counts (and logs) the examples the feature lengths will truncate; data passes unchanged."""
    if sequence_length:
        lengths.check_truncation(
            task_name, {k: v for k, v in sequence_length.items() if k in lengths.FEATURES and v})
    return dataset


def task_preprocessors(task_name: str) -> list:
    """Tokenize (keeping `*_pretokenized` text for eval), then after the cache point report
    truncation and append EOS after trimming to the feature lengths."""
    return [
        seqio.preprocessors.tokenize,
        seqio.CacheDatasetPlaceholder(),
        functools.partial(report_truncation, task_name=task_name),
        seqio.preprocessors.append_eos_after_trim,
    ]
