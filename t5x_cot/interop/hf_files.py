"""The weight files of a HuggingFace model directory, read one tensor at a time.

Looked for in this order: `model.safetensors`, `model.safetensors.index.json` (shards),
`pytorch_model.bin`, `pytorch_model.bin.index.json`. Safetensors need no torch; `.bin`
files are opened with `torch.load(mmap=True)` so only the tensor being converted is copied.
"""
from __future__ import annotations

import json
import pathlib
from typing import Any, Protocol

import numpy as np

from t5x_cot.interop.errors import ConversionError
from t5x_cot.interop.safetensors_io import SafetensorsReader

SAFETENSORS = "model.safetensors"
SAFETENSORS_INDEX = "model.safetensors.index.json"
TORCH_BIN = "pytorch_model.bin"
TORCH_INDEX = "pytorch_model.bin.index.json"
WEIGHT_FILES = (SAFETENSORS, SAFETENSORS_INDEX, TORCH_BIN, TORCH_INDEX)


class WeightReader(Protocol):
    """Named tensors of one weights file or set of shards."""

    path: pathlib.Path

    def keys(self) -> list[str]: ...

    def shape(self, name: str) -> tuple[int, ...]: ...

    def read(self, name: str) -> np.ndarray: ...

    def close(self) -> None: ...


class SafetensorsWeights:
    """One safetensors file."""

    def __init__(self, path: pathlib.Path):
        self.path = path
        self._reader = SafetensorsReader(path)

    def keys(self) -> list[str]:
        return self._reader.keys()

    def shape(self, name: str) -> tuple[int, ...]:
        return self._reader.spec(name).shape

    def read(self, name: str) -> np.ndarray:
        return self._reader.read(name)

    def close(self) -> None:
        self._reader.close()


class TorchWeights:
    """One `pytorch_model.bin` (a torch state dict), memory-mapped."""

    def __init__(self, path: pathlib.Path):
        import torch

        self.path = path
        try:
            self._state = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
        except (RuntimeError, OSError, EOFError) as error:
            raise ConversionError(path, f"cannot read the torch state dict ({error})") from error
        if not isinstance(self._state, dict):
            raise ConversionError(path, "not a torch state dict (expected a dict of tensors)")

    def keys(self) -> list[str]:
        return list(self._state)

    def shape(self, name: str) -> tuple[int, ...]:
        return tuple(self._tensor(name).shape)

    def read(self, name: str) -> np.ndarray:
        import torch

        tensor = self._tensor(name)
        if not tensor.is_floating_point():
            return tensor.numpy().copy()
        return tensor.to(torch.float32).numpy().copy()

    def _tensor(self, name: str) -> Any:
        try:
            return self._state[name]
        except KeyError:
            raise ConversionError(self.path, "no such tensor in the file", tensor=name) from None

    def close(self) -> None:
        self._state = {}


class ShardedWeights:
    """Shards listed by a `*.index.json` (`{"weight_map": {tensor: shard file}}`), opened lazily."""

    def __init__(self, index: pathlib.Path, open_shard: type[SafetensorsWeights] | type[TorchWeights]):
        self.path = index
        try:
            weight_map = json.loads(index.read_text(encoding="utf-8")).get("weight_map")
        except (json.JSONDecodeError, AttributeError) as error:
            raise ConversionError(index, f"not a JSON index object ({error})", field="weight_map") from error
        if not isinstance(weight_map, dict) or not all(isinstance(v, str) for v in weight_map.values()):
            raise ConversionError(index, "expected an object of tensor name -> shard file", field="weight_map")
        self._weight_map: dict[str, str] = weight_map
        self._open_shard = open_shard
        self._shards: dict[str, SafetensorsWeights | TorchWeights] = {}

    def keys(self) -> list[str]:
        return list(self._weight_map)

    def _shard(self, name: str) -> SafetensorsWeights | TorchWeights:
        if name not in self._weight_map:
            raise ConversionError(self.path, "not in the index's weight_map", tensor=name)
        file = self._weight_map[name]
        if file not in self._shards:
            shard_path = self.path.parent / file
            if not shard_path.is_file():
                raise ConversionError(self.path, f"shard file {file!r} does not exist", tensor=name)
            self._shards[file] = self._open_shard(shard_path)
        return self._shards[file]

    def shape(self, name: str) -> tuple[int, ...]:
        return self._shard(name).shape(name)

    def read(self, name: str) -> np.ndarray:
        return self._shard(name).read(name)

    def close(self) -> None:
        for shard in self._shards.values():
            shard.close()
        self._shards.clear()


def open_weights(directory: str | pathlib.Path) -> WeightReader:
    """The weights of an HF model directory (see the module doc for the lookup order)."""
    root = pathlib.Path(directory)
    if (root / SAFETENSORS).is_file():
        return SafetensorsWeights(root / SAFETENSORS)
    if (root / SAFETENSORS_INDEX).is_file():
        return ShardedWeights(root / SAFETENSORS_INDEX, SafetensorsWeights)
    if (root / TORCH_BIN).is_file():
        return TorchWeights(root / TORCH_BIN)
    if (root / TORCH_INDEX).is_file():
        return ShardedWeights(root / TORCH_INDEX, TorchWeights)
    raise ConversionError(root, f"no weights file (expected one of {', '.join(WEIGHT_FILES)})")
