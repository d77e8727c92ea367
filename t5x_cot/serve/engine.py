"""The served model: a checkpoint, its SentencePiece codec, and batched decoding in few shapes.

A batch is padded to the smallest bucket (powers of two up to the maximum) of rows, of
input length and of decode length, so the jitted decoding loop compiles once per
(row bucket, input bucket, decode bucket, sampling settings) and is reused from then on.
Temperature and top-p are rounded to two decimals: they are compiled into the loop, and
the rounding bounds how many variants a stream of clients can make the server compile.
Decoding itself is `t5x_cot.decoding.predict.Predictor`, the code eval and infer run.
"""
from __future__ import annotations

import collections
import dataclasses
import itertools
import pathlib
from collections.abc import Sequence
from typing import Any

import jax
import jax.numpy as jnp

from t5x_cot import checkpoints
from t5x_cot.decoding.codec import SentencePieceCodec
from t5x_cot.decoding.predict import DecodeConfig, Predictor, pad_batch
from t5x_cot.decoding.sampling import trim
from t5x_cot.decoding.state import EOS_ID

MAX_PREDICTORS = 16


class PromptTooLong(ValueError):
    """A prompt with more tokens than the server accepts."""


@dataclasses.dataclass(frozen=True)
class DecodeKey:
    """Settings a batch shares. `seed` set: the request decodes alone (`owner` tells it apart),
    so its samples depend only on its own prompt, settings and seed."""

    temperature: float
    top_p: float
    max_decode_length: int
    use_calculator: bool
    seed: int | None = None
    owner: int | None = None

    @property
    def greedy(self) -> bool:
        return self.temperature == 0.0 or self.top_p == 0.0

    def decode_config(self) -> DecodeConfig:
        if self.greedy:
            return DecodeConfig(strategy="greedy", max_decode_length=self.max_decode_length,
                                use_calculator=self.use_calculator)
        return DecodeConfig(strategy="sample", max_decode_length=self.max_decode_length,
                            temperature=self.temperature, topp=self.top_p if self.top_p < 1.0 else 0.0,
                            use_calculator=self.use_calculator)


@dataclasses.dataclass(frozen=True)
class RowOutput:
    """One decoded row: token ids before EOS (calculator results included), whether EOS was
    written."""

    ids: tuple[int, ...]
    ended: bool


def buckets(limit: int, smallest: int) -> tuple[int, ...]:
    """Powers of two from `smallest` below `limit`, then `limit`."""
    sizes = [smallest]
    while sizes[-1] * 2 < limit:
        sizes.append(sizes[-1] * 2)
    return tuple(s for s in sizes if s < limit) + (limit,)


def bucket_for(size: int, sizes: Sequence[int]) -> int:
    return next(s for s in sizes if s >= size)


class Engine:
    """Tokenises prompts and decodes batches of them; `run_batch` is the batcher's callback."""

    def __init__(self, config: Any, params: Any, codec: SentencePieceCodec, *, max_batch: int = 32,
                 max_input_tokens: int = 512, max_tokens_limit: int = 256):
        self.config = config
        self.params = jax.tree.map(jnp.asarray, params)  # on the device once, shared by every Predictor
        self.codec = codec
        self.max_batch = max_batch
        self.max_input_tokens = max_input_tokens
        self.max_tokens_limit = max_tokens_limit
        self.row_buckets = buckets(max_batch, 1)
        self.input_buckets = buckets(max_input_tokens, min(32, max_input_tokens))
        self.decode_buckets = buckets(max_tokens_limit, min(16, max_tokens_limit))
        self._predictors: collections.OrderedDict[DecodeConfig, Predictor] = collections.OrderedDict()
        self._calls = itertools.count()

    @classmethod
    def from_checkpoint(cls, path: str | pathlib.Path, vocab_path: str, **limits: int) -> Engine:
        """Params and T5Config of an "ours" checkpoint (params dir, step dir or MODEL_DIR)."""
        params, config = checkpoints.load_params(path)
        if config is None:
            raise checkpoints.CheckpointError(
                f"{path}: no {checkpoints.CONFIG_FILE} next to the params; the server reads the "
                "model's T5Config from it (convert or train with t5x_cot to write one)")
        if not pathlib.Path(vocab_path).is_file():
            raise FileNotFoundError(f"vocabulary {vocab_path}: no such file (pass --vocab or set "
                                    "T5X_COT_VOCAB)")
        return cls(config, params, SentencePieceCodec.from_model_file(vocab_path), **limits)

    def encode_prompt(self, text: str) -> list[int]:
        """Encoder input ids (EOS appended, as the tasks do); PromptTooLong past the limit."""
        ids = self.codec.encode(text) + [EOS_ID]
        if len(ids) > self.max_input_tokens:
            raise PromptTooLong(f"the prompt has {len(ids)} tokens; this server accepts at most "
                                f"{self.max_input_tokens}")
        return ids

    def decode_key(self, *, temperature: float, top_p: float, max_tokens: int, use_calculator: bool,
                   seed: int | None) -> DecodeKey:
        """The batching key of a request (max_tokens must be <= max_tokens_limit)."""
        temperature, top_p = round(temperature, 2), round(top_p, 2)
        greedy = temperature == 0.0 or top_p == 0.0
        return DecodeKey(0.0 if greedy else temperature, 1.0 if greedy else top_p,
                         bucket_for(max_tokens, self.decode_buckets), use_calculator,
                         None if greedy else seed, None if greedy or seed is None else next(self._calls))

    def _predictor(self, decode_config: DecodeConfig) -> Predictor:
        predictor = self._predictors.pop(decode_config, None) or Predictor(
            self.config, self.params, decode_config, None, self.codec)
        self._predictors[decode_config] = predictor
        while len(self._predictors) > MAX_PREDICTORS:
            self._predictors.popitem(last=False)
        return predictor

    def run_batch(self, key: DecodeKey, rows: Sequence[Sequence[int]]) -> list[RowOutput]:
        """Decode encoder-input rows (at most `max_batch`) padded to bucket shapes."""
        batch = bucket_for(len(rows), self.row_buckets)
        length = bucket_for(max(len(r) for r in rows), self.input_buckets)
        seed = key.seed if key.seed is not None else next(self._calls)
        output = self._predictor(key.decode_config()).predict_batch(
            pad_batch(rows, batch, length), jax.random.PRNGKey(seed))
        results = []
        for i in range(len(rows)):
            ids = trim(output.tokens[i], EOS_ID)
            results.append(RowOutput(tuple(ids), len(ids) < output.tokens.shape[1]))
        return results
