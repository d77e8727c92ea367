"""Texts in, generated texts out: tokenise, batch (padded to a fixed shape), decode, detokenise."""
from __future__ import annotations

import dataclasses
from collections.abc import Iterator, Sequence

import jax
from tqdm.auto import tqdm

from t5x_cot.decoding.calculator_loop import CalculatorCall
from t5x_cot.decoding.codec import SentencePieceCodec
from t5x_cot.decoding.predict import Predictor, pad_batch
from t5x_cot.decoding.sampling import trim
from t5x_cot.decoding.state import EOS_ID


@dataclasses.dataclass(frozen=True)
class Generation:
    """One generated text: detokenised, its token count (EOS excluded), its score, and the
    calculator calls made while writing it."""

    text: str
    num_tokens: int
    score: float
    calculator_calls: tuple[CalculatorCall, ...] = ()


def encode_inputs(codec: SentencePieceCodec, texts: Sequence[str], input_length: int) -> list[list[int]]:
    """Token ids with EOS appended after truncation to `input_length`, as seqio does."""
    return [codec.encode(text)[:input_length - 1] + [EOS_ID] for text in texts]


def _chunks(n: int, size: int) -> Iterator[range]:
    for start in range(0, n, size):
        yield range(start, min(start + size, n))


def generate(predictor: Predictor, codec: SentencePieceCodec, texts: Sequence[str], *,
             batch_size: int, input_length: int, num_samples: int = 1,
             progress: str | None = None) -> list[list[Generation]]:
    """`num_samples` generations per input text (rows of a batch are the inputs repeated).

    Batches are padded to `batch_size` rows (rounded up to a multiple of the data-parallel
    size), so one compiled loop serves the whole call. Sample i of a batch draws from
    `fold_in(PRNGKey(seed), batch index)`: the same seed, batch size and inputs give the same
    samples. `progress` is the label of a progress bar (None: no bar).
    """
    multiple = predictor.batch_multiple
    batch_size = -(-batch_size // multiple) * multiple
    rows = [(i, tokens) for i, tokens in enumerate(encode_inputs(codec, texts, input_length))
            for _ in range(num_samples)]
    results: list[list[Generation]] = [[] for _ in texts]
    seed = jax.random.PRNGKey(predictor.decode_config.seed)
    batches = list(_chunks(len(rows), batch_size))
    for index, chunk in enumerate(tqdm(batches, desc=progress, disable=progress is None, unit="batch")):
        tokens = pad_batch([rows[r][1] for r in chunk], batch_size, input_length)
        output = predictor.predict_batch(tokens, jax.random.fold_in(seed, index))
        for offset, r in enumerate(chunk):
            ids = trim(output.tokens[offset], EOS_ID)
            results[rows[r][0]].append(Generation(
                text=codec.decode(ids), num_tokens=len(ids), score=float(output.scores[offset]),
                calculator_calls=tuple(output.calculator_calls.get(offset, ()))))
    return results
