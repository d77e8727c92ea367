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


_TARGET_DEVICES: list[list[Any]] = []


@contextlib.contextmanager
def target_devices(devices: Sequence[Any]) -> Iterator[None]:
    """Meshes built without explicit devices use `devices` meanwhile (e.g. the compile-only
    devices of a TPU topology, see `t5x_cot.compile.topology`)."""
    _TARGET_DEVICES.append(list(devices))
    try:
        yield
    finally:
        _TARGET_DEVICES.pop()


def default_devices() -> list[Any]:
    """The devices a mesh is built over by default: the `target_devices`, else all of jax's."""
    return list(_TARGET_DEVICES[-1]) if _TARGET_DEVICES else list(jax.devices())


def num_slices(devices: Sequence[Any]) -> int:
    """Number of TPU slices (multi-slice runs connect slices over DCN); 1 elsewhere."""
    return len({getattr(device, "slice_index", 0) for device in devices})


def create_mesh(num_partitions: int | None = None, model_parallel_submesh: Sequence[int] | None = None,
                devices: Sequence[Any] | None = None, ici_mesh_shape: Sequence[int] | None = None,
                dcn_mesh_shape: Sequence[int] | None = None) -> Mesh:
    """A ('data', 'model') mesh over `devices` (default: `default_devices()`), model axis innermost.

    On TPUs the mesh follows the physical topology (neighbouring chips on the model axis);
    TPU v4 per-core devices (two per chip) are ordered so the cores of a chip are neighbours.
    With several slices, model parallelism stays within a slice and the slices add to the
    data axis (their DCN links carry only the gradient reduction). `ici_mesh_shape` /
    `dcn_mesh_shape` (T5X's, both given) set the per-slice and across-slice shapes
    explicitly: `(data, model)` or T5X's `(replica, data, model)`, whose replica and data
    axes together are the data axis here (T5X shards the batch over both).
    """
    devices = list(default_devices() if devices is None else devices)
    if ici_mesh_shape is not None or dcn_mesh_shape is not None:
        return Mesh(_collapse_replica(_hybrid_grid(ici_mesh_shape, dcn_mesh_shape, devices)), MESH_AXES)
    model = model_axis_size(len(devices), num_partitions, model_parallel_submesh)
    slices = num_slices(devices)
    if slices > 1:
        per_slice = len(devices) // slices
        if per_slice % model:
            raise ValueError(f"model parallelism {model} does not divide the {per_slice} devices of one slice "
                             f"({slices} slices): model parallelism stays within a slice")
        return Mesh(_hybrid_grid((per_slice // model, model), (slices, 1), devices), MESH_AXES)
    return Mesh(_device_grid((len(devices) // model, model), devices), MESH_AXES)


def _physical_order(device: Any) -> tuple:
    """Sort key: slice, then chip coordinates (z, y, x), then core within the chip."""
    coords = tuple(getattr(device, "coords", ()) or ())
    return (getattr(device, "slice_index", 0), *reversed(coords), getattr(device, "core_on_chip", 0), device.id)


def _device_grid(shape: Sequence[int], devices: Sequence[Any]) -> np.ndarray:
    """Devices of one slice arranged as `shape`, following the physical topology where known."""
    if devices[0].platform == "cpu":  # no physical topology to follow
        return np.asarray(devices).reshape(shape)
    try:
        return mesh_utils.create_device_mesh(tuple(shape), devices=devices, allow_split_physical_axes=True)
    except (AssertionError, ValueError, NotImplementedError):  # e.g. TPU v4 per-core devices
        return np.asarray(sorted(devices, key=_physical_order)).reshape(shape)


def _hybrid_grid(ici_mesh_shape: Sequence[int] | None, dcn_mesh_shape: Sequence[int] | None,
                 devices: Sequence[Any]) -> np.ndarray:
    """The device array of shape ici * dcn (per axis), each slice one block of it."""
    if ici_mesh_shape is None or dcn_mesh_shape is None:
        raise ValueError("ici_mesh_shape and dcn_mesh_shape go together: set both (dcn all 1s for one slice)")
    ici, dcn = tuple(int(n) for n in ici_mesh_shape), tuple(int(n) for n in dcn_mesh_shape)
    if len(ici) != len(dcn) or len(ici) not in (2, 3):
        raise ValueError(f"ici_mesh_shape {ici} and dcn_mesh_shape {dcn}: expected two (data, model) or three "
                         "(replica, data, model) sizes each")
    if math.prod(ici) * math.prod(dcn) != len(devices):
        raise ValueError(f"ici_mesh_shape {ici} x dcn_mesh_shape {dcn} = {math.prod(ici) * math.prod(dcn)} "
                         f"devices, but there are {len(devices)}")
    slices = num_slices(devices)
    if slices != math.prod(dcn) and slices > 1:
        raise ValueError(f"dcn_mesh_shape {dcn} spans {math.prod(dcn)} slices, but the devices form {slices}")
    if slices > 1:
        return mesh_utils.create_hybrid_device_mesh(ici, dcn, devices=devices, allow_split_physical_axes=True)
    # One slice (or CPU devices): consecutive blocks of devices stand for the DCN groups.
    blocks = np.asarray(sorted(devices, key=_physical_order)).reshape(*dcn, *ici)
    order = [axis for pair in zip(range(len(dcn)), range(len(dcn), 2 * len(dcn))) for axis in pair]
    return blocks.transpose(order).reshape([a * b for a, b in zip(dcn, ici)])


def _collapse_replica(grid: np.ndarray) -> np.ndarray:
    """(replica, data, model) -> (replica * data, model): T5X's batch axes as one data axis."""
    return grid.reshape(-1, grid.shape[-1]) if grid.ndim == 3 else grid


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

    `logical_axis_rules` is 'standard', 'fsdp' or an explicit rule list; `devices` default to
    `default_devices()`; `ici_mesh_shape` / `dcn_mesh_shape` as in `create_mesh`. A mesh axis that does
    not divide an array dimension is dropped for that dimension (the array is replicated
    there instead of failing), and reported by `describe`.
    """

    num_partitions: int | None = 1
    model_parallel_submesh: tuple[int, ...] | None = None
    logical_axis_rules: str | LogicalRules = "standard"
    devices: Sequence[Any] | None = None
    ici_mesh_shape: Sequence[int] | None = None
    dcn_mesh_shape: Sequence[int] | None = None

    def __post_init__(self) -> None:
        self.rules = resolve_rules(self.logical_axis_rules)
        self.mesh = create_mesh(self.num_partitions, self.model_parallel_submesh, self.devices,
                                self.ici_mesh_shape, self.dcn_mesh_shape)

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
