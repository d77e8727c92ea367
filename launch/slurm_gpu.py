"""Train on several GPU nodes with SLURM: one process per node, all its GPUs, jax.distributed.

    python launch/slurm_gpu.py --nodes 4 --gpus_per_node 8 --model_dir /shared/cot/xxl \
        --gin_file gin/models/t5_1_1/xxl.gin --gin_file gin/runs/finetune.gin --dry-run

Writes a batch script and submits it with `sbatch`. Under `srun`, `jax.distributed`
reads the coordinator, process count and process id from SLURM's environment, so every
node runs the identical command with `--distributed`.
"""
from __future__ import annotations

import argparse

import common


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--nodes", type=int, default=2)
    parser.add_argument("--gpus_per_node", type=int, default=8)
    parser.add_argument("--cpus_per_task", type=int, default=32)
    parser.add_argument("--time", default="24:00:00")
    parser.add_argument("--partition", default=None)
    parser.add_argument("--account", default=None)
    parser.add_argument("--job_name", default="t5x_cot")
    parser.add_argument("--workdir", default=".", help="repository checkout on the shared filesystem")
    parser.add_argument("--script", default="t5x_cot.sbatch", help="where to write the batch script")
    common.add_train_arguments(parser)
    return parser.parse_args(argv)


def batch_script(args: argparse.Namespace) -> str:
    """The sbatch script for the parsed flags."""
    directives = [
        f"--job-name={args.job_name}",
        f"--nodes={args.nodes}",
        "--ntasks-per-node=1",
        f"--gpus-per-node={args.gpus_per_node}",
        f"--cpus-per-task={args.cpus_per_task}",
        f"--time={args.time}",
        "--output=%x-%j.out",
    ]
    if args.partition:
        directives.append(f"--partition={args.partition}")
    if args.account:
        directives.append(f"--account={args.account}")
    env = {"XLA_PYTHON_CLIENT_MEM_FRACTION": "0.92", **common.environment(args)}
    train = common.train_argv(args, python=".venv/bin/python", extra_flags=["--distributed"])
    lines = ["#!/bin/bash"] + [f"#SBATCH {d}" for d in directives] + [
        "set -euo pipefail",
        f"cd {args.workdir}",
        *(f"export {k}={v}" for k, v in env.items()),
        "srun --kill-on-bad-exit=1 " + common.shell_line(train),
    ]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    runner = common.Runner(args.dry_run)
    runner.write(args.script, batch_script(args))
    runner.run(["sbatch", args.script])


if __name__ == "__main__":
    main()
