"""What the tests share: one tiny T5 config (variants are `dataclasses.replace` of it) and the
environment of the subprocesses they start."""
from __future__ import annotations

import dataclasses
import os
import pathlib
from typing import Any

from t5x_cot.model.models import EncoderDecoderModel
from t5x_cot.model.network import T5Config

TESTS = pathlib.Path(__file__).resolve().parent
REPO = TESTS.parent

#: 1+1 layers in T5 1.1 style (gated GELU, own output head), float32 activations and no dropout,
#: so that results compare exactly.
TINY = T5Config(vocab_size=64, emb_dim=16, num_heads=2, head_dim=8, mlp_dim=32, num_encoder_layers=1,
                num_decoder_layers=1, mlp_activations=("gelu", "linear"), dropout_rate=0.0, dtype="float32",
                logits_via_embedding=False)
#: The shapes of T5X's own test checkpoint `t5x_checkpoints/test_t5_tiny.checkpoint_0` (data dir).
T5X_FIXTURE = dataclasses.replace(TINY, vocab_size=32128, emb_dim=8, num_heads=4, head_dim=3, mlp_dim=16,
                                  num_encoder_layers=2, num_decoder_layers=2)


def tiny_config(**changes: Any) -> T5Config:
    """TINY with `changes` (T5Config fields)."""
    return dataclasses.replace(TINY, **changes)


def tiny_model(**changes: Any) -> EncoderDecoderModel:
    """The EncoderDecoderModel of `tiny_config(**changes)`."""
    return EncoderDecoderModel(tiny_config(**changes))


def subprocess_env(devices: int | None = None, **variables: str) -> dict[str, str]:
    """This process's environment for a child on the CPU: JAX on the CPU (with `devices` forced
    host devices), TensorFlow's logging quiet, tests/ and the repository importable, then
    `variables`. The child inherits the session's compilation cache (conftest)."""
    path = [str(TESTS), str(REPO)] + ([os.environ["PYTHONPATH"]] if os.environ.get("PYTHONPATH") else [])
    env = {**os.environ, "JAX_PLATFORMS": "cpu", "TF_CPP_MIN_LOG_LEVEL": "3", "PYTHONPATH": os.pathsep.join(path)}
    if devices is not None:
        env["XLA_FLAGS"] = f"--xla_force_host_platform_device_count={devices}"
    env.update(variables)
    return env
