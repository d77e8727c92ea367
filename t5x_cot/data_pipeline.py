"""SeqIO task -> EncDecFeatureConverter -> per-host numpy batches, in a deterministic, resumable order.

Each process reads shard `process_index` of `process_count` of the task (seqio ShardInfo),
batches `global_batch // process_count` examples, and the trainer assembles the global
array with `jax.make_array_from_process_local_data`. The order is fixed by the seed, so a
run resumed at batch N (the checkpointed data position) sees exactly the batches an
uninterrupted run would have seen from N on.
"""
from __future__ import annotations

import dataclasses
import importlib
from collections.abc import Iterator, Mapping
from typing import Any

import numpy as np

from t5x_cot import run_checks
from t5x_cot.errors import UserError


def import_seqio() -> Any:
    """seqio, imported on first use (TensorFlow stays out of processes that only configure).

    TensorFlow only feeds the input pipeline: its device probe runs quietly (no false `cuInit`
    alarm on CPU machines) and it is kept off the GPUs, which belong to JAX.
    """
    import seqio
    import tensorflow as tf

    from t5x_cot.tensorflow_devices import probe_devices_quietly

    probe_devices_quietly()
    tf.config.set_visible_devices([], "GPU")
    return seqio


@dataclasses.dataclass(frozen=True)
class DatasetConfig:
    """What to read: T5X's `utils.DatasetConfig`, reduced to what fine-tuning uses."""

    mixture_or_task_name: str
    task_feature_lengths: Mapping[str, int] | None
    split: str = "train"
    batch_size: int = 128
    shuffle: bool = True
    seed: int | None = 0
    pack: bool = True
    use_cached: bool = False
    module: str | None = "t5x_cot.tasks"


PROJECT_TASKS = "t5x_cot.tasks"


class DataConfigError(UserError, ValueError):
    """A dataset config that cannot be read: unknown task, missing cache, missing lengths."""


def import_task_module(module: str | None) -> None:
    """Import the module that registers the task (MIXTURE_OR_TASK_MODULE)."""
    if module:
        importlib.import_module(module)


def get_task(config: DatasetConfig) -> Any:
    """The seqio Task or Mixture of `config`, after importing its module.

    With no module (T5X's default MIXTURE_OR_TASK_MODULE = None) the project's own tasks
    are imported when the name is not registered yet. With `use_cached`, every task must
    have a seqio cache: otherwise the error says how to build one or to turn caching off.
    """
    seqio = import_seqio()
    import_task_module(config.module)
    name = config.mixture_or_task_name
    if not isinstance(name, str) or not name:
        raise DataConfigError(f"DatasetConfig.mixture_or_task_name={name!r} ({config.split}): expected a "
                              "seqio task or mixture name (MIXTURE_OR_TASK_NAME)")
    if not config.module and name not in seqio.TaskRegistry.names() and name not in seqio.MixtureRegistry.names():
        import_task_module(PROJECT_TASKS)
    try:
        provider = seqio.get_mixture_or_task(name)
    except ValueError as error:
        raise DataConfigError(
            f"MIXTURE_OR_TASK_NAME {name!r} is not a registered seqio task or mixture "
            f"(MIXTURE_OR_TASK_MODULE={config.module!r}); set MIXTURE_OR_TASK_MODULE to the module "
            "that registers it, or import that module in a gin file") from error
    if config.use_cached:
        uncached = [task.name for task in getattr(provider, "tasks", [provider]) if task.cache_dir is None]
        if uncached:
            raise DataConfigError(
                f"USE_CACHED_TASKS=True but {', '.join(uncached)} has no seqio cache in "
                f"{seqio.get_global_cache_dirs() or 'any cache dir'}: build it with `python -m "
                f"seqio.scripts.cache_tasks_main --module_import={config.module or PROJECT_TASKS} "
                f"--tasks={','.join(uncached)} --output_cache_dir=DIR` and pass "
                "--seqio_additional_cache_dirs=DIR, or set --gin.USE_CACHED_TASKS=False")
    return provider


def check_config(config: DatasetConfig, training: bool = False) -> None:
    """Refuse a batch size or feature lengths the pipeline cannot use, naming the field and macro.

    `training`: lengths are required (for evaluation, None means the longest in the data).
    """
    where = f"DatasetConfig ({config.split})"
    run_checks.require_int(config.batch_size, f"{where}.batch_size (BATCH_SIZE)", 1, error=DataConfigError)
    if training:
        _require_lengths(config)
    run_checks.check_feature_lengths(config.task_feature_lengths, f"{where}.task_feature_lengths "
                                     "(TASK_FEATURE_LENGTHS)", ("inputs", "targets") if training else (),
                                     error=DataConfigError)


def get_dataset(config: DatasetConfig, *, shard_id: int = 0, num_shards: int = 1,
                per_host_batch_size: int | None = None, num_epochs: int | None = None) -> Any:
    """Batched, feature-converted tf.data pipeline of one host's shard (repeats forever by default)."""
    check_config(config, training=True)
    seqio = import_seqio()
    get_task(config)
    per_host = per_host_batch_size or config.batch_size // num_shards
    return seqio.get_dataset(
        config.mixture_or_task_name, dict(config.task_feature_lengths),
        seqio.EncDecFeatureConverter(pack=config.pack), dataset_split=config.split,
        use_cached=config.use_cached, shuffle=config.shuffle, num_epochs=num_epochs,
        shard_info=seqio.ShardInfo(index=shard_id, num_shards=num_shards), seed=config.seed,
        batch_size=per_host, verbose=False)


def _require_lengths(config: DatasetConfig) -> None:
    if config.task_feature_lengths is None:
        raise DataConfigError(f"{config.mixture_or_task_name} ({config.split}): task_feature_lengths=None "
                              "(compute the maximum) is for evaluation; training needs TASK_FEATURE_LENGTHS")


class BatchIterator:
    """numpy batches of a host's shard that knows its position (batches handed out so far)."""

    def __init__(self, config: DatasetConfig, *, shard_id: int = 0, num_shards: int = 1,
                 start_batch: int = 0, per_host_batch_size: int | None = None) -> None:
        self.config = config
        self.position = start_batch
        dataset = get_dataset(config, shard_id=shard_id, num_shards=num_shards,
                              per_host_batch_size=per_host_batch_size)
        self._iterator: Iterator[dict[str, Any]] = dataset.skip(start_batch).prefetch(2).as_numpy_iterator()

    def __iter__(self) -> BatchIterator:
        return self

    def __next__(self) -> dict[str, np.ndarray]:
        batch = next(self._iterator)
        self.position += 1
        return {name: np.asarray(value, dtype=np.int32) for name, value in batch.items()}

    def state(self) -> dict[str, Any]:
        """The resumable position, stored in checkpoints."""
        return {"batches": self.position, "task": self.config.mixture_or_task_name,
                "seed": self.config.seed}


def batch_shapes(config: DatasetConfig, batch_size: int) -> dict[str, tuple[int, int]]:
    """Shapes of the features seqio's EncDecFeatureConverter yields for `batch_size` examples."""
    check_config(config, training=True)
    inputs, targets = config.task_feature_lengths["inputs"], config.task_feature_lengths["targets"]
    lengths = {"encoder_input_tokens": inputs, "decoder_target_tokens": targets,
               "decoder_input_tokens": targets, "decoder_loss_weights": targets}
    if config.pack:
        lengths.update(encoder_segment_ids=inputs, encoder_positions=inputs,
                       decoder_segment_ids=targets, decoder_positions=targets)
    return {name: (batch_size, length) for name, length in lengths.items()}
