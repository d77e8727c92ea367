"""The explicit T5 FLOP count against XLA's own count, and against 6·N·tokens."""
from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from support import tiny_config

from t5x_cot.model import flops
from t5x_cot.model.models import EncoderDecoderModel
from t5x_cot.model.network import T5Config

TINY = tiny_config(vocab_size=512, emb_dim=64, num_heads=4, head_dim=16, mlp_dim=128, num_encoder_layers=2,
                   num_decoder_layers=2)
SMALL_1_1 = T5Config(emb_dim=512, num_heads=6, head_dim=64, mlp_dim=1024, num_encoder_layers=8,
                     num_decoder_layers=8, mlp_activations=("gelu", "linear"))
INPUT_LEN, TARGET_LEN, BATCH = 64, 32, 2


def _xla_flops(fn, *args) -> float:
    analysis = jax.jit(fn).lower(*args).compile().cost_analysis()
    analysis = analysis[0] if isinstance(analysis, list) else analysis
    return float(analysis["flops"])


@pytest.fixture(scope="module")
def tiny_setup():
    model = EncoderDecoderModel(TINY)
    shapes = model.param_shapes({"encoder_input_tokens": (1, 2), "decoder_target_tokens": (1, 2)})
    params = jax.tree.map(lambda s: jnp.zeros(s.shape, s.dtype), shapes)
    batch = {"encoder_input_tokens": np.ones((BATCH, INPUT_LEN), np.int32),
             "decoder_input_tokens": np.ones((BATCH, TARGET_LEN), np.int32),
             "decoder_target_tokens": np.ones((BATCH, TARGET_LEN), np.int32)}
    return model, params, batch


def test_forward_count_matches_xla(tiny_setup):
    model, params, batch = tiny_setup
    counted = flops.forward_flops_per_example(TINY, INPUT_LEN, TARGET_LEN)
    measured = _xla_flops(lambda p: model.compute_logits(p, batch), params) / BATCH
    assert abs(measured / counted - 1) < 0.10, (measured, counted)


def test_train_count_is_three_forwards_and_matches_xla(tiny_setup):
    model, params, batch = tiny_setup
    counted = flops.train_flops_per_example(TINY, INPUT_LEN, TARGET_LEN)
    assert counted == 3 * flops.forward_flops_per_example(TINY, INPUT_LEN, TARGET_LEN)
    measured = _xla_flops(jax.grad(lambda p: model.loss_fn(p, batch, None)[0]), params) / BATCH
    assert abs(measured / counted - 1) < 0.15, (measured, counted)
    assert flops.train_flops_per_step(TINY, 8, INPUT_LEN, TARGET_LEN) == 8 * counted


def test_breakdown_by_hand_for_one_layer_each():
    config = tiny_config(vocab_size=10, emb_dim=4, num_heads=1, head_dim=2, mlp_dim=3, mlp_activations=("relu",))
    s, t, e, j, f = 5, 3, 4, 2, 3
    parts = flops.forward_flops_breakdown(config, s, t)
    assert parts["encoder_attention"] == 2 * (4 * s * e * j + 2 * s * s * j)
    assert parts["encoder_mlp"] == 2 * (2 * s * e * f)
    assert parts["decoder_self_attention"] == 2 * (4 * t * e * j + 2 * t * t * j)
    assert parts["decoder_cross_attention"] == 2 * (2 * t * e * j + 2 * s * e * j + 2 * t * s * j)
    assert parts["decoder_mlp"] == 2 * (2 * t * e * f)
    assert parts["logits"] == 2 * t * e * 10


def test_six_n_tokens_overstates_t5_small_about_twice():
    """T5 1.1 Small at 512/256: the explicit count is 0.41 × 6·N·(S+T) with N including the
    16.4M-param token embedding (a lookup, no matmul), 0.52 × with N excluding it."""
    shapes = EncoderDecoderModel(SMALL_1_1).param_shapes({"encoder_input_tokens": (1, 1),
                                                          "decoder_target_tokens": (1, 1)})
    num_params = sum(math.prod(leaf.shape) for leaf in jax.tree.leaves(shapes))
    explicit = flops.train_flops_per_example(SMALL_1_1, 512, 256)
    ratio = explicit / flops.six_n_tokens(num_params, 512, 256)
    without_embedding = explicit / flops.six_n_tokens(num_params - 32128 * 512, 512, 256)
    assert 0.35 < ratio < 0.5 and 0.45 < without_embedding < 0.6


def test_peak_flops_lookup_and_overrides(monkeypatch):
    monkeypatch.delenv(flops.PEAK_FLOPS_ENV, raising=False)
    assert flops.peak_flops_per_device("NVIDIA H100 80GB HBM3") == 989e12
    assert flops.peak_flops_per_device("TPU v4") == 275e12
    assert flops.peak_flops_per_device("cpu") is None
    assert flops.peak_flops_per_device("cpu", override=1e12) == 1e12
    monkeypatch.setenv(flops.PEAK_FLOPS_ENV, "2.5e14")
    assert flops.peak_flops_per_device("cpu") == 2.5e14


def test_decode_flops_match_a_teacher_forced_pass_with_causal_scores():
    """Greedy decoding does the forward's work, but only the causal half of the self-attention scores."""
    config, inputs, new = SMALL_1_1, 256, 32
    forward = flops.forward_flops_breakdown(config, inputs, new)
    joined = config.num_heads * config.head_dim
    full_self_scores = config.num_decoder_layers * 2 * 2 * new * new * joined
    causal_self_scores = config.num_decoder_layers * 2 * 2 * joined * new * (new + 1) // 2
    expected = sum(forward.values()) - full_self_scores + causal_self_scores
    assert flops.decode_flops_per_example(config, inputs, new) == expected
