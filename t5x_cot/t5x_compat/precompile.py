"""`train_script.precompile`: T5X's `precompile.precompile`, compiling the train step for a TPU
topology from any machine (libtpu's compile-only backend).

T5X's `t5x/configs/runs/precompile.gin` binds it; `python -m t5x_cot.main --run_mode=precompile`
runs it. As T5X's, it writes to MODEL_DIR the serialized HLO module protos
`lowered_hlo_pre_optimization` and `lowered_hlo_post_optimization`, and `assignment` (the
mesh's device ids, `np.save`). T5X's precompile has no topology argument: the target is
`TPU_ACCELERATOR_TYPE` (a Cloud TPU accelerator type as libtpu reads it, e.g. `v4-8`,
`v5litepod-16`), `DEFAULT_TARGET` when unset. The batch shapes come from the DatasetConfig
(BATCH_SIZE, TASK_FEATURE_LENGTHS, pack): no data is read. The step is traced, as in T5X, at
a constant learning rate of 1e-3 without microbatches.
"""
from __future__ import annotations

import dataclasses
import io
import logging
from collections.abc import Callable
from typing import Any

from t5x_cot.t5x_compat import UnsupportedT5XFeature

DEFAULT_TARGET = "v4-8"
TARGET_ENV = "TPU_ACCELERATOR_TYPE"
OUTPUTS = ("lowered_hlo_pre_optimization", "lowered_hlo_post_optimization", "assignment")


def target_name() -> str:
    """The precompile target: $TPU_ACCELERATOR_TYPE, else DEFAULT_TARGET."""
    from t5x_cot.compile import topology

    return topology.user_setting(TARGET_ENV) or DEFAULT_TARGET


def target_devices() -> list[Any]:
    """The compile-only devices of the precompile target."""
    from t5x_cot.compile import topology

    return topology.topology_devices(topology.parse_topology(target_name()))


def precompile_setup(*, model: Any, train_dataset_cfg: Any, partitioner: Any, random_seed: int | None) -> Any:
    """The train step T5X's precompile traces, over TPU devices (the partitioner is rebuilt over the
    target's devices when it was built elsewhere)."""
    from t5x_cot import data_pipeline, optimizers
    from t5x_cot.compile.train_setup import T5X_PRECOMPILE_LEARNING_RATE, TrainSetup

    if next(iter(partitioner.mesh.devices.flat)).platform != "tpu":
        partitioner = dataclasses.replace(partitioner, devices=target_devices())
    learning_rate_fn = optimizers.constant_schedule(T5X_PRECOMPILE_LEARNING_RATE)
    return TrainSetup(model=model, partitioner=partitioner, optimizer=model.optimizer_def.to_optax(learning_rate_fn),
                      learning_rate_fn=learning_rate_fn, num_microbatches=1,
                      input_shapes=data_pipeline.batch_shapes(train_dataset_cfg, train_dataset_cfg.batch_size),
                      seed=int(random_seed or 0), entry="train_script.precompile")


def precompile(*, model: Any, train_dataset_cfg: Any, partitioner: Any, model_dir: str, random_seed: int | None,
               get_dataset_fn: Callable[..., Any] | None = None,
               verify_matching_vocabs_fn: Callable[[Any, Any], None] | None = None) -> dict[str, str]:
    """Compile the train step and write T5X's precompile outputs to `model_dir`; their paths."""
    import numpy as np

    from t5x_cot import paths
    from t5x_cot.compile import analysis

    if get_dataset_fn is not None:
        raise UnsupportedT5XFeature("train_script.precompile.get_dataset_fn: the batch shapes come from "
                                    "train_dataset_cfg (BATCH_SIZE, TASK_FEATURE_LENGTHS); no dataset is read")
    if verify_matching_vocabs_fn is not None:
        verify_matching_vocabs_fn(train_dataset_cfg, model)
    paths.check_writable(model_dir, "MODEL_DIR")
    setup = precompile_setup(model=model, train_dataset_cfg=train_dataset_cfg, partitioner=partitioner,
                             random_seed=random_seed)
    lowered = setup.trainer().lower_train_step()
    written = {"lowered_hlo_pre_optimization": lowered.compiler_ir(dialect="hlo").as_serialized_hlo_module_proto()}
    compiled, report = analysis.compile_step(lowered)
    if compiled is None:
        _write_bytes(paths.join(model_dir, OUTPUTS[0]), written[OUTPUTS[0]])
        raise analysis.DoesNotFit(f"the train step does not fit a {target_name()} chip: {report.out_of_memory}")
    written["lowered_hlo_post_optimization"] = compiled.runtime_executable().hlo_modules()[0].as_serialized_hlo_module_proto()
    buffer = io.BytesIO()
    np.save(buffer, np.vectorize(lambda d: d.id)(setup.partitioner.mesh.devices))
    written["assignment"] = buffer.getvalue()
    out = {}
    for name in OUTPUTS:
        out[name] = paths.join(model_dir, name)
        _write_bytes(out[name], written[name])
    logging.info("precompiled for %s: %.2f GiB per chip, %.1f s; wrote %s", target_name(),
                 report.peak_bytes / 2**30, report.compile_seconds, ", ".join(out.values()))
    return out


def _write_bytes(path: str, data: bytes) -> None:
    """Write a local file, or a URL (gs://...) through tf.io.gfile as T5X does."""
    import pathlib

    from t5x_cot import paths

    if not paths.is_url(path):
        pathlib.Path(path).parent.mkdir(parents=True, exist_ok=True)
        pathlib.Path(path).write_bytes(data)
        return
    import tensorflow as tf

    with tf.io.gfile.GFile(path, "wb") as handle:
        handle.write(data)
