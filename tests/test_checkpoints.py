"""orbax checkpoints: params-only round trip, sharded restore, mismatch and stale-MODEL_DIR refusal."""
from __future__ import annotations

import json
import pathlib

import jax
import numpy as np
import pytest
from jax.sharding import NamedSharding, PartitionSpec

from t5x_cot import checkpoints, optimizers, train_checkpoints
from t5x_cot.train_state import TrainState


def _params(seed: int = 0) -> dict:
    rng = np.random.RandomState(seed)
    return {"token_embedder": {"embedding": rng.randn(16, 8).astype(np.float32)},
            "encoder": {"layers_0": {"mlp": {"wi_0": {"kernel": rng.randn(8, 12).astype(np.float32)}}},
                        "encoder_norm": {"scale": np.ones(8, np.float32)}}}


def _assert_trees_equal(a: object, b: object) -> None:
    assert jax.tree.structure(a) == jax.tree.structure(b)
    for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)):
        np.testing.assert_array_equal(np.asarray(x), np.asarray(y))


def test_save_and_load_params_round_trip(tmp_path: pathlib.Path) -> None:
    params = _params()
    checkpoints.save_params(tmp_path / "ours", params, None)
    loaded, config = checkpoints.load_params(tmp_path / "ours")
    assert config is None
    _assert_trees_equal(loaded, params)
    assert all(isinstance(x, np.ndarray) and x.dtype == np.float32 for x in jax.tree.leaves(loaded))


def test_restore_params_into_shardings_and_refuse_other_shapes(tmp_path: pathlib.Path) -> None:
    params = _params()
    checkpoints.save_params(tmp_path / "ours", params, None)
    mesh = jax.sharding.Mesh(np.array(jax.devices()[:1]).reshape(1, 1), ("data", "model"))
    sharding = NamedSharding(mesh, PartitionSpec())
    abstract = jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=sharding), params)
    restored = checkpoints.restore_params(tmp_path / "ours", abstract)
    _assert_trees_equal(restored, params)
    assert all(x.sharding == sharding for x in jax.tree.leaves(restored))
    abstract["token_embedder"]["embedding"] = jax.ShapeDtypeStruct((32, 8), np.float32, sharding=sharding)
    with pytest.raises(checkpoints.CheckpointError, match=r"token_embedder/embedding: checkpoint \(16, 8\) vs model \(32, 8\)"):
        checkpoints.restore_params(tmp_path / "ours", abstract)


def test_load_params_reports_missing_checkpoint(tmp_path: pathlib.Path) -> None:
    with pytest.raises(checkpoints.CheckpointError, match="no checkpoint here"):
        checkpoints.load_params(tmp_path)


def test_model_dir_with_other_config_is_refused(tmp_path: pathlib.Path) -> None:
    config = {"emb_dim": 8, "num_heads": 2, "dropout_rate": 0.1}
    checkpoints.check_model_dir(tmp_path, config)
    assert json.loads((tmp_path / "config.json").read_text())["emb_dim"] == 8
    (tmp_path / "checkpoint_10" / "params").mkdir(parents=True)
    checkpoints.check_model_dir(tmp_path, {**config, "dropout_rate": 0.0})  # runtime-only change
    with pytest.raises(checkpoints.CheckpointError, match=r"another model \(emb_dim: 8 -> 16; num_heads: 2 -> 4\)"):
        checkpoints.check_model_dir(tmp_path, {**config, "emb_dim": 16, "num_heads": 4})


def test_train_checkpointer_keeps_n_and_restores_state_and_data_position(tmp_path: pathlib.Path) -> None:
    optimizer = optimizers.adafactor(1e-2, min_dim_size_to_factor=8)
    state = TrainState.create(jax.tree.map(jax.numpy.asarray, _params()), optimizer)
    manager = train_checkpoints.TrainCheckpointer(tmp_path, period=2, keep=2)
    for step in (2, 4, 6):
        state = state.apply_gradients(jax.tree.map(jax.numpy.ones_like, state.params), optimizer)
        manager.save(step, state, {"batches": step})
    manager.wait()
    assert sorted(checkpoints.step_dirs(tmp_path)) == [4, 6]
    abstract = jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=x.sharding), state)
    restored, meta = manager.restore(manager.latest_step(), abstract)
    manager.close()
    assert meta == {"step": 6, "data": {"batches": 6}}
    assert int(restored.step) == 6
    _assert_trees_equal(restored.params, state.params)
    _assert_trees_equal(restored.opt_state, state.opt_state)
    params, _ = checkpoints.load_params(tmp_path)  # MODEL_DIR -> latest step
    _assert_trees_equal(params, state.params)
