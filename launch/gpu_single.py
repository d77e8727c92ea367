"""Train on the GPUs of one machine: one process drives all local GPUs.

    python launch/gpu_single.py --model_dir runs/cot-base \
        --gin_file gin/models/t5_1_1/base.gin --gin_file gin/runs/finetune.gin --dry-run
"""
from __future__ import annotations

import argparse
import os
import shlex

import common


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--gpus", default=None, help="CUDA_VISIBLE_DEVICES, e.g. 0,1,2,3")
    common.add_train_arguments(parser)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    env = {"XLA_PYTHON_CLIENT_MEM_FRACTION": "0.92", **common.environment(args)}
    if args.gpus:
        env["CUDA_VISIBLE_DEVICES"] = args.gpus
    for key, value in env.items():
        print(f"+ export {key}={shlex.quote(value)}")
        os.environ[key] = value
    common.Runner(args.dry_run).run(common.train_argv(args, python="python3"))


if __name__ == "__main__":
    main()
