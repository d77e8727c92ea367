"""A tiny random-weight T5 1.1 checkpoint shared by the eval / infer / self-consistency tests."""
from __future__ import annotations

import pathlib

import gin
import jax

from t5x_cot import checkpoints, gin_utils

TINY_GIN = gin_utils.shipped_config_dir() / "models" / "t5_1_1" / "tiny.gin"
# One batch shape and sampling setup for every test of this kind, so compiled loops are reused
# (eval.gin's TEMPERATURE and TOP_K).
BATCH_SIZE, INPUT_LENGTH, MAX_DECODE_LENGTH = 4, 32, 12
TEMPERATURE, TOP_K = 0.7, 40
SHAPE_FLAGS = [f"--gin.BATCH_SIZE={BATCH_SIZE}",
               f"--gin.TASK_FEATURE_LENGTHS={{'inputs': {INPUT_LENGTH}, 'targets': {MAX_DECODE_LENGTH}}}"]


def tiny_model():
    """The EncoderDecoderModel of gin/models/t5_1_1/tiny.gin."""
    with gin.unlock_config():
        gin.clear_config()
        gin.parse_config_file(str(TINY_GIN))
        model = gin.get_configurable("models.EncoderDecoderModel")()
    gin.clear_config()
    return model


def save_tiny_checkpoint(path: pathlib.Path, seed: int = 0):
    """Random tiny params saved as an 'ours' checkpoint; returns (model, params)."""
    model = tiny_model()
    shapes = {"encoder_input_tokens": (1, 4), "decoder_input_tokens": (1, 4), "decoder_target_tokens": (1, 4)}
    params = model.init_params(jax.random.PRNGKey(seed), shapes)
    checkpoints.save_params(path, params, model.config)
    return model, params
