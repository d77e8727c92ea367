"""`t5x-cot compile`: compile a run's real train step and decode path for a TPU topology.

    t5x-cot compile --gin_file=t5x/examples/t5/t5_1_1/xxl.gin --gin_file=t5x/configs/runs/finetune.gin \
        --gin.TASK_FEATURE_LENGTHS="{'inputs': 512, 'targets': 256}" --topology v5e-16 --json /tmp/xxl.json

Takes the gin flags of `python -m t5x_cot.train` (our run files and T5X's; MODEL_DIR, TRAIN_STEPS
and the other macros the step does not need may be left out) and compiles on this machine
with libtpu's compile-only backend: no TPU needed. `--search` compiles variations of the run
(batch size, num_partitions, rules, remat, scan, microbatches) and recommends the fastest that fits.
"""
from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from typing import Any

from t5x_cot.errors import UserError

HELP = "compile a gin run's train step and decode path for a TPU topology (per-chip memory, fit)"
GIB = 2**30


def build_parser() -> argparse.ArgumentParser:
    from t5x_cot import gin_utils

    parser = argparse.ArgumentParser(prog="t5x-cot compile", description=HELP)
    parser.add_argument("--gin_file", action="append", default=[], help="gin file (repeatable)")
    parser.add_argument("--gin_bindings", action="append", default=[], help="gin binding (repeatable)")
    parser.add_argument("--gin_search_paths", default="", help="comma-separated gin search paths")
    parser.add_argument("--gin.NAME", dest="_gin_macro", metavar="VALUE", help="set gin macro NAME (repeatable)")
    parser.add_argument("--topology", default=None,
                        help="Cloud TPU accelerator type (v4-8, v4-32, v5litepod-16 / v5e-16, v5p-8, v6e-8) or "
                             "jax topology name (v5e:4x4); default $TPU_ACCELERATOR_TYPE")
    parser.add_argument("--num_slices", type=int, default=1, help="slices connected over DCN (multi-slice)")
    parser.add_argument("--json", default=None, metavar="FILE", help="also write the report as JSON")
    parser.add_argument("--no_decode", action="store_true", help="compile the train step only")
    parser.add_argument("--search", action="store_true", help="search the settings that fit (see --budget_s)")
    parser.add_argument("--budget_s", type=float, default=1800.0, help="time budget of --search")
    parser.add_argument("--batch_sizes", default=None, help="--search: comma-separated global batch sizes")
    gin_utils.add_t5x_flags(parser)
    return parser


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Help only: `run_argv` parses the command line (gin flags are split off first)."""
    parser.add_argument("args", nargs=argparse.REMAINDER, help="see t5x-cot compile --help")


def format_report(report: dict[str, Any]) -> str:
    """The human-readable report."""
    t, s = report["topology"], report["settings"]
    hbm = report["hbm_per_chip_bytes"]
    memory = f"HBM {hbm / GIB:.1f} GiB per chip" if hbm else "HBM unknown"
    lines = [f"topology: {t['name']} ({t['jax_name']} x {t['num_slices']} slice(s)), {report['devices']} x "
             f"{report['device_kind']}, {memory}",
             f"mesh: {report['mesh']}, rules {s['rules']}, batch {s['batch_size']} (inputs {s['inputs_length']}, "
             f"targets {s['targets_length']}), microbatches {s['num_microbatches']}, remat {s['remat_policy']}, "
             f"scan {s['scan_layers']}"]
    steps = [("train step", report["train_step"])] + [(f"decode {k}", v) for k, v in report.get("decode", {}).items()]
    for name, step in steps:
        m = step["memory"]
        if step.get("compiler_error"):
            lines.append(f"{name}: does NOT fit: needs {m['peak_bytes'] / GIB:.2f} GiB of temporaries per chip, "
                         f"{m['available_bytes'] / GIB:.2f} GiB available (compiler: {step['compiler_error']})")
            continue
        lines.append(f"{name}: peak {m['peak_bytes'] / GIB:.2f} GiB per chip (arguments {m['argument_bytes'] / GIB:.2f}, "
                     f"outputs {m['output_bytes'] / GIB:.2f}, temporaries {m['temp_bytes'] / GIB:.2f}, aliased "
                     f"{m['alias_bytes'] / GIB:.2f}, code {m['generated_code_bytes'] / 2**20:.1f} MiB): "
                     f"{'fits' if step['fits'] else 'does NOT fit' if step['fits'] is False else '?'}; "
                     f"compiled in {step['compile_seconds']:.1f} s")
        collectives = ", ".join(f"{op} {c['count']} ({c['bytes'] / 2**20:.1f} MiB)"
                                for op, c in step["collectives"].items() if c["count"])
        lines.append(f"  collectives (loop bodies once): {collectives or 'none'}")
        if "flops" in step:
            f = step["flops"]
            compiler = (f"{f['compiler_per_chip']:.3e}" if f["compiler_per_chip"] is not None
                        else "n/a (loops)")
            lines.append(f"  FLOPs per chip: explicit {f['explicit_per_chip']:.3e}, compiler {compiler}")
    for tip in report.get("advice", []):
        lines.append(f"  to fit: {tip}")
    return "\n".join(lines)


def run_argv(argv: Sequence[str]) -> int:
    """Entry point of `t5x-cot compile` (the raw arguments after the command name)."""
    from t5x_cot import gin_utils

    try:
        files, bindings, search_paths, rest = gin_utils.split_gin_flags(argv)
        args = build_parser().parse_args(rest)
        gin_utils.apply_t5x_flags(args)
        return _run(args, files, bindings, [*search_paths, *filter(None, args.gin_search_paths.split(","))])
    except UserError as error:
        print(f"error: {str(error).strip().splitlines()[0]}", file=sys.stderr)
        return 2


def target_topology(name: str | None, num_slices: int) -> Any:
    """The Topology of --topology (default $TPU_ACCELERATOR_TYPE)."""
    from t5x_cot.compile import topology

    name = name or topology.user_setting("TPU_ACCELERATOR_TYPE")
    if not name:
        raise topology.TopologyError("--topology is required (e.g. v5e-16, v4-8, v5e:4x4), or set TPU_ACCELERATOR_TYPE")
    return topology.parse_topology(name, num_slices)


def _run(args: argparse.Namespace, files: list[str], bindings: list[str], search_paths: list[str]) -> int:
    from t5x_cot.compile import run_config, step_compile, topology

    target = target_topology(args.topology, args.num_slices)
    devices = topology.topology_devices(target)
    run_config.parse_run_config([*files, *args.gin_file], [*bindings, *args.gin_bindings], search_paths)
    setup = run_config.train_setup(devices)
    if args.search:
        from t5x_cot.compile import search

        sizes = [int(n) for n in args.batch_sizes.split(",")] if args.batch_sizes else None
        result = search.search(setup, target, devices, budget_s=args.budget_s, batch_sizes=sizes)
        print(search.format_table(result))
    else:
        result = step_compile.compile_report(setup, target, devices, decode=not args.no_decode)
        print(format_report(result))
    if args.json:
        with open(args.json, "w", encoding="utf-8") as handle:
            json.dump(result, handle, indent=2)
        print(f"wrote {args.json}")
    return 0
