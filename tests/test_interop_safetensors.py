"""Our streaming safetensors reader/writer against the reference `safetensors` package."""
from __future__ import annotations

import ml_dtypes
import numpy as np
import pytest
from safetensors.numpy import load_file, save_file

from t5x_cot.interop.errors import ConversionError
from t5x_cot.interop.safetensors_io import SafetensorsReader, SafetensorsWriter, TensorSpec


def _tensors() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    return {"a.weight": rng.standard_normal((3, 5), dtype=np.float32),
            "b.bias": rng.standard_normal((7,)).astype(np.float16),
            "c.index": np.arange(6, dtype=np.int64).reshape(2, 3),
            "d.scalar": np.array(2.5, np.float64)}


def _write(path, tensors: dict[str, np.ndarray]) -> None:
    specs = [TensorSpec(name, a.dtype, a.shape) for name, a in tensors.items()]
    with SafetensorsWriter(path, specs, {"format": "pt"}) as writer:
        for name, array in tensors.items():
            writer.write(name, array)


def test_written_file_reads_back_with_the_reference_library(tmp_path):
    tensors = _tensors()
    _write(tmp_path / "x.safetensors", tensors)
    loaded = load_file(tmp_path / "x.safetensors")
    assert sorted(loaded) == sorted(tensors)
    for name, array in tensors.items():
        assert loaded[name].dtype == array.dtype and np.array_equal(loaded[name], array)


def test_reads_reference_files_lazily(tmp_path):
    tensors = _tensors()
    save_file(tensors, tmp_path / "ref.safetensors", metadata={"format": "pt"})
    with SafetensorsReader(tmp_path / "ref.safetensors") as reader:
        assert reader.metadata == {"format": "pt"}
        assert sorted(reader.keys()) == sorted(tensors)
        assert reader.spec("a.weight") == TensorSpec("a.weight", np.dtype(np.float32), (3, 5))
        for name, array in tensors.items():
            assert np.array_equal(reader.read(name), array)


def test_bfloat16_round_trip(tmp_path):
    array = np.linspace(-2, 2, 12, dtype=np.float32).astype(ml_dtypes.bfloat16).reshape(3, 4)
    _write(tmp_path / "bf16.safetensors", {"w": array})
    with SafetensorsReader(tmp_path / "bf16.safetensors") as reader:
        got = reader.read("w")
    assert got.dtype == ml_dtypes.bfloat16 and np.array_equal(got.view(np.uint16), array.view(np.uint16))


def test_truncated_file_names_the_cut_tensor(tmp_path):
    tensors = _tensors()
    path = tmp_path / "cut.safetensors"
    save_file(tensors, path)
    data = path.read_bytes()
    path.write_bytes(data[:-10])
    with pytest.raises(ConversionError, match="truncated") as info:
        SafetensorsReader(path)
    assert info.value.tensor is not None and info.value.tensor in str(info.value)
    path.write_bytes(data[:5])
    with pytest.raises(ConversionError, match="truncated"):
        SafetensorsReader(path)


def test_writer_checks_order_shape_and_completeness(tmp_path):
    specs = [TensorSpec("x", np.dtype(np.float32), (2,)), TensorSpec("y", np.dtype(np.float32), (3,))]
    writer = SafetensorsWriter(tmp_path / "w.safetensors", specs)
    with pytest.raises(ConversionError, match="'x' next"):
        writer.write("y", np.zeros(3, np.float32))
    with pytest.raises(ConversionError, match=r"declared float32 \(2,\)"):
        writer.write("x", np.zeros(3, np.float32))
    writer.write("x", np.zeros(2, np.float32))
    with pytest.raises(ConversionError, match="never written") as info:
        writer.close()
    assert info.value.tensor == "y"
    assert list(tmp_path.iterdir()) == []
