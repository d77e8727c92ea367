"""Calculator in the loop with a scripted model and the real T5 SentencePiece vocabulary.

The scripted model emits, at decoding step i, token script[row][i] whatever it was fed; so
where the calculator forces tokens the script's own tokens at those steps ("7 7 7") are
overwritten, and the script resumes afterwards.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from t5x_cot.decoding import calculator_loop, sampling
from t5x_cot.decoding.codec import SentencePieceCodec

VOCAB_SIZE = 32128
MAX_LEN = 40


@pytest.fixture(scope="module")
def codec(vocab_path) -> SentencePieceCodec:
    return SentencePieceCodec.from_model_file(str(vocab_path))


def _script(codec: SentencePieceCodec, texts: list[str]) -> np.ndarray:
    script = np.zeros((len(texts), MAX_LEN + 1), np.int32)
    for row, text in enumerate(texts):
        ids = codec.encode(text) + [1]
        script[row, :len(ids)] = ids
    return script


def _decode(codec: SentencePieceCodec, script: np.ndarray, use_calculator: bool):
    table = jnp.asarray(script)

    def tokens_to_logits(state):
        token = table[:, state.cur_index]
        return jax.nn.one_hot(token, VOCAB_SIZE) * 10.0, state.cache

    batch = script.shape[0]
    state = sampling.init_state(jnp.zeros(()), batch, MAX_LEN, jax.random.PRNGKey(0),
                                calculator_loop.MAX_FORCED_TOKENS)
    pause_ids = codec.token_mask(VOCAB_SIZE, "=")
    if use_calculator:
        loop = jax.jit(lambda s: sampling.sample_loop(s, tokens_to_logits, sampling.GREEDY, 1, jnp.asarray(pause_ids)))
        state, calls = calculator_loop.decode_with_calculator(loop, state, codec, pause_ids)
    else:
        state, calls = jax.jit(lambda s: sampling.sample_loop(s, tokens_to_logits, sampling.GREEDY))(state), []
    texts = [codec.decode(sampling.trim(row)) for row in np.asarray(state.sequences[:, 1:])]
    return texts, calls


ROWS = ["He has <<3*4= 7 7 7 apples. The answer is 12.",
        "Tom walks 5 miles. The answer is 5.",
        "Bad <<__import__('os').system('ls')= 7 7 7 7 7 7 7 The answer is 1.",
        "So 6 = 2+4 and <<6/4= 7 7 7 The answer is 1.5."]


@pytest.fixture(scope="module")
def decoded(codec):
    script = _script(codec, ROWS)
    return _decode(codec, script, True), _decode(codec, script, False)


def test_annotation_gets_result_and_closer_forced(decoded):
    (texts, calls), _ = decoded
    assert "3*4=12>>" in texts[0]
    assert texts[0].endswith("apples. The answer is 12.")
    assert [(c.row, c.expression, c.result) for c in calls if c.row == 0] == [(0, "3*4", "12>>")]


def test_rows_without_annotation_are_unaffected(decoded):
    (with_calc, calls), (without_calc, _) = decoded
    assert with_calc[1] == without_calc[1] == "Tom walks 5 miles. The answer is 5."
    assert not [c for c in calls if c.row == 1]


def test_malicious_expression_gets_error_marker_only_in_its_row(decoded):
    (texts, calls), _ = decoded
    assert "system('ls')=ERROR>>" in texts[2]
    assert texts[2].endswith("The answer is 1.")
    assert [c.result for c in calls if c.row == 2] == ["ERROR>>"]
    assert "3*4=12>>" in texts[0]


def test_equals_outside_annotation_is_left_alone_and_floats_are_formatted(decoded):
    (texts, calls), _ = decoded
    assert "So 6 = 2+4 and" in texts[3]
    assert "6/4=1.5>>" in texts[3]
    assert [c.expression for c in calls if c.row == 3] == ["6/4"]


def test_without_calculator_the_script_runs_unchanged(decoded):
    _, (texts, _) = decoded
    assert "3*4= 7 7 7 apples" in texts[0]


@pytest.mark.parametrize("text, expected", [
    ("x <<3*4=", ("3*4", "")), ("x \u2047 3*4=", ("3*4", "")), ("x <<3*4=12>> y", None),
    ("6 = 2+4", None), ("<<2+2=4", ("2+2", "4"))])
def test_open_annotation_reads_text(text, expected):
    assert calculator_loop.open_annotation(text) == expected
