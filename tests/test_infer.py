"""`python -m t5x_cot.infer` on JSONL and text files of questions, bad lines included."""
from __future__ import annotations

import json

import pytest

from t5x_cot import infer
from t5x_cot.data.example import DataError

from decoding_helpers import (  # noqa: E402  pylint: disable=wrong-import-order
    SHAPE_FLAGS, TINY_GIN, save_tiny_checkpoint)

GOOD = {"id": "q1", "question": "A coin is heads up. Ann flips the coin. Is the coin still heads up?",
        "answer": "no", "task": "coinflip"}
LINES = [json.dumps(GOOD), '{"question": 3}', "not json", "", '["a list"]',
         json.dumps({"question": "What is 2+3?"}), json.dumps({"question": "Q", "task": "chess"})]


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory, data_dir):
    del data_dir
    path = tmp_path_factory.mktemp("ckpt") / "tiny"
    save_tiny_checkpoint(path, seed=1)
    return path


@pytest.fixture()
def questions_file(tmp_path):
    path = tmp_path / "questions.jsonl"
    path.write_text("\n".join(LINES) + "\n", encoding="utf-8")
    return path


def test_read_questions_skips_bad_lines_and_names_them(questions_file):
    read = infer.read_questions(questions_file, "skip")
    assert [q.id for q in read.questions] == ["q1", "line-6"]
    assert read.questions[0].answer == "no" and read.questions[0].answer_type == "yesno"
    assert [(e.line, e.field) for e in read.skipped] == [(2, "question"), (3, None), (5, None), (7, "task")]
    assert str(read.skipped[1]).startswith(f"{questions_file}:3: not valid JSON")


def test_read_questions_fails_on_first_bad_line_when_asked(questions_file):
    with pytest.raises(DataError, match=r"questions.jsonl:2 field 'question': expected a non-empty string"):
        infer.read_questions(questions_file, "fail")
    with pytest.raises(ValueError, match="ON_BAD_LINE"):
        infer.read_questions(questions_file, "ignore")


def test_read_text_file_one_question_per_line(tmp_path):
    path = tmp_path / "questions.txt"
    path.write_text("How many?\n\n  Is it so?  \n", encoding="utf-8")
    read = infer.read_questions(path)
    assert [(q.id, q.question) for q in read.questions] == [("line-1", "How many?"), ("line-3", "Is it so?")]


def _flags(checkpoint, input_path, output_path, *extra):
    return ["--gin_file=gin/runs/infer.gin", f"--gin_file={TINY_GIN}", f"--gin.CHECKPOINT_PATH='{checkpoint}'",
            f"--gin.INFER_INPUT='{input_path}'", f"--gin.INFER_OUTPUT='{output_path}'", *SHAPE_FLAGS, *extra]


def test_infer_cli_writes_a_record_per_good_line_and_reports_skips(checkpoint, questions_file, tmp_path, capsys):
    out = tmp_path / "out.jsonl"
    flags = _flags(checkpoint, questions_file, out, "--gin.DECODE_STRATEGY='sample'", "--gin.NUM_SAMPLES=2",
                   "--gin.USE_CALCULATOR=True")
    assert infer.main(flags) == 0
    captured = capsys.readouterr()
    assert json.loads(captured.out.strip().splitlines()[-1]) == {"questions": 2, "written": 2, "skipped_lines": 4}
    assert f"{questions_file}:3: not valid JSON" in captured.err
    records = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["id"] for r in records] == ["q1", "line-6"]
    assert records[0]["gold"] == "no" and isinstance(records[0]["correct"], bool)
    assert "gold" not in records[1] and len(records[1]["samples"]) == 2


def test_infer_cli_fails_on_bad_line_when_asked(checkpoint, questions_file, tmp_path, capsys):
    assert infer.main(_flags(checkpoint, questions_file, tmp_path / "o.jsonl", "--gin.ON_BAD_LINE='fail'")) == 2
    assert "questions.jsonl:2 field 'question'" in capsys.readouterr().err
    assert not (tmp_path / "o.jsonl").exists()


def test_infer_on_a_task(checkpoint, tmp_path):
    out = tmp_path / "task.jsonl"
    assert infer.main(_flags(checkpoint, "coinflip_gold_cot", out, "--gin.MAX_EXAMPLES=2")) == 0
    records = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(records) == 2 and all(r["gold"] in ("yes", "no") for r in records)
