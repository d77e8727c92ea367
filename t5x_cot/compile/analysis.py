"""What the compiler says about one compiled step: per-chip memory, collectives, FLOPs, time.

- memory: `compiled.memory_analysis()` per chip. `peak_bytes` is what must fit in HBM:
  arguments + outputs - aliased (donated) buffers + temporaries + generated code (the
  runtime holds the arguments, the outputs not aliased to them, one block of temporaries and
  the program). `compiler_peak_bytes` is the compiler's own `peak_memory_in_bytes`, which on
  TPU can come out below the temporaries alone: reported, not used for the fit.
- collectives: all-reduce / all-gather / reduce-scatter / all-to-all instructions of the
  optimized HLO (async `-start` forms included), with the bytes of their results per chip.
  Counted as written: an instruction inside a loop body (scanned layers, microbatches)
  counts once, like the text shows it.
- FLOPs: `cost_analysis()` counts a while-loop body once and is only reported when the
  optimized HLO has no loop and the figure is positive; otherwise None.
"""
from __future__ import annotations

import dataclasses
import re
import time
from typing import Any

from t5x_cot.errors import UserError

COLLECTIVES = ("all-reduce", "all-gather", "reduce-scatter", "all-to-all")
DTYPE_BYTES = {"pred": 1, "s4": 0.5, "u4": 0.5, "s8": 1, "u8": 1, "s16": 2, "u16": 2, "f16": 2, "bf16": 2,
               "s32": 4, "u32": 4, "f32": 4, "s64": 8, "u64": 8, "f64": 8, "c64": 8, "c128": 16,
               "f8e4m3fn": 1, "f8e5m2": 1, "f8e4m3b11fnuz": 1}
_OP = re.compile(r"\s(?P<op>all-reduce|all-gather|reduce-scatter|all-to-all)(?P<start>-start)?\(")
_ARRAY = re.compile(r"\b([a-z][a-z0-9]*)\[([\d,]*)\]")
_LOOP = re.compile(r"\bwhile\(")
# the TPU compiler refuses a program that cannot fit, e.g. "RESOURCE_EXHAUSTED: Ran out of memory in
# memory space hbm ... the total memory required for HLO temporaries (33.62G) exceeds available HBM (30.75G)"
_OUT_OF_MEMORY = re.compile(r"required for (?P<what>[\w ]+?) \((?P<need>[\d.]+)(?P<unit>[KMGT]?)\) "
                            r"exceeds available HBM \((?P<have>[\d.]+)(?P<have_unit>[KMGT]?)\)")
_UNIT = {"": 1, "K": 2**10, "M": 2**20, "G": 2**30, "T": 2**40}


class DoesNotFit(UserError, RuntimeError):
    """The compiler found that a step needs more HBM than the chip has."""


@dataclasses.dataclass
class StepReport:
    """Compiler figures of one step (per chip)."""

    memory: dict[str, int]
    collectives: dict[str, dict[str, int]]
    compiler_flops: float | None
    compile_seconds: float
    hlo_has_loops: bool
    out_of_memory: str | None = None

    @property
    def peak_bytes(self) -> int:
        return self.memory["peak_bytes"]

    def as_dict(self) -> dict[str, Any]:
        out = {"memory": dict(self.memory), "collectives": self.collectives,
                "compiler_flops_per_chip": self.compiler_flops,
               "compile_seconds": round(self.compile_seconds, 2)}
        if self.out_of_memory:
            out["compiler_error"] = self.out_of_memory
        return out


def memory_figures(compiled: Any) -> dict[str, int]:
    """Per-chip bytes from `compiled.memory_analysis()`, with `peak_bytes` (see module doc)."""
    stats = compiled.memory_analysis()
    figures = {"argument_bytes": int(stats.argument_size_in_bytes), "output_bytes": int(stats.output_size_in_bytes),
               "temp_bytes": int(stats.temp_size_in_bytes), "alias_bytes": int(stats.alias_size_in_bytes),
               "generated_code_bytes": int(stats.generated_code_size_in_bytes)}
    figures["peak_bytes"] = (figures["argument_bytes"] + figures["output_bytes"] - figures["alias_bytes"]
                             + figures["temp_bytes"] + figures["generated_code_bytes"])
    figures["compiler_peak_bytes"] = int(getattr(stats, "peak_memory_in_bytes", 0) or 0)
    return figures


def _array_bytes(shape_text: str) -> list[int]:
    sizes = []
    for dtype, dims in _ARRAY.findall(shape_text):
        count = 1
        for dim in filter(None, dims.split(",")):
            count *= int(dim)
        sizes.append(int(count * DTYPE_BYTES.get(dtype, 4)))
    return sizes


def collective_counts(hlo_text: str) -> dict[str, dict[str, int]]:
    """{op: {"count", "bytes"}} of the collectives in optimized HLO text (see module doc)."""
    found = {op: {"count": 0, "bytes": 0} for op in COLLECTIVES}
    for line in hlo_text.splitlines():
        _, equals, instruction = line.partition(" = ")
        match = _OP.search(instruction) if equals else None
        if match is None:
            continue
        sizes = _array_bytes(instruction[:match.start()])  # the result shape precedes the op
        op = match.group("op")
        # an async all-gather / all-to-all start returns (operand, result): count the result
        nbytes = max(sizes, default=0) if match.group("start") and op != "all-reduce" else sum(sizes)
        found[op]["count"] += 1
        found[op]["bytes"] += nbytes
    return found


def compiler_flops(compiled: Any, hlo_text: str) -> float | None:
    """The compiler's FLOP count per chip, only when it can be trusted (no loops, positive)."""
    if _LOOP.search(hlo_text):
        return None
    costs = compiled.cost_analysis()
    if isinstance(costs, list):
        costs = costs[0] if costs else {}
    value = float((costs or {}).get("flops", 0.0) or 0.0)
    return value if value > 0 else None


def out_of_memory_report(message: str, seconds: float) -> StepReport | None:
    """The report of a step the compiler refused for lack of HBM (None for other errors):
    `temp_bytes` / `peak_bytes` are the compiler's requirement, the other figures unknown."""
    match = _OUT_OF_MEMORY.search(message)
    if match is None:
        return None
    need = int(float(match.group("need")) * _UNIT[match.group("unit")])
    memory = {"argument_bytes": None, "output_bytes": None, "temp_bytes": need, "alias_bytes": None,
              "generated_code_bytes": None, "peak_bytes": need, "compiler_peak_bytes": None,
              "available_bytes": int(float(match.group("have")) * _UNIT[match.group("have_unit")])}
    line = next((part for part in message.splitlines() if "RESOURCE_EXHAUSTED" in part), match.group(0))
    return StepReport(memory=memory, collectives={}, compiler_flops=None, compile_seconds=seconds,
                      hlo_has_loops=False, out_of_memory=line.strip())


def compile_step(lowered: Any) -> tuple[Any, StepReport]:
    """Compile a lowered step; the compiled executable (None when the compiler found it does not
    fit in HBM) and its report."""
    start = time.perf_counter()
    try:
        compiled = lowered.compile()
    except Exception as error:  # jax raises JaxRuntimeError for the compiler's refusal
        report = out_of_memory_report(str(error), time.perf_counter() - start)
        if report is None:
            raise
        return None, report
    seconds = time.perf_counter() - start
    text = compiled.as_text()
    report = StepReport(memory=memory_figures(compiled), collectives=collective_counts(text),
                        compiler_flops=compiler_flops(compiled, text), compile_seconds=seconds,
                        hlo_has_loops=bool(_LOOP.search(text)))
    return compiled, report
