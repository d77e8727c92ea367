"""T5X's own eval.gin and infer.gin (unchanged, from a T5X checkout on --gin_search_paths) run by
`python -m t5x_cot.eval` / `python -m t5x_cot.infer` on T5X's tiny model, from the native T5X
checkpoint fixture and from checkpoints written here."""
from __future__ import annotations

import json
import pathlib

import jax
import numpy as np
import pytest

from t5x_cot import checkpoints
from t5x_cot import eval as eval_lib
from t5x_cot import infer as infer_lib

pytestmark = pytest.mark.needs_data


@pytest.fixture(scope="module")
def t5x_files(data_dir):
    search_path = data_dir / "t5x_gin"
    fixture = data_dir / "t5x_checkpoints" / "test_t5_tiny.checkpoint_0"
    if not (search_path / "t5x" / "configs" / "runs" / "eval.gin").is_file() or not fixture.is_file():
        pytest.skip(f"T5X gin files or checkpoint fixture missing under {data_dir}")
    return search_path, fixture


def _t5x_flags(search_path, run_file, *extra):
    return [f"--gin_search_paths={search_path}", "--gin_file=t5x/examples/t5/t5_1_1/tiny.gin",
            f"--gin_file=t5x/configs/runs/{run_file}", "--gin.DROPOUT_RATE=0.0", "--alsologtostderr", *extra]


def _jsonl(path: pathlib.Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_t5x_eval_gin_on_the_native_t5x_checkpoint(t5x_files, tmp_path):
    search_path, fixture = t5x_files
    flags = _t5x_flags(search_path, "eval.gin", "--gin.MIXTURE_OR_TASK_NAME='coinflip_gold_cot'",
                       f"--gin.CHECKPOINT_PATH='{fixture}'", f"--gin.EVAL_OUTPUT_DIR='{tmp_path}'",
                       "--gin.utils.DatasetConfig.batch_size=2", "--gin.seqio.Evaluator.num_examples=2",
                       "--gin.evaluate.add_ood_tasks=False")
    assert eval_lib.main(flags) == 0
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert set(metrics) == {"coinflip_gold_cot"}
    assert {"accuracy", "answer_found"} <= set(metrics["coinflip_gold_cot"]) and metrics["coinflip_gold_cot"]["step"] == 0
    logged = _jsonl(tmp_path / "inference_eval" / "coinflip_gold_cot-metrics.jsonl")
    assert [line["step"] for line in logged] == [0] and logged[0]["accuracy"] == metrics["coinflip_gold_cot"]["accuracy"]
    assert list((tmp_path / "inference_eval" / "coinflip_gold_cot").glob("events.out.tfevents.*"))  # TensorBoardLogger
    # TASK_FEATURE_LENGTHS = None: decode as far as the longest target of the evaluated examples
    examples = _jsonl(tmp_path / "inference_eval" / "coinflip_gold_cot-000000.jsonl")
    longest = max(r["target"]["num_tokens"] for r in examples) + 1  # EOS
    assert json.loads((tmp_path / "run_info.json").read_text())["decode"]["max_decode_length"] == longest


@pytest.fixture(scope="module")
def checkpoint_dir(t5x_files, tmp_path_factory):
    """checkpoint_0: the native T5X fixture; checkpoint_7: its params halved, saved by us."""
    _, fixture = t5x_files
    root = tmp_path_factory.mktemp("t5x_run")
    (root / "checkpoint_0").symlink_to(fixture)
    params, _ = checkpoints.restore_checkpoint(fixture)
    checkpoints.save_params(root / "checkpoint_7", jax.tree.map(lambda x: np.asarray(x) * 0.5, params), None)
    return root


def test_t5x_eval_gin_user_task_own_metrics_every_checkpoint(t5x_files, checkpoint_dir, tmp_path):
    search_path, _ = t5x_files
    flags = _t5x_flags(search_path, "eval.gin", "--gin.MIXTURE_OR_TASK_MODULE='user_task'",
                       "--gin.MIXTURE_OR_TASK_NAME='user_echo_task'", f"--gin.CHECKPOINT_PATH='{checkpoint_dir}'",
                       f"--gin.EVAL_OUTPUT_DIR='{tmp_path}'", "--gin.utils.RestoreCheckpointConfig.mode='all'",
                       "--gin.utils.DatasetConfig.batch_size=4")
    assert eval_lib.main(flags) == 0
    logged = _jsonl(tmp_path / "inference_eval" / "user_echo_task-metrics.jsonl")
    assert [line["step"] for line in logged] == [0, 7]
    import user_task  # pylint: disable=import-outside-toplevel
    assert all(line["num_predictions"] == len(user_task.INPUTS) for line in logged)
    assert logged[0]["mean_target_score"] < 0 and logged[0]["mean_target_score"] != logged[1]["mean_target_score"]
    assert json.loads((tmp_path / "metrics.json").read_text())["user_echo_task"]["step"] == 7


def test_t5x_infer_gin_predicts_and_scores_a_user_task(t5x_files, checkpoint_dir, tmp_path):
    search_path, _ = t5x_files
    common = _t5x_flags(search_path, "infer.gin", "--gin.MIXTURE_OR_TASK_MODULE='user_task'",
                        "--gin.MIXTURE_OR_TASK_NAME='user_echo_task'",
                        "--gin.TASK_FEATURE_LENGTHS={'inputs': 16, 'targets': 8}",
                        f"--gin.CHECKPOINT_PATH='{checkpoint_dir}'", f"--gin.INFER_OUTPUT_DIR='{tmp_path}'",
                        "--gin.utils.RestoreCheckpointConfig.mode='latest'", "--gin.utils.DatasetConfig.batch_size=4")
    assert infer_lib.main(common) == 0
    assert infer_lib.main([*common, "--gin.infer.mode='score'"]) == 0
    import user_task  # pylint: disable=import-outside-toplevel
    predicted = _jsonl(tmp_path / "user_echo_task-predict.jsonl-00000-of-00001")
    scored = _jsonl(tmp_path / "user_echo_task-score.jsonl-00000-of-00001")
    assert [r["inputs"]["inputs_pretokenized"] for r in predicted] == user_task.INPUTS
    assert [r["inputs"]["targets_pretokenized"] for r in scored] == [t.upper() for t in user_task.INPUTS]
    assert all(isinstance(r["prediction"], str) and "scores" in r["aux"] for r in predicted)
    assert all(r["score"] < 0 for r in scored)
    assert infer_lib.main([*common, "--gin.utils.RestoreCheckpointConfig.mode='all'"]) == 2
