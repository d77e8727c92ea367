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

Schedule = Callable[[jnp.ndarray], jnp.ndarray]


def adafactor(learning_rate: float | Schedule = 1e-3, *, factored: bool = True, decay_rate: float = 0.8,
              step_offset: int = 0, min_dim_size_to_factor: int = 128, clipping_threshold: float | None = 1.0,
              multiply_by_parameter_scale: bool = True, epsilon1: float = 1e-30, epsilon2: float = 1e-3,
              beta1: float | None = None, weight_decay_rate: float | None = None) -> optax.GradientTransformation:
    """Adafactor as T5X's `adafactor.Adafactor` (same argument names and defaults)."""
    chain = [optax.scale_by_factored_rms(factored, decay_rate, step_offset, min_dim_size_to_factor, epsilon1)]
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


def create_learning_rate_scheduler(factors: str = "constant", base_learning_rate: float = 1e-3,
                                   warmup_steps: int = 10_000, decay_factor: float = 0.5,
                                   steps_per_decay: int = 20_000, steps_per_cycle: int = 100_000) -> Schedule:
    """T5X's factor-string schedule: the product of the named factors at each step.

    Factors: `constant` (base_learning_rate), `linear_warmup` (min(1, step/warmup_steps)),
    `rsqrt_decay` (1/sqrt(max(step, warmup_steps))), `rsqrt_normalized_decay` (same times
    sqrt(warmup_steps)), `decay_every` (decay_factor^(step // steps_per_decay)),
    `linear_decay` (1 - progress within each cycle after warmup), `cosine_decay`
    (half-cosine within each cycle). T5X fine-tuning: 'constant' at 1e-3; T5X pretraining:
    'constant * rsqrt_decay' with base 1.0 and 10k warmup, i.e. min(1e-2, 1/sqrt(step)).
    """
    names = [name.strip() for name in factors.split("*") if name.strip()]
    known = {"constant", "linear_warmup", "rsqrt_decay", "rsqrt_normalized_decay", "decay_every",
             "linear_decay", "cosine_decay"}
    unknown = [name for name in names if name not in known]
    if unknown:
        raise ValueError(f"unknown learning-rate factor(s) {unknown}; expected some of {sorted(known)}")

    def schedule(step: jnp.ndarray) -> jnp.ndarray:
        step = jnp.asarray(step, jnp.float32)
        value = jnp.ones((), jnp.float32)
        for name in names:
            if name == "constant":
                value *= base_learning_rate
            elif name == "linear_warmup":
                value *= jnp.minimum(1.0, step / max(warmup_steps, 1))
            elif name == "rsqrt_decay":
                value /= jnp.sqrt(jnp.maximum(step, warmup_steps))
            elif name == "rsqrt_normalized_decay":
                value *= jnp.sqrt(float(warmup_steps)) / jnp.sqrt(jnp.maximum(step, warmup_steps))
            elif name == "decay_every":
                value *= decay_factor ** (step // steps_per_decay)
            else:
                progress = jnp.maximum(0.0, step - warmup_steps) / float(steps_per_cycle)
                fraction = progress % 1.0
                value *= (1.0 - fraction) if name == "linear_decay" else 0.5 * (1.0 + jnp.cos(jnp.pi * fraction))
        return value

    return schedule


def constant_schedule(value: float = 1e-3) -> Schedule:
    """T5X's fine-tuning default: a constant 1e-3."""
    return create_learning_rate_scheduler("constant", value)


def rsqrt_schedule(base_learning_rate: float = 1.0, warmup_steps: int = 10_000) -> Schedule:
    """T5X's pretraining schedule: base / sqrt(max(step, warmup_steps))."""
    return create_learning_rate_scheduler("constant * rsqrt_decay", base_learning_rate, warmup_steps)


def linear_decay_schedule(base_learning_rate: float, decay_steps: int, warmup_steps: int = 0) -> Schedule:
    """Linear warmup over `warmup_steps`, then linear decay to 0 over `decay_steps` (cycling after, as T5X)."""
    warmup = "linear_warmup * " if warmup_steps else ""
    return create_learning_rate_scheduler(f"constant * {warmup}linear_decay", base_learning_rate,
                                          warmup_steps=warmup_steps, steps_per_cycle=decay_steps)
