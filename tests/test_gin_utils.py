"""gin flags: parsing, shipped-file resolution from any cwd, one-line errors, exit code 2."""
from __future__ import annotations

import os
import pathlib
import subprocess
import sys

import pytest

from t5x_cot import gin_utils

REPO = pathlib.Path(__file__).resolve().parents[1]
gin = gin_utils.gin


@pytest.fixture()
def model_gin(tmp_path: pathlib.Path) -> str:
    """A stand-in model file: finetune.gin only needs a MODEL macro to parse."""
    path = tmp_path / "model.gin"
    path.write_text("MODEL = 'a model'\n")
    gin_utils.register_configurables()
    return str(path)


def test_split_gin_flags_accepts_t5x_forms() -> None:
    files, bindings, paths, rest = gin_utils.split_gin_flags([
        "--gin_file=a.gin", "--gin_file", "b.gin", "--gin.MODEL_DIR='/tmp/x'", "--gin.train.log_every=5",
        "--gin_bindings=TRAIN_STEPS = 3", "--gin_search_paths=/p1,/p2", "--other", "value"])
    assert files == ["a.gin", "b.gin"]
    assert bindings == ["MODEL_DIR='/tmp/x'", "train.log_every=5", "TRAIN_STEPS = 3"]
    assert paths == ["/p1", "/p2"]
    assert rest == ["--other", "value"]


def test_shipped_files_resolve_from_any_cwd(tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    paths = gin_utils.default_search_paths()
    expected = (REPO / "gin" / "runs" / "finetune.gin").resolve()
    assert pathlib.Path(gin_utils.resolve_gin_file("gin/runs/finetune.gin", paths)) == expected
    assert pathlib.Path(gin_utils.resolve_gin_file("runs/finetune.gin", paths)) == expected
    (tmp_path / "mine.gin").write_text("X = 1\n")
    assert gin_utils.resolve_gin_file("mine.gin", paths) == str(tmp_path / "mine.gin")
    with pytest.raises(gin_utils.GinConfigError, match="nope.gin"):
        gin_utils.resolve_gin_file("nope.gin", paths)


def test_bindings_override_files_and_macros_resolve(model_gin: str) -> None:
    gin_utils.parse_gin([model_gin, "gin/runs/finetune.gin"],
                        ["MODEL_DIR='/tmp/x'", "MIXTURE_OR_TASK_NAME='t'", "TRAIN_STEPS=20", "BATCH_SIZE=4"],
                        module_macros=())
    assert gin_utils.macro_value("TRAIN_STEPS") == 20
    assert gin_utils.macro_value("BATCH_SIZE") == 4
    assert gin_utils.macro_value("MODEL_DIR") == "/tmp/x"
    assert gin.query_parameter("train.total_steps").scoped_selector.startswith("TRAIN_STEPS")


def test_missing_required_macros_are_named(model_gin: str) -> None:
    with pytest.raises(gin_utils.GinConfigError) as error:
        gin_utils.parse_gin([model_gin, "gin/runs/finetune.gin"], ["MODEL_DIR='/tmp/x'"], module_macros=())
    message = str(error.value)
    assert "\n" not in message
    assert "MIXTURE_OR_TASK_NAME" in message and "TRAIN_STEPS" in message and "MODEL_DIR" not in message


@pytest.mark.parametrize("binding, expected", [
    ("TRAIN_STEPZ=20", "unknown gin macro TRAIN_STEPZ (no config uses it) (did you mean TRAIN_STEPS?)"),
    ("train.total_stepz=20", "doesn't have a parameter named 'total_stepz'"),
    ("trian.total_steps=20", "No configurable matching 'trian'"),
    ("train.eval_period=%EVAL_PERIDO", "gin macro %EVAL_PERIDO is used but never set (did you mean EVAL_PERIOD?)"),
])
def test_typos_are_one_line_errors_naming_them(model_gin: str, binding: str, expected: str) -> None:
    required = ["MODEL_DIR='/tmp/x'", "MIXTURE_OR_TASK_NAME='t'", "TRAIN_STEPS=20"]
    with pytest.raises(gin_utils.GinConfigError) as error:
        gin_utils.parse_gin([model_gin, "gin/runs/finetune.gin"], [*required, binding], module_macros=())
    assert expected in str(error.value)
    assert "\n" not in str(error.value)


def test_syntax_error_names_file_and_line(tmp_path: pathlib.Path) -> None:
    bad = tmp_path / "bad.gin"
    bad.write_text("X = 1\nY = = 2\n")
    with pytest.raises(gin_utils.GinConfigError, match=rf"{bad}:2: Unable to parse"):
        gin_utils.parse_gin([str(bad)], [], module_macros=())


def test_train_cli_exits_2_with_one_line_from_repo_root() -> None:
    """From the repository root (whose gin/ folder would shadow gin-config) a typo exits 2."""
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "JAX_PLATFORMS": "cpu"}
    result = subprocess.run(
        [sys.executable, "-m", "t5x_cot.train", "--gin_file=gin/runs/finetune.gin",
         "--gin.MODEL_DIR='/tmp/x'", "--gin.MIXTURE_OR_TASK_MODULE=None", "--gin.TRAIN_STEPZ=3"],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 2, result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert errors == ["error: unknown gin macro TRAIN_STEPZ (no config uses it) (did you mean TRAIN_STEPS?)"]
