"""T5 network: T5X param tree, packing, incremental decoding, scanned layers, remat, dropout, gin."""
from __future__ import annotations

import dataclasses
import pathlib
import re

import flax.serialization
import gin
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.sharding import PartitionSpec
from support import T5X_FIXTURE, tiny_config

from t5x_cot.checkpoints import config_from_dict, read_config_dict, write_config
from t5x_cot.decoding import sampling
from t5x_cot.decoding.predict import model_tokens_to_logits
from t5x_cot.gin_utils import shipped_config_dir
from t5x_cot.model import losses, network
from t5x_cot.model.models import EncoderDecoderModel
from t5x_cot.model.network import T5Config, Transformer

TINY = tiny_config(num_encoder_layers=2, num_decoder_layers=2, dropout_rate=0.1)
INPUT_LEN, TARGET_LEN = 9, 7


def _shapes(tree):
    return jax.tree.map(lambda x: tuple(x.shape), tree)


def _shift_right(targets: np.ndarray) -> np.ndarray:
    return np.concatenate([np.zeros_like(targets[:, :1]), targets[:, :-1]], axis=1)


def random_params(config: T5Config, seed: int = 0):
    """Random float32 params of the right tree and shapes (no init compile: fast tests)."""
    shapes = EncoderDecoderModel(config).param_shapes({"encoder_input_tokens": (1, 2), "decoder_target_tokens": (1, 2)})
    rng = np.random.RandomState(seed)
    return jax.tree.map(lambda s: (0.3 * rng.standard_normal(s.shape)).astype(np.float32), shapes)


@pytest.fixture(scope="module")
def tiny_params():
    return random_params(TINY)


@pytest.fixture(scope="module")
def padded_batch():
    rng = np.random.RandomState(0)
    enc = rng.randint(1, TINY.vocab_size, (2, INPUT_LEN))
    enc[1, 6:] = 0
    tgt = rng.randint(1, TINY.vocab_size, (2, TARGET_LEN))
    tgt[1, 5:] = 0
    return enc, _shift_right(tgt), tgt


@pytest.fixture(scope="module")
def forward():
    """Jitted forward of TINY (dropout iff an rng is given), compiled once per input structure."""
    @jax.jit
    def run(params, enc, dec_in, dec_tgt, dropout_rng=None):
        rngs = None if dropout_rng is None else {"dropout": dropout_rng}
        return Transformer(TINY).apply({"params": params}, enc, dec_in, dec_tgt, enable_dropout=rngs is not None,
                                       rngs=rngs)
    return run


def test_tree_matches_t5x_checkpoint_and_runs_it(data_dir: pathlib.Path):
    restored = flax.serialization.msgpack_restore(
        (data_dir / "t5x_checkpoints" / "test_t5_tiny.checkpoint_0").read_bytes())
    fixture = restored["optimizer"]["target"]
    config = T5X_FIXTURE
    model = EncoderDecoderModel(config)
    ours = model.param_shapes({"encoder_input_tokens": (1, 4), "decoder_target_tokens": (1, 3)})
    assert _shapes(ours) == _shapes(fixture)
    assert all(x.dtype == jnp.float32 for x in jax.tree.leaves(ours))
    enc = np.array([[37, 5, 9, 1, 0]])
    tgt = np.array([[12, 7, 1]])
    logits = jax.jit(lambda p: Transformer(config).apply({"params": p}, enc, _shift_right(tgt), tgt,
                                                         enable_dropout=False))(fixture)
    assert logits.shape == (1, 3, 32128) and logits.dtype == jnp.float32
    assert np.isfinite(np.asarray(logits)).all() and float(jnp.std(logits)) > 0


def test_param_logical_axes_follow_t5x_names():
    axes = jax.tree.map(tuple, network.param_logical_axes(TINY), is_leaf=lambda x: isinstance(x, PartitionSpec))
    assert all(isinstance(spec, PartitionSpec) for spec in jax.tree.leaves(network.param_logical_axes(TINY)))
    assert axes["token_embedder"]["embedding"] == ("vocab", "embed")
    assert axes["encoder"]["relpos_bias"]["rel_embedding"] == ("heads", "relpos_buckets")
    attn = axes["decoder"]["layers_1"]["encoder_decoder_attention"]
    assert attn["query"]["kernel"] == ("embed", "joined_kv") and attn["out"]["kernel"] == ("joined_kv", "embed")
    assert axes["encoder"]["layers_0"]["mlp"]["wi_1"]["kernel"] == ("embed", "mlp")
    assert axes["decoder"]["logits_dense"]["kernel"] == ("embed", "vocab")
    assert axes["decoder"]["decoder_norm"]["scale"] == ("embed",)
    scanned = network.param_logical_axes(dataclasses.replace(TINY, scan_layers=True))
    assert tuple(scanned["encoder"]["layers"]["mlp"]["wo"]["kernel"]) == ("layers", "mlp", "embed")
    tied = network.param_logical_axes(dataclasses.replace(TINY, mlp_activations=("relu",), logits_via_embedding=True))
    assert "logits_dense" not in tied["decoder"] and set(tied["encoder"]["layers_0"]["mlp"]) == {"wi", "wo"}


def test_packed_batch_equals_each_example_alone(tiny_params, forward):
    rng = np.random.RandomState(1)
    a_in, b_in = rng.randint(1, 64, 5), rng.randint(1, 64, 3)
    a_tgt, b_tgt = rng.randint(1, 64, 4), rng.randint(1, 64, 2)

    def row(pieces, length):
        tokens, segments, positions = np.zeros(length, int), np.zeros(length, int), np.zeros(length, int)
        start = 0
        for seg, piece in enumerate(pieces, 1):
            tokens[start:start + len(piece)] = piece
            segments[start:start + len(piece)] = seg
            positions[start:start + len(piece)] = np.arange(len(piece))
            start += len(piece)
        return tokens, segments, positions

    enc_rows = [row([a_in, b_in], INPUT_LEN), row([a_in], INPUT_LEN), row([b_in], INPUT_LEN)]
    tgt_rows = [row([a_tgt, b_tgt], TARGET_LEN), row([a_tgt], TARGET_LEN), row([b_tgt], TARGET_LEN)]
    enc, enc_seg, enc_pos = (np.stack(x) for x in zip(*enc_rows))
    tgt, dec_seg, dec_pos = (np.stack(x) for x in zip(*tgt_rows))
    dec_in = np.where(dec_pos == 0, 0, np.roll(tgt, 1, axis=1))  # per-segment shift right
    logits = jax.jit(lambda p: Transformer(TINY).apply(
        {"params": p}, enc, dec_in, tgt, enc_seg, dec_seg, enc_pos, dec_pos, enable_dropout=False))(tiny_params)
    logits = np.asarray(logits)
    np.testing.assert_allclose(logits[0, :4], logits[1, :4], atol=2e-5)
    np.testing.assert_allclose(logits[0, 4:6], logits[2, :2], atol=2e-5)


def _incremental_logits(config: T5Config, params, enc, dec_in) -> np.ndarray:
    model = Transformer(config)
    encoded = model.apply({"params": params}, enc, enable_dropout=False, method=Transformer.encode)
    cache = network.prefill_cache(config, params, encoded, enc, dec_in.shape[1])

    @jax.jit
    def step(cache, token):
        logits, variables = model.apply(
            {"params": params, "cache": cache}, None, enc, token, token, enable_dropout=False, decode=True,
            max_decode_length=dec_in.shape[1], method=Transformer.decode, mutable=["cache"])
        return variables["cache"], logits

    outputs = []
    for t in range(dec_in.shape[1]):
        cache, logits = step(cache, dec_in[:, t:t + 1])
        outputs.append(np.asarray(logits))
    return np.concatenate(outputs, axis=1)


@pytest.mark.parametrize("scan", [False, True], ids=["unrolled", "scanned"])
def test_incremental_decoding_equals_teacher_forcing(tiny_params, padded_batch, forward, scan):
    enc, dec_in, tgt = padded_batch
    full = np.asarray(forward(tiny_params, enc, dec_in, tgt))
    config = dataclasses.replace(TINY, scan_layers=scan, remat_policy="minimal" if scan else "none")
    params = network.stack_layers(tiny_params, TINY) if scan else tiny_params
    incremental = _incremental_logits(config, params, enc, dec_in)
    real = tgt > 0
    np.testing.assert_allclose(incremental[real], full[real], atol=2e-5)
    encoded = Transformer(config).apply({"params": params}, enc, enable_dropout=False, method=Transformer.encode)
    cache = network.prefill_cache(config, params, encoded, enc, TARGET_LEN)
    layer = cache["decoder"]["layers" if scan else "layers_1"]
    assert layer["self_attention"]["cached_key"].shape[-3:] == (TINY.num_heads, TARGET_LEN, TINY.head_dim)
    assert not np.asarray(layer["self_attention"]["cached_key"]).any()
    assert int(jnp.max(layer["self_attention"]["cache_index"])) == 0
    cross = layer["encoder_decoder_attention"]
    assert cross["cached_key"].shape[-3:] == (TINY.num_heads, INPUT_LEN, TINY.head_dim)
    assert set(cross) == {"cached_key", "cached_value"}  # computed once, never indexed


def test_decode_steps_read_cross_attention_keys_from_the_cache(tiny_params, padded_batch):
    """Steps never project the encoder outputs again: keys/values come from the prefilled cache."""
    enc, dec_in, _ = padded_batch
    model = Transformer(TINY)
    encoded = model.apply({"params": tiny_params}, enc, enable_dropout=False, method=Transformer.encode)
    cache = network.prefill_cache(TINY, tiny_params, encoded, enc, TARGET_LEN)

    def step(params, cache):
        return model.apply({"params": params, "cache": cache}, None, enc, dec_in[:, :1], dec_in[:, :1],
                           enable_dropout=False, decode=True, max_decode_length=TARGET_LEN,
                           method=Transformer.decode, mutable=["cache"])[0]

    params = jax.tree.map(np.copy, tiny_params)
    reference = np.asarray(step(params, cache))
    for layer in ("layers_0", "layers_1"):
        for name in ("key", "value"):
            params["decoder"][layer]["encoder_decoder_attention"][name]["kernel"][:] = np.nan
    np.testing.assert_array_equal(np.asarray(step(params, cache)), reference)
    jaxpr = str(jax.make_jaxpr(step)(tiny_params, cache))
    # per layer: self q,k,v,out + 2 attention, cross q,out + 2 attention (no k,v), 3 MLP; then logits
    assert jaxpr.count("dot_general") == 2 * (6 + 4 + 3) + 1


def test_compiled_decode_loop_never_copies_or_transposes_the_cache(tiny_params):
    """Keys/values stay where the step's dots read them: in the optimized HLO of the greedy loop's
    body no transpose or copy produces an array with as many elements as a cache tensor (the
    encoder and the prefill, outside the loop, may lay them out once)."""
    from t5x_cot.decoding.predict import prefill_fn

    batch, input_len, max_len = 3, 11, 13  # distinct sizes: any cache permutation is recognizable
    config = dataclasses.replace(TINY, dropout_rate=0.0)
    tokens = jnp.ones((batch, input_len), jnp.int32)

    def decode(params, tokens):
        step = model_tokens_to_logits(config, max_len, params, tokens)
        return sampling.temperature_sample(prefill_fn(config, max_len)(params, tokens), step,
                                           batch_size=batch, max_decode_len=max_len, eos_id=None)[0]

    hlo = jax.jit(decode).lower(tiny_params, tokens).compile().as_text()
    computations, name = {}, None
    for line in hlo.splitlines():
        header = re.match(r"(?:ENTRY )?%(\S+) .*\{$", line)
        if header:
            name = header[1]
            computations[name] = []
        elif name:
            computations[name].append(line)
    bodies = re.findall(r"body=%([\w.\-]+)", hlo)
    assert bodies, "the decode loop did not compile to a while loop"
    sizes = {batch * config.num_heads * n * config.head_dim for n in (input_len, max_len)}
    offenders = []
    for line in (line for body in bodies for line in computations[body]):
        match = re.match(r"\s*(?:ROOT )?%(\S+) = f32\[([\d,]*)\]\S* (\w[\w-]*)\(", line)
        if match and ("transpose" in match[1] or "copy" in match[1] or match[3] in ("transpose", "copy")):
            if int(np.prod([int(d) for d in match[2].split(",") if d])) in sizes:
                offenders.append(line.strip()[:160])
    assert not offenders, offenders


def test_scanned_and_remat_layers_equal_unrolled(tiny_params, padded_batch):
    enc, dec_in, tgt = padded_batch
    batch = {"encoder_input_tokens": enc, "decoder_input_tokens": dec_in, "decoder_target_tokens": tgt,
             "decoder_loss_weights": (tgt > 0).astype(np.float32)}

    def loss_and_grads(config, params):
        model = EncoderDecoderModel(config, z_loss=1e-4)
        return jax.jit(jax.value_and_grad(lambda p: model.loss_fn(p, batch, None)[0]))(params)

    stacked = network.stack_layers(tiny_params, TINY)
    assert _shapes(stacked["encoder"]["layers"]["attention"]["query"]) == {"kernel": (2, 16, 16)}
    assert jax.tree.all(jax.tree.map(np.array_equal, network.unstack_layers(stacked), tiny_params))
    loss, grads = loss_and_grads(TINY, tiny_params)
    scan_cfg = dataclasses.replace(TINY, scan_layers=True, remat_policy="full")
    scan_loss, scan_grads = loss_and_grads(scan_cfg, stacked)
    np.testing.assert_allclose(scan_loss, loss, rtol=1e-5)
    flat, flat_scan = jax.tree.leaves(grads), jax.tree.leaves(network.unstack_layers(scan_grads))
    assert max(float(jnp.max(jnp.abs(a - b))) for a, b in zip(flat, flat_scan)) < 1e-5


def test_dropout_only_when_enabled(tiny_params, padded_batch, forward):
    enc, dec_in, tgt = padded_batch
    plain = np.asarray(forward(tiny_params, enc, dec_in, tgt))
    dropped = [np.asarray(forward(tiny_params, enc, dec_in, tgt, jax.random.key(seed, impl="rbg")))
               for seed in (1, 1, 2)]
    np.testing.assert_array_equal(dropped[0], dropped[1])
    assert np.abs(dropped[0] - plain).max() > 1e-3 and np.abs(dropped[0] - dropped[2]).max() > 1e-3


def test_bfloat16_activations_float32_params_and_logits(tiny_params, padded_batch, forward):
    enc, dec_in, tgt = padded_batch
    config = dataclasses.replace(TINY, dtype="bfloat16")
    logits, state = jax.jit(lambda p: Transformer(config).apply(
        {"params": p}, enc, dec_in, tgt, enable_dropout=False, capture_intermediates=True,
        mutable=["intermediates"]))(tiny_params)
    hidden = state["intermediates"]["encoder"]["layers_0"]["__call__"][0]
    assert hidden.dtype == jnp.bfloat16 and logits.dtype == jnp.float32
    full = np.asarray(forward(tiny_params, enc, dec_in, tgt))
    assert np.abs(np.asarray(logits) - full).max() < 0.05 * np.abs(full).max()


def test_model_gin_files_bind_t5config_and_model():
    gin.clear_config()
    try:
        gin.parse_config_files_and_bindings([str(shipped_config_dir() / "models" / "t5_1_0" / "tiny.gin")],
                                            ["DROPOUT_RATE = 0.25", "network.T5Config.vocab_size = 128"])
        model = gin.query_parameter("MODEL/macro.value").scoped_configurable_fn()
    finally:
        gin.clear_config()
    assert isinstance(model, EncoderDecoderModel) and model.z_loss == 1e-4
    assert model.config.dropout_rate == 0.25 and model.config.vocab_size == 128
    assert model.config.mlp_activations == ("relu",) and model.config.logits_via_embedding
    assert isinstance(model.config.mlp_activations, tuple)


def test_config_errors_name_the_field():
    with pytest.raises(ValueError, match="remat_policy"):
        T5Config(remat_policy="sometimes")
    with pytest.raises(ValueError, match="gelu"):
        T5Config(mlp_activations=("gleu",))
    params = EncoderDecoderModel(TINY).param_shapes({"encoder_input_tokens": (1, 3), "decoder_target_tokens": (1, 4)})
    params = jax.tree.map(lambda s: jnp.zeros(s.shape, s.dtype), params)
    cache = network.prefill_cache(TINY, params, jnp.ones((1, 3, 16)), jnp.ones((1, 3), jnp.int32), 4)

    def step(tokens, max_decode_length):
        Transformer(TINY).apply({"params": params, "cache": cache}, None, jnp.ones((1, 3), jnp.int32),
                                tokens, tokens, enable_dropout=False, decode=True,
                                max_decode_length=max_decode_length, method=Transformer.decode, mutable=["cache"])

    with pytest.raises(ValueError, match="one token per call"):
        step(jnp.ones((1, 2), jnp.int32), 4)
    with pytest.raises(ValueError, match="max_decode_length=4"):
        step(jnp.ones((1, 1), jnp.int32), None)


def test_padded_vocab_ids_are_masked_everywhere(tiny_params, padded_batch, forward):
    """real_vocab_size: padded ids never win, real logits and the loss over real ids are unchanged."""
    enc, dec_in, tgt = padded_batch
    real = 50
    config = dataclasses.replace(TINY, real_vocab_size=real)
    params = jax.tree.map(np.copy, tiny_params)
    params["decoder"]["logits_dense"]["kernel"][:, real:] *= 100.0  # padded ids would win unmasked
    plain = np.asarray(forward(params, enc, dec_in, tgt))
    masked = np.asarray(jax.jit(lambda p: Transformer(config).apply({"params": p}, enc, dec_in, tgt,
                                                                    enable_dropout=False))(params))
    assert (plain.argmax(-1) >= real).any()
    np.testing.assert_array_equal(masked[..., :real], plain[..., :real])
    assert (masked[..., real:] == network.MASKED_LOGIT).all()

    batch = {"encoder_input_tokens": enc, "decoder_input_tokens": dec_in, "decoder_target_tokens": tgt,
             "decoder_loss_weights": (tgt > 0).astype(np.float32)}
    smoothed = EncoderDecoderModel(config, z_loss=1e-4, label_smoothing=0.1)
    loss, grads = jax.jit(jax.value_and_grad(lambda p: smoothed.loss_fn(p, batch, None)[0]))(params)
    assert np.isfinite(float(loss)) and all(np.isfinite(np.asarray(g)).all() for g in jax.tree.leaves(grads))
    assert not np.asarray(grads["decoder"]["logits_dense"]["kernel"][:, real:]).any()
    expected, _, _ = losses.compute_weighted_cross_entropy(
        jnp.asarray(plain[..., :real]), tgt, batch["decoder_loss_weights"], label_smoothing=0.1, z_loss=1e-4)
    np.testing.assert_allclose(float(loss), float(expected), rtol=1e-5)

    encoded = Transformer(config).apply({"params": params}, enc, enable_dropout=False, method=Transformer.encode)
    hot = sampling.SamplingConfig(temperature=0.05)  # tiny temperature: logits / T stays finite
    for sampler in (sampling.GREEDY, hot, sampling.SamplingConfig(temperature=5.0)):
        step = model_tokens_to_logits(config, TARGET_LEN, params, enc)
        tokens, log_probs = sampling.temperature_sample(
            network.prefill_cache(config, params, encoded, enc, TARGET_LEN), step, batch_size=2, max_decode_len=TARGET_LEN,
            rng=jax.random.PRNGKey(3), config=sampler, eos_id=None)
        assert int(tokens.max()) < real and np.isfinite(np.asarray(log_probs)).all()


def test_real_vocab_size_is_checked_and_kept_in_config_json(tmp_path):
    with pytest.raises(ValueError, match="real_vocab_size"):
        T5Config(vocab_size=64, real_vocab_size=65)
    config = dataclasses.replace(TINY, real_vocab_size=60)
    write_config(tmp_path, config)
    assert read_config_dict(tmp_path)["real_vocab_size"] == 60
    assert config_from_dict(read_config_dict(tmp_path)) == config
