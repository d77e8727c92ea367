"""One trainer per MODEL_DIR: a live holder refuses a second trainer, a dead or stale one does not."""
from __future__ import annotations

import json
import os
import pathlib
import socket
import subprocess
import sys
import time

import pytest

from t5x_cot import paths, run_lease


def _holder(pid: int, host: str | None = None, heartbeat: float | None = None) -> str:
    return json.dumps({"host": host or socket.gethostname(), "pid": pid, "started": "2026-01-01T00:00:00Z",
                       "heartbeat": time.time() if heartbeat is None else heartbeat, "token": "other"})


@pytest.fixture
def live_pid():
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    yield proc.pid
    proc.kill()
    proc.wait()


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


@pytest.mark.parametrize("where", ["local", "memory"])
def test_a_live_holder_refuses_a_second_trainer_naming_it(tmp_path: pathlib.Path, live_pid: int, where: str):
    model_dir = str(tmp_path) if where == "local" else f"memory://lease-{tmp_path.name}/run"
    paths.write_text(paths.join(model_dir, run_lease.LEASE_FILE), _holder(live_pid))
    with pytest.raises(run_lease.LeaseError, match=rf"in use by another trainer \(host .*, pid {live_pid}, "
                                                   r"started 2026-01-01T00:00:00Z"):
        run_lease.Lease(model_dir).acquire()


@pytest.mark.parametrize("where", ["local", "memory"])
def test_a_dead_holder_or_a_stale_other_host_does_not_block(tmp_path: pathlib.Path, where: str):
    model_dir = str(tmp_path) if where == "local" else f"memory://lease-{tmp_path.name}/run"
    lease_file = paths.join(model_dir, run_lease.LEASE_FILE)
    for record in (_holder(_dead_pid()), _holder(1, host="elsewhere", heartbeat=time.time() - 3600)):
        paths.write_text(lease_file, record)
        with run_lease.Lease(model_dir) as lease:
            assert json.loads(paths.read_text(lease_file))["pid"] == os.getpid() == lease.record["pid"]
        assert not paths.exists(lease_file)


def test_a_fresh_other_host_blocks_and_the_holder_keeps_its_heartbeat(tmp_path: pathlib.Path):
    paths.write_text(paths.join(str(tmp_path), run_lease.LEASE_FILE), _holder(1, host="elsewhere"))
    with pytest.raises(run_lease.LeaseError, match="host elsewhere, pid 1"):
        run_lease.Lease(str(tmp_path)).acquire()
    (tmp_path / run_lease.LEASE_FILE).unlink()
    with run_lease.Lease(str(tmp_path), heartbeat_s=0.05) as lease:
        first = lease.record["heartbeat"]
        time.sleep(0.3)
        assert json.loads((tmp_path / run_lease.LEASE_FILE).read_text())["heartbeat"] > first
