"""Calculator in the decoding loop (Cobbe et al. 2021).

When a sequence writes an annotation opener and then `expr=` (GSM8K's `<<48/2=24>>`), the
decoder evaluates `expr` with `t5x_cot.calculator.evaluate` and forces the result and the
closing `>>`, then lets the model continue. The compiled sampling loop pauses whenever a live
sequence emits a token whose piece contains "="; the host decodes those sequences' text,
decides from the text (not from token ids, so any SentencePiece split of `<<`, `=` and `>>`
works) whether an annotation is open, and queues the tokens to force. The loop then resumes
with the cache left on the device. An expression the calculator rejects closes that
sequence's annotation with `ERROR>>`; other sequences are untouched.

The T5 vocabulary has no `<`: `<<` is encoded as the unknown token and decodes as " ⁇ ", so
both spellings open an annotation.
"""
from __future__ import annotations

import dataclasses
from collections.abc import Callable

import jax.numpy as jnp
import numpy as np

from t5x_cot import calculator
from t5x_cot.decoding.codec import SentencePieceCodec
from t5x_cot.decoding.sampling import SampleState, trim

OPENERS = ("<<", "\u2047")  # "<<", and SentencePiece's rendering of the unknown token
CLOSER = ">>"
ERROR_MARKER = "ERROR"
MAX_FORCED_TOKENS = 32


@dataclasses.dataclass(frozen=True)
class CalculatorCall:
    """One annotation the calculator completed."""

    row: int
    step: int
    expression: str
    result: str  # the forced text (result or error marker, then ">>")


def open_annotation(text: str) -> tuple[str, str] | None:
    """(expression, text after '=') when `text` ends inside an annotation that has reached its
    first '=', else None."""
    start, opener = max(((text.rfind(o), o) for o in OPENERS), key=lambda p: p[0])
    if start < 0:
        return None
    body = text[start + len(opener):]
    if CLOSER in body or "=" not in body:
        return None
    expression, _, after = body.partition("=")
    return expression.strip(), after


def completion_for(text: str) -> tuple[str, str] | None:
    """(expression, text to force) for a sequence whose text is `text`, or None to leave it."""
    request = open_annotation(text)
    if request is None:
        return None
    expression, after = request
    try:
        forced = calculator.format_number(calculator.evaluate(expression)) + CLOSER
    except calculator.CalculatorError:
        forced = ERROR_MARKER + CLOSER
    if not forced.startswith(after.strip()):
        return None  # the token that carried '=' also wrote something else; leave it
    return expression, forced[len(after.strip()):]


def decode_with_calculator(loop: Callable[[SampleState], SampleState], state: SampleState,
                           codec: SentencePieceCodec, pause_ids: np.ndarray,
                           eos_id: int = 1) -> tuple[SampleState, list[CalculatorCall]]:
    """Run `loop` (the compiled sampling loop with a pause mask) to completion, answering each
    pause with the calculator. Returns the final state and the calls made."""
    calls: list[CalculatorCall] = []
    state = loop(state)
    while bool(state.paused):
        step = int(state.step)
        sequences = np.asarray(state.sequences)
        forced = np.array(state.forced)
        forced_len = np.array(state.forced_len)
        forced_pos = np.array(state.forced_pos)
        for row in np.flatnonzero(pause_ids[sequences[:, step]]):
            text = codec.decode(trim(sequences[row, 1:step + 1], eos_id))
            completion = completion_for(text)
            if completion is None:
                continue
            expression, text_to_force = completion
            ids = codec.encode_continuation(text_to_force)
            if len(ids) > forced.shape[1]:
                text_to_force = ERROR_MARKER + CLOSER
                ids = codec.encode_continuation(text_to_force)
            forced[row, :len(ids)] = ids
            forced_len[row], forced_pos[row] = len(ids), 0
            calls.append(CalculatorCall(int(row), step, expression, text_to_force))
        state = loop(state.replace(forced=jnp.asarray(forced), forced_len=jnp.asarray(forced_len),
                                   forced_pos=jnp.asarray(forced_pos), paused=jnp.zeros((), bool)))
    return state, calls
