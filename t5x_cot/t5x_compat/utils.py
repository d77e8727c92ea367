"""T5X's `t5x.utils`: dataset, checkpoint and learning-rate configs with T5X's names and defaults."""
from __future__ import annotations

import dataclasses
import re
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
    assignment_map: Sequence[tuple[str, str | None]] | None = None
    checkpointer_cls: Any = None
    use_gda: bool = True

    def __post_init__(self) -> None:
        if self.checkpointer_cls is not None:
            raise UnsupportedT5XFeature("utils.RestoreCheckpointConfig.checkpointer_cls: checkpoints are read by "
                                        "t5x_cot (T5X msgpack/tensorstore and orbax); remove the binding")
        if not self.use_gda:
            raise UnsupportedT5XFeature("utils.RestoreCheckpointConfig.use_gda=False: params are always restored "
                                        "as jax.Arrays; remove the binding")
        for pattern, target in self.assignment_map or ():
            if target is not None or not _drops_only_optimizer_state(pattern):
                raise UnsupportedT5XFeature(
                    f"utils.RestoreCheckpointConfig.assignment_map ({pattern!r}, {target!r}): only entries that "
                    "skip the optimizer state (e.g. (r'state/param_states.*', None)) are available")
        if self.mode not in RESTORE_MODES:
            raise UnsupportedT5XFeature(
                f"utils.RestoreCheckpointConfig.mode={self.mode!r}: expected one of {', '.join(RESTORE_MODES)}")
        _dtype(self.dtype, "RestoreCheckpointConfig")

    @property
    def restore_optimizer_state(self) -> bool:
        """False when `assignment_map` skips the optimizer state (T5X's way to start it fresh)."""
        return not self.assignment_map

    @property
    def paths(self) -> list[str]:
        """The configured path(s) as a list ([] when starting from scratch)."""
        if self.path is None:
            return []
        return [self.path] if isinstance(self.path, str) else [str(p) for p in self.path]


def _drops_only_optimizer_state(pattern: str) -> bool:
    """Whether a T5X assignment_map regex matches optimizer-state names and no param names."""
    return bool(re.fullmatch(pattern, "state/param_states/encoder/encoder_norm/scale/v")) and not re.match(
        pattern, "target/encoder/encoder_norm/scale")


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
    """T5X's `utils.create_learning_rate_scheduler`: its defaults over the same formulas
    (`t5x_cot.optimizers.create_learning_rate_scheduler`)."""
    return optimizers.create_learning_rate_scheduler(
        factors, base_learning_rate, warmup_steps, decay_factor, steps_per_decay, steps_per_cycle,
        step_offset, min_learning_rate)


# T5X `train` / `evaluate` / `infer` hooks whose only available value is T5X's default.
_DEFAULT_HOOKS = {
    "get_dataset_fn": (None, "the datasets are built from utils.DatasetConfig by seqio"),
    "train_eval_get_dataset_fn": (None, "the training-eval datasets are built from train_eval_dataset_cfg"),
    "train_state_initializer_cls": (None, "the state is initialised by t5x_cot's Trainer"),
    "training_evaluator_cls": (None, "evaluate a training checkpoint's loss with train.eval_period"),
    "fallback_init_rng": (None, "a checkpoint to evaluate is required (utils.RestoreCheckpointConfig.path)"),
    "use_orbax": (True, "checkpoints are written with orbax; a T5X checkpoint: t5x-cot convert --to t5x"),
    "gc_period": (0, "Python's automatic garbage collection stays on (T5X's gc_period=0)"),
}


def refuse_t5x_hooks(function: str, **values: Any) -> None:
    """Refuse a T5X hook bound to anything but its default, naming what is done instead."""
    for name, value in values.items():
        default, instead = _DEFAULT_HOOKS[name]
        if value != default:
            raise UnsupportedT5XFeature(f"{function}.{name}={value!r} is not available: {instead}")


def verify_matching_vocabs(cfg: Any, model: Any) -> None:
    """T5X's `utils.verify_matching_vocabs`: the task's inputs/targets SentencePiece vocabularies
    must be the model's input/output ones (same model bytes, same extra ids). A task whose ids are
    its tokens (seqio.PassThroughVocabulary) has no text to mismatch and is accepted."""
    from t5x_cot import data_pipeline
    from t5x_cot.t5x_compat import vocab

    task = data_pipeline.get_task(dataclasses.replace(cfg, use_cached=False))
    features = task.output_features
    for feature, side in (("inputs", "input"), ("targets", "output")):
        model_vocab = getattr(model, f"{side}_vocabulary", None)
        if feature not in features or model_vocab is None:
            continue
        task_vocab = features[feature].vocabulary
        if vocab.same_sentencepiece(task_vocab, model_vocab) is False:
            raise UnsupportedT5XFeature(
                f"Model and Task vocabularies do not match: task {cfg.mixture_or_task_name} {feature} uses "
                f"{vocab.describe(task_vocab)}, models.EncoderDecoderModel.{side}_vocabulary is "
                f"{vocab.describe(model_vocab)}; give the task the model's vocabulary (t5x_cot's tasks: "
                "vocabulary_path.path) or the model the task's")
