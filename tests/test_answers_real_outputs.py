"""The answer grammar on 600 real large-model CoT completions (tests/data/answer_outputs/):
GPT-4, GPT-3.5-turbo, text-davinci-003 and code-davinci-002 on GSM8K, SVAMP, StrategyQA,
sports understanding and AQuA, with gold answers and the publishing project's own extraction."""
from __future__ import annotations

import collections
import json
import pathlib
import subprocess
import sys

import pytest

from t5x_cot import answers

ROOT = pathlib.Path(__file__).resolve().parents[1]
FIXTURE = ROOT / "tests" / "data" / "answer_outputs" / "faithful_cot_sample.jsonl"


@pytest.fixture(scope="module")
def samples() -> list[dict]:
    return [json.loads(line) for line in FIXTURE.read_text(encoding="utf-8").splitlines()]


def test_fixture_covers_every_answer_type(samples: list[dict]) -> None:
    assert len(samples) == 600
    assert {s["answer_type"] for s in samples} == set(answers.TYPES)


def test_accuracy_never_below_the_sources_own_extraction(samples: list[dict]) -> None:
    """Per (model, dataset) we are at least as accurate against gold as the extraction the
    outputs were published with, and 74% of all completions are read correctly."""
    ours: collections.Counter = collections.Counter()
    theirs: collections.Counter = collections.Counter()
    for s in samples:
        group = (s["source"], s["dataset"])
        predicted = answers.extract_answer(s["completion"], s["answer_type"])
        ours[group] += answers.is_correct(predicted, s["gold"], s["answer_type"])
        theirs[group] += answers.is_correct(s["source_answer"], s["gold"], s["answer_type"])
    assert len(ours) == 20
    assert all(ours[group] >= theirs[group] for group in ours), {
        group: (ours[group], theirs[group]) for group in ours if ours[group] < theirs[group]}
    assert sum(ours.values()) >= 0.74 * len(samples)


def test_agrees_with_the_source_where_both_read_an_answer(samples: list[dict]) -> None:
    both = [(answers.extract_answer(s["completion"], s["answer_type"]), s) for s in samples
            if s["source_answer"] is not None]
    both = [(p, s) for p, s in both if p is not None]
    disagree = [(p, s["source_answer"][:60]) for p, s in both
                if not answers.is_correct(p, s["source_answer"], s["answer_type"])]
    assert len(both) >= 540
    assert len(disagree) <= 2, disagree


def test_bench_script_prints_the_table(tmp_path: pathlib.Path) -> None:
    out = tmp_path / "table.json"
    differences = tmp_path / "differences.jsonl"
    run = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "answer_grammar.py"), "--fixture", str(FIXTURE),
         "--json", str(out), "--disagreements", str(differences)],
        capture_output=True, text=True, check=True, cwd=ROOT)
    assert "| faithful_cot/gpt4 | StrategyQA | 30 |" in run.stdout
    assert "total n = 600" in run.stdout
    table = json.loads(out.read_text())
    assert sum(row["n"] for row in table) == 600
    assert all(0.4 <= row["ours_accuracy"] <= 1 for row in table)
    for line in differences.read_text().splitlines():
        record = json.loads(line)
        assert set(record) == {"source", "dataset", "answer_type", "completion", "gold",
                               "source_answer", "ours"}


def test_bench_script_names_file_and_line_of_a_bad_record(tmp_path: pathlib.Path) -> None:
    bad = tmp_path / "bad.jsonl"
    good = FIXTURE.read_text(encoding="utf-8").splitlines()[0]
    bad.write_text(good + "\n" + good.replace('"answer_type": "number"', '"answer_type": "date"')
                   + "\n", encoding="utf-8")
    run = subprocess.run([sys.executable, str(ROOT / "bench" / "answer_grammar.py"), "--fixture",
                          str(bad)], capture_output=True, text=True, cwd=ROOT)
    assert run.returncode != 0
    assert f"{bad}:2: field answer_type: expected one of" in run.stderr
