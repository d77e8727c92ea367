"""T5X checkpoints, read one array at a time: the single-file msgpack checkpoint and the
tensorstore directory (a msgpack `checkpoint` index whose leaves are zarr specs with paths
relative to the directory, one folder of zarr chunks per array beside it).

Local paths use tensorstore's `file` kvstore, `gs://bucket/dir` its `gcs` kvstore (which
picks up Google application-default credentials). Params live under `optimizer/target/`
(flax optimizer checkpoints) or `target/` (newer ones); optimizer state is never needed to
fine-tune and is read only when asked for.
"""
from __future__ import annotations

import copy
import os
import posixpath
import re
from collections.abc import Mapping
from typing import Any

import numpy as np
import tensorstore as ts
from flax import serialization

from t5x_cot.interop.errors import ConversionError

CHECKPOINT_FILE = "checkpoint"
PARAM_PREFIXES = ("optimizer/target/", "target/")
_GCS = re.compile(r"^gs://([^/]+)/?(.*)$")


def _is_array_spec(value: Any) -> bool:
    return isinstance(value, Mapping) and isinstance(value.get("driver"), str) and (
        "kvstore" in value or "path" in value)


def _flatten(tree: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """`{"a/b": leaf}`; zarr specs are leaves."""
    flat: dict[str, Any] = {}
    for key, value in tree.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping) and not _is_array_spec(value):
            flat.update(_flatten(value, name + "/"))
        else:
            flat[name] = value
    return flat


class _Location:
    """A checkpoint directory as a tensorstore kvstore, local or on GCS."""

    def __init__(self, directory: str):
        self.directory = directory.rstrip("/")
        match = _GCS.match(directory)
        if match:
            self.bucket, self.prefix = match.group(1), match.group(2).strip("/")
        else:
            self.bucket, self.prefix = None, os.path.abspath(directory)

    def kvstore(self, relative: str = "") -> dict[str, str]:
        path = posixpath.join(self.prefix, relative) if relative else self.prefix
        if self.bucket is None:
            return {"driver": "file", "path": path}
        return {"driver": "gcs", "bucket": self.bucket, "path": path}

    def read(self, key: str, relative: str = "") -> bytes | None:
        """The bytes stored under `relative/key`, or None when there are none."""
        spec = self.kvstore(relative)
        spec["path"] = spec["path"].rstrip("/") + "/"
        result = ts.KvStore.open(spec).result().read(key).result()
        return bytes(result.value) if result.state == "value" else None


def _open_index(path: str) -> tuple[_Location, bytes]:
    """(checkpoint dir, bytes of its msgpack file) for a checkpoint dir or msgpack file path."""
    path = str(path)
    if not _GCS.match(path):
        if os.path.isdir(path):
            location = _Location(path)
            data = location.read(CHECKPOINT_FILE)
            if data is None:
                raise ConversionError(path, f"not a T5X checkpoint directory: no {CHECKPOINT_FILE!r} file")
            return location, data
        if not os.path.isfile(path):
            raise ConversionError(path, "no such T5X checkpoint file or directory")
    location = _Location(path)
    data = location.read(CHECKPOINT_FILE)
    if data is not None:
        return location, data
    parent, name = posixpath.split(path.rstrip("/"))
    location = _Location(parent)
    data = location.read(name)
    if data is None:
        raise ConversionError(path, "no such T5X checkpoint file or directory")
    return location, data


class T5XCheckpoint:
    """The arrays of one T5X checkpoint, by `/`-joined name, read on demand."""

    def __init__(self, path: str | os.PathLike):
        self.path = str(path)
        self._location, data = _open_index(self.path)
        try:
            tree = serialization.msgpack_restore(data)
        except Exception as error:  # msgpack raises several unrelated types on corrupt input
            raise ConversionError(self.path, f"not a T5X msgpack checkpoint ({error})") from error
        if not isinstance(tree, Mapping):
            raise ConversionError(self.path, "not a T5X checkpoint: the msgpack root is not a map")
        self.version = tree.get("version")
        self._leaves = _flatten({k: v for k, v in tree.items() if k != "version"})
        self.param_prefix = next(
            (p for p in PARAM_PREFIXES if any(name.startswith(p) for name in self._leaves)), None)

    def names(self) -> list[str]:
        """Every array in the checkpoint (params and optimizer state)."""
        return list(self._leaves)

    def param_names(self) -> list[str]:
        """Param names relative to the target prefix (`encoder/layers_0/...`)."""
        if self.param_prefix is None:
            return []
        return [name[len(self.param_prefix):] for name in self._leaves if name.startswith(self.param_prefix)]

    def shape_dtype(self, name: str) -> tuple[tuple[int, ...], np.dtype]:
        """Shape and stored dtype of one array, from the zarr spec without reading it."""
        leaf = self._leaf(name)
        if _is_array_spec(leaf):
            if "dtype" not in leaf:
                store = self._open(name, leaf)
                return tuple(store.shape), store.dtype.numpy_dtype
            return tuple(leaf.get("metadata", {}).get("shape", ())), ts.dtype(leaf["dtype"]).numpy_dtype
        array = np.asarray(leaf)
        return tuple(array.shape), array.dtype

    def read(self, name: str) -> np.ndarray:
        """One array as stored (dtype unchanged)."""
        leaf = self._leaf(name)
        if not _is_array_spec(leaf):
            return np.asarray(leaf)
        return np.asarray(self._open(name, leaf).read().result())

    def read_param(self, name: str) -> np.ndarray:
        """One param (name relative to the target prefix), cast to float32."""
        if self.param_prefix is None:
            raise ConversionError(self.path, f"no params (nothing under {' or '.join(PARAM_PREFIXES)})",
                                  tensor=name)
        return self.read(self.param_prefix + name).astype(np.float32)

    def _leaf(self, name: str) -> Any:
        try:
            return self._leaves[name]
        except KeyError:
            raise ConversionError(self.path, "no such array in the checkpoint", tensor=name) from None

    def _open(self, name: str, leaf: Mapping[str, Any]) -> ts.TensorStore:
        spec = copy.deepcopy(dict(leaf))
        # tensorstore >= 0.1.14 specs keep the relative path in the kvstore, older ones beside it.
        relative = spec["kvstore"].get("path", "") if "kvstore" in spec else spec.pop("path")
        spec["kvstore"] = self._location.kvstore(relative)
        # T5X copies the zarr metadata into the index; chunk folders may lack their .zarray.
        has_metadata = self._location.read(".zarray", relative) is not None
        try:
            return ts.open(spec, open=True, read=True, assume_metadata=not has_metadata).result()
        except ValueError as error:
            raise ConversionError(self.path, f"cannot open the array's zarr store ({error})",
                                  tensor=name) from error
