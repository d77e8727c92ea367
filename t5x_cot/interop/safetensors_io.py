"""The safetensors format, read and written one tensor at a time.

A safetensors file is an 8-byte little-endian header length, a JSON header
(`{name: {"dtype", "shape", "data_offsets": [begin, end]}, "__metadata__": {...}}`, offsets
relative to the end of the header) and the raw little-endian tensor bytes. Reading copies one
tensor into a fresh buffer (no memory map, so a converted tensor's pages do not stay
resident); writing lays out the header from the tensor specs first, then appends each
tensor's bytes as it arrives. Neither needs torch.
"""
from __future__ import annotations

import json
import os
import pathlib
import struct
from collections.abc import Mapping, Sequence
from typing import BinaryIO, NamedTuple

import ml_dtypes
import numpy as np

from t5x_cot.interop.errors import ConversionError

DTYPES: dict[str, np.dtype] = {
    "F64": np.dtype(np.float64), "F32": np.dtype(np.float32), "F16": np.dtype(np.float16),
    "BF16": np.dtype(ml_dtypes.bfloat16), "I64": np.dtype(np.int64), "I32": np.dtype(np.int32),
    "I16": np.dtype(np.int16), "I8": np.dtype(np.int8), "U8": np.dtype(np.uint8),
    "BOOL": np.dtype(np.bool_),
}
DTYPE_NAMES: dict[np.dtype, str] = {dtype: name for name, dtype in DTYPES.items()}
METADATA_KEY = "__metadata__"
_HEADER_LIMIT = 100 * 1024 * 1024  # the reference implementation's own header size limit


class TensorSpec(NamedTuple):
    """Name, dtype and shape of one tensor in a safetensors file."""

    name: str
    dtype: np.dtype
    shape: tuple[int, ...]

    @property
    def nbytes(self) -> int:
        return int(np.prod(self.shape, dtype=np.int64)) * self.dtype.itemsize


class _Entry(NamedTuple):
    spec: TensorSpec
    begin: int  # absolute file offsets
    end: int


class SafetensorsReader:
    """Random access to the tensors of one safetensors file, validated against its size."""

    def __init__(self, path: str | os.PathLike):
        self.path = pathlib.Path(path)
        size = self.path.stat().st_size
        self._file: BinaryIO = open(self.path, "rb")
        try:
            self._entries, self.metadata = self._parse_header(size)
        except BaseException:
            self._file.close()
            raise

    def _parse_header(self, size: int) -> tuple[dict[str, _Entry], dict[str, str]]:
        prefix = self._file.read(8)
        if len(prefix) < 8:
            raise ConversionError(self.path, f"truncated safetensors file: {size} bytes, "
                                  "expected at least the 8-byte header length")
        (header_len,) = struct.unpack("<Q", prefix)
        if header_len > _HEADER_LIMIT or 8 + header_len > size:
            raise ConversionError(self.path, f"truncated or corrupt safetensors file: header "
                                  f"length {header_len} but the file has {size} bytes")
        try:
            header = json.loads(self._file.read(header_len))
        except (UnicodeDecodeError, json.JSONDecodeError) as error:
            raise ConversionError(self.path, f"safetensors header is not valid JSON ({error})") from error
        if not isinstance(header, dict):
            raise ConversionError(self.path, "safetensors header is not a JSON object")
        metadata = header.pop(METADATA_KEY, None) or {}
        data_start = 8 + header_len
        entries = {name: self._entry(name, info, data_start) for name, info in header.items()}
        for entry in sorted(entries.values(), key=lambda e: e.end):
            if entry.end > size:
                raise ConversionError(
                    self.path, f"truncated safetensors file: the tensor's data ends at byte "
                    f"{entry.end} but the file has {size} bytes", tensor=entry.spec.name)
        return entries, metadata

    def _entry(self, name: str, info: object, data_start: int) -> _Entry:
        if not isinstance(info, dict):
            raise ConversionError(self.path, "header entry is not an object", tensor=name)
        dtype = DTYPES.get(info.get("dtype"))
        if dtype is None:
            raise ConversionError(self.path, f"unsupported dtype {info.get('dtype')!r} "
                                  f"(expected one of {', '.join(DTYPES)})", tensor=name)
        shape, offsets = info.get("shape"), info.get("data_offsets")
        if not (isinstance(shape, list) and all(isinstance(d, int) and d >= 0 for d in shape)):
            raise ConversionError(self.path, f"bad shape {shape!r}", tensor=name)
        spec = TensorSpec(name, dtype, tuple(shape))
        if not (isinstance(offsets, list) and len(offsets) == 2
                and all(isinstance(o, int) for o in offsets) and offsets[1] - offsets[0] == spec.nbytes):
            raise ConversionError(self.path, f"data_offsets {offsets!r} do not hold {spec.nbytes} bytes "
                                  f"of {info.get('dtype')} {list(shape)}", tensor=name)
        return _Entry(spec, data_start + offsets[0], data_start + offsets[1])

    def keys(self) -> list[str]:
        """Tensor names in file order."""
        return [e.spec.name for e in sorted(self._entries.values(), key=lambda e: e.begin)]

    def __contains__(self, name: str) -> bool:
        return name in self._entries

    def spec(self, name: str) -> TensorSpec:
        """Dtype and shape of one tensor, without reading it."""
        return self._lookup(name).spec

    def read(self, name: str) -> np.ndarray:
        """One tensor, copied into a new numpy array."""
        entry = self._lookup(name)
        array = np.empty(entry.spec.shape, entry.spec.dtype)
        self._file.seek(entry.begin)
        got = self._file.readinto(memoryview(array.reshape(-1).view(np.uint8)))
        if got != entry.spec.nbytes:
            raise ConversionError(self.path, f"truncated safetensors file: read {got} of "
                                  f"{entry.spec.nbytes} bytes", tensor=name)
        return array

    def _lookup(self, name: str) -> _Entry:
        try:
            return self._entries[name]
        except KeyError:
            raise ConversionError(self.path, "no such tensor in the file", tensor=name) from None

    def close(self) -> None:
        self._file.close()

    def __enter__(self) -> SafetensorsReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class SafetensorsWriter:
    """Writes a safetensors file whose tensors are declared up front and written in order.

    The file appears at `path` only after `close()` has seen every declared tensor; until
    then it is written to `path.partial`, which an error removes.
    """

    def __init__(self, path: str | os.PathLike, specs: Sequence[TensorSpec],
                 metadata: Mapping[str, str] | None = None):
        self.path = pathlib.Path(path)
        self._partial = self.path.with_name(self.path.name + ".partial")
        self._specs = list(specs)
        header: dict[str, object] = {METADATA_KEY: dict(metadata)} if metadata else {}
        offset = 0
        for spec in self._specs:
            if spec.dtype not in DTYPE_NAMES:
                raise ConversionError(self.path, f"cannot write dtype {spec.dtype}", tensor=spec.name)
            header[spec.name] = {"dtype": DTYPE_NAMES[spec.dtype], "shape": list(spec.shape),
                                 "data_offsets": [offset, offset + spec.nbytes]}
            offset += spec.nbytes
        encoded = json.dumps(header, separators=(",", ":")).encode("utf-8")
        encoded += b" " * (-len(encoded) % 8)  # keep tensor data 8-byte aligned, as the reference does
        self._next = 0
        self._file: BinaryIO = open(self._partial, "wb")
        self._file.write(struct.pack("<Q", len(encoded)) + encoded)

    def write(self, name: str, array: np.ndarray) -> None:
        """Append the next declared tensor; its name, dtype and shape must match the declaration."""
        if self._next >= len(self._specs):
            raise ConversionError(self.path, "more tensors written than declared", tensor=name)
        spec = self._specs[self._next]
        if name != spec.name:
            raise ConversionError(self.path, f"written out of order: expected {spec.name!r} next",
                                  tensor=name)
        if array.dtype != spec.dtype or tuple(array.shape) != spec.shape:
            raise ConversionError(self.path, f"got {array.dtype} {tuple(array.shape)}, declared "
                                  f"{spec.dtype} {spec.shape}", tensor=name)
        self._file.write(memoryview(np.ascontiguousarray(array).reshape(-1).view(np.uint8)))
        self._next += 1

    def close(self) -> None:
        """Finish the file; raises if a declared tensor was never written."""
        self._file.close()
        if self._next != len(self._specs):
            self._partial.unlink(missing_ok=True)
            raise ConversionError(self.path, "file left incomplete: never written",
                                  tensor=self._specs[self._next].name)
        os.replace(self._partial, self.path)

    def abort(self) -> None:
        """Drop the partial file."""
        self._file.close()
        self._partial.unlink(missing_ok=True)

    def __enter__(self) -> SafetensorsWriter:
        return self

    def __exit__(self, exc_type: object, *rest: object) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()
