"""T5X's own train test configs (t5x/examples/t5/t5_1_1/examples/test_train_t5_tiny.gin and
test_train_eval_t5_tiny.gin), unchanged, through `python -m t5x_cot.train`: only MODEL_DIR and
the task are overridden (T5X's wmt19 task needs the `t5` package), as T5X's own test does."""
from __future__ import annotations

import os
import pathlib
import subprocess
import sys

import pytest

from t5x_cot import checkpoints

REPO = pathlib.Path(__file__).resolve().parents[1]
EXAMPLES = "t5x/examples/t5/t5_1_1/examples"
pytestmark = [pytest.mark.slow, pytest.mark.needs_data]


def _run(data_dir: pathlib.Path, gin_file: str, model_dir: pathlib.Path) -> subprocess.CompletedProcess:
    search = data_dir / "t5x_gin"
    if not (search / gin_file).is_file():
        pytest.skip(f"{search / gin_file} is not in the data dir (T5X's file, unchanged)")
    command = [sys.executable, "-m", "t5x_cot.train", f"--gin_search_paths={search}", f"--gin_file={gin_file}",
               f"--gin.MODEL_DIR='{model_dir}'", "--gin.MIXTURE_OR_TASK_NAME='synthetic_copy'",
               "--gin.MIXTURE_OR_TASK_MODULE='synthetic_task'"]
    env = {**os.environ, "JAX_PLATFORMS": "cpu", "XLA_FLAGS": "--xla_force_host_platform_device_count=2",
           "PYTHONPATH": os.pathsep.join([str(REPO / "tests"), str(REPO)])}
    return subprocess.run(command, env=env, capture_output=True, text=True, timeout=600)


def test_t5xs_test_train_t5_tiny_runs_unchanged(data_dir: pathlib.Path, tmp_path: pathlib.Path) -> None:
    """pretrain.gin + tiny.gin, num_partitions = 2, TerminateOnNanAction in train.actions, 3 steps."""
    model_dir = tmp_path / "model"
    out = _run(data_dir, f"{EXAMPLES}/test_train_t5_tiny.gin", model_dir)
    assert out.returncode == 0, out.stderr[-3000:]
    assert "step 3/3" in out.stdout
    assert sorted(checkpoints.step_dirs(model_dir)) == [3]
    operative = (model_dir / "config.gin").read_text()
    assert "train_script.train.actions = {'TRAIN_EVAL': [@trainer.TerminateOnNanAction()]}" in operative
    assert "partitioning.PjitPartitioner.num_partitions = 2" in operative


def test_t5xs_test_train_eval_t5_tiny_only_evaluates(data_dir: pathlib.Path, tmp_path: pathlib.Path) -> None:
    """run_eval_before_training=True with total_steps=0: one training evaluation, no update."""
    model_dir = tmp_path / "model"
    out = _run(data_dir, f"{EXAMPLES}/test_train_eval_t5_tiny.gin", model_dir)
    assert out.returncode == 0, out.stderr[-3000:]
    assert "nothing to do" in out.stdout
    assert (model_dir / "training_eval" / "synthetic_copy").is_dir()
    assert not checkpoints.step_dirs(model_dir)
