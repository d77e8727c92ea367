"""T5X's `t5x.adafactor`: `Adafactor` (argument names and defaults as T5X) as an optax chain."""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

import optax

from t5x_cot import optimizers
from t5x_cot.t5x_compat import UnsupportedT5XFeature

# T5X's factor rules: which logical axes may be factored (scanned `layers` are a batch axis).
_STANDARD_FACTOR_RULES = {"vocab": "column", "embed": "row", "mlp": "column", "heads": "column",
                          "kv": "column", "joined_kv": "column", "relpos_buckets": "none", "layers": "batch",
                          "stack": "batch", "mlp_activations": "column"}


def standard_logical_factor_rules(rules: dict[str, str] | None = None) -> dict[str, str]:
    """T5X's standard logical factor rules (updated with `rules`)."""
    return {**_STANDARD_FACTOR_RULES, **(rules or {})}


class Adafactor:
    """T5X's `adafactor.Adafactor` settings; `to_optax(learning_rate_fn)` builds the optimizer.

    The update is T5X's for every unscanned param (see `t5x_cot.optimizers.adafactor`);
    `logical_factor_rules` only changes how scanned layers are factored, which follows optax.
    """

    def __init__(self, learning_rate: float | None = None, factored: bool = True,
                 multiply_by_parameter_scale: bool = True, beta1: float | None = None, decay_rate: float = 0.8,
                 step_offset: int = 0, clipping_threshold: float | None = 1.0,
                 weight_decay_rate: float | None = None, min_dim_size_to_factor: int = 128,
                 epsilon1: float = 1e-30, epsilon2: float = 1e-3, dtype_momentum: str = "float32",
                 factor_map: Any = None, logical_factor_rules: dict[str, str] | None = None,
                 weight_decay_rate_lr_exponent: float | None = None,
                 global_norm_clip_threshold: float | None = None, max_parameter_scale: float | None = None,
                 skip_nan_updates: bool = False) -> None:
        unsupported = {"factor_map": (factor_map, None, "logical_factor_rules"),
                       "weight_decay_rate_lr_exponent": (weight_decay_rate_lr_exponent, None, "weight_decay_rate"),
                       "max_parameter_scale": (max_parameter_scale, None, "epsilon2"),
                       "skip_nan_updates": (skip_nan_updates, False,
                                            "actions={'TRAIN': [@trainer.TerminateOnNanAction()]} to stop on NaN"),
                       "dtype_momentum": (dtype_momentum, "float32", "float32 momentum")}
        for name, (value, default, instead) in unsupported.items():
            if value != default:
                raise UnsupportedT5XFeature(f"adafactor.Adafactor.{name}={value!r} is not available; use {instead}")
        self.learning_rate = learning_rate
        self.logical_factor_rules = logical_factor_rules
        self.settings = dict(factored=factored, multiply_by_parameter_scale=multiply_by_parameter_scale,
                             beta1=beta1, decay_rate=decay_rate, step_offset=step_offset,
                             clipping_threshold=clipping_threshold, weight_decay_rate=weight_decay_rate,
                             min_dim_size_to_factor=min_dim_size_to_factor, epsilon1=epsilon1, epsilon2=epsilon2,
                             global_norm_clip_threshold=global_norm_clip_threshold)

    def to_optax(self, learning_rate_fn: Callable[[Any], Any] | None) -> optax.GradientTransformation:
        """The optax optimizer; a fixed `learning_rate` wins over the trainer's schedule, as in T5X."""
        rate = self.learning_rate if self.learning_rate is not None else learning_rate_fn
        if rate is None:
            raise UnsupportedT5XFeature("adafactor.Adafactor has no learning rate: bind "
                                        "trainer.Trainer.learning_rate_fn or adafactor.Adafactor.learning_rate")
        return optimizers.adafactor(rate, **self.settings)
