"""`python -m t5x_cot.infer` on JSONL and text files of questions, bad lines included."""
from __future__ import annotations

import json

import pytest
from decoding_helpers import SHAPE_FLAGS, TINY_GIN, save_tiny_checkpoint  # noqa: E402  pylint: disable=wrong-import-order

from t5x_cot import infer
from t5x_cot.data.example import DataError

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


def _flags(checkpoint, output_dir, *extra):
    return ["--gin_file=gin/runs/infer.gin", f"--gin_file={TINY_GIN}", f"--gin.CHECKPOINT_PATH='{checkpoint}'",
            f"--gin.INFER_OUTPUT_DIR='{output_dir}'", *SHAPE_FLAGS, *extra]


def _lines(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_infer_cli_writes_a_record_per_good_line_and_reports_skips(checkpoint, questions_file, tmp_path, capsys):
    flags = _flags(checkpoint, tmp_path / "out", f"--gin.INFER_INPUT='{questions_file}'",
                   "--gin.DECODE_STRATEGY='sample'", "--gin.NUM_SAMPLES=2", "--gin.USE_CALCULATOR=True")
    assert infer.main(flags) == 0
    captured = capsys.readouterr()
    output = tmp_path / "out" / "questions-predict.jsonl-00000-of-00001"
    assert json.loads(captured.out.strip().splitlines()[-1]) == {
        "files": [str(output)], "inferred": 2, "skipped_lines": 4}
    assert f"{questions_file}:3: not valid JSON" in captured.err
    records = _lines(output)
    assert [r["aux"]["id"] for r in records] == ["q1", "line-6"]
    assert records[0]["inputs"] == {"inputs_pretokenized": GOOD["question"]}
    assert records[0]["aux"]["gold"] == "no" and isinstance(records[0]["aux"]["correct"], bool)
    assert "gold" not in records[1]["aux"] and len(records[1]["aux"]["samples"]) == 2
    assert records[1]["aux"]["samples"][0] == records[1]["prediction"]
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == [output.name]  # chunks merged, tmp removed


def test_infer_cli_fails_on_bad_line_when_asked(checkpoint, questions_file, tmp_path, capsys):
    flags = _flags(checkpoint, tmp_path / "o", f"--gin.INFER_INPUT='{questions_file}'", "--gin.ON_BAD_LINE='fail'")
    assert infer.main(flags) == 2
    assert "questions.jsonl:2 field 'question'" in capsys.readouterr().err
    assert not list((tmp_path / "o").glob("questions-*"))


def test_infer_on_a_task_predicts_and_scores(checkpoint, tmp_path):
    out = tmp_path / "task"
    task = ["--gin.MIXTURE_OR_TASK_NAME='coinflip_gold_cot'", "--gin.MAX_EXAMPLES=2"]
    assert infer.main(_flags(checkpoint, out, *task)) == 0
    assert infer.main(_flags(checkpoint, out, *task, "--gin.INFER_MODE='score'")) == 0
    predicted = _lines(out / "coinflip_gold_cot-predict.jsonl-00000-of-00001")
    scored = _lines(out / "coinflip_gold_cot-score.jsonl-00000-of-00001")
    assert len(predicted) == len(scored) == 2
    assert all(r["aux"]["gold"] in ("yes", "no") for r in predicted)
    assert [r["inputs"] for r in predicted] == [r["inputs"] for r in scored]
    assert predicted[0]["inputs"]["targets_pretokenized"].endswith(".")
    assert all(r["score"] < 0 for r in scored)


def test_infer_resumes_after_the_finished_chunks(checkpoint, tmp_path, capsys):
    """A chunk file left by an interrupted run is kept; only the rest is inferred."""
    out = tmp_path / "resume"
    name = "coinflip_gold_cot-predict.jsonl-00000-of-00001"
    marker = [{"inputs": {"inputs_pretokenized": f"from the first run {i}"}, "prediction": "x"} for i in range(4)]
    tmp_dir = out / "tmp-coinflip_gold_cot-00000-of-00001"
    tmp_dir.mkdir(parents=True)
    (tmp_dir / f"{name}-chunk00000").write_text("".join(json.dumps(r) + "\n" for r in marker))
    flags = _flags(checkpoint, out, "--gin.MIXTURE_OR_TASK_NAME='coinflip_gold_cot'", "--gin.MAX_EXAMPLES=10",
                   "--gin.CHECKPOINT_PERIOD=1")  # chunks of one batch (4 examples)
    assert infer.main(flags) == 0
    assert json.loads(capsys.readouterr().out.strip().splitlines()[-1])["inferred"] == 6
    records = _lines(out / name)
    assert records[:4] == marker and len(records) == 10
    assert all(r["inputs"]["inputs_pretokenized"].startswith("A coin is heads up.") for r in records[4:])
    assert not tmp_dir.exists()


def test_infer_shards_split_the_examples(checkpoint, tmp_path, data_dir):
    del data_dir
    out = tmp_path / "shards"
    common = ["--gin.MIXTURE_OR_TASK_NAME='user_echo_task'", "--gin.MIXTURE_OR_TASK_MODULE='user_task'",
              "--gin.infer.num_shards=2", "--gin.TASK_FEATURE_LENGTHS=None"]
    assert infer.main(_flags(checkpoint, out, *common, "--gin.infer.shard_id=0")) == 0
    assert infer.main(_flags(checkpoint, out, *common, "--shard_id", "1")) == 0  # T5X infer.py's flag
    shards = [_lines(out / f"user_echo_task-predict.jsonl-0000{i}-of-00002") for i in (0, 1)]
    inputs = [[r["inputs"]["inputs_pretokenized"] for r in lines] for lines in shards]
    import user_task  # pylint: disable=import-outside-toplevel
    assert inputs[0] and inputs[1] and not set(inputs[0]) & set(inputs[1])
    assert sorted(inputs[0] + inputs[1]) == sorted(user_task.INPUTS)
    assert "answer" not in shards[0][0]["aux"]  # not an answer-extracting task
    # TASK_FEATURE_LENGTHS=None: decode at most as long as the shard's longest target (EOS included)
    from t5x_cot.tasks.vocab import get_vocabulary  # pylint: disable=import-outside-toplevel
    for lines in shards:
        longest = max(len(get_vocabulary().encode(r["inputs"]["targets_pretokenized"])) + 1 for r in lines)
        assert 0 < max(r["aux"]["num_tokens"] for r in lines) <= longest


def test_infer_rejects_what_it_cannot_do(checkpoint, questions_file, tmp_path, capsys):
    assert infer.main(_flags(checkpoint, tmp_path, "--gin.MIXTURE_OR_TASK_NAME='coinflip_gold_cot'",
                             "--gin.CHECKPOINT_MODE='all'")) == 2
    assert "use python -m t5x_cot.eval" in capsys.readouterr().err
    assert infer.main(_flags(checkpoint, tmp_path, f"--gin.INFER_INPUT='{questions_file}'",
                             "--gin.INFER_MODE='score'")) == 2
    assert "infer.mode='score' scores targets" in capsys.readouterr().err
    assert infer.main(_flags(checkpoint, tmp_path, "--gin.MIXTURE_OR_TASK_NAME='coinflip_gold_cot'",
                             "--gin.infer.shard_id=2")) == 2
    assert "infer.shard_id=2" in capsys.readouterr().err
