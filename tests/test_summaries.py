"""MFU in the progress line: against a spec-sheet dense bf16 peak only, "MFU n/a" on a CPU."""
from __future__ import annotations

import io
import json
import pathlib

import jax.numpy as jnp
import pytest

from t5x_cot import summaries
from t5x_cot.model import flops


def _log_two_steps(model_dir: pathlib.Path) -> tuple[str, dict[str, float]]:
    stream = io.StringIO()
    logger = summaries.MetricLogger(model_dir, total_steps=2, start_step=0, flops_per_step=1e9, log_every=2,
                                    stream=stream)
    for step in (1, 2):
        logger.add(step, {"loss": jnp.asarray(1.5)}, real_tokens=100, padded_tokens=128)
    logger.close()
    return stream.getvalue(), logger.last


def test_cpu_progress_line_says_mfu_n_a(tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.delenv(flops.PEAK_FLOPS_ENV, raising=False)
    assert summaries.device_peak_flops()[0] is None
    line, summary = _log_two_steps(tmp_path)
    assert "MFU n/a" in line and "%" not in line
    assert "mfu" not in summary and summary["model_tflops_per_second"] > 0
    logged = [json.loads(x) for x in (tmp_path / "train_metrics.jsonl").read_text().splitlines()]
    assert [x["step"] for x in logged] == [1, 2]


def test_spec_sheet_peak_gives_a_percentage(tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv(flops.PEAK_FLOPS_ENV, "1e12")
    line, summary = _log_two_steps(tmp_path)
    assert 0 < summary["mfu"] == pytest.approx(summary["model_tflops_per_second"])
    assert f"MFU {100 * summary['mfu']:.2f}%" in line


def test_h100_and_h200_use_the_dense_bf16_spec_peak():
    for kind in ("NVIDIA H100 80GB HBM3", "NVIDIA H200"):
        assert flops.peak_flops_per_device(kind) == 989e12
    assert flops.peak_flops_per_device("cpu") is None


def test_measured_matmul_is_a_positive_rate():
    assert summaries.measured_matmul_flops(n=128, repeats=2) > 1e6


def test_a_resumed_run_logs_each_step_once(tmp_path: pathlib.Path):
    jsonl = tmp_path / "train_metrics.jsonl"
    jsonl.write_text("".join(json.dumps({"step": s, "loss": 1.0}) + "\n" for s in range(1, 6)) + '{"step": 6, "lo')
    logger = summaries.MetricLogger(tmp_path, total_steps=5, start_step=3, log_every=1, stream=io.StringIO())
    for step in (4, 5):
        logger.add(step, {"loss": jnp.asarray(2.0)}, real_tokens=1, padded_tokens=1)
    logger.close()
    logged = [json.loads(x) for x in jsonl.read_text().splitlines()]
    assert [(x["step"], x["loss"]) for x in logged] == [(1, 1.0), (2, 1.0), (3, 1.0), (4, 2.0), (5, 2.0)]


def test_training_eval_scalars_go_to_their_own_folder(tmp_path: pathlib.Path):
    logger = summaries.MetricLogger(tmp_path, total_steps=1, start_step=0, stream=io.StringIO())
    logger.scalars(1, {"loss": 0.5}, writer="training_eval/my_task")
    logger.close()
    assert list((tmp_path / "training_eval" / "my_task").glob("events.out.tfevents.*"))
    assert json.loads((tmp_path / "train_metrics.jsonl").read_text()) == {"step": 1, "training_eval/my_task/loss": 0.5}
