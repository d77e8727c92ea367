"""The `t5x-cot` console script: one subcommand per job, each in its own module.

A subcommand module exposes `add_arguments(parser)` and `run(args) -> int`, or `run_argv(argv)`
when it parses its own arguments (gin flags such as `--gin.NAME=VALUE`); `train`, `eval` and
`infer` are the gin entry points' own `main(argv)`. Only the
module of the subcommand being run is imported, so `t5x-cot data stats` never pays for
JAX or TensorFlow.
"""
from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from t5x_cot.errors import UserError, one_line

COMMANDS: dict[str, tuple[str, str]] = {
    "train": ("t5x_cot.train", "train as T5X's train.py: gin flags, T5X's run files too (python -m t5x_cot.train)"),
    "eval": ("t5x_cot.eval", "evaluate checkpoints as T5X's eval.py (python -m t5x_cot.eval)"),
    "infer": ("t5x_cot.infer", "decode or score a task's examples as T5X's infer.py (python -m t5x_cot.infer)"),
    "data": ("t5x_cot.data.cli", "inspect the datasets: counts, answers, lengths, calculator check"),
    "download": ("t5x_cot.data.download", "fetch GSM8K, StrategyQA and the T5 vocabulary (checksummed)"),
    "generate": ("t5x_cot.teacher.cli", "write chain-of-thought records with a teacher, filtered by answer"),
    "convert": ("t5x_cot.interop.convert", "convert checkpoints between T5X, HuggingFace and t5x_cot"),
    "plan": ("t5x_cot.plan", "print the mesh, sharding and per-device memory of a gin config"),
    "compile": ("t5x_cot.compile.cli", "compile a gin run's train and decode steps for a TPU topology (fit, memory)"),
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


# Commands that compile for TPUs: run as a program, they restart with a stack the compiler can use.
TPU_COMPILING = frozenset({"compile", "plan"})


def main(argv: Sequence[str] | None = None) -> int:
    """Run one subcommand; a `UserError` prints as one line and exits 2."""
    try:
        return _dispatch(argv)
    except UserError as error:
        print(f"error: {one_line(error)}", file=sys.stderr)
        return 2


def _dispatch(argv: Sequence[str] | None) -> int:
    as_program = argv is None
    argv = list(sys.argv[1:] if argv is None else argv)
    if as_program and TPU_COMPILING & set(argv[:1]):
        from t5x_cot.compile import topology

        topology.run_with_large_stack()
    chosen = next((i for i, word in enumerate(argv) if not word.startswith("-")), None)
    if chosen is not None and argv[chosen] in COMMANDS:
        module = importlib.import_module(COMMANDS[argv[chosen]][0])
        if hasattr(module, "run_argv"):
            return int(module.run_argv(argv[chosen + 1:]) or 0)
        if not hasattr(module, "add_arguments"):  # a gin entry point: its main parses the flags
            return int(module.main(argv[chosen + 1:]) or 0)
    args = build_parser(argv).parse_args(argv)
    return int(args._module.run(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
