"""`t5x-cot compile --search`: compile variations of a run and recommend the fastest that fits.

Settings tried: batch sizes (default: the run's, half and double), num_partitions (1, 2, 4, 8
dividing a slice), rule sets (standard, fsdp), remat (none over unrolled layers; full over
scanned layers) and microbatches (1, 2, 4). Each is ranked first by an estimate of its
throughput, tokens per step over the step's compute time at the chip's peak FLOP/s (explicit
FLOPs; full remat recomputes the forward pass: x 4/3; microbatches and model parallelism cost
a little in this ranking, so the simpler of two equal settings comes first). The settings are
compiled one at a time in that order until one fits (it is the recommendation: no setting
ranked after it can be faster) or the time budget is spent. A setting whose `t5x-cot plan`
estimate exceeds PRUNE_FACTOR x the chip's HBM is listed as skipped, not compiled.
"""
from __future__ import annotations

import dataclasses
import itertools
import math
import time
from collections.abc import Sequence
from typing import Any

from t5x_cot.compile import step_compile
from t5x_cot.compile import topology as topo
from t5x_cot.compile.train_setup import TrainSetup

GIB = 2**30
REMAT_COST = {"none": 1.0, "minimal": 7 / 6, "full": 4 / 3}
LAYOUTS = (("none", False), ("full", True))
PRUNE_FACTOR = 1.5  # the plan is within ~25% of the compiler's peak on TPU topologies


@dataclasses.dataclass(frozen=True)
class Candidate:
    batch_size: int
    num_partitions: int
    rules: str
    remat_policy: str
    scan_layers: bool
    num_microbatches: int

    def cost_factor(self) -> float:
        """Relative compute time per FLOP (remat recompute; a small price for complexity)."""
        return (REMAT_COST.get(self.remat_policy, 4 / 3) * (1 + 0.01 * (self.num_microbatches - 1))
                * (1 + 0.005 * math.log2(self.num_partitions)) * (1.001 if self.rules == "fsdp" else 1.0))


def candidates(setup: TrainSetup, chips: int, chips_per_slice: int,
               batch_sizes: Sequence[int] | None = None) -> list[Candidate]:
    """The settings worth compiling: batches that split over the data axis of each mesh."""
    batch = setup.input_shapes["encoder_input_tokens"][0]
    sizes = sorted(set(batch_sizes or (batch // 2, batch, batch * 2)) - {0}, reverse=True)
    partitions = [p for p in (1, 2, 4, 8) if chips_per_slice % p == 0]
    found = []
    for size, parts, rules, (remat, scan), micro in itertools.product(
            sizes, partitions, ("standard", "fsdp"), LAYOUTS, (1, 2, 4)):
        data = chips // parts
        if size % micro or (size // micro) % data:
            continue
        found.append(Candidate(size, parts, rules, remat, scan, micro))
    return found


def estimated_tokens_per_second(candidate: Candidate, setup: TrainSetup, chips: int, peak: float | None) -> float:
    """Tokens per second at the chip's peak FLOP/s (relative units when the peak is unknown)."""
    s = step_compile.settings(setup)
    tokens = candidate.batch_size * (s["inputs_length"] + s["targets_length"])
    per_chip = step_compile.explicit_flops(step_compile.vary(setup, batch_size=candidate.batch_size)) / chips
    return tokens / (per_chip * candidate.cost_factor() / (peak or 1.0))


def plan_estimate(setup: TrainSetup) -> int:
    """`t5x-cot plan`'s per-chip total for the run (its remat setting)."""
    from t5x_cot import plan

    return plan.selected_total(plan.plan_of_setup(setup), setup.model.config.remat_policy)


def search(setup: TrainSetup, target: topo.Topology, devices: list[Any], *, budget_s: float = 1800.0,
           batch_sizes: Sequence[int] | None = None) -> dict[str, Any]:
    """Compile candidates best-first until one fits or `budget_s` is spent; rows and recommendation."""
    from t5x_cot.model import flops

    kind = devices[0].device_kind
    hbm, chips = topo.hbm_per_chip(kind), len(devices)
    peak = flops.peak_flops_per_device(kind)
    ranked = sorted(candidates(setup, chips, chips // target.num_slices, batch_sizes),
                    key=lambda c: (-estimated_tokens_per_second(c, setup, chips, peak), -c.batch_size))
    start, rows, best = time.monotonic(), [], None
    for candidate in ranked:
        if time.monotonic() - start > budget_s:
            break
        varied = step_compile.vary(setup, batch_size=candidate.batch_size, num_partitions=candidate.num_partitions,
                                   rules=candidate.rules, remat_policy=candidate.remat_policy,
                                   scan_layers=candidate.scan_layers, num_microbatches=candidate.num_microbatches)
        estimate = plan_estimate(varied)
        if hbm is not None and estimate > PRUNE_FACTOR * hbm:
            rows.append({**dataclasses.asdict(candidate), "skipped": f"plan estimate {estimate / GIB:.1f} GiB"})
            continue
        try:
            _, _, report = step_compile.compile_train(varied)
        except Exception as error:  # a setting the compiler rejects is a row, not the end of the search
            rows.append({**dataclasses.asdict(candidate), "error": str(error).strip().splitlines()[0][:200]})
            continue
        fits = hbm is not None and not report.out_of_memory and report.peak_bytes <= hbm
        s = step_compile.settings(varied)
        rows.append({**dataclasses.asdict(candidate), "peak_bytes": report.peak_bytes, "fits": fits,
                     "tokens_per_step": candidate.batch_size * (s["inputs_length"] + s["targets_length"]),
                     "flops_per_chip": step_compile.explicit_flops(varied) / chips,
                     "est_tokens_per_s": estimated_tokens_per_second(candidate, setup, chips, peak) if peak else None,
                     "compile_seconds": round(report.compile_seconds, 1)})
        if fits:
            best = rows[-1]
            break
    return {"topology": target.name, "devices": chips, "device_kind": kind, "hbm_per_chip_bytes": hbm,
            "candidates": len(ranked), "compiled": sum("peak_bytes" in row for row in rows), "seconds": round(time.monotonic() - start, 1),
            "rows": rows, "recommended": best,
            "budget_spent": best is None and len(rows) < len(ranked)}  # rows: compiled, skipped or failed


def format_table(result: dict[str, Any]) -> str:
    """The search table and its recommendation."""
    lines = [f"search on {result['topology']} ({result['devices']} x {result['device_kind']}): compiled "
             f"{result['compiled']} of {result['candidates']} settings in {result['seconds']} s (best first)",
             f"{'batch':>6} {'parts':>5} {'rules':>8} {'remat':>5} {'scan':>5} {'micro':>5} {'peak GiB':>9} "
             f"{'fits':>4} {'tokens/step':>11} {'FLOPs/chip':>10} {'compile s':>9}"]
    for row in result["rows"]:
        head = (f"{row['batch_size']:>6} {row['num_partitions']:>5} {row['rules']:>8} {row['remat_policy']:>5} "
                f"{str(row['scan_layers']):>5} {row['num_microbatches']:>5}")
        if "error" in row or "skipped" in row:
            lines.append(f"{head} {'compiler error: ' + row['error'] if 'error' in row else 'skipped: ' + row['skipped']}")
            continue
        lines.append(f"{head} {row['peak_bytes'] / GIB:>9.2f} {'yes' if row['fits'] else 'no':>4} "
                     f"{row['tokens_per_step']:>11} {row['flops_per_chip']:>10.3e} {row['compile_seconds']:>9}")
    best = result["recommended"]
    if best:
        lines.append(f"recommended: batch {best['batch_size']}, num_partitions {best['num_partitions']}, rules "
                     f"{best['rules']}, remat_policy {best['remat_policy']!r}, scan_layers {best['scan_layers']}, "
                     f"num_microbatches {best['num_microbatches']} ({best['peak_bytes'] / GIB:.2f} GiB per chip)")
    elif result["budget_spent"]:
        lines.append("no setting fitted before the time budget was spent (raise --budget_s)")
    else:
        lines.append("no setting fits this topology: try a larger slice")
    return "\n".join(lines)
