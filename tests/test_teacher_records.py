"""CoT record schema, validation errors and crash-safe JSONL helpers."""
from __future__ import annotations

import json

import pytest

from t5x_cot.data.example import DataError
from t5x_cot.data.records import RECORD_FIELDS, iter_jsonl, open_append, read_records, write_records
from t5x_cot.teacher.store import CompletionStore, completion_key


def record(**over):
    base = {"id": "q1", "task": "gsm8k", "split": "train", "question": "How many?",
            "answer": "3", "rationale": "1 + 2 = 3.", "teacher_answer": "3", "correct": True,
            "teacher": {"endpoint": "offline", "model": "gold", "params": {}},
            "prompt_id": "p", "sample_index": 0, "usage": {}}
    base.update(over)
    return base


def test_roundtrip_and_fields(tmp_path):
    path = tmp_path / "cot.jsonl"
    assert write_records(path, [record(), record(id="q2")]) == 2
    got = read_records(path)
    assert [r["id"] for r in got] == ["q1", "q2"]
    assert tuple(got[0]) == RECORD_FIELDS


@pytest.mark.parametrize("line, field, expected", [
    (json.dumps({k: v for k, v in record().items() if k != "rationale"}), "rationale", "missing"),
    (json.dumps(record(rationale="  ")), "rationale", "non-empty"),
    (json.dumps(record(sample_index="0")), "sample_index", "expected int"),
    (json.dumps(record(correct="yes")), "correct", "expected bool"),
    (json.dumps(record(teacher={"model": "m", "params": {}})), "teacher.endpoint", "missing"),
    ("{not json", None, "JSON"),
])
def test_errors_name_file_line_field(tmp_path, line, field, expected):
    path = tmp_path / "bad.jsonl"
    path.write_text(json.dumps(record()) + "\n" + line + "\n")
    with pytest.raises(DataError) as info:
        read_records(path)
    assert info.value.line == 2 and info.value.field == field
    assert str(path) in str(info.value) and expected in str(info.value)


def test_torn_last_line_is_never_data_and_is_cut_before_appending(tmp_path):
    path = tmp_path / "s.jsonl"
    path.write_bytes(b'{"a": 1}\n{"a": 2}\n{"a": 3, "b": "half')
    assert [obj for _, obj in iter_jsonl(path)] == [{"a": 1}, {"a": 2}]
    with open_append(path) as fh:
        fh.write(b'{"a": 4}\n')
    assert [obj["a"] for _, obj in iter_jsonl(path)] == [1, 2, 4]


def test_store_keys_and_resume(tmp_path):
    key = completion_key("http://x/v1/chat/completions", "m", {"temperature": 0.0}, "Q: a", 0)
    assert key != completion_key("http://x/v1/chat/completions", "m", {"temperature": 0.7},
                                 "Q: a", 0)
    assert key != completion_key("http://x/v1/chat/completions", "m", {"temperature": 0.0},
                                 "Q: a", 1)
    with CompletionStore(tmp_path / "s.jsonl") as store:
        store.add([{"key": key, "text": "t"}])
        store.add([{"key": key, "text": "again"}])
    with open(tmp_path / "s.jsonl", "ab") as fh:
        fh.write(b'{"key": "torn')
    with CompletionStore(tmp_path / "s.jsonl") as store:
        assert len(store) == 1 and store.get(key)["text"] == "t"
    assert (tmp_path / "s.jsonl").read_bytes().count(b"\n") == 1
