"""Greedy decoding and temperature / top-k / top-p sampling in one `lax.while_loop`.

The loop writes one token per step into a fixed-size `sequences` buffer, feeds it back
through `tokens_to_logits` (which reads and updates the fixed-size key/value cache), and
stops early once every sequence has emitted EOS. Its state can also carry tokens to force
per sequence and a set of "pause" tokens: the loop then returns to the caller as soon as a
live sequence emits one, so host code (the calculator) can look at the text, queue tokens to
force, and resume the same compiled loop with the cache left on the device.
"""
from __future__ import annotations

import dataclasses
from typing import Any

import flax
import jax
import jax.numpy as jnp
import numpy as np

from t5x_cot.decoding.state import EOS_ID, PAD_ID, DecodingState, TokensToLogits
from t5x_cot.errors import UserError
from t5x_cot.model.layers import first_argmax

NEG_INF = -1.0e7


class DecodeConfigError(UserError, ValueError):
    """A decoding setting (DECODE_STRATEGY, NUM_SAMPLES, temperature, ...) the decoder cannot use."""


@dataclasses.dataclass(frozen=True)
class SamplingConfig:
    """How the next token is chosen. temperature 0 is greedy (argmax).

    `topk` > 0 keeps the k most likely tokens, `topp` in (0, 1) the smallest set whose
    probability mass reaches p (nucleus sampling); both apply after the temperature.
    """

    temperature: float = 0.0
    topk: int = 0
    topp: float = 0.0

    def __post_init__(self) -> None:
        if self.temperature < 0:
            raise DecodeConfigError(f"temperature must be >= 0, got {self.temperature}")
        if self.topk < 0:
            raise DecodeConfigError(f"topk must be >= 0, got {self.topk}")
        if not 0.0 <= self.topp < 1.0 + 1e-9:
            raise DecodeConfigError(f"topp must be in [0, 1], got {self.topp}")

    @property
    def greedy(self) -> bool:
        return self.temperature == 0.0


GREEDY = SamplingConfig()


@flax.struct.dataclass
class SampleState:
    """Carry of the sampling loop (all arrays; resumable from the host)."""

    step: jax.Array        # scalar int32: index of the current token in `sequences`
    sequences: jax.Array   # [B, L + 1] int32; column 0 is the start token
    cache: Any
    ended: jax.Array       # [B] bool: sequence has emitted EOS
    log_probs: jax.Array   # [B] float32: sum of log-probabilities of chosen (unforced) tokens
    rng: jax.Array         # PRNG key
    forced: jax.Array      # [B, F] int32: tokens queued to force
    forced_len: jax.Array  # [B] int32: length of the queue
    forced_pos: jax.Array  # [B] int32: next queued token to force
    paused: jax.Array      # scalar bool: a live sequence emitted a pause token at the last step


def init_state(cache: Any, batch_size: int, max_decode_len: int, rng: jax.Array,
               max_forced: int = 1) -> SampleState:
    """Initial loop state: start tokens at column 0, nothing forced, nothing ended."""
    return SampleState(
        step=jnp.zeros((), jnp.int32),
        sequences=jnp.full((batch_size, max_decode_len + 1), PAD_ID, jnp.int32),
        cache=cache,
        ended=jnp.zeros((batch_size,), bool),
        log_probs=jnp.zeros((batch_size,), jnp.float32),
        rng=rng,
        forced=jnp.zeros((batch_size, max_forced), jnp.int32),
        forced_len=jnp.zeros((batch_size,), jnp.int32),
        forced_pos=jnp.zeros((batch_size,), jnp.int32),
        paused=jnp.zeros((), bool))


def filter_logits(logits: jax.Array, config: SamplingConfig) -> jax.Array:
    """Temperature-scaled logits with everything outside top-k / top-p set to NEG_INF."""
    logits = logits / config.temperature
    if config.topk:
        kth = jax.lax.top_k(logits, config.topk)[0][..., -1:]
        logits = jnp.where(logits < kth, NEG_INF, logits)
    if 0.0 < config.topp < 1.0:
        sorted_logits = jnp.sort(logits, axis=-1)[..., ::-1]
        cumulative = jnp.cumsum(jax.nn.softmax(sorted_logits, axis=-1), axis=-1)
        # keep a sorted token when the mass before it is < p (the first token is always kept)
        keep = (cumulative - jax.nn.softmax(sorted_logits, axis=-1)) < config.topp
        threshold = jnp.min(jnp.where(keep, sorted_logits, jnp.inf), axis=-1, keepdims=True)
        logits = jnp.where(logits < threshold, NEG_INF, logits)
    return logits


def choose_tokens(logits: jax.Array, rng: jax.Array, config: SamplingConfig) -> jax.Array:
    """Next token per row: argmax when greedy, else a draw from the filtered distribution."""
    if config.greedy:
        return first_argmax(logits)
    return jax.random.categorical(rng, filter_logits(logits, config), axis=-1).astype(jnp.int32)


def sample_loop(state: SampleState, tokens_to_logits: TokensToLogits, config: SamplingConfig,
                eos_id: int | None = EOS_ID, pause_mask: jax.Array | None = None) -> SampleState:
    """Run the decoding loop from `state` until every sequence ended, the buffer is full, or
    (with `pause_mask`, a [vocab] bool array) a live sequence emitted a pause token.

    Traceable: wrap in `jax.jit` (with `tokens_to_logits`, `config`, `eos_id` fixed) to
    compile once per shape. Resume a paused state with `state.replace(paused=False)`.
    """
    max_steps = state.sequences.shape[1] - 1
    max_forced = state.forced.shape[1]

    def cond(s: SampleState) -> jax.Array:
        return (s.step < max_steps) & ~jnp.all(s.ended) & ~s.paused

    def body(s: SampleState) -> SampleState:
        cur = jax.lax.dynamic_slice_in_dim(s.sequences, s.step, 1, axis=1)
        logits, cache = tokens_to_logits(DecodingState(s.step, s.sequences, cur, s.cache))
        logits = logits.astype(jnp.float32)
        rng, step_rng = jax.random.split(s.rng)
        token = choose_tokens(logits, step_rng, config)
        log_prob = jnp.take_along_axis(jax.nn.log_softmax(logits, axis=-1), token[:, None], axis=-1)[:, 0]
        is_forced = (s.forced_pos < s.forced_len) & ~s.ended
        queued = jnp.take_along_axis(s.forced, jnp.minimum(s.forced_pos, max_forced - 1)[:, None], axis=1)[:, 0]
        token = jnp.where(is_forced, queued, token)
        token = jnp.where(s.ended, PAD_ID, token)
        log_probs = s.log_probs + jnp.where(s.ended | is_forced, 0.0, log_prob)
        ended = s.ended if eos_id is None else s.ended | (token == eos_id)
        paused = jnp.zeros((), bool)
        if pause_mask is not None:
            paused = jnp.any(pause_mask[token] & ~s.ended & ~is_forced)
        sequences = jax.lax.dynamic_update_slice(s.sequences, token[:, None], (0, s.step + 1))
        return s.replace(step=s.step + 1, sequences=sequences, cache=cache, ended=ended,
                         log_probs=log_probs, rng=rng, forced_pos=s.forced_pos + is_forced.astype(jnp.int32),
                         paused=paused)

    return jax.lax.while_loop(cond, body, state)


def temperature_sample(cache: Any, tokens_to_logits: TokensToLogits, *, batch_size: int,
                       max_decode_len: int, rng: jax.Array | None = None,
                       config: SamplingConfig = GREEDY, eos_id: int | None = EOS_ID) -> tuple[jax.Array, jax.Array]:
    """Decode up to `max_decode_len` tokens per row; returns (sequences [B, L], log_probs [B]).

    After EOS a row holds PAD (0). `eos_id=None` never stops early (benchmarks). Traceable.
    """
    if rng is None:
        rng = jax.random.PRNGKey(0)
    state = sample_loop(init_state(cache, batch_size, max_decode_len, rng), tokens_to_logits,
                        config, eos_id)
    return state.sequences[:, 1:], state.log_probs


def sequence_lengths(sequences: np.ndarray, eos_id: int = EOS_ID) -> np.ndarray:
    """Number of tokens up to and including the first EOS (all tokens when there is none)."""
    sequences = np.asarray(sequences)
    is_eos = sequences == eos_id
    has_eos = is_eos.any(axis=-1)
    return np.where(has_eos, is_eos.argmax(axis=-1) + 1, sequences.shape[-1])


def trim(sequence: np.ndarray, eos_id: int = EOS_ID) -> list[int]:
    """Token ids before the first EOS (EOS and padding dropped)."""
    ids = [int(t) for t in np.asarray(sequence)]
    return ids[:ids.index(eos_id)] if eos_id in ids else ids
