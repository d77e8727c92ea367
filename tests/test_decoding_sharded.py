"""Decoding sharded over a (data, model) mesh of 4 forced CPU devices gives the unsharded tokens."""
from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest

SCRIPT = textwrap.dedent("""
    import jax, numpy as np
    from t5x_cot.decoding.predict import DecodeConfig, Predictor
    from t5x_cot.model import models, network
    from t5x_cot.partitioning import Partitioner
    config = network.T5Config(vocab_size=256, emb_dim=32, num_heads=4, num_encoder_layers=2,
                              num_decoder_layers=2, head_dim=8, mlp_dim=64, mlp_activations=("gelu", "linear"),
                              dropout_rate=0.0, dtype="float32")
    shapes = {k: (1, 4) for k in ("encoder_input_tokens", "decoder_input_tokens", "decoder_target_tokens")}
    params = models.EncoderDecoderModel(config).init_params(jax.random.PRNGKey(0), shapes)
    prompts = np.random.default_rng(0).integers(2, 256, (8, 10)).astype(np.int32)
    decode = DecodeConfig(strategy="greedy", max_decode_length=12)
    plain = Predictor(config, params, decode).predict_batch(prompts).tokens
    sharded = Predictor(config, params, decode, Partitioner(num_partitions=2)).predict_batch(prompts).tokens
    assert (plain == sharded).all(), (plain, sharded)
    print("OK", len(jax.devices()))
""")


@pytest.mark.slow
def test_sharded_decoding_matches_unsharded():
    env = dict(os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=4", JAX_PLATFORMS="cpu")
    result = subprocess.run([sys.executable, "-c", SCRIPT], env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.strip().splitlines()[-1] == "OK 4"
