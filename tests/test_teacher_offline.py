"""Offline teachers: full CoT files from gold rationales and the symbolic Coinflip teacher."""
from __future__ import annotations

import json

import pytest

from t5x_cot.data import load_examples
from t5x_cot.data.records import read_records
from t5x_cot.teacher import offline
from t5x_cot.teacher.__main__ import main as generate_main


def summary_of(out):
    return json.loads(open(f"{out}.summary.json").read())


@pytest.mark.needs_data
@pytest.mark.parametrize("task, count", [("gsm8k", 7473), ("strategyqa", 2061)])
def test_gold_full_train_files(tmp_path, data_dir, task, count):
    out = tmp_path / f"{task}.jsonl"
    assert generate_main(["--task", task, "--split", "train", "--teacher", "gold",
                          "--data-dir", str(data_dir), "--out", str(out)]) == 0
    records = read_records(out)
    assert len(records) == count == summary_of(out)["kept"] == summary_of(out)["requested"]
    assert len({r["id"] for r in records}) == count
    first = records[0]
    assert first["teacher"] == {"endpoint": "offline", "model": "gold",
                                "params": {"keep_annotations": False}}
    if task == "gsm8k":
        assert first["rationale"] == ("Natalia sold 48/2 = 24 clips in May. Natalia sold "
                                      "48+24 = 72 clips altogether in April and May.")
        assert not any("<<" in r["rationale"] or "####" in r["rationale"] for r in records)


@pytest.mark.needs_data
def test_gold_can_keep_calculator_annotations(tmp_path, data_dir):
    out = tmp_path / "g.jsonl"
    assert generate_main(["--task", "gsm8k", "--split", "test", "--teacher", "gold", "--limit",
                          "5", "--keep-annotations", "--data-dir", str(data_dir),
                          "--out", str(out)]) == 0
    assert all("<<" in r["rationale"] for r in read_records(out))


def test_symbolic_coinflip_10000(tmp_path):
    out = tmp_path / "cf.jsonl"
    assert generate_main(["--task", "coinflip", "--split", "train", "--teacher", "symbolic",
                          "--num-examples", "10000", "--out", str(out)]) == 0
    records = read_records(out)
    assert len(records) == 10000 == summary_of(out)["kept"]
    assert records[0]["rationale"].startswith("The coin was flipped by")
    bad = tmp_path / "cf_bad.jsonl"
    assert generate_main(["--task", "coinflip", "--split", "train", "--teacher", "symbolic",
                          "--num-examples", "10000", "--error-rate", "0.1", "--seed", "0",
                          "--out", str(bad)]) == 0
    summary = summary_of(bad)
    examples = load_examples("coinflip", "train", num_examples=10000, seed=0)
    corrupted = sum(offline.is_corrupted(ex, 0.1, 0) for ex in examples)
    assert 900 < corrupted < 1100
    assert summary["dropped"]["wrong_answer"] == corrupted
    assert summary["kept"] == 10000 - corrupted == len(read_records(bad))


def test_symbolic_rejects_other_tasks():
    from t5x_cot.data.example import Example
    with pytest.raises(ValueError, match="only handles coinflip"):
        offline.offline_texts("symbolic", [Example("a", "gsm8k", "train", "q", "1")])
