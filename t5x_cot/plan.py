"""`t5x-cot plan`: mesh, param sharding and per-device memory of a training run, before renting it.

Everything is derived from shapes (`jax.eval_shape`): no array is allocated, and the devices
need not exist (`--devices 256` on a laptop). Memory per device:
- params, gradients (float32, sharded like the params) and Adafactor state (factored
  second moments sharded like the reduced param axes);
- activations kept for the backward pass, counted per layer from the T5 shapes (bf16
  activations, float32 logits), without remat and with full per-layer remat (only layer
  inputs kept, one layer recomputed at a time);
- the optimizer update's temporaries (one param-sized float32 buffer, sharded like the params);
- with params sharded over 'data' (fsdp), the gathered weights of the layer being computed and
  its weight gradients before they are reduce-scattered (2 x the largest layer, float32,
  split over 'model' only).
Checked against the TPU compiler's per-chip figures (`t5x-cot plan --topology ... --compile`).
"""
from __future__ import annotations

import argparse
import dataclasses
import re
import sys
from collections.abc import Mapping, Sequence
from typing import Any

HELP = "print the mesh, param sharding and per-device memory of a gin-configured training run"

_UNITS = {"": 1, "B": 1, "KB": 10**3, "MB": 10**6, "GB": 10**9, "TB": 10**12,
          "KIB": 2**10, "MIB": 2**20, "GIB": 2**30, "TIB": 2**40}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--gin_file", action="append", default=[], help="gin file (repeatable)")
    parser.add_argument("--gin_bindings", action="append", default=[], help="gin binding (repeatable)")
    parser.add_argument("--gin_search_paths", default="", help="comma-separated extra gin search paths")
    parser.add_argument("--devices", type=int, default=None, help="number of devices (default: the ones here)")
    parser.add_argument("--device_memory", default=None, help="memory of one device, e.g. 80GB or 16GiB")
    parser.add_argument("--num_partitions", type=int, default=None, help="size of the 'model' mesh axis")
    parser.add_argument("--rules", choices=("standard", "fsdp"), default=None, help="logical axis rule set")
    parser.add_argument("--batch_size", type=int, default=None, help="global batch (default: BATCH_SIZE)")
    parser.add_argument("--inputs_length", type=int, default=None, help="default: TASK_FEATURE_LENGTHS")
    parser.add_argument("--targets_length", type=int, default=None, help="default: TASK_FEATURE_LENGTHS")
    parser.add_argument("--num_microbatches", type=int, default=None)
    parser.add_argument("--topology", default=None,
                        help="plan over a TPU topology's chips (v5e-16, v4-8, v5e:4x4; needs libtpu): mesh, "
                             "rules, batch from the run config, device memory from the chip")
    parser.add_argument("--num_slices", type=int, default=1, help="with --topology: slices over DCN")
    parser.add_argument("--compile", action="store_true",
                        help="with --topology: also compile the train step and print the compiler's peak")


def parse_bytes(text: str) -> int:
    """'80GB' -> 80e9, '16GiB' -> 16 * 2**30, '1024' -> 1024."""
    match = re.fullmatch(r"\s*([0-9.]+)\s*([A-Za-z]*)\s*", text)
    if not match or match.group(2).upper() not in _UNITS:
        raise ValueError(f"cannot read memory size {text!r} (expected e.g. 80GB or 16GiB)")
    return int(float(match.group(1)) * _UNITS[match.group(2).upper()])


def format_bytes(count: float) -> str:
    for unit, size in (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if count >= size:
            return f"{count / size:.2f} {unit}"
    return f"{count:.0f} B"


@dataclasses.dataclass(frozen=True)
class MemoryPlan:
    """Per-device bytes of one training configuration."""

    params: int
    optimizer_state: int
    gradients: int
    activations: int
    activations_remat: int
    update_temporaries: int = 0
    gathered_layer: int = 0

    @property
    def _state_and_work(self) -> int:
        return self.params + self.optimizer_state + self.gradients + self.update_temporaries + self.gathered_layer

    @property
    def total(self) -> int:
        return self._state_and_work + self.activations

    @property
    def total_remat(self) -> int:
        return self._state_and_work + self.activations_remat


@dataclasses.dataclass
class Plan:
    mesh_shape: dict[str, int]
    rules_name: str
    batch_size: int
    lengths: tuple[int, int]
    num_microbatches: int
    param_rows: list[tuple[str, int, tuple, Any, Any, int]]  # name, count, shape, logical, mesh, bytes/device
    memory: MemoryPlan
    num_params: int


def _tree_bytes_per_device(abstract: Any, specs: Any, mesh_shape: Mapping[str, int]) -> int:
    import jax
    import numpy as np

    from t5x_cot.partitioning import shard_shape

    total = 0
    for leaf, spec in zip(jax.tree.leaves(abstract), jax.tree.leaves(specs, is_leaf=_is_spec)):
        total += int(np.prod(shard_shape(leaf.shape, spec, mesh_shape))) * np.dtype(leaf.dtype).itemsize
    return total


def _is_spec(value: Any) -> bool:
    from jax.sharding import PartitionSpec

    return isinstance(value, PartitionSpec)


def activation_bytes(config: Any, batch: int, inputs_length: int, targets_length: int,
                     mesh_shape: Mapping[str, int], remat: bool) -> int:
    """Bytes per device of activations saved for the backward pass of one (micro)batch.

    Per encoder layer: layer-norm inputs/outputs and residuals (6 x E), q/k/v/attention output
    (4 x H*D), attention logits and probabilities (2 x H x L x L), MLP pre-activations,
    activation and product ((n_wi + 2) x F). The decoder adds cross-attention (q over the
    targets, k/v over the inputs, Lt x Li scores). Logits and their gradient are float32 (the softmax is fused into the loss).
    Heads, MLP and vocab dims are split over 'model', the batch over 'data'.
    """
    import numpy as np

    data, model = mesh_shape.get("data", 1), mesh_shape.get("model", 1)
    b = -(-batch // data)
    act = np.dtype(getattr(config, "dtype", "bfloat16")).itemsize
    e = config.emb_dim
    hd = config.num_heads * config.head_dim / model
    h = config.num_heads / model
    f = config.mlp_dim / model
    n_wi = len(config.mlp_activations)
    li, lt = inputs_length, targets_length
    score = 4 if getattr(config, "float32_attention_logits", False) else act

    def attention(lq: int, lk: int) -> float:
        return b * (2 * lq * hd + 2 * lk * hd) * act + 2 * b * h * lq * lk * score

    def mlp(length: int) -> float:
        return b * length * (n_wi + 2) * f * act

    encoder_layer = b * li * 6 * e * act + attention(li, li) + mlp(li)
    decoder_layer = b * lt * 9 * e * act + attention(lt, lt) + attention(lt, li) + mlp(lt)
    logits = 2 * b * lt * config.vocab_size / model * 4  # float32 logits and their gradient
    if not remat:
        return int(config.num_encoder_layers * encoder_layer + config.num_decoder_layers * decoder_layer + logits)
    layer_inputs = b * (config.num_encoder_layers * li + config.num_decoder_layers * lt) * e * act
    return int(layer_inputs + max(encoder_layer, decoder_layer) + logits)


def largest_layer_params(config: Any) -> int:
    """Parameters of the largest layer (a decoder layer: self- and cross-attention, MLP)."""
    joined = config.num_heads * config.head_dim
    attention = 4 * config.emb_dim * joined
    mlp = (len(config.mlp_activations) + 1) * config.emb_dim * config.mlp_dim
    return 2 * attention + mlp if config.num_decoder_layers else attention + mlp


def gathered_layer_bytes(config: Any, rules: Any, mesh_shape: Mapping[str, int]) -> int:
    """Per-device bytes of one layer's weights gathered over 'data' plus their gradients (fsdp)."""
    from t5x_cot.partitioning import mesh_spec

    if mesh_shape.get("data", 1) == 1 or "data" not in tuple(mesh_spec(("embed",), rules, mesh_shape)):
        return 0
    return 2 * 4 * largest_layer_params(config) // mesh_shape.get("model", 1)


def build_plan(model: Any, param_axes: Any, *, mesh_shape: dict[str, int], rules: str | Sequence,
               batch_size: int, lengths: tuple[int, int], num_microbatches: int = 1) -> Plan:
    """The plan of `model` on a ('data', 'model') mesh of `mesh_shape`, from shapes only."""
    import jax
    import numpy as np

    from t5x_cot import optimizers
    from t5x_cot.partitioning import mesh_spec, normalize_axes_tree, optimizer_state_axes, resolve_rules, shard_shape

    rule_list = resolve_rules(rules)
    inputs_length, targets_length = lengths
    input_shapes = {"encoder_input_tokens": (batch_size, inputs_length),
                    "decoder_input_tokens": (batch_size, targets_length),
                    "decoder_target_tokens": (batch_size, targets_length)}
    abstract_params = model.param_shapes(input_shapes)
    axes = normalize_axes_tree(param_axes)
    param_specs = jax.tree.map(lambda ax, x: mesh_spec(ax, rule_list, mesh_shape, x.shape), axes, abstract_params,
                               is_leaf=_is_spec)
    optimizer = optimizers.adafactor()
    abstract_opt = jax.eval_shape(optimizer.init, abstract_params)
    opt_axes = optimizer_state_axes(abstract_opt, abstract_params, axes)
    opt_specs = jax.tree.map(lambda ax, x: mesh_spec(ax, rule_list, mesh_shape, x.shape), opt_axes, abstract_opt,
                             is_leaf=_is_spec)
    params_bytes = _tree_bytes_per_device(abstract_params, param_specs, mesh_shape)
    micro = batch_size // max(1, num_microbatches)
    memory = MemoryPlan(
        params=params_bytes,
        optimizer_state=_tree_bytes_per_device(abstract_opt, opt_specs, mesh_shape),
        gradients=params_bytes * (2 if num_microbatches > 1 else 1),
        activations=activation_bytes(model.config, micro, inputs_length, targets_length, mesh_shape, False),
        activations_remat=activation_bytes(model.config, micro, inputs_length, targets_length, mesh_shape, True),
        update_temporaries=params_bytes,
        gathered_layer=gathered_layer_bytes(model.config, rule_list, mesh_shape))
    groups: dict[str, list] = {}
    flat = jax.tree_util.tree_flatten_with_path(abstract_params)[0]
    for (path, leaf), ax, spec in zip(flat, jax.tree.leaves(axes, is_leaf=_is_spec),
                                      jax.tree.leaves(param_specs, is_leaf=_is_spec)):
        name = re.sub(r"layers_\d+", "layers_*", "/".join(str(getattr(k, "key", k)) for k in path))
        per_device = int(np.prod(shard_shape(leaf.shape, spec, mesh_shape))) * np.dtype(leaf.dtype).itemsize
        row = groups.setdefault(name, [name, 0, tuple(leaf.shape), tuple(ax), tuple(spec), 0])
        row[1] += 1
        row[5] += per_device
    num_params = sum(int(np.prod(x.shape)) for x in jax.tree.leaves(abstract_params))
    rules_name = rules if isinstance(rules, str) else "custom"
    return Plan(dict(mesh_shape), rules_name, batch_size, lengths, num_microbatches,
                [tuple(row) for row in groups.values()], memory, num_params)


def recommend_settings(plan: Plan, device_memory: int | None) -> dict[str, Any] | None:
    """The `T5Config` remat / scan settings to train with (gin: `network.T5Config.remat_policy`,
    `network.T5Config.scan_layers`): no remat, unrolled layers (fastest) when everything fits
    `device_memory` (or it is unknown); full per-layer remat over scanned layers when only
    that fits; None when neither fits."""
    if device_memory is None or plan.memory.total <= device_memory:
        return {"remat_policy": "none", "scan_layers": False}
    if plan.memory.total_remat <= device_memory:
        return {"remat_policy": "full", "scan_layers": True}
    return None


def format_plan(plan: Plan, device_memory: int | None = None) -> str:
    """The report `t5x-cot plan` prints."""
    data, model = plan.mesh_shape["data"], plan.mesh_shape["model"]
    lines = [f"mesh: data={data} x model={model} ({data * model} devices), rules: {plan.rules_name}",
             f"params: {plan.num_params:,} ({format_bytes(plan.num_params * 4)} float32)",
             f"batch: {plan.batch_size} global, {-(-plan.batch_size // data)} per data shard, "
             f"{plan.num_microbatches} microbatch(es); lengths inputs {plan.lengths[0]} targets {plan.lengths[1]}",
             "", "param sharding (layers_* = all layers):"]
    widths = [max(len(str(row[i])) for row in plan.param_rows) for i in (0, 2, 3, 4)]
    header = ("name", "shape", "logical axes", "mesh axes")
    widths = [max(w, len(h)) for w, h in zip(widths, header)]
    lines.append("  " + "  ".join(h.ljust(w) for h, w in zip(header, widths)) + "  count  per device")
    for name, count, shape, logical, mesh, per_device in plan.param_rows:
        cells = (name, str(shape), str(logical), str(mesh))
        lines.append("  " + "  ".join(c.ljust(w) for c, w in zip(cells, widths))
                     + f"  {count:>5}  {format_bytes(per_device)}")
    m = plan.memory
    lines += ["", "per-device memory:",
              f"  params            {format_bytes(m.params)}",
              f"  optimizer state   {format_bytes(m.optimizer_state)}",
              f"  gradients         {format_bytes(m.gradients)}",
              f"  update temporaries {format_bytes(m.update_temporaries)}",
              f"  gathered layer    {format_bytes(m.gathered_layer)} (fsdp: one layer's weights and gradients)",
              f"  activations       {format_bytes(m.activations)} (no remat)  {format_bytes(m.activations_remat)} (full remat)",
              f"  total             {format_bytes(m.total)} (no remat)  {format_bytes(m.total_remat)} (full remat)"]
    if device_memory:
        def verdict(total: int) -> str:
            return "fits" if total <= device_memory else "does NOT fit"
        lines.append(f"  device memory     {format_bytes(device_memory)}: {verdict(m.total)} without remat, "
                     f"{verdict(m.total_remat)} with full remat")
        settings = recommend_settings(plan, device_memory)
        if settings is None:
            lines.append("  recommended       nothing fits: more devices, a smaller batch or microbatches")
        else:
            lines.append("  recommended       " + ", ".join(f"network.T5Config.{k} = {v!r}" for k, v in settings.items())
                         + " (recompute costs about one extra forward pass)" * (settings["remat_policy"] == "full"))
    return "\n".join(lines)


def _gin_value(selector: str, default: Any) -> Any:
    from t5x_cot.gin_utils import gin

    try:
        value = gin.query_parameter(selector)
    except ValueError:
        return default
    return default if isinstance(value, gin.config.ConfigurableReference) else value


def selected_total(plan: Plan, remat_policy: str) -> int:
    """The plan's total for the run's remat setting (full remat keeps only layer inputs)."""
    return plan.memory.total if remat_policy == "none" else plan.memory.total_remat


def plan_of_setup(setup: Any) -> Plan:
    """The plan of a run's train step (`t5x_cot.compile.train_setup.TrainSetup`), on its mesh."""
    from t5x_cot.compile import step_compile
    from t5x_cot.model import network

    s = step_compile.settings(setup)
    built = build_plan(setup.model, network.param_logical_axes(setup.model.config),
                       mesh_shape={k: int(v) for k, v in setup.partitioner.mesh.shape.items()},
                       rules=setup.partitioner.rules, batch_size=s["batch_size"],
                       lengths=(s["inputs_length"], s["targets_length"]), num_microbatches=s["num_microbatches"])
    built.rules_name = s["rules"]
    return built


def _run_on_topology(args: argparse.Namespace) -> int:
    """Plan (and with --compile, compile) the run over the chips of --topology."""
    from t5x_cot.compile import run_config, step_compile, topology

    target = topology.parse_topology(args.topology, args.num_slices)
    devices = topology.topology_devices(target)
    setup = run_config.train_setup(devices)
    setup = step_compile.vary(setup, batch_size=args.batch_size, num_partitions=args.num_partitions,
                              rules=args.rules, num_microbatches=args.num_microbatches)
    s = step_compile.settings(setup)
    hbm = parse_bytes(args.device_memory) if args.device_memory else topology.hbm_per_chip(devices[0].device_kind)
    built = plan_of_setup(setup)
    print(f"topology: {target.name} ({target.jax_name}), {len(devices)} x {devices[0].device_kind}")
    print(format_plan(built, hbm))
    if args.compile:
        report = step_compile.compile_report(setup, target, devices, decode=False)
        peak = report["train_step"]["memory"]["peak_bytes"]
        total = selected_total(built, s["remat_policy"])
        print(f"compiler: peak {format_bytes(peak)} per chip ({'fits' if report['fits'] else 'does NOT fit'}); "
              f"plan {format_bytes(total)} (remat {s['remat_policy']}): plan / compiler = {total / peak:.2f}")
    return 0


def _gin_first(selectors: Sequence[str], default: Any) -> Any:
    """The first of `selectors` the config binds (ours, then T5X's names), else `default`."""
    for selector in selectors:
        value = _gin_value(selector, None)
        if value is not None:
            return value
    return default


def run(args: argparse.Namespace) -> int:
    import jax

    from t5x_cot import gin_utils
    from t5x_cot.compile import run_config
    from t5x_cot.errors import UserError
    from t5x_cot.model import network

    try:
        run_config.parse_run_config(args.gin_file, args.gin_bindings, [p for p in args.gin_search_paths.split(",") if p],
                                    needed_macros=run_config.NEEDED_MACROS if args.topology else ())
        if args.topology:
            return _run_on_topology(args)
        model = run_config.configured_model()
    except UserError as error:
        print(f"error: {str(error).strip().splitlines()[0]}", file=sys.stderr)
        return 2
    if args.compile:
        print("error: --compile needs --topology (e.g. v5e-16)", file=sys.stderr)
        return 2
    lengths = gin_utils.macro_value("TASK_FEATURE_LENGTHS") or {"inputs": 512, "targets": 256}
    devices = args.devices or jax.device_count()
    num_partitions = args.num_partitions or _gin_first(
        ("partitioning.Partitioner.num_partitions", "partitioning.PjitPartitioner.num_partitions"), 1) or 1
    if devices % num_partitions:
        print(f"error: --num_partitions {num_partitions} does not divide {devices} devices", file=sys.stderr)
        return 2
    plan = build_plan(
        model, network.param_logical_axes(model.config),
        mesh_shape={"data": devices // num_partitions, "model": num_partitions},
        rules=args.rules or _gin_value("partitioning.Partitioner.logical_axis_rules", "standard"),
        batch_size=args.batch_size or gin_utils.macro_value("BATCH_SIZE") or 128,
        lengths=(args.inputs_length or lengths["inputs"], args.targets_length or lengths["targets"]),
        num_microbatches=args.num_microbatches or _gin_first(
            ("train.num_microbatches", "trainer.Trainer.num_microbatches"), 1) or 1)
    print(format_plan(plan, parse_bytes(args.device_memory) if args.device_memory else None))
    return 0
