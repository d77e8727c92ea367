"""Stages 5 and 6, training and evaluation: each student trained with the project's gin
trainer (`t5x_cot.train.train`, gin/runs/demo.gin) and decoded with `t5x_cot.eval`."""
from __future__ import annotations

import pathlib
import shutil
from collections.abc import Mapping, Sequence
from typing import Any

GIN_FILES = ("gin/models/t5_1_1/tiny.gin", "gin/runs/finetune.gin", "gin/runs/demo.gin")


def train_student(task_name: str, model_dir: pathlib.Path, steps: int, batch_size: int,
                  lengths: Mapping[str, int], vocab_size: int, seed: int) -> None:
    """Train one student from scratch on `task_name`; `seed` sets init, dropout, data order."""
    from t5x_cot import gin_utils

    if model_dir.exists():
        shutil.rmtree(model_dir)
    bindings = [f"MODEL_DIR = {str(model_dir)!r}", f"MIXTURE_OR_TASK_NAME = {task_name!r}",
                f"TRAIN_STEPS = {steps}", f"BATCH_SIZE = {batch_size}",
                f"TASK_FEATURE_LENGTHS = {dict(lengths)!r}",
                f"RANDOM_SEED = {seed}", f"network.T5Config.vocab_size = {vocab_size}",
                f"train.log_every = {max(1, min(100, steps // 10))}"]
    gin_utils.register_configurables()
    gin_utils.parse_gin(GIN_FILES, bindings)
    gin_utils.call_configurable("t5x_cot.train.train")


def evaluate_student(model_dir: pathlib.Path, task_names: Sequence[str], out_dir: pathlib.Path,
                     lengths: Mapping[str, int], batch_size: int,
                     use_calculator: bool = False) -> dict[str, dict[str, Any]]:
    """Greedy-decode every test task with the checkpoint in `model_dir` (the calculator
    completing each `<<expr=` when `use_calculator`); returns {task: metrics}."""
    from t5x_cot import checkpoints
    from t5x_cot import eval as eval_lib
    from t5x_cot.decoding.predict import DecodeConfig

    params, config = checkpoints.load_params(model_dir)
    decode = DecodeConfig(strategy="greedy", max_decode_length=lengths["targets"],
                          use_calculator=use_calculator)
    return eval_lib.evaluate_tasks(config, params, task_names, decode_config=decode,
                                   batch_size=batch_size, input_length=lengths["inputs"],
                                   output_dir=out_dir)
