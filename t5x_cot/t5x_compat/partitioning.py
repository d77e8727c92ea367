"""T5X's `t5x.partitioning`: `PjitPartitioner` and `standard_logical_axis_rules`."""
from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

from t5x_cot import partitioning as core
from t5x_cot.t5x_compat import UnsupportedT5XFeature


def standard_logical_axis_rules(activation_partitioning_dims: int = 1, parameter_partitioning_dims: int = 1,
                                additional_rules: Sequence[tuple[str, Any]] | None = None) -> list[tuple[str, Any]]:
    """T5X's rule sets: 1-D parameters (standard) or 2-D (`embed` also over data, i.e. fsdp).

    `additional_rules` come first, so they take precedence.
    """
    if activation_partitioning_dims != 1:
        raise UnsupportedT5XFeature(
            f"partitioning.standard_logical_axis_rules.activation_partitioning_dims={activation_partitioning_dims}: "
            "only 1 is available; shard params over data with parameter_partitioning_dims = 2")
    if parameter_partitioning_dims not in (1, 2):
        raise UnsupportedT5XFeature(
            f"partitioning.standard_logical_axis_rules.parameter_partitioning_dims={parameter_partitioning_dims}: "
            "expected 1 or 2")
    base = core.standard_logical_axis_rules() if parameter_partitioning_dims == 1 else core.fsdp_logical_axis_rules()
    return [*[tuple(rule) for rule in additional_rules or ()], *base]


@dataclasses.dataclass
class PjitPartitioner(core.Partitioner):
    """T5X's `partitioning.PjitPartitioner`: a ('data', 'model') mesh from `num_partitions` or
    `model_parallel_submesh`, params and activations sharded by `logical_axis_rules`.

    Multi-slice: `ici_mesh_shape` / `dcn_mesh_shape` (T5X's `(replica, data, model)` per slice
    and across slices, both set) build the mesh over the slices; T5X's `replica` and `data`
    axes, which its rules shard the batch over together, form the `data` axis here. Without
    them, several slices are data parallel and `num_partitions` splits each slice.
    `backend` is accepted for T5X's precompile (`"tpu"`): the devices are the ones the run
    targets (`t5x_cot.partitioning.default_devices`).
    """

    logical_axis_rules: Any = None
    params_on_devices: bool = True
    backend: str | None = None

    def __post_init__(self) -> None:
        if not self.params_on_devices:
            raise UnsupportedT5XFeature("partitioning.PjitPartitioner.params_on_devices=False: params always live "
                                        "on the devices; shard them with parameter_partitioning_dims = 2")
        if self.logical_axis_rules is None:
            self.logical_axis_rules = "standard"
        if self.model_parallel_submesh is not None:
            self.model_parallel_submesh = tuple(self.model_parallel_submesh)
        super().__post_init__()
