"""Train on a Cloud TPU VM (single host or pod): create, install, run, tear down.

    python launch/tpu_vm.py all --name cot-xl --zone us-central2-b --accelerator_type v4-32 \
        --model_dir gs://BUCKET/cot/xl --data_dir gs://BUCKET/t5x_cot_data --dry-run

Steps: `create` the TPU VM, `install` the project with `jax[tpu]` on every worker, `run`
the same train command on all workers (`--distributed`: JAX finds its peers on a TPU pod by itself), and
`delete` the VM. `all` does the four in order.
"""
from __future__ import annotations

import argparse
import shlex

import common

STEPS = ("create", "install", "run", "delete")
ARCHIVE = "/tmp/t5x_cot.tar.gz"
DATA_DIR = "t5x_cot_data"  # relative to the workers' home directory


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("step", choices=STEPS + ("all",))
    parser.add_argument("--name", required=True, help="TPU VM name")
    parser.add_argument("--zone", required=True)
    parser.add_argument("--project", default=None)
    parser.add_argument("--accelerator_type", default="v4-8")
    parser.add_argument("--version", default="tpu-ubuntu2204-base", help="TPU VM runtime")
    parser.add_argument("--spot", action="store_true", help="spot capacity (preemptible)")
    parser.add_argument("--repo", default=None,
                        help="git URL to clone on the workers; default: copy this checkout (git archive)")
    parser.add_argument("--ref", default="HEAD", help="branch, tag or commit to install")
    parser.add_argument("--upload", default=None, metavar="LOCAL_DIR",
                        help="copy this local folder (e.g. your CoT records) into the workers' data dir")
    common.add_train_arguments(parser)
    args = parser.parse_args(argv)
    args.data_dir = args.data_dir or DATA_DIR
    return args


def _gcloud(args: argparse.Namespace, *words: str) -> list[str]:
    argv = ["gcloud", "compute", "tpus", "tpu-vm", *words]
    if words[0] != "scp":
        argv.append(args.name)
    argv.append(f"--zone={args.zone}")
    if args.project:
        argv.append(f"--project={args.project}")
    return argv


def _on_all_workers(args: argparse.Namespace, script: str) -> list[str]:
    return _gcloud(args, "ssh") + ["--worker=all", f"--command={script}"]


def commands(args: argparse.Namespace) -> list[list[str]]:
    """The gcloud command lines for the requested step(s), in order."""
    steps = STEPS if args.step == "all" else (args.step,)
    out = []
    for step in steps:
        if step == "create":
            argv = _gcloud(args, "create") + [f"--accelerator-type={args.accelerator_type}",
                                              f"--version={args.version}"]
            if args.spot:
                argv.append("--spot")
            out.append(argv)
        elif step == "install":
            if args.repo:
                fetch = (f"(test -d t5x_cot || git clone {shlex.quote(args.repo)} t5x_cot) && "
                         f"git -C t5x_cot checkout {shlex.quote(args.ref)}")
            else:
                out.append(["git", "archive", "--format=tar.gz", f"--output={ARCHIVE}", args.ref])
                out.append(_gcloud(args, "scp") + ["--worker=all", ARCHIVE, f"{args.name}:{ARCHIVE}"])
                fetch = f"mkdir -p t5x_cot && tar -xzf {ARCHIVE} -C t5x_cot"
            script = " && ".join([
                "set -e",
                fetch,
                "cd t5x_cot",
                "python3 -m venv .venv",
                ".venv/bin/pip install -q --upgrade pip",
                ".venv/bin/pip install -q -c constraints.txt -e '.[tpu]'",
                f".venv/bin/t5x-cot download --data-dir ~/{shlex.quote(args.data_dir)}",
            ])
            out.append(_on_all_workers(args, script))
            if args.upload:
                out.append(_gcloud(args, "scp") + ["--worker=all", "--recurse", args.upload,
                                                   f"{args.name}:{args.data_dir}/"])
        elif step == "run":
            train = common.train_argv(args, python=".venv/bin/python", extra_flags=["--distributed"])
            env = {"T5X_COT_DATA_DIR": f"$HOME/{args.data_dir}"}
            out.append(_on_all_workers(args, "cd t5x_cot && " + common.shell_line(train, env)))
        else:
            out.append(_gcloud(args, "delete") + ["--quiet"])
    return out


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    runner = common.Runner(args.dry_run)
    for command in commands(args):
        runner.run(command)


if __name__ == "__main__":
    main()
