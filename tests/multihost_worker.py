"""One of two processes (4 CPU devices each) training the tiny model with jax.distributed.

Usage: python multihost_worker.py PROCESS_ID PORT MODEL_DIR. Needs
XLA_FLAGS=--xla_force_host_platform_device_count=4. Prints one JSON line: process id, final
step, last loss and the sum of all params (the same on every process when they agree).
"""
from __future__ import annotations

import json
import sys

import jax

jax.config.update("jax_cpu_collectives_implementation", "gloo")


def main(process_id: int, port: int, model_dir: str) -> None:
    jax.distributed.initialize(f"127.0.0.1:{port}", num_processes=2, process_id=process_id)
    import jax.numpy as jnp
    import support
    import synthetic_task

    from t5x_cot import data_pipeline, train
    from t5x_cot.partitioning import Partitioner

    data = data_pipeline.DatasetConfig(mixture_or_task_name=synthetic_task.NAME, module=None,
                                       task_feature_lengths={"inputs": 16, "targets": 16}, batch_size=8)
    result = train.train(model=support.tiny_model(), model_dir=model_dir, train_dataset_cfg=data,
                         total_steps=4, partitioner=Partitioner(num_partitions=2),
                         checkpoint_cfg=train.CheckpointConfig(period=2), log_every=1)
    total = jax.jit(lambda p: sum(jnp.sum(x) for x in jax.tree.leaves(p)))(result.state.params)
    print(json.dumps({"process": jax.process_index(), "processes": jax.process_count(),
                      "devices": jax.device_count(), "step": result.step, "loss": result.metrics["loss"],
                      "param_sum": float(total)}), flush=True)
    jax.distributed.shutdown()


if __name__ == "__main__":
    main(int(sys.argv[1]), int(sys.argv[2]), sys.argv[3])
