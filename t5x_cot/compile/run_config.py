"""The train step a gin run config would jit, built without reading data.

`python -m t5x_cot.train` calls the configured `train` (our run files) or T5X's
`train_script.train` (T5X's run files); T5X's precompile.gin binds `train_script.precompile`.
`train_setup` reads the same bindings and evaluates only what the step needs: the model,
the partitioner (over the target devices, see `partitioning.target_devices`), the optimizer
and learning-rate schedule, the microbatches, and the batch shapes from the training
`DatasetConfig` (BATCH_SIZE, TASK_FEATURE_LENGTHS, pack). Required macros the step does not
need (MODEL_DIR, MIXTURE_OR_TASK_NAME, TRAIN_STEPS, ...) may stay unset.
"""
from __future__ import annotations

import contextlib
import copy
import inspect
from collections.abc import Callable, Sequence
from typing import Any

from t5x_cot import gin_utils
from t5x_cot.compile.train_setup import TrainSetup

gin = gin_utils.gin
NEEDED_MACROS = ("TASK_FEATURE_LENGTHS",)


def parse_run_config(files: Sequence[str], bindings: Sequence[str], search_paths: Sequence[str] = (),
                     needed_macros: Sequence[str] = NEEDED_MACROS) -> None:
    """Parse gin files and bindings as `python -m t5x_cot.train` does (T5X's run files included);
    required macros other than `needed_macros` may stay unset (they become None)."""
    from t5x_cot import t5x_compat
    from t5x_cot.t5x_compat import precompile, train_script

    t5x_compat.install()
    t5x_compat.bind_script("train", train_script.train)
    t5x_compat.bind_script("precompile", precompile.precompile)
    gin_utils.register_configurables()
    gin_utils.parse_gin(files, bindings, search_paths, require_macros=False)
    _release_unneeded_required_macros(needed_macros)


def _release_unneeded_required_macros(needed: Sequence[str]) -> None:
    """Unset `%gin.REQUIRED` macros become None, except those the train step needs."""
    for (name, kind), params in list(gin.config._CONFIG.items()):  # noqa: SLF001
        if kind != "gin.macro" or not gin_utils._is_required(params.get("value")):  # noqa: SLF001
            continue
        if name in needed:
            raise gin_utils.GinConfigError(f"missing required gin macro {name}: set with --gin.{name}=VALUE")
        gin.parse_config(f"{name} = None")


def configured_entry() -> tuple[Callable[..., Any], str]:
    """The run function the config binds: T5X's precompile or train, else ours."""
    from t5x_cot import train
    from t5x_cot.t5x_compat import precompile, train_script

    for fn, name in ((precompile.precompile, "train_script.precompile"), (train_script.train, "train_script.train")):
        if gin_utils.is_configured(fn):
            return fn, name
    return train.train, "train"


def _arguments(fn: Callable[..., Any], names: Sequence[str]) -> dict[str, Any]:
    """The gin-bound (else default) values of `names` among `fn`'s parameters, references evaluated."""
    bound = gin.get_bindings(fn, resolve_references=False)
    defaults = {name: p.default for name, p in inspect.signature(fn).parameters.items()
                if p.default is not inspect.Parameter.empty}
    values = {}
    for name in names:
        if name in bound:
            with gin_utils.clean_errors("binding"):
                values[name] = copy.deepcopy(bound[name])  # evaluates @references and %macros
        else:
            values[name] = defaults.get(name)
    return values


def configured_model() -> Any:
    """The model the configured run function is given, else the MODEL macro of a model gin file
    alone (no partitioner or data needed)."""
    fn, _ = configured_entry()
    model = _arguments(fn, ("model",))["model"]
    if model is None:
        try:
            reference = gin.query_parameter("%MODEL")
        except ValueError:
            _missing("model")
        with gin_utils.clean_errors("binding"):
            model = copy.deepcopy(reference)  # evaluates @models.EncoderDecoderModel()
    return model


def train_setup(devices: Sequence[Any] | None = None) -> TrainSetup:
    """The train step's parts from the parsed config; the partitioner's mesh is over `devices`."""
    from t5x_cot import data_pipeline, optimizers, partitioning

    fn, entry = configured_entry()
    context = partitioning.target_devices(devices) if devices is not None else contextlib.nullcontext()
    with context:
        if entry == "train":
            args = _arguments(fn, ("model", "partitioner", "optimizer", "learning_rate_fn", "num_microbatches",
                                   "random_seed", "train_dataset_cfg"))
            learning_rate_fn = args["learning_rate_fn"] or optimizers.constant_schedule()
            optimizer = args["optimizer"] or optimizers.adafactor(learning_rate_fn)
            microbatches = args["num_microbatches"]
        elif entry == "train_script.train":
            args = _arguments(fn, ("model", "partitioner", "random_seed", "train_dataset_cfg", "trainer_cls"))
            trainer_cfg = (args["trainer_cls"] or _missing("trainer_cls"))()
            learning_rate_fn, microbatches = trainer_cfg.learning_rate_fn, trainer_cfg.num_microbatches
            optimizer = (args["model"] or _missing("model")).optimizer_def.to_optax(learning_rate_fn)
        else:
            from t5x_cot.t5x_compat import precompile

            args = _arguments(fn, ("model", "partitioner", "random_seed", "train_dataset_cfg"))
            return precompile.precompile_setup(**{name: args[name] or _missing(name) for name in
                                                  ("model", "train_dataset_cfg", "partitioner")},
                                               random_seed=args["random_seed"])
        partitioner = args["partitioner"] or partitioning.Partitioner()
    data_cfg = args["train_dataset_cfg"] or _missing("train_dataset_cfg")
    model = args["model"] or _missing("model")
    return TrainSetup(model=model, partitioner=partitioner, optimizer=optimizer,
                      learning_rate_fn=learning_rate_fn, num_microbatches=int(microbatches or 1),
                      input_shapes=data_pipeline.batch_shapes(data_cfg, data_cfg.batch_size),
                      seed=int(args["random_seed"] or 0), entry=entry)


def _missing(name: str) -> Any:
    raise gin_utils.GinConfigError(f"the run config binds no {name} (needed to build the train step)")

