"""Shared pieces of the launchers: the train command line and a runner with --dry-run.

Every launcher prints each command it runs (prefixed with "+ "), exactly as a shell would
receive it; with --dry-run it prints them and runs nothing.
"""
from __future__ import annotations

import argparse
import shlex
import subprocess
import sys
from collections.abc import Sequence

DEFAULT_GIN_FILES = ("gin/models/t5_1_1/xl.gin", "gin/runs/finetune.gin")


def add_train_arguments(parser: argparse.ArgumentParser) -> None:
    """Flags every launcher shares: what to train and where to write it."""
    parser.add_argument("--gin_file", action="append", default=None,
                        help="gin file (repeatable); default: T5 1.1 XL fine-tuning")
    parser.add_argument("--gin", action="append", default=[], metavar="NAME=VALUE",
                        help="gin binding passed as --gin.NAME=VALUE (repeatable)")
    parser.add_argument("--model_dir", required=True, help="MODEL_DIR (gs:// or a shared path)")
    parser.add_argument("--task", default="gsm8k_cot", help="MIXTURE_OR_TASK_NAME")
    parser.add_argument("--data_dir", default=None, help="T5X_COT_DATA_DIR on the workers")
    parser.add_argument("--dry-run", action="store_true", help="print the commands, run nothing")


def train_argv(args: argparse.Namespace, python: str = "python3",
               extra_flags: Sequence[str] = ()) -> list[str]:
    """The `python -m t5x_cot.train` command line for the parsed launcher flags."""
    argv = [python, "-m", "t5x_cot.train"]
    for gin_file in args.gin_file or DEFAULT_GIN_FILES:
        argv.append(f"--gin_file={gin_file}")
    argv.append(f"--gin.MODEL_DIR={_gin_string(args.model_dir)}")
    argv.append(f"--gin.MIXTURE_OR_TASK_NAME={_gin_string(args.task)}")
    for binding in args.gin:
        name, sep, value = binding.partition("=")
        if not sep or not name:
            raise SystemExit(f"--gin expects NAME=VALUE, got {binding!r}")
        argv.append(f"--gin.{name}={value}")
    argv.extend(extra_flags)
    return argv


def environment(args: argparse.Namespace) -> dict[str, str]:
    """Environment variables the training processes need."""
    env = {}
    if args.data_dir:
        env["T5X_COT_DATA_DIR"] = args.data_dir
    return env


def shell_line(argv: Sequence[str], env: dict[str, str] | None = None) -> str:
    """One shell line: `export` of the environment, then the quoted command."""
    exports = " ".join(f"{k}={_quote_keeping_vars(v)}" for k, v in (env or {}).items())
    command = shlex.join(argv)
    return f"export {exports} && {command}" if exports else command


def _quote_keeping_vars(value: str) -> str:
    """Quote for the shell but let a leading $HOME expand on the remote side."""
    if value.startswith("$HOME/"):
        return '"$HOME/' + value[len("$HOME/"):].replace('"', '\\"') + '"'
    return shlex.quote(value)


def _gin_string(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


class Runner:
    """Prints each command; runs it unless dry_run."""

    def __init__(self, dry_run: bool):
        self.dry_run = dry_run

    def run(self, argv: Sequence[str]) -> None:
        print("+ " + shlex.join(argv), flush=True)
        if not self.dry_run:
            subprocess.run(list(argv), check=True)

    def write(self, path: str, text: str) -> None:
        print(f"+ write {path}", flush=True)
        sys.stdout.write(text)
        if not self.dry_run:
            with open(path, "w", encoding="utf-8") as f:
                f.write(text)
