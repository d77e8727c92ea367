"""T5X checkpoints: the real msgpack and tensorstore fixtures, and a bf16 tensorstore checkpoint."""
from __future__ import annotations

import dataclasses

import jax
import ml_dtypes
import numpy as np
import pytest
import tensorstore as ts
from flax import linen as nn
from flax import serialization

from t5x_cot.interop.errors import ConversionError
from t5x_cot.interop.layout import flatten, param_shapes, unflatten
from t5x_cot.interop.sources import T5XSource, read_tree
from t5x_cot.interop.t5x_ckpt import T5XCheckpoint
from t5x_cot.model.network import Transformer

pytestmark = pytest.mark.needs_data


@pytest.fixture(scope="module")
def msgpack_path(data_dir):
    return data_dir / "t5x_checkpoints" / "test_t5_tiny.checkpoint_0"


@pytest.fixture(scope="module")
def msgpack_source(msgpack_path):
    return T5XSource(msgpack_path)


def _batch(vocab: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    enc = rng.integers(2, vocab, (2, 6)).astype(np.int32)
    enc[1, 4:] = 0
    targets = rng.integers(2, vocab, (2, 5)).astype(np.int32)
    targets[0, 3:] = 0
    dec = np.zeros_like(targets)
    dec[:, 1:] = targets[:, :-1]
    return {"encoder_input_tokens": enc, "decoder_input_tokens": dec, "decoder_target_tokens": targets}


def network_param_shapes(config) -> dict[str, tuple[int, ...]]:
    """The network's own param tree for `config` (abstract init), flattened."""
    tokens = np.ones((1, 4), np.int32)
    abstract = jax.eval_shape(lambda: nn.unbox(Transformer(config).init(
        jax.random.PRNGKey(0), tokens, tokens, tokens, enable_dropout=False)["params"]))
    return {name: tuple(leaf.shape) for name, leaf in flatten(abstract).items()}


def test_msgpack_fixture_maps_every_param_and_runs(msgpack_source):
    config = msgpack_source.config
    assert (config.emb_dim, config.num_heads, config.head_dim, config.mlp_dim) == (8, 4, 3, 16)
    assert config.mlp_activations == ("gelu", "linear") and not config.logits_via_embedding
    batch = _batch(config.vocab_size)
    params = read_tree(msgpack_source)
    loaded_shapes = {name: array.shape for name, array in flatten(params).items()}
    assert loaded_shapes == network_param_shapes(config) == param_shapes(config)  # none missing or left over
    assert all(array.dtype == np.float32 for array in flatten(params).values())
    forward = jax.jit(lambda p, e, di, dt: Transformer(config).apply({"params": p}, e, di, dt, enable_dropout=False))
    logits = forward(params, batch["encoder_input_tokens"], batch["decoder_input_tokens"],
                     batch["decoder_target_tokens"])
    assert logits.shape == (2, 5, config.vocab_size)
    assert np.isfinite(np.asarray(logits, np.float32)).all()


def test_tensorstore_fixture_reads_back_recorded_shapes_and_dtypes(data_dir):
    directory = data_dir / "t5x_checkpoints" / "tiny_tensorstore" / "checkpoint_1"
    index = serialization.msgpack_restore((directory / "checkpoint").read_bytes())
    param_states = index["optimizer"]["state"]["param_states"]
    recorded = {f"optimizer/state/param_states/{key}": spec for key, spec in param_states.items()}
    checkpoint = T5XCheckpoint(directory)
    assert checkpoint.version == 3
    assert set(recorded) < set(checkpoint.names())
    for name, spec in recorded.items():
        array = checkpoint.read(name)
        expected = (tuple(spec["metadata"]["shape"]), np.dtype(spec["dtype"]))
        assert checkpoint.shape_dtype(name) == expected
        assert (array.shape, array.dtype) == expected
    np.testing.assert_array_equal(checkpoint.read("optimizer/state/param_states/bias"), np.ones(5, np.float32))
    assert checkpoint.read("optimizer/state/param_states/step") == 1
    kernel = checkpoint.read("optimizer/state/param_states/kernel")
    assert ((kernel >= 0) & (kernel < 1)).all() and len(np.unique(kernel)) == kernel.size
    with pytest.raises(ConversionError, match="no params"):
        T5XSource(directory)


def _write_tensorstore_checkpoint(directory, params: dict[str, np.ndarray], dtype: str) -> None:
    """A T5X tensorstore checkpoint (newer `target/` layout) of `params`, stored as `dtype`."""
    specs = {}
    for name, array in params.items():
        relative = "target." + name.replace("/", ".")
        spec = {"driver": "zarr", "dtype": dtype, "kvstore": {"driver": "file", "path": relative},
                "metadata": {"shape": list(array.shape), "chunks": list(array.shape),
                             "compressor": {"id": "gzip", "level": 1}}}
        store = ts.open(spec | {"kvstore": {"driver": "file", "path": str(directory / relative)}},
                        create=True).result()
        store.write(array.astype(store.dtype.numpy_dtype)).result()
        specs[name] = spec
    index = {"version": 3, "target": unflatten(specs), "state": {"step": np.int32(7)}}
    (directory / "checkpoint").write_bytes(serialization.msgpack_serialize(index))


def test_bfloat16_tensorstore_params_cast_to_float32(msgpack_source, tmp_path):
    params = {name: msgpack_source.read(name) for name in msgpack_source.names()}
    _write_tensorstore_checkpoint(tmp_path, params, "bfloat16")
    source = T5XSource(tmp_path)
    assert source.checkpoint.param_prefix == "target/"
    assert source.config == msgpack_source.config
    name = "encoder/layers_0/attention/query/kernel"
    assert source.checkpoint.shape_dtype("target/" + name)[1] == ml_dtypes.bfloat16
    got = source.read(name)
    assert got.dtype == np.float32
    np.testing.assert_array_equal(got, params[name].astype(ml_dtypes.bfloat16).astype(np.float32))


def _msgpack_with(path, tmp_path, edit) -> str:
    tree = serialization.msgpack_restore(path.read_bytes())
    edit(tree["optimizer"]["target"])
    out = tmp_path / "edited.checkpoint"
    out.write_bytes(serialization.msgpack_serialize(tree))
    return str(out)


def test_missing_left_over_and_misshapen_params_are_named(msgpack_path, tmp_path):
    def drop(target):
        del target["decoder"]["layers_1"]["mlp"]["wo"]

    def extra(target):
        target["encoder"]["layers_0"]["mlp"]["bias"] = np.zeros(8, np.float32)

    def reshape(target):
        target["encoder"]["layers_1"]["attention"]["out"]["kernel"] = np.zeros((12, 9), np.float32)

    cases = [(drop, "decoder/layers_1/mlp/wo/kernel", "missing"),
             (extra, "encoder/layers_0/mlp/bias", "left-over"),
             (reshape, "encoder/layers_1/attention/out/kernel", r"shape \[12, 9\], expected \[12, 8\]")]
    for edit, tensor, message in cases:
        with pytest.raises(ConversionError, match=message) as info:
            T5XSource(_msgpack_with(msgpack_path, tmp_path, edit))
        assert info.value.tensor == tensor and tensor in str(info.value)


def test_param_shapes_match_the_network_for_t5_1_0(msgpack_source):
    config = dataclasses.replace(msgpack_source.config, mlp_activations=("relu",), logits_via_embedding=True)
    assert network_param_shapes(config) == param_shapes(config)


def test_fixture_exported_to_hf_gives_our_logits(msgpack_source, tmp_path):
    torch = pytest.importorskip("torch")
    transformers = pytest.importorskip("transformers")
    from t5x_cot.interop.hf_export import export_source

    config = dataclasses.replace(msgpack_source.config, dtype="float32")
    params = read_tree(msgpack_source)
    export_source(msgpack_source, tmp_path)
    batch = _batch(config.vocab_size)
    ours = np.asarray(jax.jit(lambda p, e, di, dt: Transformer(config).apply(
        {"params": p}, e, di, dt, enable_dropout=False))(params, *batch.values()))
    model = transformers.T5ForConditionalGeneration.from_pretrained(tmp_path).eval()
    enc = torch.tensor(batch["encoder_input_tokens"], dtype=torch.long)
    with torch.no_grad():
        theirs = model(input_ids=enc, attention_mask=(enc != 0).long(),
                       decoder_input_ids=torch.tensor(batch["decoder_input_tokens"], dtype=torch.long)).logits.numpy()
    valid = batch["decoder_target_tokens"] > 0
    error = float(np.abs(ours - theirs)[valid].max())
    print(f"\nT5X fixture -> HF: max abs logits error {error:.2e}")
    assert error < 1e-4
