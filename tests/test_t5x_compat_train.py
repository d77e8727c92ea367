"""`python -m t5x_cot.train` as a T5X user runs it: T5X's own gin files (unchanged, through
--gin_search_paths) and ours at the same paths, native T5X checkpoints, absolute TRAIN_STEPS,
a user's own seqio task, and inference evaluation during training. Tiny model, 2-3 steps."""
from __future__ import annotations

import json
import os
import pathlib
import subprocess
import sys
import textwrap

import jax
import numpy as np
import pytest

from t5x_cot import checkpoints

REPO = pathlib.Path(__file__).resolve().parents[1]
TESTS = REPO / "tests"
TINY = "t5x/examples/t5/t5_1_1/tiny.gin"
FIXTURE = "t5x_checkpoints/test_t5_tiny.checkpoint_0"
pytestmark = [pytest.mark.slow, pytest.mark.needs_data]


def _flags(model_dir: pathlib.Path, task: str = "synthetic_copy", module: str = "synthetic_task",
           lengths: str = "{'inputs': 16, 'targets': 16}") -> list[str]:
    return [f"--gin.MODEL_DIR='{model_dir}'", f"--gin.MIXTURE_OR_TASK_NAME='{task}'",
            f"--gin.MIXTURE_OR_TASK_MODULE='{module}'", f"--gin.TASK_FEATURE_LENGTHS={lengths}",
            "--gin.USE_CACHED_TASKS=False", "--gin.BATCH_SIZE=4", "--gin.train.stats_period=1"]


def _all_metrics(model_dir: pathlib.Path) -> list[dict[str, float]]:
    return [json.loads(line) for line in (model_dir / "train_metrics.jsonl").read_text().splitlines()]


def _metrics(model_dir: pathlib.Path) -> list[dict[str, float]]:
    """The train-step lines (evaluation lines carry `eval/...` / `inference_eval/...` keys)."""
    return [record for record in _all_metrics(model_dir) if "loss" in record]


def _steps(model_dir: pathlib.Path) -> list[int]:
    return [record["step"] for record in _metrics(model_dir)]


def _fixture_params(data_dir: pathlib.Path) -> dict:
    params, _ = checkpoints.restore_checkpoint(data_dir / FIXTURE)
    return params


def _max_difference(a: dict, b: dict) -> float:
    return max(float(np.max(np.abs(np.asarray(x, np.float32) - np.asarray(y, np.float32))))
               for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)))


def test_t5x_own_gin_files_finetune_from_the_t5x_fixture(data_dir: pathlib.Path, tmp_path: pathlib.Path) -> None:
    """T5X's finetune.gin + tiny.gin, unchanged, via --gin_search_paths; the documented absl flags;
    from the native msgpack fixture; run from a cwd holding a `runs/` folder."""
    cwd = tmp_path / "work"
    (cwd / "runs").mkdir(parents=True)
    (cwd / "runs" / "finetune.gin").write_text("not gin (\n")
    model_dir = cwd / "runs" / "t5x_ft"
    command = [sys.executable, "-m", "t5x_cot.train", f"--gin_search_paths={data_dir / 't5x_gin'}",
               f"--gin_file={TINY}", "--gin_file=t5x/configs/runs/finetune.gin", *_flags(model_dir),
               "--gin.TRAIN_STEPS=2", f"--gin.INITIAL_CHECKPOINT_PATH='{data_dir / FIXTURE}'",
               "--gin.utils.SaveCheckpointConfig.period=1", "--alsologtostderr",
               f"--tfds_data_dir={tmp_path / 'tfds'}", f"--seqio_additional_cache_dirs={tmp_path / 'cache'}"]
    env = {**os.environ, "JAX_PLATFORMS": "cpu", "PYTHONPATH": os.pathsep.join([str(TESTS), str(REPO)])}
    out = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    assert "step 2/2" in out.stdout and "INFO" in out.stderr  # --alsologtostderr logs at INFO
    assert _steps(model_dir) == [1, 2]
    assert sorted(checkpoints.step_dirs(model_dir)) == [1, 2]  # SaveCheckpointConfig.period = 1
    trained, _ = checkpoints.load_params(model_dir)
    assert _max_difference(trained, _fixture_params(data_dir)) < 0.05  # started from the fixture
    operative = (model_dir / "config.gin").read_text()
    assert "utils.SaveCheckpointConfig.period = 1" in operative and "train_script.train.stats_period = 1" in operative


def test_our_files_at_t5x_paths_count_train_steps_from_the_checkpoint_step(
        data_dir: pathlib.Path, tmp_path: pathlib.Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Our own t5x/configs/runs/finetune.gin (no search path), a native T5X tensorstore checkpoint
    at step 5: TRAIN_STEPS=7 trains steps 6-7; TRAIN_STEPS_RELATIVE=1 then adds step 8."""
    from train_helpers import write_t5x_checkpoint

    from t5x_cot import train as train_lib

    initial = tmp_path / "pretrained" / "checkpoint_5"
    write_t5x_checkpoint(initial, _fixture_params(data_dir), step=5)
    model_dir = tmp_path / "run"
    base = [f"--gin_file={TINY}", "--gin_file=t5x/configs/runs/finetune.gin", *_flags(model_dir),
            f"--gin.INITIAL_CHECKPOINT_PATH='{initial}'", "--gin.utils.SaveCheckpointConfig.period=100",
            "--gin.utils.create_learning_rate_scheduler.base_learning_rate=0.0"]
    assert train_lib.main([*base, "--gin.TRAIN_STEPS=7"]) == 0
    assert _steps(model_dir) == [6, 7] and sorted(checkpoints.step_dirs(model_dir)) == [7]
    trained, _ = checkpoints.load_params(model_dir)
    assert _max_difference(trained, _fixture_params(data_dir)) < 1e-6  # learning rate 0 (T5X's floor: 1e-8)
    assert train_lib.main([*base, "--gin.TRAIN_STEPS=7", "--gin.TRAIN_STEPS_RELATIVE=1"]) == 0
    assert _steps(model_dir) == [6, 7, 8] and sorted(checkpoints.step_dirs(model_dir)) == [7, 8]
    assert "at step 5" in capsys.readouterr().out


def test_t5x_pretrain_gin_trains_a_users_own_seqio_task(data_dir: pathlib.Path, tmp_path: pathlib.Path,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    """T5X's pretrain.gin from scratch on a task registered by the user's module
    (MIXTURE_OR_TASK_MODULE): T5X's pretraining learning rate 1/sqrt(max(step, 10k))."""
    from t5x_cot import train as train_lib

    (tmp_path / "my_t5x_tasks.py").write_text(textwrap.dedent("""\
        import seqio
        import tensorflow as tf

        VOCAB = seqio.PassThroughVocabulary(size=64, eos_id=1)

        def exact_match(targets, predictions):
            return {"exact": 100.0 * sum(t == p for t, p in zip(targets, predictions)) / len(targets)}

        def source(split, shuffle_files, seed=None):
            rows = [[3 + (i + j) % 50 for j in range(5)] for i in range(64)]
            return tf.data.Dataset.from_tensor_slices({"inputs": rows, "targets": [r[::-1] for r in rows]})

        seqio.TaskRegistry.add(
            "my_reverse", source=seqio.FunctionDataSource(source, splits=("train", "validation")),
            preprocessors=[seqio.preprocessors.append_eos_after_trim],
            output_features={k: seqio.Feature(VOCAB, add_eos=True) for k in ("inputs", "targets")},
            metric_fns=[exact_match])
        """))
    monkeypatch.syspath_prepend(str(tmp_path))
    model_dir = tmp_path / "pretrain"
    default_prng = jax.config.jax_default_prng_impl
    try:
        code = train_lib.main([f"--gin_search_paths={data_dir / 't5x_gin'}", f"--gin_file={TINY}",
                               "--gin_file=t5x/configs/runs/pretrain.gin", "--gin.DROPOUT_RATE=0.0",
                               "--gin.TRAIN_STEPS=2", "--gin.USE_HARDWARE_RNG=True",
                               *_flags(model_dir, task="my_reverse", module="my_t5x_tasks")])
        assert jax.config.jax_default_prng_impl == "rbg"  # USE_HARDWARE_RNG took effect
    finally:
        jax.config.update("jax_default_prng_impl", default_prng)
    assert code == 0
    records = _metrics(model_dir)
    assert [r["step"] for r in records] == [1, 2]
    assert records[0]["learning_rate"] == pytest.approx(0.01)  # T5X's constant * rsqrt_decay, 10k warmup


def test_inference_evaluation_during_training_logs_answer_accuracy(data_dir: pathlib.Path,
                                                                   tmp_path: pathlib.Path) -> None:
    """T5X's train.infer_eval_dataset_cfg + seqio.Evaluator at EVAL_PERIOD: coinflip_gold_cot's
    answer accuracy lands in TensorBoard (MODEL_DIR/train)."""
    import tensorflow as tf

    from t5x_cot import train as train_lib

    model_dir = tmp_path / "cot"
    code = train_lib.main([f"--gin_file={TINY}", "--gin_file=t5x/configs/runs/finetune.gin", "--gin.TRAIN_STEPS=2",
                           "--gin.INITIAL_CHECKPOINT_PATH=None", "--gin.EVAL_PERIOD=2", "--gin.EVAL_STEPS=1",
                           "--gin.EVALUATOR_NUM_EXAMPLES=4", "--gin.JSON_WRITE_N_RESULTS=2",
                           *_flags(model_dir, task="coinflip_gold_cot", module="t5x_cot.tasks",
                                   lengths="{'inputs': 64, 'targets': 64}")])
    assert code == 0
    tags: dict[str, float] = {}
    for event_file in (model_dir / "train").glob("events.out.tfevents.*"):
        for event in tf.compat.v1.train.summary_iterator(str(event_file)):
            for value in event.summary.value:
                if value.tag.startswith("inference_eval/"):
                    tags[value.tag] = float(tf.make_ndarray(value.tensor))
    accuracy = [tag for tag in tags if tag.startswith("inference_eval/coinflip_gold_cot/") and "accuracy" in tag]
    assert accuracy, sorted(tags)
    assert all(0.0 <= tags[tag] <= 100.0 for tag in accuracy)
    logged = [r for r in _all_metrics(model_dir) if any(k.startswith("inference_eval/") for k in r)]
    assert [r["step"] for r in logged] == [2] and all(tag in logged[0] for tag in accuracy)  # and in the jsonl
    written = sorted(path.name for path in (model_dir / "inference_eval").iterdir())
    predictions = [name for name in written if name.startswith("coinflip_gold_cot-") and "metrics" not in name]
    assert predictions, written
    lines = (model_dir / "inference_eval" / predictions[0]).read_text().splitlines()
    assert len(lines) == 2  # JSON_WRITE_N_RESULTS = 2 of EVALUATOR_NUM_EXAMPLES = 4
