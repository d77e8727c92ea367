"""Native T5X checkpoints out: `checkpoint_<step>/` as T5X's tensorstore checkpointer lays it out.

The directory holds a msgpack `checkpoint` file `{"version": 3, "optimizer": {"target": params,
"state": {"step": step, "param_states": {param: {v_row, v_col, v, m}}}}}` whose array leaves
are zarr specs with directory-relative paths (`target.encoder.layers_0.attention.key.kernel`),
one gzip zarr array per folder beside it; `state/step` stays inline, as T5X writes it. Chunks
divide each shape evenly and hold at most 64 MiB, as T5X chooses them. Arrays are written one
at a time.
"""
from __future__ import annotations

import os
import pathlib
from collections.abc import Iterable, Mapping

import numpy as np
import tensorstore as ts
from flax import serialization

from t5x_cot.interop.layout import unflatten
from t5x_cot.interop.t5x_ckpt import CHECKPOINT_FILE

VERSION = 3
CHUNK_BYTES = 64 * 1024 * 1024


def chunk_shape(shape: tuple[int, ...], itemsize: int, chunk_bytes: int = CHUNK_BYTES) -> list[int]:
    """The largest chunk dividing `shape` evenly with at most `chunk_bytes`: the largest
    dimension is cut down to its next smaller divisor until the chunk fits."""
    target = max(1, chunk_bytes // itemsize)
    divisors = [[d for d in range(1, size + 1) if size % d == 0] or [1] for size in shape]
    while int(np.prod([d[-1] for d in divisors])) > target:
        largest = max(range(len(shape)), key=lambda i: divisors[i][-1])
        divisors[largest].pop()
    return [d[-1] for d in divisors]


def _write_array(directory: pathlib.Path, name: str, array: np.ndarray) -> dict:
    """Write `array` as the zarr array `name` (a `/` path) in T5X's layout; returns its relative spec."""
    relative = name.replace("/", ".")
    spec = {"driver": "zarr", "dtype": np.dtype(array.dtype).name,
            "kvstore": {"driver": "file", "path": relative},
            "metadata": {"compressor": {"id": "gzip"}, "shape": list(array.shape),
                         "chunks": chunk_shape(array.shape, array.dtype.itemsize)}}
    absolute = {**spec, "kvstore": {"driver": "file", "path": os.fspath(directory / relative)}}
    store = ts.open(absolute, create=True, delete_existing=True).result()
    store.write(array).result()
    return ts.Spec(spec).to_json()


def write_t5x_checkpoint(model_dir: str | os.PathLike, params: Iterable[tuple[str, np.ndarray]],
                         param_states: Mapping[str, Mapping[str, np.ndarray]], step: int) -> pathlib.Path:
    """Write `model_dir/checkpoint_<step>/`; `params` yields (name, array) pairs one at a time,
    `param_states` maps each param name to its Adafactor {v_row, v_col, v, m}. Returns the dir."""
    directory = pathlib.Path(model_dir).absolute() / f"checkpoint_{int(step)}"
    directory.mkdir(parents=True, exist_ok=True)
    target = {name: _write_array(directory, f"target/{name}", np.asarray(array)) for name, array in params}
    missing = sorted(set(target) - set(param_states))
    if missing:
        raise ValueError(f"no Adafactor state for {missing[0]}")
    states = {f"{name}/{key}": _write_array(directory, f"state/param_states/{name}/{key}", np.asarray(value))
              for name in target for key, value in param_states[name].items()}
    tree = {"version": VERSION, "optimizer": {
        "target": unflatten(target),
        "state": {"step": np.asarray(step, np.int32), "param_states": unflatten(states)}}}
    (directory / CHECKPOINT_FILE).write_bytes(serialization.msgpack_serialize(tree))
    return directory
