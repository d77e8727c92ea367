"""Batches and T5X checkpoints shared by the training tests (and their subprocess scripts)."""
from __future__ import annotations

from typing import Any

import numpy as np
from support import tiny_model  # noqa: F401  (test_plan.py's import)


def random_batch(batch: int, inputs_length: int, targets_length: int, vocab: int = 64, seed: int = 0,
                 packed: bool = True) -> dict[str, np.ndarray]:
    """A batch like EncDecFeatureConverter's: two packed examples per row when `packed`."""
    rng = np.random.RandomState(seed)

    def feature(length: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        tokens = rng.randint(2, vocab, size=(batch, length)).astype(np.int32)
        segments = np.ones((batch, length), np.int32)
        positions = np.tile(np.arange(length, dtype=np.int32), (batch, 1))
        if packed:
            cut = length // 2
            segments[:, cut:] = 2
            positions[:, cut:] -= cut
        tokens[:, -2:] = 0
        segments[:, -2:] = 0
        positions[:, -2:] = 0
        return tokens, segments, positions

    inputs, enc_seg, enc_pos = feature(inputs_length)
    targets, dec_seg, dec_pos = feature(targets_length)
    decoder_inputs = np.zeros_like(targets)
    decoder_inputs[:, 1:] = targets[:, :-1]
    decoder_inputs[dec_pos == 0] = 0
    out = {"encoder_input_tokens": inputs, "decoder_input_tokens": decoder_inputs,
           "decoder_target_tokens": targets, "decoder_loss_weights": (targets > 0).astype(np.int32)}
    if packed:
        out.update(encoder_segment_ids=enc_seg, encoder_positions=enc_pos,
                   decoder_segment_ids=dec_seg, decoder_positions=dec_pos)
    return out


def shapes_of(batch: dict[str, np.ndarray]) -> dict[str, tuple[int, ...]]:
    return {name: value.shape for name, value in batch.items()}


def write_t5x_checkpoint(path: Any, params: dict[str, Any], step: int, layout: str = "tensorstore") -> None:
    """Write `params` (our nested tree) as a native T5X checkpoint at `step`.

    `layout="msgpack"`: one msgpack file at `path` (arrays inline); `"tensorstore"`: a dir
    `path/` with the msgpack `checkpoint` index whose leaves are zarr specs (relative paths)
    and one gzip zarr array per param beside it, as T5X writes them.
    """
    import os

    import tensorstore as ts
    from flax import serialization

    from t5x_cot.interop.layout import flatten, unflatten

    flat = {name: np.asarray(value, np.float32) for name, value in flatten(params).items()}
    if layout == "msgpack":
        tree = {"version": 3, "optimizer": {"target": unflatten(flat), "state": {"step": np.int32(step)}}}
        with open(path, "wb") as handle:
            handle.write(serialization.msgpack_serialize(tree))
        return
    os.makedirs(path, exist_ok=True)
    specs = {}
    for name, value in flat.items():
        relative = "target." + name.replace("/", ".")
        metadata = {"shape": list(value.shape), "chunks": list(value.shape) or [1], "dtype": "<f4",
                    "compressor": {"id": "gzip"}}
        store = ts.open({"driver": "zarr", "kvstore": {"driver": "file", "path": os.path.join(path, relative)},
                         "metadata": metadata}, create=True, delete_existing=True).result()
        store.write(value).result()
        specs[name] = {"driver": "zarr", "kvstore": {"driver": "file", "path": relative}, "metadata": metadata}
    index = {"version": 3, "optimizer": {"target": unflatten(specs), "state": {"step": np.int32(step)}}}
    with open(os.path.join(path, "checkpoint"), "wb") as handle:
        handle.write(serialization.msgpack_serialize(index))
