"""`t5x-cot`: the gin entry points as subcommands, and the error contract at the top."""
from __future__ import annotations

import json
import os
import pathlib
import subprocess
import sys

import pytest

from t5x_cot import cli

REPO = pathlib.Path(__file__).resolve().parents[1]


def _env() -> dict[str, str]:
    return {**os.environ, "JAX_PLATFORMS": "cpu", "TF_CPP_MIN_LOG_LEVEL": "3",
            "PYTHONPATH": os.pathsep.join([str(REPO / "tests"), os.environ.get("PYTHONPATH", "")])}


@pytest.mark.parametrize("command", ["train", "eval", "infer"])
def test_gin_entry_points_are_subcommands_that_list_the_gin_flags(command: str) -> None:
    out = subprocess.run([sys.executable, "-m", "t5x_cot.cli", command, "--help"], cwd=REPO, env=_env(),
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "--gin_file" in out.stdout


def test_t5x_cot_train_trains_and_a_bad_value_is_one_line(tmp_path: pathlib.Path) -> None:
    model_dir = tmp_path / "model"
    base = [sys.executable, "-m", "t5x_cot.cli", "train", "--gin_file=gin/models/t5_1_1/tiny.gin",
            "--gin_file=gin/runs/finetune.gin", f"--gin.MODEL_DIR='{model_dir}'",
            "--gin.MIXTURE_OR_TASK_NAME='synthetic_copy'", "--gin.MIXTURE_OR_TASK_MODULE='synthetic_task'",
            "--gin.TASK_FEATURE_LENGTHS={'inputs': 16, 'targets': 16}", "--gin.network.T5Config.vocab_size=128",
            "--gin.TRAIN_STEPS=2", "--gin.train.log_every=1"]
    bad = subprocess.run([*base, "--gin.BATCH_SIZE=-1"], cwd=REPO, env=_env(), capture_output=True, text=True,
                         timeout=300)
    assert bad.returncode == 2
    assert [line for line in bad.stderr.splitlines() if line.startswith("error:")] == [
        line for line in bad.stderr.splitlines() if "BATCH_SIZE" in line]
    good = subprocess.run([*base, "--gin.BATCH_SIZE=4"], cwd=REPO, env=_env(), capture_output=True, text=True,
                          timeout=300)
    assert good.returncode == 0, good.stderr[-2000:]
    steps = [json.loads(line)["step"] for line in (model_dir / "train_metrics.jsonl").read_text().splitlines()]
    assert 2 in steps


def test_a_user_error_from_any_subcommand_prints_one_line_and_exits_2(capsys: pytest.CaptureFixture) -> None:
    assert cli.main(["demo", "--task", "coinflip", "--rationale", "remaining", "--quick"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: --rationale 'remaining'")
