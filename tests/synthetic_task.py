"""A small synthetic SeqIO task for training tests: copy a random token sequence.

Pass-through vocabulary (ids are tokens), deterministic examples, splits train and
validation, so training tests need no SentencePiece model and no data files.
"""
from __future__ import annotations

import numpy as np
import seqio
import tensorflow as tf

NAME = "synthetic_copy"
VOCAB_SIZE = 64


def _dataset_fn(split: str, shuffle_files: bool, seed: int | None = None, num_examples: int = 512) -> tf.data.Dataset:
    del shuffle_files, seed
    rng = np.random.RandomState(0 if split == "train" else 1)
    lengths = rng.randint(3, 10, size=num_examples)
    inputs = [rng.randint(3, VOCAB_SIZE, size=n).astype(np.int32) for n in lengths]
    return tf.data.Dataset.from_tensor_slices({
        "inputs": tf.ragged.constant(inputs, dtype=tf.int32),
        "targets": tf.ragged.constant([x[::-1] for x in inputs], dtype=tf.int32)})


def register(name: str = NAME) -> str:
    """Register the task (once) and return its name."""
    if name not in seqio.TaskRegistry.names():
        vocabulary = seqio.PassThroughVocabulary(size=VOCAB_SIZE, eos_id=1)
        features = {key: seqio.Feature(vocabulary=vocabulary, add_eos=True, dtype=tf.int32)
                    for key in ("inputs", "targets")}
        seqio.TaskRegistry.add(
            name, source=seqio.FunctionDataSource(_dataset_fn, splits=("train", "validation")),
            preprocessors=[seqio.preprocessors.append_eos_after_trim], output_features=features)
    return name


register()
