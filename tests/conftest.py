"""Shared fixtures: the real data dir (T5X_COT_DATA_DIR), the T5 SentencePiece model, and
fixtures that undo what a test does to process-wide state (gin's config, the import system).

The tiny model config and the subprocess environment are in `support.py`."""
from __future__ import annotations

import os
import pathlib
import sys
import tempfile
from collections.abc import Iterator

import gin
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


@pytest.fixture
def clean_gin() -> Iterator[None]:
    """An empty gin config for the test, emptied again after it (also when it fails)."""
    gin.clear_config()
    yield
    gin.clear_config()


@pytest.fixture
def restore_import_state() -> Iterator[None]:
    """After the test: `sys.meta_path` and the names on `__main__` as they were before it, and
    the `t5x` modules it imported (through an alias finder) forgotten."""
    finders = list(sys.meta_path)
    main = sys.modules["__main__"]
    names = dict(vars(main))
    modules = set(sys.modules)
    yield
    sys.meta_path[:] = finders
    for name in set(vars(main)) - set(names):
        delattr(main, name)
    for name, value in names.items():
        if vars(main).get(name) is not value:
            setattr(main, name, value)
    for name in set(sys.modules) - modules:
        if name == "t5x" or name.startswith("t5x."):
            del sys.modules[name]
