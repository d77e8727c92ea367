"""`python -m t5x_cot.eval` end to end on a tiny random checkpoint, and answer scoring."""
from __future__ import annotations

import json

import pytest

from t5x_cot import eval as eval_lib
from t5x_cot.decoding.generate import Generation

from decoding_helpers import (  # noqa: E402  pylint: disable=wrong-import-order
    MAX_DECODE_LENGTH, SHAPE_FLAGS, TINY_GIN, save_tiny_checkpoint)


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


def test_score_task_uses_the_task_metrics_and_votes(data_dir):
    del data_dir
    import t5x_cot.tasks  # noqa: F401  pylint: disable=import-outside-toplevel,unused-import
    rows = [{"id": "a", "inputs": "Q1", "targets": "x The answer is yes.", "answer": "yes"},
            {"id": "b", "inputs": "Q2", "targets": "x The answer is no.", "answer": "no"}]
    gens = [[Generation("So yes. The answer is yes.", 6, 0.0)],
            [Generation("So yes. The answer is yes.", 6, 0.0)]]
    metrics, records = eval_lib.score_task("coinflip_gold_cot", rows, gens)
    assert metrics["accuracy"] == 50.0 and metrics["answer_found"] == 100.0
    assert [r["correct"] for r in records] == [True, False]
    gsm = [{"id": "g", "inputs": "Q", "targets": "t The answer is 8.", "answer": "8"}]
    metrics, _ = eval_lib.score_task("gsm8k_cot", gsm, [[Generation("3+4=8. The answer is 8.", 9, 0.0)]])
    assert metrics["accuracy"] == 100.0 and "calculator_accuracy" in metrics
