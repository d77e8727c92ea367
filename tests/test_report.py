"""Results table and plot from eval output directories."""
from __future__ import annotations

import csv
import json

import pytest

from t5x_cot import report


def _eval_dir(root, name, num_params, tasks):
    directory = root / name / "eval"
    directory.mkdir(parents=True)
    (directory / "metrics.json").write_text(json.dumps(tasks))
    (directory / "run_info.json").write_text(json.dumps({"num_params": num_params}))
    return directory


def _coinflip(accuracies):
    return {f"coinflip_{suffix}": {"accuracy": acc, "answer_found": 100.0, "num_examples": 10,
                                   "distribution": "in" if suffix == "cot" else "ood", "coin_flips": flips,
                                   "data_fraction": 1.0, "dataset": "coinflip"}
            for (suffix, flips), acc in zip([("cot", 2), ("ood3", 3), ("ood4", 4)], accuracies)}


@pytest.fixture()
def eval_dirs(tmp_path):
    return [_eval_dir(tmp_path, "small", 60_000_000, _coinflip([90.0, 70.0, 55.0])),
            _eval_dir(tmp_path, "base", 220_000_000, {
                **_coinflip([99.0, 80.0, 60.0]),
                "gsm8k_cot_frac25": {"accuracy": 5.0, "calculator_accuracy": 7.5, "data_fraction": 0.25,
                                     "accuracy@5": 6.0, "distribution": "in", "num_examples": 10}})]


@pytest.mark.parametrize("x_axis", ["model_size", "coin_flips", "data_fraction"])
def test_report_writes_markdown_csv_and_plot(eval_dirs, tmp_path, x_axis):
    paths = report.build_report(eval_dirs, tmp_path / "report", x_axis)
    table = paths["markdown"].read_text()
    assert table.splitlines()[0].startswith("| run | task | distribution | num_params")
    assert "| small | coinflip_ood3 | ood | 60000000 | 1.0 | 3 | 10 | 70.0 |" in table
    rows = list(csv.DictReader(open(paths["csv"], encoding="utf-8")))
    assert len(rows) == 7
    assert {r["task"]: r["calculator_accuracy"] for r in rows if r["run"] == "base"}["gsm8k_cot_frac25"] == "7.5"
    assert paths["plot"].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_report_cli_and_errors(eval_dirs, tmp_path, capsys):
    assert report.main([*map(str, eval_dirs), "--out", str(tmp_path / "r"), "--x", "coin_flips"]) == 0
    assert "accuracy_vs_coin_flips.png" in capsys.readouterr().out
    assert report.main([str(tmp_path / "missing"), "--out", str(tmp_path / "r")]) == 2
    assert "metrics.json: missing" in capsys.readouterr().err
