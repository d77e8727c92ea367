"""Run one train step on 1 device and on 8 forced CPU devices in several layouts; print max errors.

Run in a subprocess with XLA_FLAGS=--xla_force_host_platform_device_count=8. Prints one JSON
object: for each layout, the loss relative error and the max |param difference| against the
single-device step (float32, dropout off), plus the same for 2 microbatches on 1 device.
"""
from __future__ import annotations

import json
import sys

import jax
import numpy as np
import support
import train_helpers

from t5x_cot import optimizers
from t5x_cot.partitioning import Partitioner
from t5x_cot.trainer import Trainer

LAYOUTS = {"data=8": dict(num_partitions=1), "data=2,model=4": dict(num_partitions=4),
           "fsdp data=8": dict(num_partitions=1, logical_axis_rules="fsdp")}


def run_step(model: object, params: object, batch: dict, partitioner: Partitioner, microbatches: int = 1) -> tuple:
    trainer = Trainer(model, optimizers.adafactor(1e-2, min_dim_size_to_factor=16), partitioner,
                      train_helpers.shapes_of(batch), num_microbatches=microbatches)
    state = trainer.state_from_params(jax.device_put(params, trainer.state_shardings.params))
    state, metrics = trainer.train_step(state, partitioner.global_batch(batch, len(batch["encoder_input_tokens"])))
    return float(metrics["loss"]), jax.device_get(state.params), trainer


def main() -> None:
    assert jax.device_count() == 8, jax.devices()
    model = support.tiny_model(emb_dim=32, num_heads=4, mlp_dim=64)
    batch = train_helpers.random_batch(8, 16, 12)
    params = jax.device_get(model.init_params(jax.random.PRNGKey(0), train_helpers.shapes_of(batch)))
    one = Partitioner(devices=jax.devices()[:1])
    base_loss, base_params, _ = run_step(model, params, batch, one)
    report = {"loss": base_loss}
    runs = {name: Partitioner(**kw) for name, kw in LAYOUTS.items()}
    runs["1 device, 2 microbatches"] = one
    for name, partitioner in runs.items():
        loss, new_params, trainer = run_step(model, params, batch, partitioner, 2 if "microbatches" in name else 1)
        param_error = max(float(np.max(np.abs(a - b))) for a, b in zip(jax.tree.leaves(new_params),
                                                                        jax.tree.leaves(base_params)))
        specs = {str(s.spec) for s in jax.tree.leaves(trainer.state_shardings.params)}
        report[name] = {"loss_rel_error": abs(loss - base_loss) / abs(base_loss), "param_max_abs_error": param_error,
                        "param_specs": sorted(specs)}
    json.dump(report, sys.stdout)


if __name__ == "__main__":
    main()
