"""bench/accelerator.sh end to end in its CPU mode, on a Python that cannot import TF or seqio."""
from __future__ import annotations

import json
import pathlib
import subprocess
import sys

import pytest
from support import REPO, subprocess_env


@pytest.mark.slow
def test_accelerator_script_cpu_mode_writes_a_full_report(tmp_path: pathlib.Path):
    blocked = tmp_path / "blocked"
    for name in ("tensorflow", "seqio"):
        (blocked / name).mkdir(parents=True)
        (blocked / name / "__init__.py").write_text(f"raise ImportError('{name} is not on the device image')\n")
    out = tmp_path / "report"
    env = subprocess_env(PYTHON=sys.executable, PYTHONPATH=str(blocked), CUDA_VISIBLE_DEVICES="",
                         ACCELERATOR_TIMEOUT="580")
    env.pop("T5X_COT_PEAK_FLOPS", None)
    run = subprocess.run([str(REPO / "bench" / "accelerator.sh"), str(out)], env=env, capture_output=True,
                         text=True, timeout=600, check=False)
    assert run.returncode == 0, run.stderr[-3000:]
    report = json.loads((out / "accelerator.json").read_text())
    assert report["mode"] == "cpu-smoke"
    assert not [name for name, section in report.items() if isinstance(section, dict) and "error" in section]
    assert report["device"]["platform"] == "cpu" and report["device"]["peak_flops"] is None
    assert report["numerics"]["max_abs_delta_logit"] > 0 and report["numerics"]["argmax_agreement"] > 0.5
    train = report["train_tiny"]
    ours = [t for t in train["ours_tries"] if t["fits"]][-1]
    hf = [t for t in train["hf_tries"] if t["fits"]][0]
    for row in (ours, hf):
        assert row["steps_per_s"] > 0 and row["tokens_per_s"] > 0 and row["mfu"] is None
    rows = {(r["strategy"], r["batch"]): r for r in report["decode"]["rows"]}
    assert set(rows) == {("greedy", 2), ("beam4", 2)}
    assert all(r["ours_tokens_per_s"] > 0 and r["hf_tokens_per_s"] > 0 for r in rows.values())
    assert report["xxl"]["fits"] and report["xxl"]["settings"] == {"remat_policy": "none", "scan_layers": False}
    assert report["imports"] == {"tensorflow": False, "seqio": False}
    markdown = (out / "accelerator.md").read_text()
    assert "MFU n/a" in markdown and "%" not in markdown.split("## train_tiny")[1].split("##")[0]
