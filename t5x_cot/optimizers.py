"""Adafactor with T5X's defaults, built from optax pieces, and T5X's learning-rate schedules.

T5X's `adafactor.Adafactor()` defaults: factored second moments (when the two largest dims
are both >= 128), decay_rate 0.8 (beta2_t = 1 - (t+1)^-0.8), step_offset 0, epsilon1 1e-30
added to g², update clipping at RMS 1.0, no momentum, learning rate multiplied by
max(RMS(param), epsilon2 = 1e-3), no weight decay. `optax.adafactor` computes the same update
for every array of rank <= 2 (all T5 params unless layers are scanned) but hard-codes
epsilon2; `adafactor` here exposes it under T5X's name.

Difference kept on purpose: with scanned layers (a leading `layers` axis) T5X factors and
clips each layer separately (its `layers` factor rule is BATCH); here a stacked
[layers, a, b] kernel is factored over its two largest dims and clipped as one block, as
optax does. Unscanned layers (the default) match T5X exactly.
"""
from __future__ import annotations

from collections.abc import Callable

import jax.numpy as jnp
import optax

from t5x_cot.errors import UserError


class ScheduleError(UserError, ValueError):
    """A learning-rate schedule that cannot be built (unknown factor, zero warmup)."""

Schedule = Callable[[jnp.ndarray], jnp.ndarray]


def adafactor(learning_rate: float | Schedule = 1e-3, *, factored: bool = True, decay_rate: float = 0.8,
              step_offset: int = 0, min_dim_size_to_factor: int = 128, clipping_threshold: float | None = 1.0,
              multiply_by_parameter_scale: bool = True, epsilon1: float = 1e-30, epsilon2: float = 1e-3,
              beta1: float | None = None, weight_decay_rate: float | None = None,
              global_norm_clip_threshold: float | None = None) -> optax.GradientTransformation:
    """Adafactor as T5X's `adafactor.Adafactor` (same argument names and defaults).

    `global_norm_clip_threshold`: the gradients are first scaled by min(1, threshold / global
    norm), as T5X (before the second-moment statistics); None or 0: no global-norm clipping.
    """
    chain = [optax.clip_by_global_norm(global_norm_clip_threshold)] if global_norm_clip_threshold else []
    chain.append(optax.scale_by_factored_rms(factored, decay_rate, step_offset, min_dim_size_to_factor, epsilon1))
    if clipping_threshold is not None:
        chain.append(optax.clip_by_block_rms(clipping_threshold))
    chain.append(optax.scale_by_learning_rate(learning_rate, flip_sign=False))
    if multiply_by_parameter_scale:
        chain.append(optax.scale_by_param_block_rms(epsilon2))
    if beta1 is not None:
        chain.append(optax.ema(beta1, debias=False))
    if weight_decay_rate is not None:
        chain.append(optax.add_decayed_weights(weight_decay_rate))
    chain.append(optax.scale(-1.0))
    return optax.chain(*chain)


FACTORS = ("constant", "linear_warmup", "rsqrt_decay", "rsqrt_normalized_decay", "decay_every",
           "linear_decay", "cosine_decay")
# Factors that divide by warmup_steps (T5X's formula gives NaN at step 0 when it is 0).
_WARMUP_DIVISORS = ("linear_warmup", "linear_decay")


def create_learning_rate_scheduler(factors: str = "constant", base_learning_rate: float = 1e-3,
                                   warmup_steps: int = 10_000, decay_factor: float = 0.5,
                                   steps_per_decay: int = 20_000, steps_per_cycle: int = 100_000,
                                   step_offset: int = 0, min_learning_rate: float = 1e-8) -> Schedule:
    """T5X's factor-string schedule: max(product of the named factors, min_learning_rate) at
    s = max(0, step - step_offset), with T5X's formulas:

    `constant` base_learning_rate; `linear_warmup` min(1, s / warmup_steps); `linear_decay`
    base_learning_rate * min(s / warmup_steps, 1 + decay_factor * (warmup_steps - s)) (warmup
    included: not combined with `constant` / `linear_warmup`); `rsqrt_decay`
    1 / sqrt(max(s, warmup_steps)); `rsqrt_normalized_decay` sqrt(warmup_steps) /
    sqrt(max(s, warmup_steps)); `decay_every` decay_factor ** (s // steps_per_decay);
    `cosine_decay` max(0, 0.5 * (1 + cos(pi * (p % 1)))) with p = max(0, (s - warmup_steps) /
    steps_per_cycle). T5X fine-tuning: 'constant' at 1e-3; T5X pretraining: 'constant *
    rsqrt_decay' with base 1.0 and 10k warmup, i.e. min(1e-2, 1/sqrt(step)).
    """

    names = [name.strip() for name in factors.split("*")]
    unknown = [name for name in names if name not in FACTORS]
    if unknown:
        raise ScheduleError(f"unknown learning-rate factor(s) {unknown} in {factors!r}; expected factors "
                             f"joined by '*' from {', '.join(FACTORS)}")
    if warmup_steps <= 0 and any(name in _WARMUP_DIVISORS for name in names):
        raise ScheduleError(f"learning-rate factors {factors!r} divide by warmup_steps: expected "
                             f"warmup_steps > 0, got {warmup_steps}")

    def schedule(step: jnp.ndarray) -> jnp.ndarray:
        step = jnp.maximum(0.0, jnp.asarray(step, jnp.float32) - step_offset)
        value = jnp.ones((), jnp.float32)
        for name in names:
            if name == "constant":
                value *= base_learning_rate
            elif name == "linear_warmup":
                value *= jnp.minimum(1.0, step / warmup_steps)
            elif name == "linear_decay":
                value *= base_learning_rate * jnp.minimum(step / warmup_steps,
                                                          1.0 + decay_factor * (warmup_steps - step))
            elif name == "rsqrt_decay":
                value /= jnp.sqrt(jnp.maximum(step, warmup_steps))
            elif name == "rsqrt_normalized_decay":
                value *= jnp.sqrt(float(warmup_steps)) / jnp.sqrt(jnp.maximum(step, warmup_steps))
            elif name == "decay_every":
                value *= decay_factor ** (step // steps_per_decay)
            else:
                progress = jnp.maximum(0.0, (step - warmup_steps) / float(steps_per_cycle))
                value *= jnp.maximum(0.0, 0.5 * (1.0 + jnp.cos(jnp.pi * (progress % 1.0))))
        return jnp.maximum(value, min_learning_rate).astype(jnp.float32)

    return schedule


def constant_schedule(value: float = 1e-3) -> Schedule:
    """T5X's fine-tuning default: a constant 1e-3."""
    return create_learning_rate_scheduler("constant", value)


def rsqrt_schedule(base_learning_rate: float = 1.0, warmup_steps: int = 10_000) -> Schedule:
    """T5X's pretraining schedule: base / sqrt(max(step, warmup_steps))."""
    return create_learning_rate_scheduler("constant * rsqrt_decay", base_learning_rate, warmup_steps)


def linear_decay_schedule(base_learning_rate: float, decay_steps: int, warmup_steps: int = 0) -> Schedule:
    """Linear warmup over `warmup_steps`, then linear decay to 0 over `decay_steps` (0 after).

    Not T5X's `linear_decay` factor (a slope `decay_factor` after warmup, see
    `create_learning_rate_scheduler`)."""

    def schedule(step: jnp.ndarray) -> jnp.ndarray:
        step = jnp.asarray(step, jnp.float32)
        warmup = jnp.minimum(1.0, step / warmup_steps) if warmup_steps else 1.0
        decay = jnp.clip(1.0 - (step - warmup_steps) / float(decay_steps), 0.0, 1.0)
        return jnp.asarray(base_learning_rate * warmup * decay, jnp.float32)

    return schedule
