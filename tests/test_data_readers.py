"""GSM8K and StrategyQA readers: the real files, and one DataError test per kind of bad input."""
from __future__ import annotations

import json
import pathlib

import pytest

from t5x_cot import answers, calculator
from t5x_cot.data import DataError, MissingDataError, default_data_dir, load_examples
from t5x_cot.data.gsm8k import normalize_number


@pytest.fixture(scope="module")
def gsm8k_train(data_dir):
    return load_examples("gsm8k", "train", data_dir)


def test_real_counts(data_dir, gsm8k_train):
    assert len(gsm8k_train) == 7473
    assert len(load_examples("gsm8k", "test", data_dir)) == 1319
    assert len(load_examples("strategyqa", "train", data_dir)) == 2061
    dev = load_examples("strategyqa", "dev", data_dir)
    assert len(dev) == 229
    assert load_examples("strategyqa", "test", data_dir) == dev  # "test" is the dev alias


def test_gsm8k_fields(gsm8k_train):
    first = gsm8k_train[0]
    assert first.id == "gsm8k-train-00000" and first.task == "gsm8k" and first.split == "train"
    assert first.question.startswith("Natalia sold clips to 48 of her friends")
    assert first.answer == "72"
    assert first.rationale == (
        "Natalia sold 48/2 = <<48/2=24>>24 clips in May.\n"
        "Natalia sold 48+24 = <<48+24=72>>72 clips altogether in April and May.")
    assert calculator.strip_annotations(first.rationale).startswith("Natalia sold 48/2 = 24 clips")
    assert gsm8k_train[345].id == "gsm8k-train-00345"
    assert gsm8k_train[345].answer == "1080"  # written "#### 1,080" in the file
    assert len({e.id for e in gsm8k_train}) == len(gsm8k_train)
    assert all("####" not in e.rationale for e in gsm8k_train)


def test_gsm8k_gold_answers_survive_the_answer_grammar(gsm8k_train):
    """A target built from the gold rationale and answer is read back as exactly that answer."""
    for example in gsm8k_train:
        target = answers.format_target(calculator.strip_annotations(example.rationale),
                                       example.answer)
        assert answers.extract_answer(target, "number") == example.answer, example.id


def test_strategyqa_fields(data_dir):
    dev = load_examples("strategyqa", "dev", data_dir)
    first = dev[0]
    assert first.id == "e0044a7b4d146d611e73" and first.split == "dev"
    assert first.answer == "no"
    # Facts without a final full stop get one, so they don't run together.
    assert first.rationale == ("Albany, GA has around 75,000 people. "
                               "Albany, NY has almost 100,000 people.")
    assert {e.answer for e in dev} == {"yes", "no"}
    assert len({e.id for e in dev}) == len(dev)


@pytest.mark.parametrize("text, expected", [
    ("72", "72"), ("1,080", "1080"), ("109,200,000", "109200000"), ("-47", "-47"),
    ("18.0", "18"), ("3.50", "3.5"), ("+5", "5"), ("-0", "0"), (" 7 ", "7"),
    ("1,00", None), ("abc", None), ("", None), ("5 apples", None), ("1/2", None),
])
def test_normalize_number(text, expected):
    assert normalize_number(text) == expected


def _write(path: pathlib.Path, text: str) -> pathlib.Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


GOOD_GSM8K = json.dumps({"question": "What is 2+3?", "answer": "2+3 = <<2+3=5>>5\n#### 5"})


@pytest.mark.parametrize("bad_line, field, message", [
    ('{"question": "What is 2+3?", "answer": ', None, "expected one JSON object per line"),
    ('["a list"]', None, "expected a JSON object"),
    (json.dumps({"answer": "#### 5"}), "question", "missing field"),
    (json.dumps({"question": "Q?"}), "answer", "missing field"),
    (json.dumps({"question": 7, "answer": "#### 5"}), "question", "expected a string, got 7"),
    (json.dumps({"question": "  ", "answer": "a\n#### 5"}), "question", "non-empty"),
    (json.dumps({"question": "Q?", "answer": "2+3 = 5"}), "answer", "#### N"),
    (json.dumps({"question": "Q?", "answer": "2+3 = 5\n#### five"}), "answer",
     "expected a number after '####', got 'five'"),
    (json.dumps({"question": "Q?", "answer": "#### 5"}), "answer", "solution steps"),
])
def test_gsm8k_malformed(tmp_path, bad_line, field, message):
    path = _write(tmp_path / "gsm8k" / "train.jsonl", f"{GOOD_GSM8K}\n\n{bad_line}\n")
    with pytest.raises(DataError) as info:
        load_examples("gsm8k", "train", tmp_path)
    err = info.value
    assert err.source == str(path) and err.line == 3 and err.field == field
    assert f"{path}:3" in str(err) and message in str(err)
    if field:
        assert f"field {field!r}" in str(err)


GOOD_SQA = {"qid": "q1", "question": "Is water wet?", "answer": True, "facts": ["Water is wet."],
            "decomposition": ["Is water wet?"]}


@pytest.mark.parametrize("change, field, message", [
    ({"qid": None}, "qid", "expected a string, got null"),
    ({"question": ""}, "question", "expected a non-empty string"),
    ({"answer": "yes"}, "answer", 'expected true or false, got "yes"'),
    ({"answer": 1}, "answer", "expected true or false, got 1"),
    ({"facts": "Water is wet."}, "facts", "expected a list"),
    ({"facts": []}, "facts", "expected a non-empty list"),
    ({"facts": ["ok.", 3]}, "facts[1]", "expected a non-empty string, got 3"),
    ({"qid": "q0"}, "qid", "duplicate qid 'q0' (first at index 0)"),
])
def test_strategyqa_malformed_item(tmp_path, change, field, message):
    bad = {**GOOD_SQA, **change}
    path = _write(tmp_path / "strategyqa" / "train.json",
                  json.dumps([{**GOOD_SQA, "qid": "q0"}, bad], indent=1))
    with pytest.raises(DataError) as info:
        load_examples("strategyqa", "train", tmp_path)
    err = info.value
    assert err.source == str(path) and err.index == 1 and err.field == field
    assert f"{path}[1] field {field!r}" in str(err) and message in str(err)


@pytest.mark.parametrize("missing", ["qid", "question", "answer", "facts"])
def test_strategyqa_missing_field(tmp_path, missing):
    item = {k: v for k, v in GOOD_SQA.items() if k != missing}
    _write(tmp_path / "strategyqa" / "dev.json", json.dumps([item]))
    with pytest.raises(DataError, match=rf"dev.json\[0\] field '{missing}': missing field"):
        load_examples("strategyqa", "test", tmp_path)


def test_strategyqa_bad_json_names_the_line(tmp_path):
    path = _write(tmp_path / "strategyqa" / "train.json", '[\n {"qid": "q1",\n  "answer": tru\n]')
    with pytest.raises(DataError) as info:
        load_examples("strategyqa", "train", tmp_path)
    assert info.value.line == 3 and str(info.value).startswith(f"{path}:3: invalid JSON")


@pytest.mark.parametrize("content, message", [
    ('{"qid": "q1"}', "expected a JSON array of objects, got dict"),
    ('["q1"]', 'expected a JSON object, got "q1"'),
])
def test_strategyqa_wrong_shape(tmp_path, content, message):
    _write(tmp_path / "strategyqa" / "train.json", content)
    with pytest.raises(DataError, match=message):
        load_examples("strategyqa", "train", tmp_path)


def test_missing_file_says_how_to_get_it(tmp_path):
    with pytest.raises(MissingDataError, match="t5x-cot download") as info:
        load_examples("gsm8k", "test", tmp_path)
    assert info.value.source == str(tmp_path / "gsm8k" / "test.jsonl")


def test_unknown_task_or_split(tmp_path):
    with pytest.raises(ValueError, match="unknown task 'svamp'"):
        load_examples("svamp", "train", tmp_path)
    with pytest.raises(ValueError, match="gsm8k has splits"):
        load_examples("gsm8k", "dev", tmp_path)
    with pytest.raises(ValueError, match="strategyqa has splits"):
        load_examples("strategyqa", "validation", tmp_path)


def test_default_data_dir(monkeypatch, tmp_path):
    monkeypatch.setenv("T5X_COT_DATA_DIR", str(tmp_path))
    assert default_data_dir() == tmp_path
    monkeypatch.delenv("T5X_COT_DATA_DIR")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert default_data_dir() == tmp_path / "home" / ".cache" / "t5x_cot" / "data"
