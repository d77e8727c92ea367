"""On 8 forced CPU devices, one train step sharded (data=8), (data=2, model=4) and FSDP equals the
single-device step (float32): loss and updated params within 1e-5; so do 2 microbatches."""
from __future__ import annotations

import json
import pathlib
import subprocess
import sys

import pytest
from support import TESTS, subprocess_env


@pytest.mark.slow
def test_sharded_train_step_equals_single_device(tmp_path: pathlib.Path) -> None:
    env = subprocess_env(devices=8)
    result = subprocess.run([sys.executable, str(TESTS / "sharded_step_check.py")], cwd=tmp_path, env=env,
                            capture_output=True, text=True, timeout=400)
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(result.stdout.strip().splitlines()[-1])
    print(json.dumps(report, indent=1))
    layouts = ("data=8", "data=2,model=4", "fsdp data=8", "1 device, 2 microbatches")
    for name in layouts:
        assert report[name]["loss_rel_error"] < 1e-5, (name, report[name])
        assert report[name]["param_max_abs_error"] < 1e-5, (name, report[name])
    assert "P(None, 'model')" in report["data=2,model=4"]["param_specs"]
    assert "P('model', 'data')" in report["fsdp data=8"]["param_specs"]
