"""Two local processes x 4 CPU devices (jax.distributed, gloo) train and write one checkpoint."""
from __future__ import annotations

import json
import pathlib
import socket
import subprocess
import sys

import jax
import numpy as np
import pytest
from support import TESTS, subprocess_env

from t5x_cot import checkpoints


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.mark.slow
def test_two_processes_train_and_write_one_consistent_checkpoint(tmp_path: pathlib.Path) -> None:
    env = subprocess_env(devices=4)
    port = _free_port()
    model_dir = tmp_path / "run"
    procs = [subprocess.Popen([sys.executable, str(TESTS / "multihost_worker.py"), str(i), str(port), str(model_dir)],
                              env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for i in range(2)]
    outputs = [proc.communicate(timeout=240) for proc in procs]
    for proc, (_, err) in zip(procs, outputs):
        assert proc.returncode == 0, err[-3000:]
    results = [json.loads(out.strip().splitlines()[-1]) for out, _ in outputs]
    assert [r["process"] for r in results] == [0, 1]
    assert all(r["processes"] == 2 and r["devices"] == 8 and r["step"] == 4 for r in results)
    assert results[0]["param_sum"] == results[1]["param_sum"]
    assert results[0]["loss"] == results[1]["loss"]
    assert sorted(checkpoints.step_dirs(model_dir)) == [2, 4]
    params, _ = checkpoints.load_params(model_dir)
    total = sum(float(np.sum(x, dtype=np.float64)) for x in jax.tree.leaves(params))
    assert total == pytest.approx(results[0]["param_sum"], rel=1e-5)
