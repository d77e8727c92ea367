"""Peak RSS of `t5x-cot convert` on a ~50 MB checkpoint (the ~1 GB run is bench/convert_memory.py)."""
from __future__ import annotations

import json
import pathlib
import subprocess
import sys

import pytest

BENCH = pathlib.Path(__file__).resolve().parents[1] / "bench" / "convert_memory.py"


@pytest.mark.slow
def test_conversion_memory_stays_under_one_and_a_half_checkpoints(tmp_path):
    out = tmp_path / "memory.json"
    subprocess.run([sys.executable, str(BENCH), "--size-gb", "0.05", "--workdir", str(tmp_path),
                    "--json", str(out)], check=True, capture_output=True, timeout=300)
    report = json.loads(out.read_text())
    print(f"\nconvert memory (~50 MB checkpoint): {json.dumps(report)}")
    assert report["round_trip_bit_exact"]
    # Beyond the interpreter and its imports: hf -> ours holds the tree once (orbax saves one
    # tree); ours -> hf holds about one tensor. At this size the runtime's own buffers
    # (tensorstore, orbax) are a sizeable share, hence the margin.
    assert report["hf_to_ours"]["peak_minus_imports_over_size"] < 1.5
    assert report["ours_to_hf"]["peak_minus_imports_over_size"] < 1.5
