"""Compile a run's real train step (and its decode path) for a TPU topology; the report.

The report (what `t5x-cot compile` prints and writes as JSON) holds the target (`topology`,
`devices`, `device_kind`, `hbm_per_chip_bytes`, `mesh`), the run's settings, and per step the
compiler's per-chip memory (`peak_bytes` is what must fit), the collectives, the FLOPs
(`explicit`: the T5 count of `t5x_cot.model.flops`; `compiler`: only where trustworthy, see
`analysis`) and the compile time; `fits` compares the train step's peak with the chip's HBM,
and `advice` says what would make a config that does not fit fit.
"""
from __future__ import annotations

import copy
import dataclasses
import math
from typing import Any

from t5x_cot.compile import analysis, decode_step
from t5x_cot.compile import topology as topo
from t5x_cot.compile.train_setup import TrainSetup

GIB = 2**30


def rules_name(partitioner: Any) -> str:
    """'fsdp' when params are sharded over data (embed -> data), else 'standard' (or 'custom')."""
    from t5x_cot import partitioning

    rules = [tuple(rule) for rule in partitioner.rules]
    for name in partitioning.RULE_SETS:
        if rules[-len(partitioning.resolve_rules(name)):] == partitioning.resolve_rules(name):
            return name
    return "custom"


def vary(setup: TrainSetup, *, batch_size: int | None = None, num_partitions: int | None = None,
         rules: str | None = None, remat_policy: str | None = None, scan_layers: bool | None = None,
         num_microbatches: int | None = None) -> TrainSetup:
    """The same run with some settings changed (the partitioner is rebuilt on its own devices)."""
    from t5x_cot.model.network import Transformer

    model = setup.model
    changes = {k: v for k, v in (("remat_policy", remat_policy), ("scan_layers", scan_layers)) if v is not None}
    if changes:
        model = copy.copy(setup.model)
        model.config = dataclasses.replace(setup.model.config, **changes)
        model.module = Transformer(model.config)
    partitioner = setup.partitioner
    if num_partitions is not None or rules is not None:
        partitioner = dataclasses.replace(
            partitioner, devices=list(partitioner.mesh.devices.flat), model_parallel_submesh=None,
            ici_mesh_shape=None, dcn_mesh_shape=None,
            num_partitions=num_partitions or int(partitioner.mesh.shape["model"]),
            logical_axis_rules=rules or partitioner.logical_axis_rules)
    shapes = setup.input_shapes
    if batch_size is not None:
        shapes = {name: (batch_size, *shape[1:]) for name, shape in shapes.items()}
    return dataclasses.replace(setup, model=model, partitioner=partitioner, input_shapes=shapes,
                               num_microbatches=num_microbatches or setup.num_microbatches)


def settings(setup: TrainSetup) -> dict[str, Any]:
    """The settings of a run that decide its memory and speed."""
    config = setup.model.config
    batch, inputs_length = setup.input_shapes["encoder_input_tokens"]
    return {"entry": setup.entry, "batch_size": batch, "inputs_length": inputs_length,
            "targets_length": setup.input_shapes["decoder_target_tokens"][1],
            "num_microbatches": setup.num_microbatches, "rules": rules_name(setup.partitioner),
            "num_partitions": int(setup.partitioner.mesh.shape["model"]), "remat_policy": config.remat_policy,
            "scan_layers": config.scan_layers, "dtype": str(config.dtype)}


def explicit_flops(setup: TrainSetup) -> int:
    """Training FLOPs of one step from the explicit T5 count (all chips together)."""
    from t5x_cot.model import flops

    s = settings(setup)
    return int(flops.train_flops_per_example(setup.model.config, s["inputs_length"], s["targets_length"])) * s["batch_size"]


def compile_train(setup: TrainSetup) -> tuple[Any, Any, analysis.StepReport]:
    """(lowered, compiled, report) of the run's train step."""
    lowered = setup.trainer().lower_train_step()
    compiled, report = analysis.compile_step(lowered)
    return lowered, compiled, report


def _step_dict(report: analysis.StepReport, hbm: int | None, explicit: int, chips: int) -> dict[str, Any]:
    out = report.as_dict()
    out["fits"] = False if report.out_of_memory else None if hbm is None else report.peak_bytes <= hbm
    out["flops"] = {"explicit_per_step": explicit, "explicit_per_chip": explicit / chips,
                    "compiler_per_chip": report.compiler_flops,
                    "compiler_note": None if report.compiler_flops is not None else
                    "not reported: the optimized HLO has loops (scanned layers or microbatches), whose "
                    "bodies the compiler's cost analysis counts once"}
    return out


def advice(setup: TrainSetup, train: analysis.StepReport, hbm: int, chips: int) -> list[str]:
    """What would make a train step that needs `train.peak_bytes` per chip fit in `hbm`."""
    s, memory = settings(setup), train.memory
    tips = [train.out_of_memory or f"needs {memory['peak_bytes'] / GIB:.2f} GiB per chip, the chip has {hbm / GIB:.0f} GiB"]
    if s["rules"] != "fsdp":
        tips.append("shard params and optimizer state over data: T5X run files "
                    "partitioning.standard_logical_axis_rules.parameter_partitioning_dims = 2; ours "
                    "partitioning.Partitioner.logical_axis_rules = 'fsdp'")
    if s["remat_policy"] == "none":
        tips.append("recompute activations: network.T5Config.remat_policy = 'full' with "
                    "network.T5Config.scan_layers = True")
    if memory["temp_bytes"] > (memory["argument_bytes"] or 0) and s["batch_size"] // s["num_microbatches"] > 1:
        tips.append(f"accumulate gradients: num_microbatches = {2 * s['num_microbatches']} "
                    "(trainer.Trainer.num_microbatches in T5X run files, train.num_microbatches in ours)")
    tips.append(f"or a larger slice: about {math.ceil(memory['peak_bytes'] / hbm) * chips} chips at this sharding "
                "(t5x-cot compile --search tries the settings)")
    return tips


def compile_report(setup: TrainSetup, target: topo.Topology, devices: list[Any], *,
                   decode: bool = True) -> dict[str, Any]:
    """Compile the train step (and the decode path) of `setup` over `devices`; the report."""
    from t5x_cot.model import flops

    kind = devices[0].device_kind
    hbm = topo.hbm_per_chip(kind)
    chips = len(devices)
    _, _, train = compile_train(setup)
    s = settings(setup)
    report: dict[str, Any] = {
        "topology": {"name": target.name, "jax_name": target.jax_name, "accelerator_type": target.accelerator_type,
                     "num_slices": target.num_slices},
        "devices": chips, "device_kind": kind, "hbm_per_chip_bytes": hbm,
        "mesh": {name: int(size) for name, size in setup.partitioner.mesh.shape.items()},
        "settings": s, "train_step": _step_dict(train, hbm, explicit_flops(setup), chips)}
    report["fits"] = report["train_step"]["fits"]
    if report["fits"] is False:
        report["advice"] = advice(setup, train, hbm, chips)
    if decode:
        trainer = setup.trainer()
        lowered = decode_step.lower_decode(setup.model.config, setup.partitioner,
                                           trainer.abstract_sharded_state().params, s["batch_size"],
                                           s["inputs_length"], s["targets_length"])
        prefill = flops.decode_flops_per_example(setup.model.config, s["inputs_length"], 0)
        decode_flops = {"prefill": prefill, "greedy_step":
                        flops.decode_flops_per_example(setup.model.config, s["inputs_length"], 1) - prefill}
        report["decode"] = {}
        for name, step in lowered.items():
            _, step_report = analysis.compile_step(step)
            report["decode"][name] = _step_dict(step_report, hbm, decode_flops[name] * s["batch_size"], chips)
    return report
