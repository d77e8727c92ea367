"""Logical axis rules, mesh specs and optimizer-state axes (model-free parts of partitioning)."""
from __future__ import annotations

import jax
import numpy as np
import pytest
from jax.sharding import PartitionSpec as P

from t5x_cot import optimizers, partitioning


def test_standard_rules_are_t5x() -> None:
    rules = dict(partitioning.standard_logical_axis_rules())
    assert rules["batch"] == "data" and rules["embed"] is None and rules["kv"] is None
    assert all(rules[name] == "model" for name in ("vocab", "mlp", "heads", "joined_kv"))
    mesh = {"data": 2, "model": 4}
    spec = partitioning.mesh_spec
    assert spec(("embed", "mlp"), "standard", mesh) == P(None, "model")
    assert spec(("vocab", "embed"), "fsdp", mesh) == P("model", "data")
    # Activations keep batch on 'data' under fsdp: embed cannot reuse it.
    assert spec(("batch", "length", "embed"), "fsdp", mesh) == P("data", None, None)


def test_non_dividing_mesh_axis_is_dropped() -> None:
    mesh = {"data": 2, "model": 4}
    assert partitioning.mesh_spec(("embed", "mlp"), "standard", mesh, (8, 6)) == P(None, None)
    assert partitioning.mesh_spec(("embed", "mlp"), "standard", mesh, (8, 12)) == P(None, "model")
    assert partitioning.shard_shape((8, 12), P("data", "model"), mesh) == (4, 3)


def test_mesh_from_num_partitions_or_submesh() -> None:
    devices = jax.devices()
    mesh = partitioning.create_mesh(num_partitions=1, devices=devices)
    assert dict(mesh.shape) == {"data": len(devices), "model": 1}
    assert partitioning.model_axis_size(8, model_parallel_submesh=(2, 1, 1, 2)) == 4
    assert partitioning.model_axis_size(8, num_partitions=2) == 2


def test_adafactor_state_axes_follow_reduced_param_axes() -> None:
    params = {"wi": jax.ShapeDtypeStruct((256, 512), np.float32),      # factored: v_row drops mlp
              "square": jax.ShapeDtypeStruct((256, 256), np.float32),  # factored, equal dims
              "scale": jax.ShapeDtypeStruct((256,), np.float32)}       # unfactored
    axes = {"wi": ("embed", "mlp"), "square": ("heads", "embed"), "scale": ("embed",)}
    state = jax.eval_shape(optimizers.adafactor().init, params)
    state_axes = partitioning.optimizer_state_axes(state, params, axes)
    factored = state_axes[0]
    assert factored.v_row["wi"] == P("embed") and factored.v_col["wi"] == P("mlp")
    # argsort of equal dims keeps order: d1 = 0 (second largest), d0 = 1 (largest).
    assert factored.v_row["square"] == P("heads") and factored.v_col["square"] == P("embed")
    assert factored.v["scale"] == P("embed") and factored.v["wi"] == P()
    assert factored.count == P()
    assert jax.tree.structure(state_axes, is_leaf=lambda x: isinstance(x, P)) == jax.tree.structure(
        jax.tree.map(lambda _: P(), state), is_leaf=lambda x: isinstance(x, P))


def test_ici_dcn_mesh_shapes_make_data_span_the_slices() -> None:
    """T5X's (replica, data, model) shapes: replica and data form the data axis."""
    devices = jax.devices()[:1] * 1
    mesh = partitioning.create_mesh(devices=devices, ici_mesh_shape=(1, 1, 1), dcn_mesh_shape=(1, 1, 1))
    assert dict(mesh.shape) == {"data": 1, "model": 1}
    with pytest.raises(ValueError, match="go together"):
        partitioning.create_mesh(devices=devices, ici_mesh_shape=(1, 1))
    with pytest.raises(ValueError, match="devices, but there are 1"):
        partitioning.create_mesh(devices=devices, ici_mesh_shape=(2, 1), dcn_mesh_shape=(1, 1))


def test_target_devices_are_the_default_of_a_partitioner() -> None:
    one = jax.devices()[:1]
    with partitioning.target_devices(one):
        assert partitioning.default_devices() == one
        assert list(partitioning.Partitioner().mesh.devices.flat) == one
    assert partitioning.default_devices() == jax.devices()
