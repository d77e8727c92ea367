"""T5X's module names on top of t5x_cot: the one place T5X configs are translated.

T5X gin files import `from t5x import utils, partitioning, trainer, adafactor, models,
gin_utils` and `from t5x.examples.t5 import network`. `install()` puts an import alias on
`sys.meta_path` that maps every `t5x.<name>` onto `t5x_cot.t5x_compat.<name>`, so those
files load unchanged and their configurables (`utils.DatasetConfig`,
`partitioning.PjitPartitioner`, `adafactor.Adafactor`, ...) build our objects with T5X's
argument names and defaults. The alias is installed only when the real `t5x` package is not
importable: with T5X installed, `t5x` stays T5X's.

The training core never imports this package; this package imports the core.
"""
from __future__ import annotations

import importlib
import importlib.abc
import importlib.machinery
import importlib.util
import sys
import types
from typing import Any

from t5x_cot.errors import UserError

ALIAS = "t5x"
TARGET = __name__
MODULES = ("utils", "partitioning", "trainer", "adafactor", "models", "gin_utils", "examples.t5.network")


class UnsupportedT5XFeature(UserError, ValueError):
    """A T5X binding with no counterpart here; the message names what to use instead."""


def real_t5x_installed() -> bool:
    """Whether an actual `t5x` package (not a folder of gin files) is importable."""
    if any(isinstance(finder, _AliasFinder) for finder in sys.meta_path):
        return False
    spec = importlib.util.find_spec(ALIAS)
    return spec is not None and spec.origin not in (None, "namespace")


class _AliasLoader(importlib.abc.Loader):
    def __init__(self, target: str) -> None:
        self.target = target

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> types.ModuleType:
        return importlib.import_module(self.target)

    def exec_module(self, module: types.ModuleType) -> None:
        """The aliased module is already executed."""


class _AliasFinder(importlib.abc.MetaPathFinder):
    """Finds `t5x` and `t5x.*` as the modules of this package."""

    def find_spec(self, fullname: str, path: Any = None, target: Any = None) -> importlib.machinery.ModuleSpec | None:
        if fullname != ALIAS and not fullname.startswith(ALIAS + "."):
            return None
        mapped = TARGET + fullname[len(ALIAS):]
        if importlib.util.find_spec(mapped) is None:
            available = ", ".join(f"{ALIAS}.{name}" for name in MODULES)
            hint = f"; {NAME_HINTS[fullname]}" if fullname in NAME_HINTS else ""
            raise ModuleNotFoundError(
                f"No module named {fullname!r}: the T5X compatibility layer of t5x_cot provides "
                f"{available} (the real t5x is not installed){hint}", name=fullname)
        return importlib.util.spec_from_loader(fullname, _AliasLoader(mapped))


_T5X_RUNS = "T5X's names work in T5X run files, e.g. t5x/configs/runs/finetune.gin"
# T5X names (and T5X-only macros) used where they do not exist, and what to use instead.
NAME_HINTS = {
    "utils.SaveCheckpointConfig": f"gin/runs/*.gin use CheckpointConfig.period / .keep; {_T5X_RUNS}",
    "utils.RestoreCheckpointConfig": f"gin/runs/*.gin use INITIAL_CHECKPOINT_PATH; {_T5X_RUNS}",
    "utils.CheckpointConfig": f"gin/runs/*.gin use CheckpointConfig; {_T5X_RUNS}",
    "utils.DatasetConfig": f"gin/runs/*.gin use DatasetConfig (e.g. train/DatasetConfig.batch_size); {_T5X_RUNS}",
    "utils.create_learning_rate_scheduler": f"gin/runs/*.gin use optimizers.create_learning_rate_scheduler; {_T5X_RUNS}",
    "partitioning.PjitPartitioner": f"gin/runs/*.gin use partitioning.Partitioner; {_T5X_RUNS}",
    "trainer.Trainer": f"gin/runs/*.gin use train.num_microbatches / train.learning_rate_fn; {_T5X_RUNS}",
    "adafactor.Adafactor": f"gin/runs/*.gin use optimizers.adafactor; {_T5X_RUNS}",
    "seqio.SentencePieceVocabulary": "add `import seqio` (with `from __gin__ import dynamic_registration`) to the gin file",
    "train.stats_period": "gin/runs/*.gin use train.log_every",
    "train.infer_eval_dataset_cfg": f"inference evaluation during training: {_T5X_RUNS}",
    "train.train_eval_dataset_cfg": "gin/runs/*.gin use train.eval_dataset_cfg",
    "train.relative_steps": "use TRAIN_STEPS_RELATIVE",
    "train.use_hardware_rng": f"{_T5X_RUNS} (USE_HARDWARE_RNG)",
    "USE_HARDWARE_RNG": f"{_T5X_RUNS}",
    "EVALUATOR_USE_MEMORY_CACHE": f"{_T5X_RUNS}",
    "EVALUATOR_NUM_EXAMPLES": f"{_T5X_RUNS}",
    "JSON_WRITE_N_RESULTS": f"{_T5X_RUNS}",
    "t5x.decoding": "decoding is configured by gin/runs/decode.gin (decoding.DecodeConfig)",
    "t5x.optimizers": "T5X's optax wrappers are not available: adafactor.Adafactor (T5X's), or "
                      "gin/runs/*.gin train.optimizer = @optimizers.adafactor()",
    "t5x.export_lib": "SavedModel export is not available; export to HuggingFace with "
                      "`t5x-cot convert --from t5x CKPT --to hf DST`",
    "EncoderDecoderModel.predict_batch_with_aux": "decoding is configured by decoding.DecodeConfig in "
                                                  "gin/runs/decode.gin (num_decodes: num_beams / num_samples)",
    "models.DecoderOnlyModel": "decoder-only models are not available; models.EncoderDecoderModel is",
    "utils.get_training_eval_datasets": "the training-eval datasets are built from train.train_eval_dataset_cfg",
    "train.use_jax_array": "params are always jax.Arrays; remove the binding",
    "evaluate.training_evaluator_cls": "evaluate a training checkpoint's loss with train.eval_period",
    "evaluate.summarize_config_fn": "the operative config is written to the output dir's config.gin",
    "evaluate.train_state_initializer_cls": "the state is initialised by t5x_cot",
    "evaluate.train_eval_get_dataset_fn": "the dataset is built from evaluate.dataset_cfg",
    "evaluate.fallback_init_rng": "a checkpoint to evaluate is required (utils.RestoreCheckpointConfig.path)",
    "evaluate.use_orbax": "checkpoints are always orbax here; remove the binding",
    "infer.merge_chunked_results": "results are written as one file per task; remove the binding",
    "infer.write_fn": "predictions are written as JSON lines by t5x_cot.infer",
    "infer.merge_fn": "results are written as one file per task; remove the binding",
    "infer.checkpoint_ds_iter": "inference resumes from its chunk files; remove the binding",
    "infer.train_state_initializer_cls": "the state is initialised by t5x_cot",
    "infer.fallback_init_rng": "a checkpoint to infer from is required (utils.RestoreCheckpointConfig.path)",
    "infer.summarize_config_fn": "the operative config is written to the output dir's config.gin",
    "infer.verify_matching_vocabs_fn": "the task's vocabulary decodes the outputs",
    "infer.output_vocab_feature_name": "the 'targets' feature's vocabulary decodes the outputs",
    "infer.file_extension": "predictions are written as .jsonl",
    "infer.keep_aux_as_numpy": "scores are written as JSON numbers",
    "infer.use_orbax": "checkpoints are always orbax here; remove the binding",
}


def install() -> bool:
    """Make `import t5x...` resolve to this layer unless the real t5x is installed; True if active.

    Also registers the T5X names that gin errors should point to an alternative for.
    """
    from t5x_cot import gin_utils

    gin_utils.add_name_hints(NAME_HINTS)
    if any(isinstance(finder, _AliasFinder) for finder in sys.meta_path):
        return True
    if real_t5x_installed():
        return False
    sys.meta_path.insert(0, _AliasFinder())
    return True


# Functions of T5X's scripts that its run files reach as `<x>_script.<name>`, by script function.
SCRIPT_HELPERS = {"infer": ("t5x_cot.t5x_compat.tfexample_task", "create_task_from_tfexample_file")}


def bind_script(name: str, fn: Any) -> None:
    """Make `import __main__ as train_script` + `train_script.<name>` in gin bind `fn`.

    T5X's run files configure the function of the running script; under
    `python -m t5x_cot.train` that script is ours, so `__main__.<name>` is set to `fn`
    (plus the helpers T5X's script defines beside it, SCRIPT_HELPERS).
    """
    main = sys.modules["__main__"]
    setattr(main, name, fn)
    if name in SCRIPT_HELPERS:
        module, helper = SCRIPT_HELPERS[name]
        setattr(main, helper, getattr(importlib.import_module(module), helper))
