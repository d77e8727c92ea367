"""Device mesh ('data', 'model') and logical-axis sharding for params, optimizer state and batches.

As in T5X: the mesh is built from `num_partitions` (size of the model axis) or
`model_parallel_submesh` (a hardware tile whose device count is the model axis); logical axis
names of the param tree (`batch, embed, mlp, heads, kv, joined_kv, vocab, relpos_buckets,
layers`) map onto mesh axes through rules. `standard` is T5X's
`standard_logical_axis_rules()` (1-D params and activations); `fsdp` is T5X's
`parameter_partitioning_dims=2` set, which also shards `embed` over `data` so params and
optimizer state are spread over the data-parallel devices too.
"""
from __future__ import annotations

import contextlib
import dataclasses
import math
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import flax.linen as nn
import jax
import numpy as np
import optax
from jax.experimental import mesh_utils
from jax.sharding import Mesh, NamedSharding, PartitionSpec

LogicalRules = Sequence[tuple[str, Any]]
MESH_AXES = ("data", "model")

_REPLICATED_RULES: LogicalRules = (
    ("relpos_buckets", None), ("abspos_buckets", None), ("length", None), ("layers", None),
    ("stack", None), ("mlp_activations", None))


def standard_logical_axis_rules() -> list[tuple[str, Any]]:
    """T5X's standard rules: batch over data, vocab/mlp/heads/joined_kv over model."""
    return [("batch", "data"), ("vocab", "model"), ("embed", None), ("mlp", "model"),
            ("heads", "model"), ("kv", None), ("joined_kv", "model"), *_REPLICATED_RULES]


def fsdp_logical_axis_rules() -> list[tuple[str, Any]]:
    """T5X's 2-D parameter rules: as standard, and `embed` over data (params, optimizer state)."""
    return [("batch", "data"), ("vocab", "model"), ("mlp", "model"), ("heads", "model"),
            ("kv", None), ("joined_kv", "model"), ("embed", "data"), *_REPLICATED_RULES]


RULE_SETS = {"standard": standard_logical_axis_rules, "fsdp": fsdp_logical_axis_rules}


def resolve_rules(rules: str | LogicalRules) -> list[tuple[str, Any]]:
    """A rule set by name ('standard', 'fsdp') or an explicit list of (logical, mesh) pairs."""
    if isinstance(rules, str):
        if rules not in RULE_SETS:
            raise ValueError(f"unknown logical axis rule set {rules!r}; expected one of {sorted(RULE_SETS)}")
        return RULE_SETS[rules]()
    return [tuple(rule) for rule in rules]


def model_axis_size(num_devices: int, num_partitions: int | None = None,
                    model_parallel_submesh: Sequence[int] | None = None) -> int:
    """Size of the 'model' mesh axis; checks it divides the device count."""
    size = math.prod(model_parallel_submesh) if model_parallel_submesh else (num_partitions or 1)
    if size < 1 or num_devices % size:
        raise ValueError(f"model parallelism {size} does not divide the {num_devices} devices")
    return size


def create_mesh(num_partitions: int | None = None, model_parallel_submesh: Sequence[int] | None = None,
                devices: Sequence[Any] | None = None) -> Mesh:
    """A ('data', 'model') mesh over `devices` (default: all), model axis innermost."""
    devices = list(jax.devices() if devices is None else devices)
    model = model_axis_size(len(devices), num_partitions, model_parallel_submesh)
    shape = (len(devices) // model, model)
    if devices[0].platform == "cpu":  # no physical topology to follow
        grid = np.asarray(devices).reshape(shape)
    else:
        grid = mesh_utils.create_device_mesh(shape, devices=devices)
    return Mesh(grid, MESH_AXES)


def as_partition_spec(axes: Any) -> PartitionSpec:
    """A logical-axes entry (PartitionSpec, tuple of names, or None) as a PartitionSpec."""
    if axes is None:
        return PartitionSpec()
    return axes if isinstance(axes, PartitionSpec) else PartitionSpec(*axes)


def is_axes_leaf(value: Any) -> bool:
    """True for a logical-axes leaf: None, a PartitionSpec, or a tuple of names/None."""
    return value is None or isinstance(value, PartitionSpec) or (
        isinstance(value, tuple) and not hasattr(value, "_fields")
        and all(item is None or isinstance(item, str) for item in value))


def normalize_axes_tree(tree: Any) -> Any:
    """Replace tuple / None logical-axes leaves by PartitionSpecs (so jax treats them as leaves)."""
    return jax.tree.map(as_partition_spec, tree, is_leaf=is_axes_leaf)


def mesh_spec(logical: Any, rules: str | LogicalRules, mesh_shape: Mapping[str, int],
              shape: Sequence[int] | None = None) -> PartitionSpec:
    """Mesh PartitionSpec of logical axes under `rules`; with `shape`, a mesh axis that does not
    divide its dimension is dropped (replicated there). Needs no devices (used for planning)."""
    spec = nn.logical_to_mesh_axes(as_partition_spec(logical), resolve_rules(rules)) or PartitionSpec()
    if shape is None:
        return spec
    entries = list(spec) + [None] * (len(shape) - len(spec))
    return PartitionSpec(*[axis if axis is None or dim % axis_size(axis, mesh_shape) == 0 else None
                           for axis, dim in zip(entries, shape)])


def axis_size(axis: str | tuple[str, ...] | None, mesh_shape: Mapping[str, int]) -> int:
    """Number of devices a PartitionSpec entry splits over."""
    if axis is None:
        return 1
    names = (axis,) if isinstance(axis, str) else axis
    return math.prod(mesh_shape[name] for name in names)


def shard_shape(shape: Sequence[int], spec: PartitionSpec, mesh_shape: Mapping[str, int]) -> tuple[int, ...]:
    """Per-device shape of an array of `shape` sharded by `spec`."""
    entries = list(spec) + [None] * (len(shape) - len(spec))
    return tuple(-(-dim // axis_size(axis, mesh_shape)) for dim, axis in zip(shape, entries))


@dataclasses.dataclass
class Partitioner:
    """Mesh and shardings of a run.

    `logical_axis_rules` is 'standard', 'fsdp' or an explicit rule list. A mesh axis that does
    not divide an array dimension is dropped for that dimension (the array is replicated
    there instead of failing), and reported by `describe`.
    """

    num_partitions: int | None = 1
    model_parallel_submesh: tuple[int, ...] | None = None
    logical_axis_rules: str | LogicalRules = "standard"
    devices: Sequence[Any] | None = None

    def __post_init__(self) -> None:
        self.rules = resolve_rules(self.logical_axis_rules)
        self.mesh = create_mesh(self.num_partitions, self.model_parallel_submesh, self.devices)

    # --------------------------------------------------------------- specs and shardings

    def mesh_axes(self, logical: Any, shape: Sequence[int] | None = None) -> PartitionSpec:
        """Mesh PartitionSpec for logical axes; with `shape`, non-dividing mesh axes are dropped."""
        return mesh_spec(logical, self.rules, dict(self.mesh.shape), shape)

    def sharding(self, logical: Any, shape: Sequence[int] | None = None) -> NamedSharding:
        """NamedSharding on this mesh for an array with the given logical axes."""
        return NamedSharding(self.mesh, self.mesh_axes(logical, shape))

    def replicated(self) -> NamedSharding:
        return NamedSharding(self.mesh, PartitionSpec())

    def tree_shardings(self, abstract: Any, logical_axes: Any) -> Any:
        """Shardings for a tree of arrays (or ShapeDtypeStructs) with matching logical axes."""
        return jax.tree.map(lambda axes, x: self.sharding(axes, x.shape),
                            normalize_axes_tree(logical_axes), abstract)

    def batch_sharding(self, ndim: int = 2) -> NamedSharding:
        """Batches are split over 'data' along their first dimension."""
        return NamedSharding(self.mesh, PartitionSpec("data", *([None] * (ndim - 1))))

    @contextlib.contextmanager
    def context(self) -> Iterator[None]:
        """Mesh and axis rules active while tracing (for activation sharding constraints)."""
        with jax.set_mesh(self.mesh), nn.logical_axis_rules(self.rules):
            yield

    # --------------------------------------------------------------- data layout

    @property
    def data_size(self) -> int:
        return int(self.mesh.shape["data"])

    def data_layout(self, global_batch_size: int) -> tuple[int, int, int]:
        """(per-host batch size, shard id, number of shards): each process reads its own shard."""
        if global_batch_size % self.data_size:
            raise ValueError(
                f"BATCH_SIZE {global_batch_size} is not divisible by the data axis size {self.data_size}")
        shards = jax.process_count()
        if global_batch_size % shards:
            raise ValueError(f"BATCH_SIZE {global_batch_size} is not divisible by {shards} processes")
        return global_batch_size // shards, jax.process_index(), shards

    def global_batch(self, local: dict[str, np.ndarray], global_batch_size: int) -> dict[str, jax.Array]:
        """Assemble per-process numpy batches into global arrays sharded over 'data'."""
        return {name: jax.make_array_from_process_local_data(
            self.batch_sharding(value.ndim), value, (global_batch_size, *value.shape[1:]))
            for name, value in local.items()}


# ------------------------------------------------------------------- optimizer state axes


def optimizer_state_axes(opt_state: Any, params: Any, param_axes: Any) -> Any:
    """Logical axes for an optax state, derived from the params' axes.

    Subtrees shaped like the params (momentum, unfactored second moments) follow the params;
    Adafactor's factored `v_row` / `v_col` take the param axes without the reduced dimension;
    placeholders and counters are replicated.
    """
    param_axes = normalize_axes_tree(param_axes)
    params_def = jax.tree.structure(params)

    def walk(node: Any) -> Any:
        if isinstance(node, optax.FactoredState):
            return optax.FactoredState(
                count=PartitionSpec(),
                v_row=jax.tree.map(lambda v, p, ax: _reduced_axes(v, p, ax, "row"), node.v_row, params, param_axes),
                v_col=jax.tree.map(lambda v, p, ax: _reduced_axes(v, p, ax, "col"), node.v_col, params, param_axes),
                v=jax.tree.map(_same_axes, node.v, params, param_axes))
        if _is_array(node):
            return PartitionSpec()
        if jax.tree.structure(node) == params_def and all(_is_array(x) for x in jax.tree.leaves(node)):
            return jax.tree.map(_same_axes, node, params, param_axes)
        if isinstance(node, tuple) and hasattr(node, "_fields"):
            return type(node)(*[walk(child) for child in node])
        if isinstance(node, (tuple, list)):
            return type(node)(walk(child) for child in node)
        if isinstance(node, dict):
            return {key: walk(child) for key, child in node.items()}
        return node

    return walk(opt_state)


def _is_array(node: Any) -> bool:
    return hasattr(node, "shape") and hasattr(node, "dtype")


def _same_axes(value: Any, param: Any, axes: PartitionSpec) -> PartitionSpec:
    return axes if tuple(value.shape) == tuple(param.shape) else PartitionSpec()


def _reduced_axes(value: Any, param: Any, axes: PartitionSpec, which: str) -> PartitionSpec:
    """Axes of Adafactor's v_row (param without its largest dim) or v_col (without the 2nd largest)."""
    shape = tuple(param.shape)
    if len(shape) < 2 or tuple(value.shape) == (1,):
        return PartitionSpec()
    order = np.argsort(shape)
    removed = int(order[-1]) if which == "row" else int(order[-2])
    full = list(axes) + [None] * (len(shape) - len(axes))
    return PartitionSpec(*[axis for i, axis in enumerate(full) if i != removed])
