"""Fair side-by-side timing on a shared machine: both sides on the same cores, alternated.

`pin_threads(n)` (call it before JAX or PyTorch start) restricts the process to `n` cores,
so XLA's thread pool (sized from the affinity mask) and PyTorch (`torch.set_num_threads`)
use the same number of threads. `alternate` then times the sides in turns, A B A B ...,
so a neighbour's load hits both alike; the ratio is reported per round as median (min–max).
Importing this module imports `t5x_cot`, whose malloc setting (`t5x_cot.host_memory`: freed
host memory reused, not page-faulted in again) then holds for both sides alike.
"""
from __future__ import annotations

import os
import statistics
import time
from collections.abc import Callable, Mapping
from typing import Any

from t5x_cot import host_memory


def pin_threads(threads: int | None) -> int:
    """Restrict this process to `threads` cores (None: all it may use now); returns the count."""
    cores = sorted(os.sched_getaffinity(0))
    if threads:
        cores = cores[:threads]
        os.sched_setaffinity(0, cores)
    return len(cores)


def thread_report() -> dict[str, Any]:
    """Threads each side computes with: XLA's CPU pool follows the affinity mask; torch's own."""
    report: dict[str, Any] = {"cores": len(os.sched_getaffinity(0)), "xla_intra_op_threads": len(os.sched_getaffinity(0)),
                              "host_malloc": host_memory.status}
    try:
        import torch  # pylint: disable=import-outside-toplevel
    except ImportError:
        return report
    report["torch_threads"] = torch.get_num_threads()
    return report


def set_torch_threads(threads: int) -> None:
    import torch  # pylint: disable=import-outside-toplevel
    torch.set_num_threads(threads)


def timed(fn: Callable[[], Any]) -> float:
    """Seconds one call of `fn` takes (`fn` must block until its work is done)."""
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def alternate(sides: Mapping[str, Callable[[], Any]], rounds: int, warmup: int = 1) -> dict[str, list[float]]:
    """Seconds per call of each side, `rounds` times in turns, after `warmup` untimed rounds also
    in turns (so compilation, and the host memory each side first claims after the other has
    run, fall outside the timing)."""
    for _ in range(warmup):
        for fn in sides.values():
            fn()
    times: dict[str, list[float]] = {name: [] for name in sides}
    for _ in range(rounds):
        for name, fn in sides.items():
            times[name].append(timed(fn))
    return times


def ratio_summary(ours: list[float], theirs: list[float]) -> dict[str, float]:
    """Speed-up of ours over theirs per round (their seconds / our seconds): median, min, max."""
    ratios = [t / o for o, t in zip(ours, theirs)]
    return {"median": round(statistics.median(ratios), 3), "min": round(min(ratios), 3),
            "max": round(max(ratios), 3), "rounds": len(ratios)}


def describe(name: str, seconds: list[float], work: float, unit: str, flops: float, peak: float | None) -> str:
    """One line: median rate of `work` per second, achieved FLOP/s and its share of `peak`."""
    median = statistics.median(seconds)
    line = f"{name:34} {work / median:12,.1f} {unit}/s  {flops / median / 1e9:8.1f} GFLOP/s"
    if peak:
        line += f" ({100 * flops / median / peak:4.1f}% of measured matmul peak)"
    return line
