"""CoT records carry a gold answer of their task's kind: yes/no for StrategyQA and Coinflip, a
number for GSM8K; anything else is a DataError naming the file, line and field."""
from __future__ import annotations

import json

import pytest

from t5x_cot.data.example import DataError
from t5x_cot.data.records import read_records, write_records


def _record(task: str, answer: str) -> dict:
    return {"id": "q1", "task": task, "split": "train", "question": "Q?", "answer": answer,
            "rationale": "Step one.", "teacher_answer": answer, "correct": True,
            "teacher": {"endpoint": "offline", "model": "gold", "params": {}},
            "prompt_id": "p", "sample_index": 0, "usage": {}}


@pytest.mark.parametrize("task, answer", [
    ("coinflip", "yes"), ("coinflip", "no"), ("strategyqa", "no"),
    ("gsm8k", "18"), ("gsm8k", "-2.5"), ("gsm8k", "1,080"), ("my_task", "(C)")])
def test_gold_answers_of_the_task_kind_are_read(tmp_path, task, answer):
    path = tmp_path / "cot.jsonl"
    write_records(path, [_record(task, answer)])
    assert read_records(path)[0]["answer"] == answer


@pytest.mark.parametrize("task, answer, expected", [
    ("coinflip", "maybe", '"yes" or "no"'), ("strategyqa", "maybe", '"yes" or "no"'),
    ("strategyqa", "Yes.", '"yes" or "no"'), ("coinflip", "true", '"yes" or "no"'),
    ("gsm8k", "twelve", "a number"), ("gsm8k", "18 apples", "a number"), ("gsm8k", "yes", "a number")])
def test_gold_answers_of_another_kind_name_file_line_and_field(tmp_path, task, answer, expected):
    path = tmp_path / "cot.jsonl"
    good = _record(task, "no" if task != "gsm8k" else "3")
    path.write_text(json.dumps(good) + "\n" + json.dumps(_record(task, answer)) + "\n")
    with pytest.raises(DataError) as info:
        read_records(path)
    error = info.value
    assert (error.source, error.line, error.field) == (str(path), 2, "answer")
    assert f"{path}:2 field 'answer'" in str(error) and expected in str(error) and repr(answer) in str(error)
    with pytest.raises(DataError):
        write_records(tmp_path / "out.jsonl", [_record(task, answer)])
