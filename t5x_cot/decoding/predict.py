"""Model-bound decoding: encode once, build the key/value cache, run the compiled loop.

`Predictor` holds the params (sharded over the partitioner's mesh like training) and one
compiled function per (strategy, batch shape): greedy and sampling run `sample_loop`, beam
search `beam_search`, and with the calculator on the sampling loop pauses to the host at
annotations. Batches are padded to a fixed batch size, so a whole eval compiles once.
"""
from __future__ import annotations

import contextlib
import dataclasses
import functools
from collections.abc import Callable, Sequence
from typing import Any

import gin
import jax
import jax.numpy as jnp
import numpy as np

from t5x_cot.decoding import beam, calculator_loop, sampling
from t5x_cot.decoding.codec import SentencePieceCodec
from t5x_cot.decoding.sampling import DecodeConfigError
from t5x_cot.decoding.state import EOS_ID, DecodingState
from t5x_cot.model import network

STRATEGIES = ("greedy", "beam", "sample")


@gin.configurable(module="decoding")
@dataclasses.dataclass(frozen=True)
class DecodeConfig:
    """How to decode. `strategy`: greedy | beam | sample. `num_samples` > 1 samples that many
    rationales per input (self-consistency; needs strategy "sample"). `use_calculator` completes
    `<<expr=` annotations with the calculator (greedy and sampling)."""

    strategy: str = "greedy"
    max_decode_length: int = 256
    num_beams: int = 4
    alpha: float = beam.DEFAULT_ALPHA
    temperature: float = 1.0
    topk: int = 0
    topp: float = 0.0
    seed: int = 0
    num_samples: int = 1
    use_calculator: bool = False

    def __post_init__(self) -> None:
        if self.strategy not in STRATEGIES:
            raise DecodeConfigError(f"DECODE_STRATEGY={self.strategy!r}; expected one of {', '.join(STRATEGIES)}")
        if self.num_samples < 1:
            raise DecodeConfigError(f"NUM_SAMPLES={self.num_samples}; expected a positive integer")
        if self.num_samples > 1 and self.strategy != "sample":
            raise DecodeConfigError(f"NUM_SAMPLES={self.num_samples} needs DECODE_STRATEGY='sample', "
                                   f"got {self.strategy!r}")
        if self.use_calculator and self.strategy == "beam":
            raise DecodeConfigError("USE_CALCULATOR works with greedy or sample decoding, not beam search")
        if self.max_decode_length < 1 or self.num_beams < 1:
            raise DecodeConfigError("max_decode_length and num_beams must be positive")

    @property
    def sampling_config(self) -> sampling.SamplingConfig:
        if self.strategy == "greedy":
            return sampling.GREEDY
        return sampling.SamplingConfig(self.temperature, self.topk, self.topp)


@dataclasses.dataclass
class BatchOutput:
    """Decoded tokens of a batch: `tokens` [rows, L] (PAD after EOS), `scores` [rows]
    (sum log-prob; beam: length-normalised score), calculator calls by row."""

    tokens: np.ndarray
    scores: np.ndarray
    calculator_calls: dict[int, list[calculator_loop.CalculatorCall]]


def _cache_batch_axis(config: network.T5Config) -> int:
    return 1 if config.scan_layers else 0


class Predictor:
    """Decodes batches of encoder input tokens with one model.

    `partitioner` (a `t5x_cot.partitioning.Partitioner`) shards params by their logical axes
    and batches over 'data'; without one everything sits on the default device.
    `codec` is needed for the calculator.
    """

    def __init__(self, config: network.T5Config, params: Any, decode_config: DecodeConfig,
                 partitioner: Any = None, codec: SentencePieceCodec | None = None):
        if decode_config.use_calculator and codec is None:
            raise ValueError("the calculator needs a SentencePiece codec to read the decoded text")
        self.config = config
        self.decode_config = decode_config
        self.partitioner = partitioner
        self.codec = codec
        self.params = self._place_params(params)
        self._pause_ids = (codec.token_mask(config.vocab_size, "=") if decode_config.use_calculator else None)

    # ------------------------------------------------------------------ placement

    def _place_params(self, params: Any) -> Any:
        if self.partitioner is None:
            return jax.tree.map(jnp.asarray, params)
        axes = network.param_logical_axes(self.config)
        return jax.device_put(params, self.partitioner.tree_shardings(params, axes))

    def _place_batch(self, tokens: np.ndarray) -> jax.Array:
        if self.partitioner is None:
            return jnp.asarray(tokens)
        return jax.device_put(tokens, self.partitioner.batch_sharding(tokens.ndim))

    @property
    def batch_multiple(self) -> int:
        """Batch sizes must be a multiple of this (the data-parallel mesh size)."""
        return 1 if self.partitioner is None else self.partitioner.data_size

    def _init_sample_state(self, tokens: jax.Array, rng: jax.Array, max_forced: int) -> sampling.SampleState:
        cache = self._function("prefill")(self.params, tokens)
        if self.partitioner is not None:
            cache = jax.device_put(cache, self._cache_sharding(cache))
        return sampling.init_state(cache, tokens.shape[0], self.decode_config.max_decode_length, rng, max_forced)

    def _cache_sharding(self, cache: Any) -> Any:
        """Cache leaves split over 'data' along their batch axis (scalars replicated)."""
        axis = _cache_batch_axis(self.config)

        def sharding(x: jax.Array) -> Any:
            if x.ndim <= axis or x.shape[axis] % self.partitioner.data_size:
                return self.partitioner.replicated()
            spec = [None] * x.ndim
            spec[axis] = "data"
            return jax.sharding.NamedSharding(self.partitioner.mesh, jax.sharding.PartitionSpec(*spec))
        return jax.tree.map(sharding, cache)

    def _function(self, kind: str) -> Callable:
        # seed, sample count and calculator do not change the traced loop: share its compilation
        shape_settings = dataclasses.replace(self.decode_config, seed=0, num_samples=1, use_calculator=False)
        return compiled_function(self.config, shape_settings, kind)

    # ------------------------------------------------------------------ public API

    def predict_batch(self, encoder_tokens: np.ndarray, rng: jax.Array | None = None) -> BatchOutput:
        """Decode a [batch, input_len] int32 batch (batch a multiple of `batch_multiple`).

        Greedy and sampling return one row per input; beam search returns the best beam.
        """
        cfg = self.decode_config
        tokens = self._place_batch(np.asarray(encoder_tokens, np.int32))
        with self._context():
            if cfg.strategy == "beam":
                seqs, scores = self._function("beam")(self.params, tokens)
                return BatchOutput(np.asarray(seqs[:, 0]), np.asarray(scores[:, 0]), {})
            rng = jax.random.PRNGKey(cfg.seed) if rng is None else rng
            max_forced = calculator_loop.MAX_FORCED_TOKENS if cfg.use_calculator else 1
            state = self._init_sample_state(tokens, rng, max_forced)
            calls: dict[int, list[calculator_loop.CalculatorCall]] = {}
            if cfg.use_calculator:
                pause_mask = jnp.asarray(self._pause_ids)
                run = self._function("sample_pause")

                def loop(s: sampling.SampleState) -> sampling.SampleState:
                    return run(self.params, tokens, s, pause_mask)
                state, made = calculator_loop.decode_with_calculator(loop, state, self.codec, self._pause_ids)
                for call in made:
                    calls.setdefault(call.row, []).append(call)
            else:
                state = self._function("sample")(self.params, tokens, state, None)
            return BatchOutput(np.asarray(state.sequences[:, 1:]), np.asarray(state.log_probs), calls)

    def _context(self) -> Any:
        return self.partitioner.context() if self.partitioner is not None else contextlib.nullcontext()


def encode_fn(config: network.T5Config) -> Callable:
    """encode(params, encoder_tokens) -> encoder outputs (dropout off)."""
    module = network.Transformer(config)

    def encode(params: Any, encoder_tokens: jax.Array) -> jax.Array:
        return module.apply({"params": params}, encoder_tokens, enable_dropout=False, method=module.encode)
    return encode


def prefill_fn(config: network.T5Config, max_len: int) -> Callable:
    """prefill(params, encoder_tokens) -> decode cache: the batch encoded, the cross-attention
    keys/values computed once, empty self-attention keys/values for `max_len` tokens."""
    encode = encode_fn(config)

    def prefill(params: Any, encoder_tokens: jax.Array) -> Any:
        return network.prefill_cache(config, params, encode(params, encoder_tokens), encoder_tokens, max_len)
    return prefill


def model_tokens_to_logits(config: network.T5Config, max_len: int, params: Any,
                           encoder_tokens: jax.Array) -> Callable[[DecodingState], tuple[jax.Array, Any]]:
    """One decoder step of the model on a prefilled cache: (logits [B, vocab], new cache).
    `encoder_tokens` [B, input_len] only mask encoder padding."""
    module = network.Transformer(config)

    def tokens_to_logits(state: DecodingState) -> tuple[jax.Array, Any]:
        logits, variables = module.apply(
            {"params": params, "cache": state.cache}, None, encoder_tokens, state.cur_token,
            state.cur_token, enable_dropout=False, decode=True, max_decode_length=max_len,
            mutable=["cache"], method=module.decode)
        return logits[:, -1, :], variables["cache"]
    return tokens_to_logits


def _sample_fn(config: network.T5Config, cfg: DecodeConfig, pause: bool) -> Callable:
    def run(params: Any, encoder_tokens: jax.Array, state: sampling.SampleState,
            pause_mask: jax.Array | None) -> sampling.SampleState:
        step = model_tokens_to_logits(config, cfg.max_decode_length, params, encoder_tokens)
        return sampling.sample_loop(state, step, cfg.sampling_config, EOS_ID, pause_mask if pause else None)
    return run


def _beam_fn(config: network.T5Config, cfg: DecodeConfig) -> Callable:
    prefill = prefill_fn(config, cfg.max_decode_length)

    def run(params: Any, encoder_tokens: jax.Array) -> tuple[jax.Array, jax.Array]:
        batch = encoder_tokens.shape[0]
        cache = prefill(params, encoder_tokens)
        tokens = jnp.repeat(encoder_tokens, cfg.num_beams, axis=0)
        step = model_tokens_to_logits(config, cfg.max_decode_length, params, tokens)
        return beam.beam_search(cache, step, batch_size=batch, num_beams=cfg.num_beams,
                                max_decode_len=cfg.max_decode_length, alpha=cfg.alpha,
                                cache_batch_axis=_cache_batch_axis(config))
    return run


@functools.lru_cache(maxsize=32)
def compiled_function(config: network.T5Config, decode_config: DecodeConfig, kind: str) -> Callable:
    """The jitted `kind` ('prefill', 'sample', 'sample_pause', 'beam') function of a model and
    decoding setup, shared by every Predictor with the same settings (compiled once per shape)."""
    if kind == "prefill":
        return jax.jit(prefill_fn(config, decode_config.max_decode_length))
    if kind == "beam":
        return jax.jit(_beam_fn(config, decode_config))
    return jax.jit(_sample_fn(config, decode_config, pause=kind == "sample_pause"))


def pad_batch(rows: Sequence[Sequence[int]], batch_size: int, length: int) -> np.ndarray:
    """[batch_size, length] int32 of token rows (truncated to `length`, zero-padded; missing
    rows are all padding)."""
    out = np.zeros((batch_size, length), np.int32)
    for i, row in enumerate(rows):
        row = list(row)[:length]
        out[i, :len(row)] = row
    return out
