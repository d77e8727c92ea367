"""Decoding sharded over a (data, model) mesh of 4 forced CPU devices gives the unsharded tokens."""
from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest
from support import subprocess_env

SCRIPT = textwrap.dedent("""
    import jax, numpy as np
    import support
    from t5x_cot.decoding.predict import DecodeConfig, Predictor
    from t5x_cot.model import models
    from t5x_cot.partitioning import Partitioner
    config = support.tiny_config(vocab_size=256, emb_dim=32, num_heads=4, num_encoder_layers=2,
                                 num_decoder_layers=2, mlp_dim=64)
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
    env = subprocess_env(devices=4)
    result = subprocess.run([sys.executable, "-c", SCRIPT], env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.strip().splitlines()[-1] == "OK 4"
