"""Fine-tune (or pretrain) a T5 model, configured by gin as T5X's `train.py`.

    python -m t5x_cot.train --gin_file=gin/models/t5_1_1/tiny.gin --gin_file=gin/runs/finetune.gin \
        --gin.MODEL_DIR="'/tmp/x'" --gin.MIXTURE_OR_TASK_NAME="'coinflip_gold_cot'" --gin.TRAIN_STEPS=20

T5X's own run files work too (`--gin_file=t5x/configs/runs/finetune.gin`, see
`t5x_cot.t5x_compat`), with T5X's absl flags (`--alsologtostderr`, `--tfds_data_dir`,
`--seqio_additional_cache_dirs`, ...).

Rerunning the same command resumes from the newest checkpoint in MODEL_DIR (params,
optimizer state and data position). SIGTERM saves a checkpoint and exits cleanly.
Multi-host: pass `--multiprocess_gpu --coordinator_address=HOST:PORT --process_count=N
--process_index=I` (or `--distributed` where JAX finds them itself, e.g. TPU VMs and Slurm).
"""
from __future__ import annotations

import argparse
import contextlib
import dataclasses
import signal
import sys
import threading
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from t5x_cot import gin_utils

gin = gin_utils.gin
DEFAULT_LOG_EVERY = 10
INFERENCE_EVAL_DIR = "inference_eval"


def inference_eval_dir(model_dir: str) -> str:
    """Where inference evaluation during training writes (MODEL_DIR/inference_eval, as T5X)."""
    from t5x_cot import paths

    return paths.join(model_dir, INFERENCE_EVAL_DIR)


def _say(message: str) -> None:
    """A run-level message on stdout (process 0 only), next to the progress lines."""
    import jax

    if jax.process_index() == 0:
        print(message, flush=True)


@dataclasses.dataclass(frozen=True)
class CheckpointConfig:
    """When to save: every `period` steps (and at the end), keeping the newest `keep` (None: all)."""

    period: int = 1000
    keep: int | None = None
    use_async: bool = True


@dataclasses.dataclass
class TrainResult:
    """What `train` returns: the final state, its step, and the last logged metric window."""

    state: Any
    step: int
    metrics: dict[str, float]
    preempted: bool = False


def train(*, model: Any, model_dir: str, train_dataset_cfg: Any, total_steps: int | None,
          partitioner: Any = None, optimizer: Any = None, learning_rate_fn: Any = None,
          num_microbatches: int = 1, initial_checkpoint_path: str | None = None, random_seed: int | None = 0,
          checkpoint_cfg: CheckpointConfig = CheckpointConfig(), eval_period: int | None = None,
          eval_steps: int = 10, eval_split: str = "validation", log_every: int = DEFAULT_LOG_EVERY,
          eval_dataset_cfg: Any = None, relative_steps: int | None = None, restore_dtype: str | None = None,
          inference_evaluator: Any = None) -> TrainResult:
    """Train `model` on `train_dataset_cfg` until step `total_steps`, resuming from MODEL_DIR.

    Args:
      model: `EncoderDecoderModel`.
      model_dir: where checkpoints, config.json, config.gin, TensorBoard events and
        train_metrics.jsonl go.
      train_dataset_cfg: `data_pipeline.DatasetConfig` (global batch size, lengths, seed).
      total_steps: the step to stop at (TRAIN_STEPS, absolute as in T5X: a run started from a
        checkpoint of step N trains total_steps - N steps).
      partitioner: `partitioning.Partitioner` (default: data parallel over all devices).
      optimizer: optax transformation (default: T5X Adafactor with `learning_rate_fn`).
      learning_rate_fn: schedule (default: T5X fine-tuning constant 1e-3).
      num_microbatches: gradient accumulation steps per update.
      initial_checkpoint_path: params to start from (fresh optimizer state, the checkpoint's
        step) when MODEL_DIR has no checkpoint yet: a native T5X checkpoint (msgpack file or
        tensorstore dir), a params checkpoint, a step dir or another MODEL_DIR.
      random_seed: seed of init, dropout and data order (None counts as 0, so reruns match).
      checkpoint_cfg: save period and retention.
      eval_period: every this many steps, the teacher-forced loss on `eval_steps` batches of
        `eval_split` is logged (None or 0: never).
      log_every: steps between metric fetches (the only host syncs of the loop).
      eval_dataset_cfg: the dataset of the teacher-forced evaluation (default: the training
        config with `eval_split`, unshuffled).
      relative_steps: train this many steps past the restored step (T5X's
        TRAIN_STEPS_RELATIVE); overrides `total_steps`.
      restore_dtype: dtype the initial checkpoint's params are rounded to (T5X's
        RestoreCheckpointConfig.dtype); training keeps float32 params.
      inference_evaluator: an object with `evaluate(params, step) -> {task: {metric: value}}`,
        called every `eval_period` steps; its metrics go to TensorBoard as
        `inference_eval/<task>/<metric>`.
    """
    import jax

    from t5x_cot import checkpoints, data_pipeline, optimizers, paths, summaries
    from t5x_cot.partitioning import Partitioner
    from t5x_cot.trainer import Trainer

    paths.check_writable(model_dir, "MODEL_DIR")
    if total_steps is None and relative_steps is None:
        raise gin_utils.GinConfigError("set TRAIN_STEPS (absolute) or TRAIN_STEPS_RELATIVE")
    seed = 0 if random_seed is None else int(random_seed)
    partitioner = partitioner or Partitioner()
    learning_rate_fn = learning_rate_fn or optimizers.constant_schedule()
    optimizer = optimizer or optimizers.adafactor(learning_rate_fn)
    data_cfg = dataclasses.replace(train_dataset_cfg, seed=seed if train_dataset_cfg.seed is None
                                   else train_dataset_cfg.seed)
    global_batch = data_cfg.batch_size
    per_host, shard_id, num_shards = partitioner.data_layout(global_batch)
    input_shapes = data_pipeline.batch_shapes(data_cfg, global_batch)

    checkpoints.check_model_dir(model_dir, model.config)
    trainer = Trainer(model, optimizer, partitioner, input_shapes, learning_rate_fn=learning_rate_fn,
                      num_microbatches=num_microbatches, seed=seed)
    checkpointer = checkpoints.TrainCheckpointer(model_dir, period=checkpoint_cfg.period,
                                                 keep=checkpoint_cfg.keep, use_async=checkpoint_cfg.use_async)
    state, start_batch = _initial_state(trainer, checkpointer, initial_checkpoint_path, seed, restore_dtype)
    start_step = int(jax.device_get(state.step))
    if relative_steps is not None:
        total_steps = start_step + int(relative_steps)
    if jax.process_index() == 0 and gin.config_str().strip():
        gin_utils.write_operative_config(model_dir)

    if start_step >= total_steps:
        _say(f"MODEL_DIR {model_dir} is already at step {start_step} (TRAIN_STEPS {total_steps}): nothing to do")
        checkpointer.close()
        return TrainResult(state, start_step, {})
    metrics = summaries.MetricLogger(model_dir, total_steps=total_steps, start_step=start_step,
                                     flops_per_step=_flops_per_step(model.config, input_shapes),
                                     log_every=log_every)
    batches = data_pipeline.BatchIterator(data_cfg, shard_id=shard_id, num_shards=num_shards,
                                          start_batch=start_batch, per_host_batch_size=per_host)
    eval_batches: list | None = None

    step = start_step
    with _preemption_flag() as preempted:
        for step in range(start_step + 1, total_steps + 1):
            local = next(batches)
            real, padded = summaries.count_tokens(local)
            state, step_metrics = trainer.train_step(state, partitioner.global_batch(local, global_batch))
            first = step == start_step + 1
            if first:  # compilation: not part of the throughput windows
                jax.block_until_ready(step_metrics)
            metrics.add(step, step_metrics, real * num_shards, padded * num_shards, timed=not first)
            if checkpointer.should_save(step):
                checkpointer.save(step, state, batches.state())
            if eval_period and step % eval_period == 0:
                if eval_batches is None:
                    eval_cfg = eval_dataset_cfg or dataclasses.replace(data_cfg, split=eval_split, shuffle=False)
                    eval_batches = _eval_batches(eval_cfg, eval_steps, shard_id, num_shards, per_host)
                metrics.scalars(step, _evaluate(trainer, state.params, eval_batches, partitioner, global_batch))
                if inference_evaluator is not None:
                    metrics.scalars(step, _inference_eval(inference_evaluator, state.params, step))
            if _stop_requested(preempted, step, log_every):
                _say(f"SIGTERM: saving step {step} and exiting")
                break
        checkpointer.save(step, state, batches.state())
        checkpointer.close()
        metrics.close()
        return TrainResult(state, step, metrics.last, preempted=preempted.is_set())


def _initial_state(trainer: Any, checkpointer: Any, initial_checkpoint_path: str | None,
                   seed: int, restore_dtype: str | None = None) -> tuple[Any, int]:
    """(state, data position): resume MODEL_DIR, else start from INITIAL_CHECKPOINT_PATH, else init."""
    import jax

    from t5x_cot import checkpoints

    latest = checkpointer.latest_step()
    if latest is not None:
        state, meta = checkpointer.restore(latest, trainer.abstract_sharded_state())
        _say(f"resuming from {checkpointer.model_dir} step {latest}")
        return state, int(meta.get("data", {}).get("batches", latest))
    if initial_checkpoint_path:
        abstract = trainer.abstract_sharded_state().params
        params, step = checkpoints.restore_checkpoint(initial_checkpoint_path, abstract, restore_dtype)
        _say(f"starting from the params in {initial_checkpoint_path} at step {step} (fresh optimizer state)")
        return trainer.state_from_params(params, step), 0
    return trainer.init_state(jax.random.PRNGKey(seed)), 0


def _flops_per_step(config: Any, input_shapes: Mapping[str, tuple[int, ...]]) -> float | None:
    """Training FLOPs of one step at the padded batch shape, from the explicit T5 count."""
    from t5x_cot.model import flops

    batch, input_length = input_shapes["encoder_input_tokens"]
    target_length = input_shapes["decoder_target_tokens"][1]
    return float(flops.train_flops_per_example(config, input_length, target_length)) * batch


def _eval_batches(eval_cfg: Any, steps: int, shard_id: int, num_shards: int, per_host: int) -> list:
    """A fixed list of host batches of `eval_cfg` (the same ones at every evaluation)."""
    from t5x_cot import data_pipeline

    dataset = data_pipeline.get_dataset(eval_cfg, shard_id=shard_id, num_shards=num_shards,
                                        per_host_batch_size=per_host)
    return [{k: v.astype("int32") for k, v in batch.items()}
            for batch in dataset.take(steps).as_numpy_iterator()]


def _evaluate(trainer: Any, params: Any, batches: list, partitioner: Any, global_batch: int) -> dict[str, float]:
    import jax
    import numpy as np

    results = jax.device_get([trainer.eval_step(params, partitioner.global_batch(batch, global_batch))
                              for batch in batches])
    return {f"eval/{name}": float(np.mean([r[name] for r in results])) for name in (results[0] if results else {})}


def _inference_eval(evaluator: Any, params: Any, step: int) -> dict[str, float]:
    """Run the inference evaluator; its {task: {metric: value}} as flat TensorBoard tags."""
    results = evaluator.evaluate(params, step)
    flat = {f"inference_eval/{task}/{name}": float(value)
            for task, values in results.items() for name, value in values.items()
            if isinstance(value, (int, float))}
    _say(f"step {step} inference eval: " + ", ".join(f"{tag[len('inference_eval/'):]} {value:.4g}"
                                                      for tag, value in flat.items()))
    return flat


@contextlib.contextmanager
def _preemption_flag() -> Iterator[threading.Event]:
    """An event set by SIGTERM while training (the previous handler is restored afterwards)."""
    flag = threading.Event()
    if threading.current_thread() is not threading.main_thread():
        yield flag
        return
    previous = signal.signal(signal.SIGTERM, lambda *_: flag.set())
    try:
        yield flag
    finally:
        signal.signal(signal.SIGTERM, previous)


def _stop_requested(flag: threading.Event, step: int, log_every: int) -> bool:
    """Whether to stop now; multi-host runs agree on it every `log_every` steps."""
    import jax

    if jax.process_count() == 1:
        return flag.is_set()
    if step % max(1, log_every):
        return False
    from jax.experimental import multihost_utils

    return bool(multihost_utils.process_allgather(flag.is_set()).any())


# ------------------------------------------------------------------------------ command line


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m t5x_cot.train", description=__doc__.split("\n")[0])
    gin_utils.add_t5x_flags(parser)
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point: gin flags (see `gin_utils`) and T5X's absl flags.

    T5X run files (`import __main__ as train_script`, `from t5x import ...`) go through
    `t5x_cot.t5x_compat`; our own run files configure `train` directly.
    """
    from t5x_cot import checkpoints, data_pipeline, paths, t5x_compat
    from t5x_cot.t5x_compat import train_script

    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        files, bindings, search_paths, rest = gin_utils.split_gin_flags(argv)
    except gin_utils.GinConfigError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    gin_utils.apply_t5x_flags(parse_args(rest))
    t5x_compat.install()
    t5x_compat.bind_script("train", train_script.train)
    try:
        gin_utils.register_configurables()
        gin_utils.parse_gin(files, bindings, search_paths)
        gin_utils.call_configurable(train_script.train if gin_utils.is_configured(train_script.train) else train)
    except (gin_utils.GinConfigError, checkpoints.CheckpointError, data_pipeline.DataConfigError,
            paths.PathError, t5x_compat.UnsupportedT5XFeature) as error:
        print(f"error: {str(error).strip().splitlines()[0]}", file=sys.stderr)  # without gin's call trail
        return 2
    return 0


if __name__ == "__main__":
    from t5x_cot import train as _canonical  # run the importable module, so gin sees one `train`

    sys.exit(_canonical.main())
