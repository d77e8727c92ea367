"""Bad HF input gives a ConversionError naming the tensor or config field."""
from __future__ import annotations

import json

import numpy as np
import pytest
from support import tiny_config

from t5x_cot.interop.errors import ConversionError
from t5x_cot.interop.hf_export import export_hf
from t5x_cot.interop.hf_import import HFSource
from t5x_cot.interop.layout import param_shapes, unflatten
from t5x_cot.interop.safetensors_io import SafetensorsReader, SafetensorsWriter, TensorSpec

WO = "decoder.block.1.layer.2.DenseReluDense.wo.weight"


@pytest.fixture
def hf_dir(tmp_path):
    config = tiny_config(vocab_size=128, emb_dim=8, head_dim=4, mlp_dim=16, num_encoder_layers=2,
                         num_decoder_layers=2)
    rng = np.random.default_rng(0)
    params = unflatten({name: rng.standard_normal(shape, dtype=np.float32)
                        for name, shape in param_shapes(config).items()})
    return export_hf(params, config, tmp_path / "hf")


def _rewrite_weights(hf_dir, edit) -> None:
    path = hf_dir / "model.safetensors"
    with SafetensorsReader(path) as reader:
        tensors = {name: reader.read(name) for name in reader.keys()}
    edit(tensors)
    with SafetensorsWriter(path, [TensorSpec(n, a.dtype, a.shape) for n, a in tensors.items()]) as writer:
        for name, array in tensors.items():
            writer.write(name, array)


def _edit_config(hf_dir, **fields) -> None:
    path = hf_dir / "config.json"
    config = json.loads(path.read_text())
    for key, value in fields.items():
        if value is None:
            config.pop(key)
        else:
            config[key] = value
    path.write_text(json.dumps(config))


def _error(hf_dir) -> ConversionError:
    with pytest.raises(ConversionError) as info:
        HFSource(hf_dir)
    return info.value


def test_valid_directory_opens(hf_dir):
    HFSource(hf_dir).close()


def test_missing_tensor(hf_dir):
    _rewrite_weights(hf_dir, lambda t: t.pop(WO))
    error = _error(hf_dir)
    assert error.tensor == WO and "missing" in str(error) and WO in str(error)


def test_shape_mismatch(hf_dir):
    _rewrite_weights(hf_dir, lambda t: t.update({WO: np.zeros((8, 15), np.float32)}))
    error = _error(hf_dir)
    assert error.tensor == WO and "shape [8, 15], expected [8, 16]" in str(error)


def test_config_disagreeing_with_tensors(hf_dir):
    _edit_config(hf_dir, d_ff=32)
    error = _error(hf_dir)
    assert "DenseReluDense" in error.tensor and "expected [32, 8]" in str(error)


def test_unknown_feed_forward_proj(hf_dir):
    _edit_config(hf_dir, feed_forward_proj="gated-swiglu")
    error = _error(hf_dir)
    assert error.field == "feed_forward_proj" and "'gated-swiglu'" in str(error)
    _edit_config(hf_dir, feed_forward_proj="double-relu")
    assert _error(hf_dir).field == "feed_forward_proj"


def test_missing_and_mistyped_config_fields(hf_dir):
    _edit_config(hf_dir, d_model=None)
    assert _error(hf_dir).field == "d_model"
    _edit_config(hf_dir, d_model="eight")
    error = _error(hf_dir)
    assert error.field == "d_model" and "expected int, got 'eight'" in str(error)


def test_truncated_safetensors(hf_dir):
    path = hf_dir / "model.safetensors"
    path.write_bytes(path.read_bytes()[:-100])
    error = _error(hf_dir)
    assert "truncated" in str(error) and error.tensor is not None and error.tensor in str(error)


def test_left_over_tensor(hf_dir):
    extra = "encoder.block.0.layer.0.SelfAttention.q.bias"
    _rewrite_weights(hf_dir, lambda t: t.update({extra: np.zeros(8, np.float32)}))
    error = _error(hf_dir)
    assert error.tensor == extra and "left-over" in str(error)


def test_not_a_t5_model(hf_dir):
    _edit_config(hf_dir, model_type="bart")
    assert _error(hf_dir).field == "model_type"


def test_no_weights_file(hf_dir):
    (hf_dir / "model.safetensors").unlink()
    assert "no weights file" in str(_error(hf_dir))
