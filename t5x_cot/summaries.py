"""Host-side metrics: TensorBoard event files, per-step JSONL, the progress line, tokens/s and MFU.

The train loop hands over each step's on-device metrics and host-side token counts; they are
fetched (one device->host transfer for the whole window) only every `log_every` steps, so
nothing syncs the host inside the loop. MFU divides the model's explicit FLOP count
(`t5x_cot.model.flops`, passed in as FLOPs per step) by elapsed time and the devices'
spec-sheet dense bf16 peak; where there is none (a CPU) the progress line says "MFU n/a".
"""
from __future__ import annotations

import datetime
import json
import os
import time
from collections.abc import Mapping
from typing import Any, TextIO

import jax
import numpy as np

from t5x_cot import paths

METRICS_FILE = "train_metrics.jsonl"
TRAIN_DIR = "train"


def device_peak_flops(device: Any = None) -> tuple[float | None, str]:
    """(dense bf16 peak FLOP/s of one device, where the number comes from), or (None, why not).

    `t5x_cot.model.flops.peak_flops_per_device`: env T5X_COT_PEAK_FLOPS, else the spec-sheet
    dense (never sparse) bf16 peak of the device kind. A CPU has no such figure, so MFU is
    not reported there ("MFU n/a"); benchmarks compare a CPU with `measured_matmul_flops`.
    """
    from t5x_cot.model import flops

    device = device or jax.devices()[0]
    peak = flops.peak_flops_per_device(device.device_kind)
    if peak is not None:
        return peak, f"{device.device_kind} dense bf16 peak (spec sheet or {flops.PEAK_FLOPS_ENV})"
    return None, f"no spec-sheet peak for {device.device_kind} (set {flops.PEAK_FLOPS_ENV})"


def measured_matmul_flops(device: Any = None, n: int = 1024, repeats: int = 5,
                          dtype: str = "float32") -> float:
    """FLOP/s of a large `n`×`n` matmul in `dtype` measured now on `device` (an achievable peak)."""
    import jax.numpy as jnp

    device = device or jax.devices()[0]
    x = jax.device_put(jnp.ones((n, n), dtype), device)
    matmul = jax.jit(lambda a: a @ a)
    matmul(x).block_until_ready()
    start = time.perf_counter()
    for _ in range(repeats):
        y = matmul(x)
    y.block_until_ready()
    return 2.0 * n ** 3 * repeats / (time.perf_counter() - start)


def count_tokens(batch: Mapping[str, np.ndarray]) -> tuple[int, int]:
    """(real tokens, padded tokens) of a host batch: non-zero input + target ids, all slots."""
    real = sum(int(np.count_nonzero(batch[name])) for name in ("encoder_input_tokens", "decoder_target_tokens")
               if name in batch)
    padded = sum(int(batch[name].size) for name in ("encoder_input_tokens", "decoder_target_tokens")
                 if name in batch)
    return real, padded


class TensorBoardWriter:
    """Scalar and text summaries as TensorBoard event files (needs only TensorFlow)."""

    def __init__(self, logdir: str | os.PathLike) -> None:
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
        import tensorflow as tf
        from tensorflow.core.framework import summary_pb2

        self._tf = tf
        self._writer = tf.summary.create_file_writer(str(logdir))
        plugin = summary_pb2.SummaryMetadata.PluginData
        self._scalar = summary_pb2.SummaryMetadata(plugin_data=plugin(plugin_name="scalars"))
        self._text = summary_pb2.SummaryMetadata(plugin_data=plugin(plugin_name="text"))

    def scalars(self, step: int, values: Mapping[str, float]) -> None:
        with self._writer.as_default():
            for tag, value in values.items():
                self._tf.summary.write(tag, self._tf.constant(float(value), self._tf.float32),
                                       step=step, metadata=self._scalar)

    def text(self, step: int, tag: str, value: str) -> None:
        with self._writer.as_default():
            self._tf.summary.write(tag, self._tf.constant(value), step=step, metadata=self._text)

    def flush(self) -> None:
        self._writer.flush()

    def close(self) -> None:
        self._writer.close()


def _jsonl_line(step: int, values: Mapping[str, Any]) -> str:
    return json.dumps({"step": int(step), **{k: float(v) for k, v in values.items()}}) + "\n"


def _step_of_line(line: str) -> int | None:
    try:
        record = json.loads(line)
    except json.JSONDecodeError:
        return None
    step = record.get("step") if isinstance(record, dict) else None
    return step if isinstance(step, int) else None


def drop_steps_after(path: str, step: int) -> None:
    """Rewrite the JSONL metrics file without lines past `step` (and without a torn last line)."""
    if not paths.exists(path):
        return
    lines = paths.read_text(path).splitlines(keepends=True)
    kept = [line for line in lines if line.endswith("\n") and (found := _step_of_line(line)) is not None
            and found <= step]
    if len(kept) != len(lines):
        paths.write_text(path, "".join(kept))


class MetricLogger:
    """Collects per-step device metrics; every `log_every` steps fetches, logs and summarises them.

    Writes `MODEL_DIR/train_metrics.jsonl` (one line per step), TensorBoard scalars under
    `MODEL_DIR/train/`, and prints a progress line: step, loss, tokens/s, MFU, ETA.
    Only process 0 writes. A run resumed at `start_step` first drops the lines of later steps
    (logged before an interruption), so each step appears once.
    """

    def __init__(self, model_dir: str | os.PathLike, *, total_steps: int, start_step: int,
                 flops_per_step: float | None = None, log_every: int = 10, stream: TextIO | None = None) -> None:
        self.total_steps = total_steps
        self.log_every = max(1, int(log_every))
        self.flops_per_step = flops_per_step
        self.num_devices = jax.device_count()
        self.peak_flops, self.peak_source = device_peak_flops()
        self.writes = jax.process_index() == 0
        self._pending: list[tuple[int, dict[str, jax.Array], int, int, bool]] = []
        self._window_start = time.perf_counter()
        self._run_start = self._window_start
        self._run_start_step = start_step
        self.last: dict[str, float] = {}
        self._stream = stream
        self._model_dir = str(model_dir)
        self._writers: dict[str, TensorBoardWriter] = {}
        if self.writes:
            paths.makedirs(model_dir)
            self._jsonl = paths.join(model_dir, METRICS_FILE)
            drop_steps_after(self._jsonl, start_step)
            self._tb = self._writer(TRAIN_DIR)

    def add(self, step: int, metrics: dict[str, jax.Array], real_tokens: int, padded_tokens: int,
            timed: bool = True) -> bool:
        """Record step `step`'s metrics (still on device); flush every `log_every` steps.

        An untimed step (the one that compiled) is logged but left out of tokens/s and MFU, and
        the clock restarts after it. Returns whether this call fetched (the host waited for the device).
        """
        self._pending.append((step, metrics, real_tokens, padded_tokens, timed))
        if not timed:
            self._window_start = time.perf_counter()
            self._run_start, self._run_start_step = self._window_start, step
        if step % self.log_every == 0 or step >= self.total_steps:
            self.flush()
            return True
        return False

    def flush(self) -> dict[str, float]:
        """Fetch pending metrics, write them, print the progress line; returns the window summary."""
        if not self._pending:
            return self.last
        steps, device_metrics, real, padded, timed = zip(*self._pending)
        fetched = jax.device_get(list(device_metrics))
        self._pending = []
        elapsed = max(time.perf_counter() - self._window_start, 1e-9)
        self._window_start = time.perf_counter()
        summary = {name: float(np.mean([m[name] for m in fetched])) for name in fetched[-1]}
        timed_steps = sum(timed)
        if timed_steps:
            summary["tokens_per_second"] = sum(r for r, t in zip(real, timed) if t) / elapsed
            summary["padded_tokens_per_second"] = sum(p for p, t in zip(padded, timed) if t) / elapsed
            summary["steps_per_second"] = timed_steps / elapsed
            if self.flops_per_step:
                achieved = self.flops_per_step * timed_steps / elapsed
                summary["model_tflops_per_second"] = achieved / 1e12
                if self.peak_flops is not None:
                    summary["mfu"] = achieved / (self.peak_flops * self.num_devices)
        self.last = summary
        if self.writes:
            paths.append_text(self._jsonl, "".join(_jsonl_line(int(step), values)
                                                   for step, values in zip(steps, fetched)))
            self._tb.scalars(int(steps[-1]), summary)
            self._tb.flush()
            print(self.progress_line(int(steps[-1]), summary), file=self._stream, flush=True)
        return summary

    def progress_line(self, step: int, summary: Mapping[str, float]) -> str:
        done = step - self._run_start_step
        rate = done / max(time.perf_counter() - self._run_start, 1e-9)
        eta = datetime.timedelta(seconds=int((self.total_steps - step) / rate)) if rate > 0 else "?"
        parts = [f"step {step}/{self.total_steps}", f"loss {summary.get('loss', float('nan')):.4f}"]
        if "loss_per_nonpadding_target_token" in summary:
            parts.append(f"loss/token {summary['loss_per_nonpadding_target_token']:.4f}")
        if "tokens_per_second" in summary:
            parts.append(f"tokens/s {summary['tokens_per_second']:,.0f}")
        if "mfu" in summary:
            parts.append(f"MFU {100 * summary['mfu']:.2f}%")
        elif self.flops_per_step:
            parts.append("MFU n/a")
        parts.append(f"ETA {eta}")
        return "  ".join(parts)

    def text(self, step: int, tag: str, value: str) -> None:
        if self.writes:
            self._tb.text(step, tag, value)
            self._tb.flush()

    def scalars(self, step: int, values: Mapping[str, float], writer: str | None = None) -> None:
        """Scalars logged outside the step window (e.g. evaluation): TensorBoard and one line of
        train_metrics.jsonl. `writer`: a folder of MODEL_DIR for their event files (T5X's
        `training_eval/<task>`), where they keep their plain names; in the JSONL they are
        `<writer>/<name>`. Default: `MODEL_DIR/train`."""
        if self.writes:
            tb = self._writer(writer) if writer else self._tb
            prefix = f"{writer}/" if writer else ""
            paths.append_text(self._jsonl, _jsonl_line(step, {prefix + tag: value for tag, value in values.items()}))
            tb.scalars(step, values)
            tb.flush()

    def close(self) -> None:
        self.flush()
        for writer in self._writers.values():
            writer.close()

    def _writer(self, folder: str) -> TensorBoardWriter:
        if folder not in self._writers:
            self._writers[folder] = TensorBoardWriter(paths.join(self._model_dir, folder))
        return self._writers[folder]
