"""Meshes over the devices of real TPU topologies (libtpu's compile-only backend, no TPU needed)."""
from __future__ import annotations

import pytest

pytest.importorskip("libtpu", reason="libtpu (pip install -e '.[tpu]') gives the TPU topologies")

from t5x_cot import partitioning  # noqa: E402
from t5x_cot.compile import topology  # noqa: E402
from t5x_cot.t5x_compat.partitioning import PjitPartitioner  # noqa: E402


def _devices(name: str, num_slices: int = 1) -> list:
    return topology.topology_devices(topology.parse_topology(name, num_slices))


@pytest.mark.parametrize("name, jax_name, accelerator", [
    ("v4-8", "v4:2x2x1", "v4-8"), ("v4-32", "v4:2x2x4", "v4-32"), ("v4-128", "v4:4x4x4", "v4-128"),
    ("v5p-8", "v5p:2x2x1", "v5p-8"), ("v5litepod-16", "v5e:4x4", "v5litepod-16"), ("v5e-16", "v5e:4x4", "v5litepod-16"),
    ("v5e-8", "v5e:2x4", "v5litepod-8"), ("v6e-8", "v6e:2x4", "v6e-8"), ("v5e:4x4", "v5e:4x4", "v5litepod-16"),
    ("v6e-256", "v6e:16x16", "v6e-256")])
def test_accelerator_types_map_to_jax_topologies(name: str, jax_name: str, accelerator: str) -> None:
    target = topology.parse_topology(name)
    assert (target.jax_name, target.accelerator_type) == (jax_name, accelerator)


@pytest.mark.parametrize("name, message", [("v4-6", "power-of-two"), ("v4-7", "2 per chip"),
                                           ("v9-8", "unknown generation"), ("tpu", "expected a Cloud TPU"),
                                           ("v5e:2x2x2", "2 dimensions")])
def test_bad_topology_names_say_what_is_expected(name: str, message: str) -> None:
    with pytest.raises(topology.TopologyError, match=message):
        topology.parse_topology(name)


@pytest.mark.parametrize("name, chips, kind, hbm_gib", [
    ("v4-8", 4, "TPU v4", 32), ("v5e:2x2", 4, "TPU v5 lite", 16), ("v5p-8", 4, "TPU v5", 95),
    ("v6e-8", 8, "TPU v6 lite", 32)])
def test_mesh_on_every_generation(name: str, chips: int, kind: str, hbm_gib: int) -> None:
    devices = _devices(name)
    assert len(devices) == chips and devices[0].device_kind == kind
    assert topology.hbm_per_chip(kind) == hbm_gib * 2**30
    for parts in (1, 2, chips):
        mesh = partitioning.Partitioner(num_partitions=parts, devices=devices).mesh
        assert dict(mesh.shape) == {"data": chips // parts, "model": parts}
        assert sorted(d.id for d in mesh.devices.flat) == sorted(d.id for d in devices)


def test_v4_per_core_devices_keep_the_cores_of_a_chip_together() -> None:
    """Without megacore a v4 chip shows two devices, which the physical mesh builder refuses."""
    from jax.experimental import topologies

    cores = topologies.get_topology_desc(topology_name="v4:2x2x1", platform="tpu").devices
    mesh = partitioning.create_mesh(num_partitions=2, devices=cores)
    assert dict(mesh.shape) == {"data": 4, "model": 2}
    for row in mesh.devices:
        assert row[0].coords == row[1].coords and {row[0].core_on_chip, row[1].core_on_chip} == {0, 1}


def test_multi_slice_mesh_splits_data_over_slices_and_model_within_one() -> None:
    devices = _devices("v5e:2x2", num_slices=2)
    assert len(devices) == 8 and partitioning.num_slices(devices) == 2
    mesh = partitioning.create_mesh(num_partitions=2, devices=devices)
    assert dict(mesh.shape) == {"data": 4, "model": 2}
    for row in mesh.devices:  # a model group never crosses slices
        assert row[0].slice_index == row[1].slice_index
    assert {d.slice_index for d in mesh.devices[:2].flat} == {0} and {d.slice_index for d in mesh.devices[2:].flat} == {1}
    with pytest.raises(ValueError, match="stays within a slice"):
        partitioning.create_mesh(num_partitions=8, devices=devices)


def test_t5x_ici_and_dcn_mesh_shapes() -> None:
    """T5X's multi-slice partitioner: (replica, data, model) per slice and across slices."""
    devices = _devices("v5e:2x2", num_slices=2)
    partitioner = PjitPartitioner(num_partitions=1, ici_mesh_shape=(1, 2, 2), dcn_mesh_shape=(2, 1, 1),
                                  devices=devices)
    assert dict(partitioner.mesh.shape) == {"data": 4, "model": 2}
    assert [d.slice_index for d in partitioner.mesh.devices[:, 0]] == [0, 0, 1, 1]
    with pytest.raises(ValueError, match="spans 1 slices"):
        PjitPartitioner(ici_mesh_shape=(2, 4), dcn_mesh_shape=(1, 1), devices=devices)
