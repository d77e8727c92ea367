"""The launchers' --dry-run output, for the commands the README shows and for edge cases."""
from __future__ import annotations

import pathlib
import re
import shlex
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]


def dry_run(argv: list[str], cwd: pathlib.Path = ROOT) -> list[str]:
    """Runs a launcher with --dry-run and returns the printed lines."""
    if "--dry-run" not in argv:
        argv = argv + ["--dry-run"]
    proc = subprocess.run([sys.executable, *argv], cwd=cwd, capture_output=True, text=True,
                          timeout=60)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.splitlines()


def commands(lines: list[str]) -> list[list[str]]:
    return [shlex.split(line[2:]) for line in lines if line.startswith("+ ") and
            not line.startswith(("+ write", "+ export"))]


def readme_launch_commands() -> list[list[str]]:
    """Every `python launch/...` command in the README's shell blocks (continuations joined)."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    found = []
    for language, block in re.findall(r"```([\w-]*)\n(.*?)```", text, flags=re.S):
        if language not in ("", "bash", "sh", "shell"):
            continue
        joined = block.replace("\\\n", " ")
        for line in joined.splitlines():
            words = shlex.split(line, comments=True)
            if len(words) > 1 and words[0] == "python" and words[1].startswith("launch/"):
                found.append(words[1:])
    return found


def test_readme_shows_every_launcher():
    scripts = {argv[0] for argv in readme_launch_commands()}
    assert scripts == {"launch/tpu_vm.py", "launch/slurm_gpu.py", "launch/gpu_single.py"}


@pytest.mark.parametrize("argv", readme_launch_commands(), ids=lambda a: a[0])
def test_readme_launch_commands_dry_run(argv):
    lines = dry_run(argv)
    train = [c for c in commands(lines) if "t5x_cot.train" in " ".join(c)]
    assert train or any("t5x_cot.train" in line for line in lines), lines


def test_tpu_vm_all_steps_in_order():
    lines = dry_run(["launch/tpu_vm.py", "all", "--name", "cot", "--zone", "us-central2-b",
                     "--accelerator_type", "v4-32", "--model_dir", "gs://bucket/run",
                     "--task", "gsm8k_cot", "--gin", "TRAIN_STEPS=2000", "--spot"])
    cmds = commands(lines)
    assert cmds[0][:5] == ["gcloud", "compute", "tpus", "tpu-vm", "create"]
    assert "--accelerator-type=v4-32" in cmds[0] and "--spot" in cmds[0]
    ssh = [c for c in cmds if c[4] == "ssh"]
    assert len(ssh) == 2 and all("--worker=all" in c for c in ssh)
    install = next(w for w in ssh[0] if w.startswith("--command="))
    assert "pip install -q -c constraints.txt -e '.[tpu]'" in install
    run = next(w for w in ssh[1] if w.startswith("--command="))
    train = shlex.split(run.split("&&")[-1])
    assert train[:3] == [".venv/bin/python", "-m", "t5x_cot.train"]
    assert '--gin.MODEL_DIR="gs://bucket/run"' in train
    assert '--gin.MIXTURE_OR_TASK_NAME="gsm8k_cot"' in train
    assert "--gin.TRAIN_STEPS=2000" in train and train[-1] == "--distributed"
    assert 'T5X_COT_DATA_DIR="$HOME/t5x_cot_data"' in run
    assert cmds[-1][4] == "delete" and "--quiet" in cmds[-1]


def test_tpu_vm_single_step_and_clone():
    cmds = commands(dry_run(["launch/tpu_vm.py", "install", "--name", "n", "--zone", "z",
                             "--model_dir", "gs://b/r", "--repo", "https://example.org/r.git",
                             "--ref", "v1"]))
    assert len(cmds) == 1
    script = cmds[0][-1]
    assert "git clone https://example.org/r.git t5x_cot" in script
    assert "checkout v1" in script


def test_slurm_script(tmp_path):
    script = tmp_path / "job.sbatch"
    lines = dry_run(["launch/slurm_gpu.py", "--nodes", "4", "--gpus_per_node", "8",
                     "--model_dir", "/shared/run", "--script", str(script),
                     "--gin_file", "gin/models/t5_1_1/xxl.gin",
                     "--gin_file", "gin/runs/finetune.gin"])
    text = "\n".join(lines)
    assert "#SBATCH --nodes=4" in text and "#SBATCH --gpus-per-node=8" in text
    assert "#SBATCH --ntasks-per-node=1" in text
    srun = next(line for line in lines if line.startswith("srun "))
    assert "--distributed" in srun and "--gin_file=gin/models/t5_1_1/xxl.gin" in srun
    assert commands(lines)[-1] == ["sbatch", str(script)]
    assert not script.exists(), "a dry run writes nothing"


def test_gpu_single_env_and_command():
    lines = dry_run(["launch/gpu_single.py", "--model_dir", "runs/x", "--gpus", "0,1"])
    assert "+ export CUDA_VISIBLE_DEVICES=0,1" in lines
    (train,) = commands(lines)
    assert train[:3] == ["python3", "-m", "t5x_cot.train"]


def test_bad_binding_is_refused():
    proc = subprocess.run([sys.executable, "launch/gpu_single.py", "--model_dir", "x",
                           "--gin", "NOEQUALS", "--dry-run"], cwd=ROOT, capture_output=True,
                          text=True)
    assert proc.returncode != 0 and "NAME=VALUE" in proc.stderr
