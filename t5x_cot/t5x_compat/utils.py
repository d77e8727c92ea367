"""T5X's `t5x.utils`: dataset, checkpoint and learning-rate configs with T5X's names and defaults."""
from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from typing import Any

import jax.numpy as jnp

from t5x_cot import data_pipeline, optimizers
from t5x_cot.checkpoints import RESTORE_MODES
from t5x_cot.t5x_compat import UnsupportedT5XFeature



@dataclasses.dataclass(frozen=True)
class DatasetConfig(data_pipeline.DatasetConfig):
    """T5X's `utils.DatasetConfig`. `task_feature_lengths=None` (evaluation) means the maximum
    lengths in the data; `use_memory_cache` and `trim_output_features` are accepted with T5X's
    meaning for evaluation; `use_custom_packing_ops=True` is not available."""

    module: str | None = None
    use_custom_packing_ops: bool = False
    use_memory_cache: bool = True
    trim_output_features: bool = True

    def __post_init__(self) -> None:
        if self.use_custom_packing_ops:
            raise UnsupportedT5XFeature(
                "utils.DatasetConfig.use_custom_packing_ops=True: T5X's custom TF packing ops are not "
                "available; pack = True packs with seqio's own packing")


def _dtype(name: str, where: str) -> Any:
    try:
        return jnp.dtype(name)
    except TypeError as error:
        raise UnsupportedT5XFeature(f"utils.{where}.dtype={name!r}: not a dtype (e.g. 'float32', 'bfloat16')") from error


@dataclasses.dataclass(frozen=True)
class SaveCheckpointConfig:
    """T5X's `utils.SaveCheckpointConfig`: save every `period` steps, keep the newest `keep`.

    Checkpoints always hold the data position (a few bytes), so `save_dataset` is accepted
    either way; `dtype` must be 'float32' (params are saved as trained).
    """

    period: int | None = None
    dtype: str = "float32"
    keep: int | None = None
    save_dataset: bool = False
    keep_dataset_checkpoints: int | None = None

    def __post_init__(self) -> None:
        if _dtype(self.dtype, "SaveCheckpointConfig") != jnp.float32:
            raise UnsupportedT5XFeature(
                f"utils.SaveCheckpointConfig.dtype={self.dtype!r}: training checkpoints are float32; "
                "export a bfloat16 copy with `t5x-cot convert --from ours MODEL_DIR --to hf DST --dtype bfloat16`")


@dataclasses.dataclass(frozen=True)
class RestoreCheckpointConfig:
    """T5X's `utils.RestoreCheckpointConfig`.

    `path`: a checkpoint (native T5X msgpack file or tensorstore dir, one of ours, or a
    MODEL_DIR); a list of paths or `[]` (start from scratch) as in T5X's pretrain.gin.
    `mode`: 'specific' (that checkpoint), 'latest' (newest in the dir), 'all' (evaluation: every
    checkpoint). `dtype`: the dtype the params are restored as.
    """

    path: str | Sequence[str] | None = None
    mode: str = "latest"
    dtype: str = "float32"
    restore_dataset: bool = False
    strict: bool = True
    fallback_to_scratch: bool = False

    def __post_init__(self) -> None:
        if self.mode not in RESTORE_MODES:
            raise UnsupportedT5XFeature(
                f"utils.RestoreCheckpointConfig.mode={self.mode!r}: expected one of {', '.join(RESTORE_MODES)}")
        _dtype(self.dtype, "RestoreCheckpointConfig")

    @property
    def paths(self) -> list[str]:
        """The configured path(s) as a list ([] when starting from scratch)."""
        if self.path is None:
            return []
        return [self.path] if isinstance(self.path, str) else [str(p) for p in self.path]


@dataclasses.dataclass(frozen=True)
class CheckpointConfig:
    """T5X's `utils.CheckpointConfig(save=..., restore=...)`."""

    save: SaveCheckpointConfig | None = None
    restore: RestoreCheckpointConfig | None = None


def create_learning_rate_scheduler(factors: str = "constant * linear_warmup * rsqrt_decay",
                                   base_learning_rate: float = 0.5, warmup_steps: int = 1000,
                                   decay_factor: float = 0.5, steps_per_decay: int = 20000,
                                   steps_per_cycle: int = 100000, step_offset: int = 0,
                                   min_learning_rate: float = 1e-8) -> Callable[[Any], Any]:
    """T5X's `utils.create_learning_rate_scheduler` (its defaults; same factor names)."""
    schedule = optimizers.create_learning_rate_scheduler(
        factors, base_learning_rate, warmup_steps, decay_factor, steps_per_decay, steps_per_cycle)

    def learning_rate(step: Any) -> Any:
        return jnp.maximum(schedule(jnp.asarray(step, jnp.float32) - step_offset), min_learning_rate)

    return learning_rate
