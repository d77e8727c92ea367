"""Shared fixtures: the real data dir (T5X_COT_DATA_DIR) and the T5 SentencePiece model."""
from __future__ import annotations

import os
import pathlib
import tempfile

import pytest

# One persistent XLA compilation cache for the whole run, inherited by the subprocesses the
# tests start (train/eval commands, multi-host workers): identical programs compile once.
if "JAX_COMPILATION_CACHE_DIR" not in os.environ:
    _XLA_CACHE = tempfile.TemporaryDirectory(prefix="t5x_cot_test_xla_cache_")
    os.environ["JAX_COMPILATION_CACHE_DIR"] = _XLA_CACHE.name
os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


@pytest.fixture(scope="session")
def data_dir() -> pathlib.Path:
    """The real data dir; tests that need it skip with a reason when it is not set."""
    value = os.environ.get("T5X_COT_DATA_DIR")
    if not value:
        pytest.skip("T5X_COT_DATA_DIR is not set (CI sets it to ../shared/data)")
    path = pathlib.Path(value)
    if not path.is_dir():
        pytest.skip(f"T5X_COT_DATA_DIR={value} is not a directory")
    return path


@pytest.fixture(scope="session")
def vocab_path(data_dir: pathlib.Path) -> pathlib.Path:
    """The real T5 SentencePiece model."""
    return data_dir / "vocab" / "t5_spiece.model"
