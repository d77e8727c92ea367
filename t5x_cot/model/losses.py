"""Cross entropy with z-loss and label smoothing, and T5X's loss normalisation options.

Semantics follow T5X `t5x/losses.py`:

- `compute_weighted_cross_entropy` returns the SUM over tokens of the weighted per-token loss,
  divided by `loss_normalizing_factor` when one is given (None: no normalisation at all).
- `loss_normalizing_factor` may be a float (e.g. 2048 * 114 = 233472, the pretraining
  batch × target length of the public T5 checkpoints) or one of the strings
  "NUM_REAL_TARGET_TOKENS" (sum of the loss weights), "NUM_TOTAL_TARGET_TOKENS"
  (batch × target length) or "AVERAGE_PER_SEQUENCE" (each sequence — each packed segment —
  averaged over its own tokens, then averaged over sequences).
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

Array = jax.Array


class SpecialLossNormalizingFactor(enum.Enum):
    """Loss normalising factors computed from the batch (see the module docstring)."""

    NUM_REAL_TARGET_TOKENS = 1
    NUM_TOTAL_TARGET_TOKENS = 2
    AVERAGE_PER_SEQUENCE = 3


@jax.custom_vjp
def _softmax_cross_entropy(logits: Array, soft_targets: Array, z_loss: Array) -> tuple[Array, Array]:
    """(cross entropy + z_loss * log(Z)^2, z_loss * log(Z)^2) per position."""
    (loss, z), _ = _softmax_cross_entropy_fwd(logits, soft_targets, z_loss)
    return loss, z


def _softmax_cross_entropy_fwd(logits: Array, soft_targets: Array, z_loss: Array) -> tuple[tuple[Array, Array], Any]:
    max_logit = jax.lax.stop_gradient(jnp.max(logits, axis=-1, keepdims=True))
    shifted = logits - max_logit
    exp_shifted = jnp.exp(shifted)
    sum_exp = jnp.sum(exp_shifted, axis=-1, keepdims=True)
    log_softmax = shifted - jnp.log(sum_exp)
    log_z = jnp.squeeze(jnp.log(sum_exp) + max_logit, axis=-1)
    total_z_loss = z_loss * jnp.square(log_z)
    loss = -jnp.sum(soft_targets * log_softmax, axis=-1) + total_z_loss
    return (loss, total_z_loss), (soft_targets, z_loss, exp_shifted / sum_exp, log_softmax, log_z)


def _softmax_cross_entropy_bwd(residuals: Any, grads: tuple[Array, Array]) -> tuple[Array, Array, Array]:
    soft_targets, z_loss, probs, log_softmax, log_z = residuals
    g = grads[0][..., None]  # the z-loss output is for logging only, as in T5X
    d_logits = g * ((1.0 + 2.0 * z_loss * log_z)[..., None] * probs - soft_targets)
    d_targets = -g * log_softmax
    return d_logits.astype(probs.dtype), d_targets.astype(soft_targets.dtype), jnp.zeros_like(z_loss)


_softmax_cross_entropy.defvjp(_softmax_cross_entropy_fwd, _softmax_cross_entropy_bwd)


def cross_entropy_with_logits(logits: Array, targets: Array, z_loss: float = 0.0,
                              label_smoothing: float = 0.0) -> tuple[Array, Array]:
    """Per-position (loss, z_loss) for integer `targets` [...] and `logits` [..., vocab].

    The loss is the label-smoothed cross entropy minus its minimum (T5X's normalising constant,
    so a perfect prediction scores 0) plus `z_loss * logsumexp(logits)^2`; computed in float32
    with T5X's stable custom gradient.
    """
    logits = logits.astype(jnp.float32)
    vocab_size = logits.shape[-1]
    confidence = 1.0 - label_smoothing
    low_confidence = (1.0 - confidence) / (vocab_size - 1)
    normalizing_constant = -(confidence * np.log(confidence)
                             + (vocab_size - 1) * low_confidence * np.log(low_confidence + 1e-20))
    soft_targets = jax.nn.one_hot(targets, vocab_size, dtype=jnp.float32) * (confidence - low_confidence) \
        + low_confidence
    loss, total_z_loss = _softmax_cross_entropy(logits, soft_targets, jnp.asarray(z_loss, jnp.float32))
    return loss - np.float32(normalizing_constant), total_z_loss


def compute_weighted_cross_entropy(logits: Array, targets: Array, weights: Array | None = None,
                                   label_smoothing: float = 0.0, z_loss: float = 0.0,
                                   loss_normalizing_factor: float | Array | None = None
                                   ) -> tuple[Array, Array, Array]:
    """(summed loss, summed z-loss, weight sum), each divided by `loss_normalizing_factor` if given."""
    if logits.ndim != targets.ndim + 1:
        raise ValueError(f"logits shape {logits.shape} does not match targets shape {targets.shape}: "
                         "expected logits = targets shape + (vocab,)")
    loss, total_z_loss = cross_entropy_with_logits(logits, targets, z_loss, label_smoothing)
    weight_sum = jnp.asarray(np.prod(targets.shape), jnp.float32)
    if weights is not None:
        weights = jnp.asarray(weights, jnp.float32)
        loss, total_z_loss, weight_sum = loss * weights, total_z_loss * weights, jnp.sum(weights)
    if loss_normalizing_factor is not None:
        loss, total_z_loss = loss / loss_normalizing_factor, total_z_loss / loss_normalizing_factor
    return jnp.sum(loss), jnp.sum(total_z_loss), weight_sum


def as_special_factor(value: str | SpecialLossNormalizingFactor) -> SpecialLossNormalizingFactor:
    """A special factor from its (case-insensitive) name."""
    if isinstance(value, SpecialLossNormalizingFactor):
        return value
    try:
        return SpecialLossNormalizingFactor[value.upper()]
    except KeyError:
        raise ValueError(f"loss_normalizing_factor={value!r}; expected a number, None or one of "
                         + ", ".join(f.name for f in SpecialLossNormalizingFactor)) from None


def _segment_weight_sums(weights: Array, segment_ids: Array) -> Array:
    """For each position, the sum of the weights of its packed segment (same row, same id)."""
    same = segment_ids[:, :, None] == segment_ids[:, None, :]
    return jnp.einsum("bk,bqk->bq", weights, same.astype(weights.dtype))


def get_loss_normalizing_factor_and_weights(
        loss_normalizing_factor: float | str | SpecialLossNormalizingFactor | None,
        batch: Mapping[str, Array]) -> tuple[float | Array | None, Array | None]:
    """(float factor or None, per-token weights) for the batch, as T5X.

    A float or None passes through with `batch['decoder_loss_weights']` (possibly absent). A
    special factor uses those weights or, without them, `decoder_target_tokens > 0`.
    """
    weights = batch.get("decoder_loss_weights")
    if loss_normalizing_factor is None or not isinstance(loss_normalizing_factor,
                                                         (str, SpecialLossNormalizingFactor)):
        return loss_normalizing_factor, weights
    special = as_special_factor(loss_normalizing_factor)
    targets = batch["decoder_target_tokens"]
    weights = jnp.asarray(targets > 0 if weights is None else weights, jnp.float32)
    if special is SpecialLossNormalizingFactor.NUM_REAL_TARGET_TOKENS:
        return jnp.sum(weights), weights
    if special is SpecialLossNormalizingFactor.NUM_TOTAL_TARGET_TOKENS:
        return float(np.prod(targets.shape)), weights
    if "decoder_segment_ids" in batch:
        per_sequence = _segment_weight_sums(weights, jnp.asarray(batch["decoder_segment_ids"]))
    else:
        per_sequence = jnp.sum(weights, axis=-1, keepdims=True)
    weights = jnp.where(per_sequence > 0, weights / jnp.where(per_sequence > 0, per_sequence, 1.0), 0.0)
    return jnp.sum(weights), weights
