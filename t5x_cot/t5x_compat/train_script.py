"""`train_script.train`: T5X's `train.py` `train(...)` arguments, run by t5x_cot's training loop.

T5X's run files bind `train_script.train` after `import __main__ as train_script`;
`python -m t5x_cot.train` makes that name this function (see `bind_script`).
"""
from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from t5x_cot.t5x_compat import UnsupportedT5XFeature
from t5x_cot.t5x_compat.trainer import Trainer, terminate_on_nan
from t5x_cot.t5x_compat.utils import (
    CheckpointConfig,
    refuse_t5x_hooks,
    verify_matching_vocabs,
)

DEFAULT_CHECKPOINT_PERIOD = 1000


def train(*, model: Any, train_dataset_cfg: Any, checkpoint_cfg: CheckpointConfig, partitioner: Any,
          model_dir: str, total_steps: int | None, eval_steps: int = 10, eval_period: int | None = None,
          trainer_cls: Callable[[], Trainer] = Trainer, train_eval_dataset_cfg: Any = None,
          infer_eval_dataset_cfg: Any = None, inference_evaluator_cls: Any = None,
          stats_period: int | None = None, relative_steps: int | None = None, random_seed: int | None = None,
          use_hardware_rng: bool = False, summarize_config_fn: Callable[..., None] | None = None,
          run_eval_before_training: bool = False, get_dataset_fn: Any = None, concurrent_metrics: bool = True,
          actions: Mapping[str, Sequence[Any]] | None = None, train_eval_get_dataset_fn: Any = None,
          train_state_initializer_cls: Any = None, use_orbax: bool = True,
          verify_matching_vocabs_fn: Callable[[Any, Any], None] | None = verify_matching_vocabs,
          gc_period: int = 0) -> Any:
    """Train as T5X's `train.train`, with its argument names.

    `total_steps` is absolute (a run from a checkpoint of step N trains total_steps - N steps);
    `relative_steps` (TRAIN_STEPS_RELATIVE) counts from the restored step instead. MODEL_DIR is
    resumed first; otherwise `checkpoint_cfg.restore.path` (a native T5X checkpoint too) gives
    the initial params and step. Every `eval_period` steps: the teacher-forced loss on
    `eval_steps` batches of `train_eval_dataset_cfg`, and, with `infer_eval_dataset_cfg`,
    decoding-based task metrics (`t5x_cot.inference_evaluation`). `stats_period` is how often
    metrics are fetched and logged. `random_seed=None` means seed 0 (runs are reproducible).
    `actions`: T5X's `trainer.TerminateOnNanAction` stops at a non-finite loss (without it,
    as in T5X, training goes on). Metrics are
    always computed on device and fetched every `stats_period` steps (`concurrent_metrics`
    either way); checkpoints are orbax (`use_orbax=True`). `verify_matching_vocabs_fn`
    refuses a model whose vocabulary differs from the task's before anything is built.
    """
    from t5x_cot import paths
    from t5x_cot import train as core

    paths.check_writable(model_dir, "MODEL_DIR")
    refuse_t5x_hooks("train", get_dataset_fn=get_dataset_fn, train_eval_get_dataset_fn=train_eval_get_dataset_fn,
                     train_state_initializer_cls=train_state_initializer_cls, use_orbax=use_orbax,
                     gc_period=gc_period)
    stop_on_nan = terminate_on_nan(actions)
    if verify_matching_vocabs_fn is not None:
        verify_matching_vocabs_fn(train_dataset_cfg, model)
    if use_hardware_rng:
        import jax

        jax.config.update("jax_default_prng_impl", "rbg")
    trainer_cfg = trainer_cls()
    restore = checkpoint_cfg.restore
    restore_paths = restore.paths if restore is not None else []
    if len(restore_paths) > 1:
        raise UnsupportedT5XFeature("utils.RestoreCheckpointConfig.path: training starts from one checkpoint; "
                                    f"got {len(restore_paths)}")
    save = checkpoint_cfg.save
    checkpoint_settings = core.CheckpointConfig(
        period=(save.period if save is not None and save.period else DEFAULT_CHECKPOINT_PERIOD),
        keep=save.keep if save is not None else None)
    optimizer = model.optimizer_def.to_optax(trainer_cfg.learning_rate_fn)
    evaluator = None
    if infer_eval_dataset_cfg is not None and eval_period and _has_metrics(infer_eval_dataset_cfg):
        from t5x_cot.inference_evaluation import InferenceEvaluator

        evaluator = InferenceEvaluator(model.config, infer_eval_dataset_cfg, partitioner=partitioner,
                                       output_dir=core.inference_eval_dir(model_dir),
                                       evaluator_cls=inference_evaluator_cls)
    logging.info("T5X train: %s steps from %s", total_steps, restore_paths or "scratch")
    result = core.train(
        model=model, model_dir=model_dir, train_dataset_cfg=train_dataset_cfg, total_steps=total_steps,
        partitioner=partitioner, optimizer=optimizer, learning_rate_fn=trainer_cfg.learning_rate_fn,
        num_microbatches=trainer_cfg.num_microbatches,
        initial_checkpoint_path=restore_paths[0] if restore_paths else None,
        random_seed=random_seed, checkpoint_cfg=checkpoint_settings, eval_period=eval_period,
        eval_steps=eval_steps, log_every=stats_period or core.DEFAULT_LOG_EVERY,
        eval_dataset_cfg=train_eval_dataset_cfg, relative_steps=relative_steps,
        restore_dtype=restore.dtype if restore is not None else None, inference_evaluator=evaluator,
        terminate_on_nan=stop_on_nan, run_eval_before_training=run_eval_before_training,
        restore_optimizer_state=restore.restore_optimizer_state if restore is not None else True)
    if summarize_config_fn is not None:
        summarize_config_fn(model_dir=model_dir, summary_writer=None, step=result.step)
    return result


def _has_metrics(dataset_cfg: Any) -> bool:
    """Whether a task of the dataset has metric functions for its split (T5X skips infer-eval otherwise)."""
    from t5x_cot import data_pipeline

    seqio = data_pipeline.import_seqio()
    provider = data_pipeline.get_task(dataclasses.replace(dataset_cfg, use_cached=False))
    found = any(task.metric_fns and dataset_cfg.split in task.splits for task in seqio.get_subtasks(provider))
    if not found:
        logging.warning("%s has no task with metric functions for split %r: no inference evaluation "
                        "during training (as T5X)", dataset_cfg.mixture_or_task_name, dataset_cfg.split)
    return found
