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
TRAINING_EVAL_DIR = "training_eval"


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
          inference_evaluator: Any = None, terminate_on_nan: bool = True, restore_optimizer_state: bool = True,
          run_eval_before_training: bool = False) -> TrainResult:
    """Train `model` on `train_dataset_cfg` until step `total_steps`, resuming from MODEL_DIR.

    Args:
      model: `EncoderDecoderModel`.
      model_dir: where checkpoints, config.json, config.gin, TensorBoard events and
        train_metrics.jsonl go. One trainer at a time: a second one is refused while the
        first holds MODEL_DIR's lease (`t5x_cot.run_lease`).
      train_dataset_cfg: `data_pipeline.DatasetConfig` (global batch size, lengths, seed).
      total_steps: the step to stop at (TRAIN_STEPS, absolute as in T5X: a run started from a
        checkpoint of step N trains total_steps - N steps).
      partitioner: `partitioning.Partitioner` (default: data parallel over all devices).
      optimizer: optax transformation (default: T5X Adafactor with `learning_rate_fn`).
      learning_rate_fn: schedule (default: T5X fine-tuning constant 1e-3).
      num_microbatches: gradient accumulation steps per update.
      initial_checkpoint_path: params to start from, at the checkpoint's step, when MODEL_DIR
        has no checkpoint yet: a native T5X checkpoint (msgpack file or tensorstore dir), a
        params checkpoint, a step dir or another MODEL_DIR.
      random_seed: seed of init, dropout and data order (None counts as 0, so reruns match).
      checkpoint_cfg: save period and retention.
      eval_period: every this many steps, the teacher-forced loss on `eval_steps` batches of
        `eval_split` is logged (None or 0: never), to TensorBoard under
        `MODEL_DIR/training_eval/<task>/` as T5X does.
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
      terminate_on_nan: stop with NonFiniteError, naming the step, once the loss, gradients or
        params are NaN or Inf (checked on device, read at each metric fetch and before each
        checkpoint save, so no non-finite checkpoint is written); T5X's TerminateOnNanAction.
      restore_optimizer_state: with a T5X INITIAL_CHECKPOINT_PATH, start from its Adafactor
        state (T5X's behaviour); False starts a fresh one at the checkpoint's step.
      run_eval_before_training: evaluate once at the start step, before the first update
        (with TRAIN_STEPS equal to the restored step, the run only evaluates).
    """
    from t5x_cot import data_pipeline, optimizers, paths, run_checks, run_lease
    from t5x_cot.partitioning import Partitioner
    from t5x_cot.trainer import Trainer

    data_pipeline.check_config(train_dataset_cfg, training=True)
    run_checks.check_train_args(
        total_steps=total_steps, relative_steps=relative_steps, checkpoint_period=checkpoint_cfg.period,
        checkpoint_keep=checkpoint_cfg.keep, eval_period=eval_period, eval_steps=eval_steps, log_every=log_every,
        num_microbatches=num_microbatches, batch_size=train_dataset_cfg.batch_size)
    paths.check_writable(model_dir, "MODEL_DIR")
    seed = 0 if random_seed is None else int(random_seed)
    partitioner = partitioner or Partitioner()
    learning_rate_fn = learning_rate_fn or optimizers.constant_schedule()
    optimizer = optimizer or optimizers.adafactor(learning_rate_fn)
    data_cfg = dataclasses.replace(train_dataset_cfg, seed=seed if train_dataset_cfg.seed is None
                                   else train_dataset_cfg.seed)
    with run_lease.held(model_dir):
        trainer = Trainer(model, optimizer, partitioner, data_pipeline.batch_shapes(data_cfg, data_cfg.batch_size),
                          learning_rate_fn=learning_rate_fn, num_microbatches=num_microbatches, seed=seed)
        run = _Run(trainer, model_dir, data_cfg, checkpoint_cfg, seed=seed, log_every=log_every,
                   terminate_on_nan=terminate_on_nan)
        evaluation = _Evaluation(eval_period, eval_steps, eval_split, eval_dataset_cfg, inference_evaluator,
                                 before_training=run_eval_before_training)
        return run.train(initial_checkpoint_path, restore_dtype, total_steps, relative_steps, evaluation,
                         restore_optimizer_state=restore_optimizer_state)


@dataclasses.dataclass(frozen=True)
class _Evaluation:
    """What to evaluate every `period` steps (teacher-forced loss, inference metrics)."""

    period: int | None
    steps: int
    split: str
    dataset_cfg: Any
    inference_evaluator: Any
    before_training: bool = False

    def due(self, step: int) -> bool:
        return bool(self.period) and step % self.period == 0


class _Run:
    """The train loop of one `train` call: resume, step, log, evaluate, save."""

    def __init__(self, trainer: Any, model_dir: str, data_cfg: Any, checkpoint_cfg: CheckpointConfig, *,
                 seed: int, log_every: int, terminate_on_nan: bool) -> None:
        from t5x_cot import checkpoints, train_checkpoints

        self.trainer = trainer
        self.seed = seed
        self.model_dir = model_dir
        self.data_cfg = data_cfg
        self.log_every = log_every
        self.terminate_on_nan = terminate_on_nan
        self.partitioner = trainer.partitioner
        self._eval_batches: list | None = None
        self.per_host, self.shard_id, self.num_shards = self.partitioner.data_layout(data_cfg.batch_size)
        checkpoints.check_model_dir(model_dir, trainer.model.config)
        self.checkpointer = train_checkpoints.TrainCheckpointer(
            model_dir, period=checkpoint_cfg.period, keep=checkpoint_cfg.keep, use_async=checkpoint_cfg.use_async)

    def train(self, initial_checkpoint_path: str | None, restore_dtype: str | None, total_steps: int | None,
              relative_steps: int | None, evaluation: _Evaluation, *,
              restore_optimizer_state: bool = True) -> TrainResult:
        import jax

        from t5x_cot import summaries

        try:
            state, start_batch = _initial_state(self.trainer, self.checkpointer, initial_checkpoint_path,
                                                self.seed, restore_dtype, restore_optimizer_state)
            start_step = int(jax.device_get(state.step))
            if relative_steps is not None:
                total_steps = start_step + int(relative_steps)
            if jax.process_index() == 0 and gin.config_str().strip():
                gin_utils.write_operative_config(self.model_dir)
            if evaluation.before_training:
                self._evaluate_and_log(state, start_step, evaluation)
            if start_step >= total_steps:
                _say(f"MODEL_DIR {self.model_dir} is already at step {start_step} (TRAIN_STEPS {total_steps}): "
                     "nothing to do")
                return TrainResult(state, start_step, {})
            metrics = summaries.MetricLogger(self.model_dir, total_steps=total_steps, start_step=start_step,
                                             flops_per_step=_flops_per_step(self.trainer.model.config,
                                                                            self.trainer.input_shapes),
                                             log_every=self.log_every)
            try:
                return self._loop(state, start_step, start_batch, total_steps, metrics, evaluation)
            finally:
                metrics.close()
        finally:
            self.checkpointer.close()

    def _loop(self, state: Any, start_step: int, start_batch: int, total_steps: int, metrics: Any,
              evaluation: _Evaluation) -> TrainResult:
        import jax

        from t5x_cot import data_pipeline, summaries

        global_batch = self.data_cfg.batch_size
        batches = data_pipeline.BatchIterator(self.data_cfg, shard_id=self.shard_id, num_shards=self.num_shards,
                                              start_batch=start_batch, per_host_batch_size=self.per_host)
        step = start_step
        with _preemption_flag() as preempted:
            for step in range(start_step + 1, total_steps + 1):
                local = next(batches)
                real, padded = summaries.count_tokens(local)
                state, step_metrics = self.trainer.train_step(state, self.partitioner.global_batch(local, global_batch))
                first = step == start_step + 1
                if first:  # compilation: not part of the throughput windows
                    jax.block_until_ready(step_metrics)
                if metrics.add(step, step_metrics, real * self.num_shards, padded * self.num_shards, timed=not first):
                    self._check_finite(step)
                self.checkpointer.check_for_errors()
                if self.checkpointer.should_save(step):
                    self._save(step, state, batches)
                if evaluation.due(step):
                    self._evaluate_and_log(state, step, evaluation, metrics)
                if _stop_requested(preempted, step, self.log_every):
                    _say(f"SIGTERM: saving step {step} and exiting")
                    break
            metrics.flush()
            self._save(step, state, batches)
        return TrainResult(state, step, metrics.last, preempted=preempted.is_set())

    def _evaluate_and_log(self, state: Any, step: int, evaluation: _Evaluation, metrics: Any = None) -> None:
        """The teacher-forced evaluation (and inference evaluation) of `state` at `step`, logged."""
        from t5x_cot import summaries

        logger = metrics or summaries.MetricLogger(self.model_dir, total_steps=step, start_step=step,
                                                   flops_per_step=None, log_every=self.log_every)
        try:
            logger.scalars(step, self._evaluate(state.params, evaluation),
                           writer=_eval_name(evaluation.dataset_cfg or self.data_cfg))
            if evaluation.inference_evaluator is not None:
                logger.scalars(step, _inference_eval(evaluation.inference_evaluator, state.params, step))
        finally:
            if metrics is None:
                logger.close()

    def _save(self, step: int, state: Any, batches: Any) -> None:
        self._check_finite(step)
        self.checkpointer.save(step, state, batches.state())

    def _check_finite(self, step: int) -> None:
        """Stop (NonFiniteError) once a step so far produced a NaN or Inf, before anything is saved."""
        from t5x_cot.trainer import NonFiniteError

        if not self.terminate_on_nan:
            return
        bad = self.trainer.first_nonfinite_step()
        if bad is not None:
            saved = self.checkpointer.latest_step()
            raise NonFiniteError(
                f"training diverged: the loss, gradients or params became NaN or Inf at step {bad} "
                f"(found at step {step}); nothing after {'step ' + str(saved) if saved else 'the start'} was "
                "saved. Lower the learning rate, or set train.terminate_on_nan=False to keep training")

    def _evaluate(self, params: Any, evaluation: _Evaluation) -> dict[str, float]:
        if self._eval_batches is None:
            eval_cfg = evaluation.dataset_cfg or dataclasses.replace(self.data_cfg, split=evaluation.split,
                                                                     shuffle=False)
            self._eval_batches = _eval_batches(eval_cfg, evaluation.steps, self.shard_id, self.num_shards,
                                               self.per_host)
        return _evaluate(self.trainer, params, self._eval_batches, self.partitioner, self.data_cfg.batch_size)


def _eval_name(dataset_cfg: Any) -> str:
    """The TensorBoard folder of the teacher-forced evaluation: `training_eval/<task>` (T5X's)."""
    return f"{TRAINING_EVAL_DIR}/{dataset_cfg.mixture_or_task_name}"


def _initial_state(trainer: Any, checkpointer: Any, initial_checkpoint_path: str | None,
                   seed: int, restore_dtype: str | None = None,
                   restore_optimizer_state: bool = True) -> tuple[Any, int]:
    """(state, data position): resume MODEL_DIR, else start from INITIAL_CHECKPOINT_PATH, else init."""
    import jax

    from t5x_cot import checkpoints

    resumed = checkpointer.restore_latest(trainer.abstract_sharded_state())
    if resumed is not None:
        state, meta = resumed
        _say(f"resuming from {checkpointer.model_dir} step {meta['step']}")
        return state, int(meta.get("data", {}).get("batches", meta["step"]))
    if initial_checkpoint_path:
        from t5x_cot.interop.t5x_optimizer_state import initial_opt_state

        abstract = trainer.abstract_sharded_state()
        params, step = checkpoints.restore_checkpoint(initial_checkpoint_path, abstract.params, restore_dtype)
        state = trainer.state_from_params(params, step)
        opt_state, restored = initial_opt_state(str(initial_checkpoint_path), abstract.opt_state, state.opt_state,
                                                step, restore_optimizer_state)
        state = state.replace(opt_state=jax.device_put(opt_state, trainer.state_shardings.opt_state))
        what = "params and Adafactor state" if restored else "params (fresh optimizer state)"
        _say(f"starting from the {what} in {initial_checkpoint_path} at step {step}")
        return state, 0
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
    gin_utils.document_gin_flags(parser)
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point: gin flags (see `gin_utils`) and T5X's absl flags.

    T5X run files (`import __main__ as train_script`, `from t5x import ...`) go through
    `t5x_cot.t5x_compat`; our own run files configure `train` directly. An error the user can
    act on (`UserError`) prints as one line and exits 2; anything else keeps its traceback.
    """
    from t5x_cot import t5x_compat
    from t5x_cot.errors import UserError, one_line
    from t5x_cot.t5x_compat import train_script

    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        files, bindings, search_paths, rest = gin_utils.split_gin_flags(argv)
        gin_utils.apply_t5x_flags(parse_args(rest))
        t5x_compat.install()
        t5x_compat.bind_script("train", train_script.train)
        gin_utils.register_configurables()
        gin_utils.parse_gin(files, bindings, search_paths)
        gin_utils.call_configurable(train_script.train if gin_utils.is_configured(train_script.train) else train)
    except UserError as error:
        print(f"error: {one_line(error)}", file=sys.stderr)  # without gin's call trail
        return 2
    return 0


if __name__ == "__main__":
    from t5x_cot import train as _canonical  # run the importable module, so gin sees one `train`

    sys.exit(_canonical.main())
