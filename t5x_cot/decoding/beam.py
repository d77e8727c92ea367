"""Beam search with T5X's length penalty, in one `lax.while_loop` with early exit.

Scores of finished hypotheses are `sum log p / brevity_penalty(alpha, length)` with T5X's
(GNMT) penalty `((5 + length) / 6) ** alpha`. Each step expands every live beam, keeps the
2k best candidates, moves those that emitted EOS into the finished set and continues with
the k best others (their caches gathered along the batch axis). The search stops when no
live beam can beat the worst finished one any more, or the buffer is full.
"""
from __future__ import annotations

from typing import Any

import flax
import jax
import jax.numpy as jnp

from t5x_cot.decoding.state import EOS_ID, PAD_ID, DecodingState, TokensToLogits
from t5x_cot.model.network import CROSS_ATTENTION

NEG_INF = -1.0e7
DEFAULT_ALPHA = 0.6


def brevity_penalty(alpha: float, length: jax.Array | int) -> jax.Array:
    """T5X's length penalty ((5 + length) / 6) ** alpha."""
    return jnp.power((5.0 + jnp.asarray(length, jnp.float32)) / 6.0, alpha)


@flax.struct.dataclass
class BeamState:
    """Carry of the beam loop; `live_*` and `finished_*` are [batch, beams, ...]."""

    step: jax.Array              # scalar int32
    live_seqs: jax.Array         # [B, K, L + 1]
    live_log_probs: jax.Array    # [B, K]
    finished_seqs: jax.Array     # [B, K, L + 1]
    finished_scores: jax.Array   # [B, K]
    finished_flags: jax.Array    # [B, K] bool
    cache: Any                   # leaves [B * K, ...] (scalars untouched)


def flatten_beams(x: jax.Array) -> jax.Array:
    return x.reshape((x.shape[0] * x.shape[1], *x.shape[2:]))


def unflatten_beams(x: jax.Array, batch_size: int) -> jax.Array:
    return x.reshape((batch_size, x.shape[0] // batch_size, *x.shape[1:]))


def expand_to_beams(cache: Any, num_beams: int, batch_axis: int = 0) -> Any:
    """Repeat each cache leaf `num_beams` times along its batch axis ([B] -> [B * K]); leaves
    without that axis (cache indices) are kept."""
    return jax.tree.map(
        lambda x: x if jnp.ndim(x) <= batch_axis else jnp.repeat(x, num_beams, axis=batch_axis), cache)


def gather_beams(x: jax.Array, indices: jax.Array) -> jax.Array:
    """Pick beams `indices` [B, N] from a [B, K, ...] array."""
    return jnp.take_along_axis(x, indices.reshape(indices.shape + (1,) * (x.ndim - 2)), axis=1)


def gather_cache(cache: Any, indices: jax.Array, batch_size: int, batch_axis: int = 0) -> Any:
    """Reorder a cache whose leaves are [B * K, ...] along `batch_axis` by beam `indices` [B, K]
    (with scanned layers the batch axis is 1); leaves without that axis, and the cross-attention
    keys/values (`network.CROSS_ATTENTION`: equal for every beam of an example, and beams only
    move within their example), are kept."""
    def gather(path: tuple[Any, ...], x: jax.Array) -> jax.Array:
        if jnp.ndim(x) <= batch_axis or any(getattr(key, "key", None) == CROSS_ATTENTION for key in path):
            return x
        moved = jnp.moveaxis(x, batch_axis, 0)
        picked = flatten_beams(gather_beams(unflatten_beams(moved, batch_size), indices))
        return jnp.moveaxis(picked, 0, batch_axis)
    return jax.tree_util.tree_map_with_path(gather, cache)


def beam_search(cache: Any, tokens_to_logits: TokensToLogits, *, batch_size: int, num_beams: int,
                max_decode_len: int, alpha: float = DEFAULT_ALPHA, eos_id: int = EOS_ID,
                cache_batch_axis: int = 0) -> tuple[jax.Array, jax.Array]:
    """Beam search; returns (sequences [B, K, L] best first, scores [B, K]).

    `cache` is the model cache for `batch_size` rows; it is repeated per beam here, so
    `tokens_to_logits` sees a batch of `batch_size * num_beams` (beams of one row adjacent).
    `cache_batch_axis` is the batch axis of the cache leaves (1 with scanned layers). Traceable.
    """
    k = num_beams
    length = max_decode_len + 1
    state = BeamState(
        step=jnp.zeros((), jnp.int32),
        live_seqs=jnp.full((batch_size, k, length), PAD_ID, jnp.int32),
        # only the first beam is live at the start, so the k initial beams are distinct
        live_log_probs=jnp.tile(jnp.array([0.0] + [NEG_INF] * (k - 1), jnp.float32), (batch_size, 1)),
        finished_seqs=jnp.full((batch_size, k, length), PAD_ID, jnp.int32),
        finished_scores=jnp.full((batch_size, k), NEG_INF, jnp.float32),
        finished_flags=jnp.zeros((batch_size, k), bool),
        cache=expand_to_beams(cache, k, cache_batch_axis))
    best_penalty = brevity_penalty(alpha, max_decode_len)

    def cond(s: BeamState) -> jax.Array:
        best_live = jnp.max(s.live_log_probs, axis=1) / best_penalty
        worst_finished = jnp.where(jnp.all(s.finished_flags, axis=1),
                                   jnp.min(s.finished_scores, axis=1), NEG_INF)
        return (s.step < max_decode_len) & ~jnp.all(worst_finished > best_live)

    def body(s: BeamState) -> BeamState:
        flat_seqs = flatten_beams(s.live_seqs)
        cur = jax.lax.dynamic_slice_in_dim(flat_seqs, s.step, 1, axis=1)
        logits, cache = tokens_to_logits(DecodingState(s.step, flat_seqs, cur, s.cache))
        log_probs = jax.nn.log_softmax(logits.astype(jnp.float32), axis=-1)
        vocab = log_probs.shape[-1]
        candidates = (s.live_log_probs[:, :, None] + unflatten_beams(log_probs, batch_size)).reshape(batch_size, -1)
        top_log_probs, top_ids = jax.lax.top_k(candidates, 2 * k)
        top_beams = top_ids // vocab
        top_tokens = (top_ids % vocab).astype(jnp.int32)
        top_seqs = gather_beams(s.live_seqs, top_beams)
        top_seqs = jax.lax.dynamic_update_slice(
            top_seqs, top_tokens[:, :, None], (0, 0, s.step + 1))
        ends = top_tokens == eos_id
        # live: the k best candidates that did not end
        live_scores = jnp.where(ends, NEG_INF, top_log_probs)
        live_scores, live_idx = jax.lax.top_k(live_scores, k)
        live_seqs = gather_beams(top_seqs, live_idx)
        source_beams = jnp.take_along_axis(top_beams, live_idx, axis=1)
        cache = gather_cache(cache, source_beams, batch_size, cache_batch_axis)
        # finished: merge the ended candidates (length-normalised) with the finished set
        new_scores = jnp.where(ends, top_log_probs / brevity_penalty(alpha, s.step + 1), NEG_INF)
        all_seqs = jnp.concatenate([s.finished_seqs, top_seqs], axis=1)
        all_scores = jnp.concatenate([s.finished_scores, new_scores], axis=1)
        all_flags = jnp.concatenate([s.finished_flags, ends], axis=1)
        finished_scores, fin_idx = jax.lax.top_k(jnp.where(all_flags, all_scores, NEG_INF), k)
        finished_seqs = gather_beams(all_seqs, fin_idx)
        finished_flags = jnp.take_along_axis(all_flags, fin_idx, axis=1)
        return BeamState(step=s.step + 1, live_seqs=live_seqs, live_log_probs=live_scores,
                         finished_seqs=finished_seqs, finished_scores=finished_scores,
                         finished_flags=finished_flags, cache=cache)

    final = jax.lax.while_loop(cond, body, state)
    any_finished = jnp.any(final.finished_flags, axis=1)
    seqs = jnp.where(any_finished[:, None, None], final.finished_seqs, final.live_seqs)
    scores = jnp.where(any_finished[:, None], final.finished_scores,
                       final.live_log_probs / brevity_penalty(alpha, max_decode_len))
    return seqs[:, :, 1:], scores
