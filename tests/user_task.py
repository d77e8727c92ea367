"""A user's own seqio task with its own predict and score metric functions, registered by
importing this module (as MIXTURE_OR_TASK_MODULE or a gin import would)."""
from __future__ import annotations

import numpy as np
import seqio
import tensorflow as tf

from t5x_cot.tasks.vocab import TASK_VOCABULARY

TASK_NAME = "user_echo_task"
INPUTS = ["red green blue", "one two", "a b c d", "sun", "moon and stars", "left right"]


def _dataset(split: str, shuffle_files: bool = False, seed: int | None = None) -> tf.data.Dataset:
    del split, shuffle_files, seed
    return tf.data.Dataset.from_tensor_slices({"inputs": INPUTS, "targets": [t.upper() for t in INPUTS]})


def prediction_stats(targets: list[str], predictions: list[str]) -> dict[str, float]:
    """The user's predict metric: how many predictions it saw and how many equal the target."""
    return {"num_predictions": float(len(predictions)),
            "exact_match": 100.0 * float(np.mean([t == p for t, p in zip(targets, predictions)]))}


def mean_target_score(targets: list[str], scores: list[float]) -> dict[str, float]:
    """The user's score metric: the mean log-likelihood of the targets."""
    del targets
    return {"mean_target_score": float(np.mean(scores))}


if TASK_NAME not in seqio.TaskRegistry.names():
    seqio.TaskRegistry.add(
        TASK_NAME,
        source=seqio.FunctionDataSource(_dataset, splits=["test"]),
        preprocessors=[seqio.preprocessors.tokenize, seqio.preprocessors.append_eos_after_trim],
        output_features={"inputs": seqio.Feature(TASK_VOCABULARY, add_eos=True),
                         "targets": seqio.Feature(TASK_VOCABULARY, add_eos=True)},
        metric_fns=[prediction_stats, mean_target_score])
