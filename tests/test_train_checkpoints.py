"""Training checkpoints: a damaged newest checkpoint falls back to an older one; a failed save stops."""
from __future__ import annotations

import pathlib
import subprocess
import sys
import textwrap

import jax
import numpy as np
import pytest

from t5x_cot import checkpoints, optimizers, train_checkpoints
from t5x_cot.train_state import TrainState

REPO = pathlib.Path(__file__).resolve().parents[1]


def _state() -> TrainState:
    rng = np.random.RandomState(0)
    params = {"token_embedder": {"embedding": jax.numpy.asarray(rng.randn(64, 32).astype(np.float32))},
              "encoder": {"encoder_norm": {"scale": jax.numpy.ones(32, np.float32)}}}
    return TrainState.create(params, optimizers.adafactor(1e-2, min_dim_size_to_factor=8))


def _saved(model_dir: pathlib.Path, steps: tuple[int, ...]) -> tuple[train_checkpoints.TrainCheckpointer, object]:
    state = _state()
    manager = train_checkpoints.TrainCheckpointer(model_dir, period=1)
    for step in steps:
        manager.save(step, state.replace(step=jax.numpy.asarray(step, np.int32)), {"batches": step})
    manager.wait()
    abstract = jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=x.sharding), state)
    return manager, abstract


def _truncate_param_data(step_dir: pathlib.Path) -> None:
    for data in (step_dir / checkpoints.PARAMS_ITEM).rglob("d/*"):
        data.write_bytes(data.read_bytes()[:16])


@pytest.mark.parametrize("damage", ["truncated chunk", "missing meta", "missing param data", "nan params"])
def test_a_damaged_newest_checkpoint_falls_back_and_is_moved_aside(tmp_path: pathlib.Path, damage: str,
                                                                   caplog: pytest.LogCaptureFixture):
    manager, abstract = _saved(tmp_path, (1, 2))
    newest = tmp_path / "checkpoint_2"
    if damage == "truncated chunk":
        _truncate_param_data(newest)
    elif damage == "missing meta":
        (newest / "meta" / "metadata").unlink()
    elif damage == "missing param data":
        for child in (newest / checkpoints.PARAMS_ITEM).iterdir():
            if child.name != "_METADATA":
                subprocess.run(["rm", "-rf", str(child)], check=True)
    else:
        manager.close()
        nan_state = _state()
        nan_state = nan_state.replace(params=jax.tree.map(lambda x: x * np.nan, nan_state.params))
        subprocess.run(["rm", "-rf", str(newest)], check=True)
        manager = train_checkpoints.TrainCheckpointer(tmp_path, period=1)
        manager.save(2, nan_state, {"batches": 2})
        manager.wait()
    state, meta = manager.restore_latest(abstract)
    assert meta["step"] == int(state.step) == 1
    assert [r.getMessage() for r in caplog.records if "trying the checkpoint before it" in r.getMessage()][0] \
        .startswith(f"{newest}: ")
    assert sorted(checkpoints.step_dirs(tmp_path)) == [1]
    assert [p.name.split("-")[0] for p in tmp_path.glob("checkpoint_2.unusable*")] == ["checkpoint_2.unusable"]
    manager.save(2, state, {"batches": 2})  # the step can be saved again
    manager.close()
    assert sorted(checkpoints.step_dirs(tmp_path)) == [1, 2]


def test_no_restorable_checkpoint_names_each_one(tmp_path: pathlib.Path):
    manager, abstract = _saved(tmp_path, (1, 2))
    for step in (1, 2):
        (tmp_path / f"checkpoint_{step}" / "meta" / "metadata").unlink()
    with pytest.raises(checkpoints.CheckpointError, match=r"no checkpoint can be restored: .*checkpoint_2: "
                                                          r".*FileNotFoundError.*; .*checkpoint_1: "):
        manager.restore_latest(abstract)
    manager.close()


def test_a_save_that_cannot_be_written_stops_with_one_error(tmp_path: pathlib.Path):
    """A file size limit (as a full disk) makes orbax's background write fail."""
    script = textwrap.dedent(f"""
        import resource, signal, sys
        sys.path.insert(0, {str(REPO / 'tests')!r})
        import test_train_checkpoints as t
        from t5x_cot import train_checkpoints
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        manager = train_checkpoints.TrainCheckpointer({str(tmp_path)!r}, period=1)
        resource.setrlimit(resource.RLIMIT_FSIZE, (2000, 2000))
        try:
            manager.save(1, t._state(), {{}})
            manager.wait()
        except train_checkpoints.CheckpointSaveError as error:
            print("CAUGHT", error)
    """)
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120,
                            cwd=REPO, env={"JAX_PLATFORMS": "cpu", "PATH": "/usr/bin:/bin"})
    caught = [line for line in result.stdout.splitlines() if line.startswith("CAUGHT")]
    assert caught and caught[0].startswith(f"CAUGHT saving checkpoint_1 in {tmp_path} failed ("), result.stderr[-2000:]
    assert "training stopped" in caught[0]
    assert not checkpoints.step_dirs(tmp_path)
