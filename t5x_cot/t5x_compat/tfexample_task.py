"""T5X's `infer_script.create_task_from_tfexample_file`: a seqio Task over files of TFExamples.

Bound in T5X's `infer_from_tfexample_file.gin` as
`utils.DatasetConfig.mixture_or_task_name = @infer_script.create_task_from_tfexample_file()`;
the Task has one split, 'infer', whose examples are the files' `inputs_key` (and, for scoring,
`targets_key`; empty without one) strings, tokenized with `features` and EOS appended, as
T5X builds it.
"""
from __future__ import annotations

import functools
import hashlib
from collections.abc import Mapping, Sequence
from typing import Any

from t5x_cot.t5x_compat import UnsupportedT5XFeature

FILE_TYPES = ("tfrecord",)
SPLIT = "infer"


def task_name(paths: Sequence[str], inputs_key: str, targets_key: str | None, task_id: str | None) -> str:
    """`infer_<task_id>`, by default a hash of the paths and keys (the same files, the same Task)."""
    if task_id is None:
        task_id = hashlib.md5(":".join([*paths, inputs_key, targets_key or ""]).encode()).hexdigest()[:10]
    return f"infer_{task_id}"


def create_task_from_tfexample_file(paths: Sequence[str], file_type: str, inputs_key: str,
                                    targets_key: str | None, features: Mapping[str, Any],
                                    task_id: str | None = None) -> str:
    """Register (once) the Task reading `paths` and return its name."""
    import seqio
    import tensorflow as tf

    from t5x_cot.data_pipeline import DataConfigError

    if isinstance(paths, str):
        paths = [paths]
    if file_type not in FILE_TYPES:
        raise UnsupportedT5XFeature(f"infer_script.create_task_from_tfexample_file.file_type={file_type!r}: "
                                    f"expected one of {', '.join(FILE_TYPES)}")
    if not tf.io.gfile.glob(list(paths)):
        raise DataConfigError(f"infer_script.create_task_from_tfexample_file.paths={list(paths)!r}: no such files")
    name = task_name(paths, inputs_key, targets_key, task_id)
    if name in seqio.TaskRegistry.names():
        return name
    description = {key: tf.io.FixedLenFeature([], tf.string) for key in (inputs_key, targets_key) if key}
    seqio.TaskRegistry.add(
        name, source=seqio.TFExampleDataSource({SPLIT: list(paths)}, feature_description=description,
                                               reader_cls=tf.data.TFRecordDataset),
        preprocessors=[functools.partial(seqio.preprocessors.rekey,  # no targets_key: empty targets
                                         key_map={"inputs": inputs_key, "targets": targets_key}),
                       seqio.preprocessors.tokenize_and_append_eos],
        output_features=dict(features))
    return name
