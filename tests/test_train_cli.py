"""`python -m t5x_cot.train`: the documented command trains and resumes; kill -9 resumes exactly."""
from __future__ import annotations

import json
import os
import pathlib
import signal
import subprocess
import sys
import time

import pytest

from t5x_cot import checkpoints

REPO = pathlib.Path(__file__).resolve().parents[1]
TESTS = REPO / "tests"


def _env() -> dict[str, str]:
    return {**os.environ, "JAX_PLATFORMS": "cpu", "TF_CPP_MIN_LOG_LEVEL": "3",
            "PYTHONPATH": os.pathsep.join([str(TESTS), os.environ.get("PYTHONPATH", "")])}


def _synthetic_command(model_dir: pathlib.Path, steps: int) -> list[str]:
    return [sys.executable, "-m", "t5x_cot.train", "--gin_file=gin/models/t5_1_1/tiny.gin",
            "--gin_file=gin/runs/finetune.gin", f"--gin.MODEL_DIR='{model_dir}'",
            "--gin.MIXTURE_OR_TASK_NAME='synthetic_copy'", "--gin.MIXTURE_OR_TASK_MODULE='synthetic_task'",
            "--gin.TASK_FEATURE_LENGTHS={'inputs': 16, 'targets': 16}", "--gin.BATCH_SIZE=8",
            "--gin.network.T5Config.vocab_size=128",
            f"--gin.TRAIN_STEPS={steps}", "--gin.CheckpointConfig.period=5", "--gin.train.log_every=1"]


def _logged_steps(model_dir: pathlib.Path) -> list[int]:
    lines = (model_dir / "train_metrics.jsonl").read_text().splitlines()
    return [record["step"] for record in map(json.loads, lines) if "loss" in record]


def _losses(model_dir: pathlib.Path) -> dict[int, float]:
    """Per-step losses; a step logged twice (before a crash and after resuming) keeps the last."""
    lines = (model_dir / "train_metrics.jsonl").read_text().splitlines()
    return {record["step"]: record["loss"] for record in map(json.loads, lines) if "loss" in record}


@pytest.mark.slow
def test_kill_9_then_rerun_resumes_with_identical_losses(tmp_path: pathlib.Path) -> None:
    steps = 24
    reference = tmp_path / "uninterrupted"
    subprocess.run(_synthetic_command(reference, steps), cwd=REPO, env=_env(), check=True,
                   capture_output=True, timeout=300)
    crashed = tmp_path / "crashed"
    proc = subprocess.Popen(_synthetic_command(crashed, steps), cwd=REPO, env=_env(),
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 240
    while time.time() < deadline and proc.poll() is None:
        done = checkpoints.step_dirs(crashed)
        if 10 in done and max(_losses(crashed)) >= 12:
            break
        time.sleep(0.05)
    assert proc.poll() is None, "the run finished before it could be killed"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    killed_at = max(_losses(crashed))
    assert killed_at < steps
    result = subprocess.run(_synthetic_command(crashed, steps), cwd=REPO, env=_env(), capture_output=True,
                            text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    assert f"resuming from {crashed} step" in result.stdout
    expected, got = _losses(reference), _losses(crashed)
    assert sorted(got) == sorted(expected) == list(range(1, steps + 1))
    assert {step: got[step] for step in expected} == expected
    assert _logged_steps(crashed) == list(range(1, steps + 1))  # resumed steps are not logged twice


@pytest.mark.slow
@pytest.mark.needs_data
def test_documented_command_trains_coinflip_and_rerun_resumes(tmp_path: pathlib.Path, data_dir: pathlib.Path) -> None:
    model_dir = tmp_path / "x"
    command = [sys.executable, "-m", "t5x_cot.train", "--gin_file=gin/models/t5_1_1/tiny.gin",
               "--gin_file=gin/runs/finetune.gin", f"--gin.MODEL_DIR='{model_dir}'",
               "--gin.MIXTURE_OR_TASK_NAME='coinflip_gold_cot'", "--gin.TRAIN_STEPS=20"]
    env = {**_env(), "T5X_COT_DATA_DIR": str(data_dir)}
    first = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    assert first.returncode == 0, first.stderr[-3000:]
    assert "step 20/20" in first.stdout
    assert sorted(checkpoints.step_dirs(model_dir)) == [20]
    for name in ("config.gin", "config.json", "train_metrics.jsonl"):
        assert (model_dir / name).is_file()
    assert list((model_dir / "train").glob("events.out.tfevents.*"))
    again = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    assert again.returncode == 0, again.stderr[-3000:]
    assert "is already at step 20" in again.stdout


@pytest.mark.slow
def test_a_second_trainer_is_refused_and_sigterm_saves_and_exits_cleanly(tmp_path: pathlib.Path) -> None:
    model_dir = tmp_path / "preempted"
    proc = subprocess.Popen(_synthetic_command(model_dir, 100_000), cwd=REPO, env=_env(),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 240
    while time.time() < deadline and proc.poll() is None:
        if (model_dir / "train_metrics.jsonl").is_file() and _losses(model_dir) and max(_losses(model_dir)) >= 3:
            break
        time.sleep(0.05)
    second = subprocess.run(_synthetic_command(model_dir, 100_000), cwd=REPO, env=_env(), capture_output=True,
                            text=True, timeout=300)
    assert second.returncode == 2
    assert second.stderr.strip().splitlines()[-1].startswith(
        f"error: MODEL_DIR {model_dir} is in use by another trainer (host ")
    assert f"pid {proc.pid}," in second.stderr
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err[-3000:]
    saved = max(checkpoints.step_dirs(model_dir))
    assert f"SIGTERM: saving step {saved} and exiting" in out
    assert saved == max(_losses(model_dir))


@pytest.mark.slow
def test_nan_training_stops_naming_the_step_and_saves_nothing_non_finite(tmp_path: pathlib.Path) -> None:
    model_dir = tmp_path / "diverged"
    command = [*_synthetic_command(model_dir, 12), "--gin.train.log_every=4",
               "--gin.optimizers.create_learning_rate_scheduler.base_learning_rate=1e9"]
    result = subprocess.run(command, cwd=REPO, env=_env(), capture_output=True, text=True, timeout=300)
    assert result.returncode == 2, result.stderr[-3000:]
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("error: training diverged: the loss, gradients or params became NaN or Inf at step ")
    assert "Traceback" not in result.stderr
    bad_step = int(last.split(" at step ")[1].split()[0])
    assert all(step < bad_step for step in checkpoints.step_dirs(model_dir))


@pytest.mark.parametrize("binding, message", [
    ("--gin.BATCH_SIZE=0", "DatasetConfig (train).batch_size (BATCH_SIZE)=0: expected a positive integer"),
    ("--gin.TASK_FEATURE_LENGTHS={'inputs': 0, 'targets': 16}",
     "TASK_FEATURE_LENGTHS)['inputs']=0: expected a positive integer"),
    ("--gin.TRAIN_STEPS=-5", "TRAIN_STEPS (train.total_steps)=-5: expected an integer >= 0"),
])
def test_bad_run_numbers_are_refused_before_anything_runs(tmp_path: pathlib.Path, binding: str, message: str):
    result = subprocess.run([*_synthetic_command(tmp_path / "x", 4), binding], cwd=REPO, env=_env(),
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines()[-1].startswith("error: ") and message in result.stderr
    assert not (tmp_path / "x").exists()


def test_help_lists_the_gin_flags_with_the_absl_flags() -> None:
    result = subprocess.run([sys.executable, "-m", "t5x_cot.train", "--help"], cwd=REPO, env=_env(),
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    for flag in ("--gin_file", "--gin.NAME", "--gin_bindings", "--gin_search_paths", "--alsologtostderr",
                 "--seqio_additional_cache_dirs"):
        assert flag in result.stdout
