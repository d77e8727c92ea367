"""`t5x-cot demo --quick` end to end: teacher, filter, vocabulary, tasks, training, eval, report."""
from __future__ import annotations

import contextlib
import csv
import io
import json

import pytest

from t5x_cot import cli
from t5x_cot.data.records import read_records

QUICK_TEST = 16  # questions per test set in --quick mode


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("demo")
    stdout = io.StringIO()
    with contextlib.redirect_stdout(stdout):
        status = cli.main(["demo", "--quick", "--out", str(out)])
    return status, out, stdout.getvalue()


@pytest.mark.slow
def test_quick_demo_writes_results(quick_run):
    status, out, printed = quick_run
    assert status == 0
    for name in ("results.md", "results.csv", "accuracy_vs_coin_flips.png", "predictions.jsonl",
                 "vocab/spiece.model", "cot/coinflip.jsonl"):
        assert (out / name).is_file(), name
    assert (out / "accuracy_vs_coin_flips.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    with open(out / "results.csv", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    assert [(r["run"], r["task"], int(r["coin_flips"]), r["distribution"]) for r in rows] == [
        (student, f"coinflip_demo_test_p{people}", people, "in" if people == 2 else "ood")
        for student in ("cot", "answer_only") for people in (2, 3, 4)]
    assert all(0.0 <= float(r["accuracy"]) <= 100.0 and int(r["num_examples"]) == QUICK_TEST
               for r in rows)

    header = ("| student | 2 people (in distribution) | 3 people (OOD) | 4 people (OOD) |")
    table = (out / "results.md").read_text("utf-8")
    assert header in table and header in printed
    for label in ("| CoT (trace rationale) |", "| answer only |"):
        assert label in table and label in printed
    assert "wall time:" in printed and "train cot" in printed
    assert "CoT rationales with every step right: 2 people" in printed
    assert "out of distribution the CoT student" in printed


@pytest.mark.slow
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


def test_verdict_and_table_format():
    from t5x_cot import demo_report
    metrics = {"cot": {2: 100.0, 3: 90.0, 4: 80.0}, "answer_only": {2: 100.0, 3: 50.0, 4: 85.0}}
    table = demo_report.results_table(
        {s: {p: {"accuracy": a, "answer_found": 100.0, "num_examples": 10} for p, a in by.items()}
         for s, by in metrics.items()}, {"cot": "CoT", "answer_only": "answer only"}, 2)
    assert demo_report.format_markdown(table).splitlines()[2:] == [
        "| CoT | 100.0 | 90.0 | 80.0 |", "| answer only | 100.0 | 50.0 | 85.0 |"]
    assert demo_report.verdict(table, "cot", "answer_only") == (
        "out of distribution the CoT student does NOT beat the answer-only student (accuracy "
        "difference in points: 3 people +40.0, 4 people -5.0)")
    table[2]["accuracy"] = 90.0
    assert " beats " in demo_report.verdict(table, "cot", "answer_only")
