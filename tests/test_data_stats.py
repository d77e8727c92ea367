"""`t5x-cot data stats` on the real data, on an empty data dir, and on a malformed file."""
from __future__ import annotations

import argparse
import json

import pytest

from t5x_cot.data import cli as data_cli
from t5x_cot.data.stats import summarize


def _run(argv: list[str]) -> int:
    parser = argparse.ArgumentParser()
    data_cli.add_arguments(parser)
    return data_cli.run(parser.parse_args(argv))


@pytest.fixture(scope="module")
def real_stats(data_dir, tmp_path_factory):
    """(exit code, printed text, JSON) of one run on the real data."""
    out = tmp_path_factory.mktemp("stats") / "stats.json"
    capture = pytest.MonkeyPatch()
    lines = []
    capture.setattr("builtins.print", lambda *a, **k: lines.append(" ".join(map(str, a))))
    try:
        code = _run(["stats", "--data-dir", str(data_dir), "--json", str(out)])
    finally:
        capture.undo()
    return code, "\n".join(lines), json.loads(out.read_text())


def test_real_counts_and_answers(real_stats, vocab_path):
    code, text, result = real_stats
    assert code == 0 and result["errors"] == []
    assert set(result["files"].values()) == {"ok"}
    assert result["vocab"] == str(vocab_path) and result["vocab_pieces"] == 32000
    rows = {(r["task"], r["split"]): r for r in result["rows"]}
    assert {key: r["examples"] for key, r in rows.items()} == {
        ("gsm8k", "train"): 7473, ("gsm8k", "test"): 1319, ("strategyqa", "train"): 2061,
        ("strategyqa", "dev"): 229, ("coinflip", "test-p2"): 1000,
        ("coinflip", "test-p3"): 1000, ("coinflip", "test-p4"): 1000}
    assert rows[("strategyqa", "train")]["answers"]["yes"] == 964
    assert rows[("coinflip", "test-p3")]["answers"]["yes_share"] == 0.5
    numbers = rows[("gsm8k", "train")]["answers"]
    assert numbers["kind"] == "number" and numbers["integers"] == 7473
    for row in result["rows"]:
        for key in ("question_tokens", "rationale_words", "rationale_tokens"):
            assert 0 < row[key]["mean"] <= row[key]["p95"] <= row[key]["max"]
    # T5 pieces outnumber words; more people, longer questions.
    assert rows[("gsm8k", "test")]["rationale_tokens"]["mean"] > rows[("gsm8k", "test")][
        "rationale_words"]["mean"]
    assert (rows[("coinflip", "test-p4")]["question_tokens"]["mean"]
            > rows[("coinflip", "test-p2")]["question_tokens"]["mean"])
    for line in ("gsm8k       train", "strategyqa  dev", "coinflip    4 people (OOD)",
                 "question tokens", "rationale tokens", "yes 46.8%"):
        assert line in text


def test_real_calculator_check(real_stats):
    _, text, result = real_stats
    checks = {c["split"]: c for c in result["calculator"]}
    assert set(checks) == {"train", "test"}
    for check in checks.values():
        assert check["total"] > 4000
        assert check["matched"] + len(check["mismatches"]) == check["total"]
        assert f"total {check['total']:>6}" in text
    assert "Calculator check of every GSM8K" in text


def test_without_data_still_runs_coinflip(tmp_path, capsys):
    empty = tmp_path / "nothing here"
    assert _run(["stats", "--data-dir", str(empty), "--coinflip-examples", "20"]) == 0
    text = capsys.readouterr().out
    assert "coinflip  2 people (ID)" in text and "gsm8k" not in text.split("Missing")[0]
    assert "not found: token columns are left out" in text
    for path in ("gsm8k/train.jsonl", "strategyqa/dev.json", "vocab/t5_spiece.model"):
        assert f"  {path}" in text
    assert f"t5x-cot download --data-dir {empty}" in text


def test_malformed_and_modified_files_are_reported(tmp_path, capsys, vocab_path):
    (tmp_path / "gsm8k").mkdir()
    (tmp_path / "gsm8k" / "test.jsonl").write_text('{"question": "Q?", "answer": "3"}\n')
    code = _run(["stats", "--data-dir", str(tmp_path), "--vocab", str(vocab_path),
                 "--coinflip-examples", "10"])
    text = capsys.readouterr().out
    assert code == 1
    assert "Malformed files (left out):" in text
    assert f"{tmp_path / 'gsm8k' / 'test.jsonl'}:1 field 'answer'" in text
    assert "sha256 mismatch" in text and "  gsm8k/test.jsonl" in text
    assert "(32000 pieces)" in text


def test_summarize():
    assert summarize([5, 1, 3, 2, 4]) == {"mean": 3.0, "p50": 3, "p95": 5, "max": 5}
    assert summarize(list(range(1, 101)))["p95"] == 95
