"""`t5x-cot demo --quick` end to end: teacher, filter, vocabulary, tasks, training, eval, report."""
from __future__ import annotations

import csv
import json

import pytest

from t5x_cot import cli
from t5x_cot.data.records import read_records

QUICK_TEST = 16  # questions per test set in --quick mode


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("demo")
    import contextlib
    import io
    stdout = io.StringIO()
    with contextlib.redirect_stdout(stdout):
        status = cli.main(["demo", "--quick", "--out", str(out)])
    return status, out, stdout.getvalue()


def test_quick_demo_writes_results(quick_run):
    status, out, printed = quick_run
    assert status == 0
    for name in ("results.md", "results.csv", "accuracy_by_people.png", "predictions.jsonl",
                 "vocab/spiece.model", "cot/coinflip.jsonl"):
        assert (out / name).is_file(), name
    assert (out / "accuracy_by_people.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    with open(out / "results.csv", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    assert [(r["student"], int(r["num_people"]), r["distribution"]) for r in rows] == [
        (student, people, "in" if people == 2 else "ood")
        for student in ("cot", "answer_only") for people in (2, 3, 4)]
    assert all(0.0 <= float(r["accuracy"]) <= 100.0 and int(r["num_examples"]) == QUICK_TEST
               for r in rows)

    header = ("| student | 2 people (in distribution) | 3 people (OOD) | 4 people (OOD) |")
    table = (out / "results.md").read_text("utf-8")
    assert header in table and header in printed
    for label in ("| CoT (trace rationale) |", "| answer only |"):
        assert label in table and label in printed
    assert "wall time:" in printed and "train cot" in printed


def test_quick_demo_teacher_filter_and_predictions(quick_run):
    _, out, printed = quick_run
    summary = json.loads((out / "cot" / "coinflip.jsonl.summary.json").read_text("utf-8"))
    assert summary["answered"] == 200
    assert summary["dropped"]["wrong_answer"] > 0
    assert summary["kept"] + summary["dropped"]["wrong_answer"] == summary["answered"]
    records = read_records(out / "cot" / "coinflip.jsonl")
    assert len(records) == summary["kept"]
    assert all(r["correct"] and r["rationale"].startswith("The coin starts heads up.")
               for r in records)
    assert f"{summary['kept']} kept" in printed

    lines = [json.loads(line) for line in
             (out / "predictions.jsonl").read_text("utf-8").splitlines()]
    assert len(lines) == 2 * 3 * QUICK_TEST
    assert {(p["student"], p["task"]) for p in lines} == {
        (s, f"coinflip_demo_test_p{n}") for s in ("cot", "answer_only") for n in (2, 3, 4)}
    assert all({"question", "rationale", "answer", "gold", "correct"} <= set(p) for p in lines)
    assert all(p["gold"] in ("yes", "no") for p in lines)
