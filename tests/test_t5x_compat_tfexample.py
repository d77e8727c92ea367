"""T5X's infer_from_tfexample_file.gin, unchanged: a Task over a TFRecord file of TFExamples
(`infer_script.create_task_from_tfexample_file`), decoded from the T5X fixture checkpoint."""
from __future__ import annotations

import json
import os
import pathlib
import subprocess
import sys

import pytest

from t5x_cot import t5x_compat
from t5x_cot.data_pipeline import DataConfigError
from t5x_cot.t5x_compat.tfexample_task import create_task_from_tfexample_file

REPO = pathlib.Path(__file__).resolve().parents[1]
QUESTIONS = ["translate English to German: hello", "What is 2 + 3?"]


def _write_tfrecord(path: pathlib.Path, texts: list[str], key: str = "inputs") -> pathlib.Path:
    import tensorflow as tf

    with tf.io.TFRecordWriter(str(path)) as writer:
        for text in texts:
            feature = {key: tf.train.Feature(bytes_list=tf.train.BytesList(value=[text.encode()]))}
            writer.write(tf.train.Example(features=tf.train.Features(feature=feature)).SerializeToString())
    return path


def test_task_reads_the_files_and_is_registered_once(tmp_path: pathlib.Path) -> None:
    import seqio

    from t5x_cot.tasks.vocab import TASK_VOCABULARY

    records = _write_tfrecord(tmp_path / "q.tfrecord", QUESTIONS, key="question")
    features = {"inputs": seqio.Feature(TASK_VOCABULARY), "targets": seqio.Feature(TASK_VOCABULARY)}
    name = create_task_from_tfexample_file([str(records)], "tfrecord", "question", None, features)
    assert create_task_from_tfexample_file([str(records)], "tfrecord", "question", None, features) == name
    examples = list(seqio.get_mixture_or_task(name).get_dataset(None, split="infer", shuffle=False)
                    .as_numpy_iterator())
    assert [e["inputs_pretokenized"].decode() for e in examples] == QUESTIONS
    assert all(e["inputs"][-1] == 1 and e["targets_pretokenized"] == b"" for e in examples)  # EOS; no targets
    with pytest.raises(DataConfigError, match="no such files"):
        create_task_from_tfexample_file([str(tmp_path / "none-*.tfrecord")], "tfrecord", "q", None, features)
    with pytest.raises(t5x_compat.UnsupportedT5XFeature, match="file_type='sstable'"):
        create_task_from_tfexample_file([str(records)], "sstable", "question", None, features)


@pytest.mark.needs_data
def test_t5xs_infer_from_tfexample_file_gin_runs_unchanged(data_dir: pathlib.Path, tmp_path: pathlib.Path) -> None:
    records = _write_tfrecord(tmp_path / "q.tfrecord", QUESTIONS)
    out_dir = tmp_path / "infer"
    command = [sys.executable, "-m", "t5x_cot.infer", f"--gin_search_paths={data_dir / 't5x_gin'}",
               "--gin_file=t5x/examples/t5/t5_1_1/tiny.gin", "--gin_file=t5x/configs/runs/infer_from_tfexample_file.gin",
               f"--gin.TF_EXAMPLE_FILE_PATHS=['{records}']", "--gin.TF_EXAMPLE_FILE_TYPE='tfrecord'",
               "--gin.FEATURE_LENGTHS={'inputs': 16, 'targets': 4}", "--gin.DROPOUT_RATE=0.0",
               f"--gin.CHECKPOINT_PATH='{data_dir / 't5x_checkpoints' / 'test_t5_tiny.checkpoint_0'}'",
               f"--gin.INFER_OUTPUT_DIR='{out_dir}'"]
    env = {**os.environ, "JAX_PLATFORMS": "cpu", "PYTHONPATH": str(REPO)}
    out = subprocess.run(command, env=env, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    [written] = list(out_dir.glob("infer_*-predict.jsonl-00000-of-00001"))
    rows = [json.loads(line) for line in written.read_text().splitlines()]
    assert [row["inputs"]["inputs_pretokenized"] for row in rows] == QUESTIONS
    assert all(isinstance(row["prediction"], str) and row["aux"]["num_tokens"] <= 4 for row in rows)
