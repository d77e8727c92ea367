"""Calculator in the decoding loop (Cobbe et al. 2021).

When a sequence writes an annotation opener and then `expr=` (GSM8K's `<<48/2=24>>`), the
decoder evaluates `expr` with `t5x_cot.calculator.evaluate` and forces the result and the
closing `>>`, then lets the model continue. The compiled sampling loop pauses whenever a live
sequence emits a token whose piece contains "="; the host decodes those sequences' text,
decides from the text (not from token ids, so any SentencePiece split of `<<`, `=` and `>>`
works) whether an annotation is open, and queues the tokens to force. The loop then resumes
with the cache left on the device. An expression the calculator rejects closes that
sequence's annotation with `ERROR>>`; other sequences are untouched.

Token healing: a vocabulary may merge `=` with what follows (`=1>>`, `=>`), so the token
that reaches `=` can also carry text the model made up. The token just emitted has not been
fed back to the model yet, so the host replaces it: its text is cut after the `=` and
re-encoded together with the calculator's result and `>>`; the first of those ids takes the
emitted token's place and the rest are forced.

The T5 vocabulary has no `<`: `<<` is encoded as the unknown token and decodes as " ⁇ ", so
both spellings open an annotation.
"""
from __future__ import annotations

import dataclasses
from collections.abc import Callable

import jax.numpy as jnp
import numpy as np

from t5x_cot import calculator
from t5x_cot.decoding.codec import WORD_START, SentencePieceCodec
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
    healed: bool = False  # the token that reached "=" carried more text and was replaced


@dataclasses.dataclass(frozen=True)
class Completion:
    """What to do with a paused sequence: `replace` (None: keep the last token; else the
    text that takes its place, ending at "=") followed by the forced text `force`."""

    expression: str
    force: str
    replace: str | None = None


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


def _result(expression: str) -> str:
    try:
        return calculator.format_number(calculator.evaluate(expression)) + CLOSER
    except calculator.CalculatorError:
        return ERROR_MARKER + CLOSER


def completion_for(before: str, last: str) -> Completion | None:
    """The completion of a sequence whose text is `before` followed by the text `last` of the
    token just emitted, or None to leave the sequence alone (no annotation reached its first
    "=" in this token).

    What the token carries after its "=" is kept when it is a start of the result (the rest
    is forced) or already the whole result and `>>`; anything else is healed: the token is
    cut after its "=" and the whole result forced.
    """
    cut = last.find("=")
    if cut < 0:
        return None
    request = open_annotation(before + last[:cut + 1])
    if request is None or request[1]:
        return None
    expression = request[0]
    forced, tail = _result(expression), last[cut + 1:].strip()
    if forced.startswith(tail):
        return Completion(expression, forced[len(tail):])
    if tail.startswith(forced):
        return Completion(expression, "")
    return Completion(expression, forced, replace=last[:cut + 1])


def _last_token_text(codec: SentencePieceCodec, ids: list[int]) -> tuple[str, str]:
    """(text before the last token, the last token's text) of a sequence."""
    before, full = codec.decode(ids[:-1]), codec.decode(ids)
    if full.startswith(before):
        return before, full[len(before):]
    return before, codec.piece(ids[-1]).replace(WORD_START, " ")


def _forced_ids(codec: SentencePieceCodec, completion: Completion,
                force: str) -> tuple[int | None, list[int]]:
    """(id replacing the last token or None, ids to force) for forcing `force`."""
    if completion.replace is None:
        return None, codec.encode_continuation(force)
    text = completion.replace + force
    healed = codec.encode(text) if text.startswith(" ") else codec.encode_continuation(text)
    return healed[0], healed[1:]


def decode_with_calculator(loop: Callable[[SampleState], SampleState], state: SampleState,
                           codec: SentencePieceCodec, pause_ids: np.ndarray,
                           eos_id: int = 1) -> tuple[SampleState, list[CalculatorCall]]:
    """Run `loop` (the compiled sampling loop with a pause mask) to completion, answering each
    pause with the calculator. Returns the final state and the calls made."""
    calls: list[CalculatorCall] = []
    state = loop(state)
    while bool(state.paused):
        step = int(state.step)
        sequences = np.array(state.sequences)
        forced = np.array(state.forced)
        forced_len = np.array(state.forced_len)
        forced_pos = np.array(state.forced_pos)
        for row in np.flatnonzero(pause_ids[sequences[:, step]] & (forced_pos >= forced_len)):
            before, last = _last_token_text(codec, trim(sequences[row, 1:step + 1], eos_id))
            completion = completion_for(before, last)
            if completion is None:
                continue
            force = completion.force
            first, ids = _forced_ids(codec, completion, force)
            if len(ids) > forced.shape[1]:
                force = ERROR_MARKER + CLOSER
                first, ids = _forced_ids(codec, completion, force)
            if first is not None:
                sequences[row, step] = first
            forced[row, :len(ids)] = ids
            forced_len[row], forced_pos[row] = len(ids), 0
            calls.append(CalculatorCall(int(row), step, completion.expression, force,
                                        completion.replace is not None))
        state = loop(state.replace(sequences=jnp.asarray(sequences), forced=jnp.asarray(forced),
                                   forced_len=jnp.asarray(forced_len),
                                   forced_pos=jnp.asarray(forced_pos), paused=jnp.zeros((), bool)))
    return state, calls
