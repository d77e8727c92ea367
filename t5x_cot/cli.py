"""The `t5x-cot` console script: one subcommand per job, each in its own module.

A subcommand module exposes `HELP` (one line), `add_arguments(parser)` and
`run(args) -> int`. Modules are imported only when their subcommand runs, except for
argument registration, so their top level must stay free of heavy imports.
"""
from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

COMMANDS: dict[str, str] = {
    "data": "t5x_cot.data.cli",
    "download": "t5x_cot.data.download",
    "generate": "t5x_cot.teacher.cli",
    "convert": "t5x_cot.interop.convert",
    "plan": "t5x_cot.plan",
    "demo": "t5x_cot.demo",
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="t5x-cot", description="Chain-of-thought distillation into T5, on JAX.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name, module_name in COMMANDS.items():
        module = importlib.import_module(module_name)
        cmd = sub.add_parser(name, help=module.HELP, description=module.HELP)
        module.add_arguments(cmd)
        cmd.set_defaults(_module=module)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return int(args._module.run(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
