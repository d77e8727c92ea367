"""The `t5x-cot` console script: one subcommand per job, each in its own module.

A subcommand module exposes `add_arguments(parser)` and `run(args) -> int`. Only the
module of the subcommand being run is imported, so `t5x-cot data stats` never pays for
JAX or TensorFlow.
"""
from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

COMMANDS: dict[str, tuple[str, str]] = {
    "data": ("t5x_cot.data.cli", "inspect the datasets: counts, answers, lengths, calculator check"),
    "download": ("t5x_cot.data.download", "fetch GSM8K, StrategyQA and the T5 vocabulary (checksummed)"),
    "generate": ("t5x_cot.teacher.cli", "write chain-of-thought records with a teacher, filtered by answer"),
    "convert": ("t5x_cot.interop.convert", "convert checkpoints between T5X, HuggingFace and t5x_cot"),
    "plan": ("t5x_cot.plan", "print the mesh, sharding and per-device memory of a gin config"),
    "serve": ("t5x_cot.serve.cli", "serve a checkpoint over the OpenAI API (completions, chat, models)"),
    "demo": ("t5x_cot.demo", "chain-of-thought distillation end to end on the CPU (arithmetic word problems; --task coinflip)"),
}


def build_parser(argv: Sequence[str]) -> argparse.ArgumentParser:
    """The parser; only the subcommand named in `argv` gets its module's arguments."""
    parser = argparse.ArgumentParser(
        prog="t5x-cot", description="Chain-of-thought distillation into T5, on JAX.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    chosen = next((word for word in argv if not word.startswith("-")), None)
    for name, (module_name, help_text) in COMMANDS.items():
        cmd = sub.add_parser(name, help=help_text, description=help_text)
        if name == chosen:
            module = importlib.import_module(module_name)
            module.add_arguments(cmd)
            cmd.set_defaults(_module=module)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser(argv).parse_args(argv)
    return int(args._module.run(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
