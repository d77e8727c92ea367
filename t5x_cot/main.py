"""T5X's `main.py` entry point: one command for every run mode, chosen by `--run_mode`.

    python -m t5x_cot.main --run_mode=precompile --gin_file=t5x/examples/t5/t5_1_1/tiny.gin \
        --gin_file=t5x/configs/runs/precompile.gin --gin.MODEL_DIR="'/tmp/pre'" \
        --gin.MIXTURE_OR_TASK_NAME="'coinflip_cot'" --gin.TASK_FEATURE_LENGTHS="{'inputs': 64, 'targets': 32}"

`train`, `eval` and `infer` run `python -m t5x_cot.train` / `.eval` / `.infer` with the other
arguments. `precompile` runs T5X's `train_script.precompile` (`t5x/configs/runs/precompile.gin`):
the train step compiled for the TPU named by `TPU_ACCELERATOR_TYPE` (default
`t5x_cot.t5x_compat.precompile.DEFAULT_TARGET`, v4-8) on this machine, with the serialized HLO
before and after optimization written to MODEL_DIR (needs libtpu: `pip install -e ".[tpu]"`).
"""
from __future__ import annotations

import importlib
import sys
from collections.abc import Sequence

from t5x_cot.errors import UserError

MODES = {"train": "t5x_cot.train", "eval": "t5x_cot.eval", "infer": "t5x_cot.infer", "precompile": None}


class RunModeError(UserError, ValueError):
    """A missing or unknown --run_mode."""


def split_run_mode(argv: Sequence[str]) -> tuple[str, list[str]]:
    """(run mode, the other arguments) from `--run_mode=X` or `--run_mode X`."""
    mode, rest, args = None, [], list(argv)
    while args:
        arg = args.pop(0)
        if arg == "--run_mode" and args:
            mode = args.pop(0)
        elif arg.startswith("--run_mode="):
            mode = arg.split("=", 1)[1]
        else:
            rest.append(arg)
    if mode is None:
        raise RunModeError(f"--run_mode is required: one of {', '.join(MODES)}")
    if mode.lower() not in MODES:
        hint = " (T5X's export mode has no counterpart here)" if mode.lower() == "export" else ""
        raise RunModeError(f"--run_mode={mode}: expected one of {', '.join(MODES)}{hint}")
    return mode.lower(), rest


def precompile_main(argv: Sequence[str]) -> int:
    """Run the configured `train_script.precompile` over the devices of the target TPU."""
    from t5x_cot import gin_utils, partitioning
    from t5x_cot.t5x_compat import precompile

    with partitioning.target_devices(precompile.target_devices()):
        written = gin_utils.run_configured(argv, precompile.precompile, "t5x_cot.main")
    print(f"precompiled for {precompile.target_name()} ({precompile.TARGET_ENV}):")
    for path in written.values():
        print(f"  wrote {path}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    as_program = argv is None
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        mode, rest = split_run_mode(argv)
        if as_program and mode == "precompile":
            from t5x_cot.compile import topology

            topology.run_with_large_stack()  # the TPU compiler's threads need it
        if MODES[mode] is not None:
            return int(importlib.import_module(MODES[mode]).main(rest) or 0)
        return precompile_main(rest)
    except UserError as error:
        print(f"error: {str(error).strip().splitlines()[0]}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
