"""seqio offline cache of a task (Beam DirectRunner) read back with use_cached=True."""
from __future__ import annotations

import pytest

seqio = pytest.importorskip("seqio")
pytest.importorskip("apache_beam", reason="caching needs apache-beam (pip install --no-deps -r requirements-beam.txt)")

import t5x_cot.tasks  # noqa: E402,F401  (registers the tasks)
from t5x_cot.tasks import cache  # noqa: E402

pytestmark = [pytest.mark.needs_data, pytest.mark.slow]


def _examples(task, **kwargs) -> list[tuple[str, str]]:
    ds = task.get_dataset({"inputs": 64, "targets": 16}, split="test", shuffle=False, **kwargs)
    return sorted((ex["inputs_pretokenized"].decode(), ex["targets"].tobytes().hex())
                  for ex in ds.as_numpy_iterator())


def test_cache_a_task_with_the_direct_runner_and_read_it_back(data_dir, tmp_path):
    name = "strategyqa_answer_only"
    dirs = cache.cache_tasks([name], str(tmp_path))
    assert dirs == [str(tmp_path / name)]
    assert (tmp_path / name / "COMPLETED").exists()
    task = seqio.get_mixture_or_task(name)
    assert task.cache_dir == str(tmp_path / name)
    assert task.get_cached_stats("test")["examples"] == 229
    assert _examples(task, use_cached=True) == _examples(task, use_cached=False)
