"""Token rows in, generated texts out: batch (padded to a fixed shape), decode, detokenise."""
from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence

import jax

from t5x_cot.decoding.calculator_loop import CalculatorCall
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


def generate_from_tokens(predictor: Predictor, rows: Sequence[Sequence[int]],
                         decode_text: Callable[[list[int]], str], *, batch_size: int,
                         num_samples: int = 1) -> list[list[tuple[list[int], Generation]]]:
    """`num_samples` generations (token ids and decoded text) for each encoder input row.

    Batches are padded to `batch_size` rows (rounded up to a multiple of the data-parallel
    size) and to the longest row, so one compiled loop serves the
    whole call. Batch i draws from `fold_in(PRNGKey(seed), i)`: the same seed, batch size and
    inputs give the same samples.
    """
    multiple = predictor.batch_multiple
    batch_size = -(-batch_size // multiple) * multiple
    length = max((len(row) for row in rows), default=1)
    expanded = [(i, row) for i, row in enumerate(rows) for _ in range(num_samples)]
    results: list[list[tuple[list[int], Generation]]] = [[] for _ in rows]
    seed = jax.random.PRNGKey(predictor.decode_config.seed)
    for index, start in enumerate(range(0, len(expanded), batch_size)):
        chunk = expanded[start:start + batch_size]
        output = predictor.predict_batch(pad_batch([row for _, row in chunk], batch_size, length),
                                         jax.random.fold_in(seed, index))
        for offset, (i, _) in enumerate(chunk):
            ids = trim(output.tokens[offset], EOS_ID)
            results[i].append((ids, Generation(
                text=decode_text(ids), num_tokens=len(ids), score=float(output.scores[offset]),
                calculator_calls=tuple(output.calculator_calls.get(offset, ())))))
    return results

