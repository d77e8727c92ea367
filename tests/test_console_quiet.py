"""On a machine without a GPU our commands print no false errors: TensorFlow's CUDA probe
("failed call to cuInit: ... (303)") stays off the console; every other line still shows."""
from __future__ import annotations

import os
import pathlib
import subprocess
import sys

import pytest

from t5x_cot.tensorflow_devices import CUINIT_FAILURE, _without_cuinit_failure, has_cuda_driver

REPO = pathlib.Path(__file__).resolve().parents[1]


def test_only_the_cuinit_failure_is_dropped():
    text = ("I0000 port.cc:153] oneDNN custom operations are on.\n"
            "E0000 cuda_platform.cc:52] failed call to cuInit: INTERNAL: CUDA error: UNKNOWN ERROR (303)\n"
            "E0000 some_op.cc:1] a real error\n")
    kept = _without_cuinit_failure(text)
    assert CUINIT_FAILURE not in kept
    assert kept == text.splitlines(keepends=True)[0] + text.splitlines(keepends=True)[2]


@pytest.mark.slow
@pytest.mark.needs_data
@pytest.mark.skipif(has_cuda_driver(), reason="a CUDA driver is installed: a cuInit failure here is a real error")
def test_training_command_prints_no_cuinit_error(tmp_path: pathlib.Path, data_dir: pathlib.Path) -> None:
    command = [sys.executable, "-m", "t5x_cot.train", "--gin_file=gin/models/t5_1_1/tiny.gin",
               "--gin_file=gin/runs/finetune.gin", f"--gin.MODEL_DIR='{tmp_path / 'model'}'",
               "--gin.MIXTURE_OR_TASK_NAME='coinflip_gold_cot'", "--gin.TRAIN_STEPS=1"]
    # a user's shell: none of the logging settings the test session makes for itself
    env = {name: value for name, value in os.environ.items()
           if name not in ("TF_CPP_MIN_LOG_LEVEL", "JAX_PLATFORMS")}
    result = subprocess.run(command, cwd=REPO, env={**env, "T5X_COT_DATA_DIR": str(data_dir)},
                            capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "step 1/1" in result.stdout
    console = result.stdout + result.stderr
    assert "cuInit" not in console, [line for line in console.splitlines() if "cuInit" in line]
