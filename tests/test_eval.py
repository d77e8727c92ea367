"""`python -m t5x_cot.eval` end to end on a tiny random checkpoint, and answer scoring."""
from __future__ import annotations

import json

import pytest
from decoding_helpers import MAX_DECODE_LENGTH, SHAPE_FLAGS, TINY_GIN, save_tiny_checkpoint  # noqa: E402  pylint: disable=wrong-import-order

from t5x_cot import eval as eval_lib
from t5x_cot import infer as infer_lib


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory, data_dir):
    del data_dir  # the tasks and the vocabulary read it
    path = tmp_path_factory.mktemp("ckpt") / "tiny"
    save_tiny_checkpoint(path)
    return path


def _flags(checkpoint, out_dir, *extra):
    return ["--gin_file=gin/runs/eval.gin", f"--gin_file={TINY_GIN}",
            f"--gin.CHECKPOINT_PATH='{checkpoint}'", "--gin.MIXTURE_OR_TASK_NAME='coinflip_gold_cot'",
            f"--gin.EVAL_OUTPUT_DIR='{out_dir}'", "--gin.MAX_EXAMPLES=3", *SHAPE_FLAGS, *extra]


@pytest.fixture(scope="module")
def eval_dir(checkpoint, tmp_path_factory):
    out = tmp_path_factory.mktemp("eval")
    assert eval_lib.main(_flags(checkpoint, out)) == 0
    return out


def test_eval_writes_metrics_per_task_in_and_out_of_distribution(eval_dir):
    metrics = json.loads((eval_dir / "metrics.json").read_text())
    assert set(metrics) == {"coinflip_gold_cot", "coinflip_ood3", "coinflip_ood4"}
    assert metrics["coinflip_gold_cot"]["distribution"] == "in"
    assert metrics["coinflip_ood3"]["distribution"] == "ood"
    assert [metrics[t]["coin_flips"] for t in sorted(metrics)] == [2, 3, 4]
    for values in metrics.values():
        assert values["num_examples"] == 3
        assert 0.0 <= values["accuracy"] <= 100.0 and "answer_found" in values
    info = json.loads((eval_dir / "run_info.json").read_text())
    assert info["num_params"] > 0 and info["decode"]["strategy"] == "greedy"
    assert info["decode"]["max_decode_length"] == MAX_DECODE_LENGTH


def test_eval_writes_one_prediction_per_example(eval_dir):
    lines = [json.loads(line) for line in (eval_dir / "predictions.jsonl").read_text().splitlines()]
    assert len(lines) == 9
    for record in lines:
        assert {"task", "id", "question", "rationale", "answer", "gold", "correct"} <= set(record)
        assert record["gold"] in ("yes", "no") and record["question"].startswith("A coin is heads up.")
        assert record["correct"] is False or record["answer"] == record["gold"]


def test_eval_self_consistency_flags(checkpoint, tmp_path):
    flags = _flags(checkpoint, tmp_path, "--gin.DECODE_STRATEGY='sample'", "--gin.NUM_SAMPLES=5",
                   "--gin.ADD_OOD_TASKS=False")
    assert eval_lib.main(flags) == 0
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert set(metrics) == {"coinflip_gold_cot"}
    assert {"accuracy@1", "accuracy@5"} <= set(metrics["coinflip_gold_cot"])
    record = json.loads((tmp_path / "predictions.jsonl").read_text().splitlines()[0])
    assert len(record["samples"]) == 5


def test_eval_reports_bad_settings_in_one_line(checkpoint, tmp_path, capsys):
    assert eval_lib.main(_flags(checkpoint, tmp_path, "--gin.DECODE_STRATEGY='nucleus'")) == 2
    assert "DECODE_STRATEGY='nucleus'" in capsys.readouterr().err
    assert eval_lib.main(_flags(tmp_path / "nothing", tmp_path)) == 2
    assert "no checkpoint here" in capsys.readouterr().err


def test_eval_user_task_from_its_module_with_its_own_metric(checkpoint, tmp_path):
    flags = _flags(checkpoint, tmp_path, "--gin.MIXTURE_OR_TASK_MODULE='user_task'",
                   "--gin.MIXTURE_OR_TASK_NAME='user_echo_task'", "--gin.TASK_FEATURE_LENGTHS=None")
    assert eval_lib.main(flags) == 0
    metrics = json.loads((tmp_path / "metrics.json").read_text())["user_echo_task"]
    assert metrics["num_predictions"] == 3 and metrics["mean_target_score"] < 0  # MAX_EXAMPLES=3
    assert "distribution" not in metrics  # not one of the project's datasets
    records = [json.loads(line) for line in (tmp_path / "predictions.jsonl").read_text().splitlines()]
    assert [r["inputs"] for r in records] == ["red green blue", "one two", "a b c d"]


def test_eval_every_checkpoint_of_a_run(tmp_path, data_dir):
    del data_dir
    run = tmp_path / "run"
    for step, seed in ((2, 0), (4, 1)):
        save_tiny_checkpoint(run / f"checkpoint_{step}", seed=seed)
    out = tmp_path / "eval"
    flags = _flags(run, out, "--gin.CHECKPOINT_MODE='all'", "--gin.ADD_OOD_TASKS=False")
    assert eval_lib.main(flags) == 0
    logged = [json.loads(line) for line in
              (out / "inference_eval" / "coinflip_gold_cot-metrics.jsonl").read_text().splitlines()]
    assert [line["step"] for line in logged] == [2, 4]
    assert json.loads((out / "metrics.json").read_text())["coinflip_gold_cot"]["step"] == 4
    assert eval_lib.main(_flags(run, out, "--gin.CHECKPOINT_MODE='latest'", "--gin.ADD_OOD_TASKS=False")) == 0
    assert len((out / "inference_eval" / "coinflip_gold_cot-metrics.jsonl").read_text().splitlines()) == 3


def test_eval_and_infer_ignore_a_runs_folder_in_the_working_directory(checkpoint, tmp_path, monkeypatch):
    (tmp_path / "runs").mkdir()
    (tmp_path / "runs" / "decode.gin").write_text("this is not gin (\n")
    monkeypatch.chdir(tmp_path)
    assert eval_lib.main(_flags(checkpoint, tmp_path / "runs" / "eval", "--gin.ADD_OOD_TASKS=False")) == 0
    assert (tmp_path / "runs" / "eval" / "metrics.json").is_file()
    infer_flags = ["--gin_file=gin/runs/infer.gin", f"--gin_file={TINY_GIN}", f"--gin.CHECKPOINT_PATH='{checkpoint}'",
                   "--gin.INFER_OUTPUT_DIR='runs/infer'", "--gin.MIXTURE_OR_TASK_NAME='coinflip_gold_cot'",
                   "--gin.MAX_EXAMPLES=2", *SHAPE_FLAGS]
    assert infer_lib.main(infer_flags) == 0
    assert (tmp_path / "runs" / "infer" / "coinflip_gold_cot-predict.jsonl-00000-of-00001").is_file()
