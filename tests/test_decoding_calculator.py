"""Calculator in the loop with a scripted model, on the real T5 SentencePiece vocabulary and
on a tiny SentencePiece model trained here that merges `=` with the result and `>>`.

The scripted model emits, at decoding step i, token script[row][i] whatever it was fed; so
where the calculator forces tokens the script's own tokens at those steps ("7 7 7") are
overwritten, and the script resumes afterwards.
"""
from __future__ import annotations

import io
import random

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


def _decode(codec: SentencePieceCodec, script: np.ndarray, use_calculator: bool,
            vocab_size: int = VOCAB_SIZE):
    table = jnp.asarray(script)

    def tokens_to_logits(state):
        token = table[:, state.cur_index]
        return jax.nn.one_hot(token, vocab_size) * 10.0, state.cache

    batch = script.shape[0]
    state = sampling.init_state(jnp.zeros(()), batch, MAX_LEN, jax.random.PRNGKey(0),
                                calculator_loop.MAX_FORCED_TOKENS)
    pause_ids = codec.token_mask(vocab_size, "=")
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
        "So 6 = 2+4 and <<6/4= 7 7 7 The answer is 1.5.",
        "Odd <<5*5=> 7 7 7 The answer is 25."]  # T5 merges "=>": the token is healed


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
    assert "5*5=> 7" in texts[4]


def test_token_merging_equals_with_more_text_is_healed(codec, decoded):
    (texts, calls), _ = decoded
    assert "=>" in [codec.piece(i) for i in codec.encode(ROWS[4])]
    assert "5*5=25>>" in texts[4] and "=>" not in texts[4]
    assert texts[4].endswith("The answer is 25.")
    assert [(c.expression, c.result, c.healed) for c in calls if c.row == 4] == [
        ("5*5", "25>>", True)]
    assert not [c for c in calls if c.row != 4 and c.healed]


@pytest.fixture(scope="module")
def merging_codec() -> SentencePieceCodec:
    """A BPE model trained on sums whose pieces merge `=`, the result and `>>` (`=13>>13`)."""
    import sentencepiece
    rng = random.Random(0)
    lines = []
    for _ in range(3000):
        a, b = rng.randint(1, 9), rng.randint(1, 9)
        lines.append(f"So {a}+{b} = <<{a}+{b}={a + b}>>{a + b} apples.")
    model = io.BytesIO()
    sentencepiece.SentencePieceTrainer.train(
        sentence_iterator=iter(lines), model_writer=model, vocab_size=200, model_type="bpe",
        hard_vocab_limit=False, pad_id=0, eos_id=1, unk_id=2, bos_id=-1, minloglevel=2)
    return SentencePieceCodec(sentencepiece.SentencePieceProcessor(model_proto=model.getvalue()))


MERGED_ROWS = ["So 3+4 = <<3+4=13>>13 7 7 7 7 apples.",
               "So 3+4 = <<3+4=9>>9 7 7 7 7 apples.",
               "So 2+5 = <<2+5=7>>7 apples.", "So 2+5 = <<2+5=8>>8 7 7 7 apples."]


def test_calculator_heals_tokens_of_a_merging_vocabulary(merging_codec):
    pieces = [[merging_codec.piece(i) for i in merging_codec.encode(t)] for t in MERGED_ROWS]
    assert "=13>>13" in pieces[0]  # the vocabulary really merges "=" with what follows
    assert "+4=" in pieces[1] and "▁<<2+5=7>>7" in pieces[2]
    script = _script(merging_codec, MERGED_ROWS)
    vocab_size = merging_codec.num_pieces
    (texts, calls) = _decode(merging_codec, script, True, vocab_size)
    (plain, _) = _decode(merging_codec, script, False, vocab_size)
    assert "<<3+4=13>>" in plain[0] and "<<3+4=9>>" in plain[1]
    assert "<<3+4=7>>" in texts[0] and "13" not in texts[0] and texts[0].endswith("apples.")
    assert "<<3+4=7>>" in texts[1] and "9" not in texts[1] and texts[1].endswith("apples.")
    assert texts[2] == plain[2] == "So 2+5 = <<2+5=7>>7 apples."
    assert "<<2+5=7>>" in texts[3] and "8" not in texts[3] and texts[3].endswith("apples.")
    assert sorted((c.row, c.expression, c.result, c.healed) for c in calls) == [
        (0, "3+4", "7>>", True), (1, "3+4", "7>>", False), (2, "2+5", "", False),
        (3, "2+5", "7>>", False)]


@pytest.mark.parametrize("before, last, expected", [
    ("x <<3*4", "=", calculator_loop.Completion("3*4", "12>>")),
    ("x <<3*4", "=1", calculator_loop.Completion("3*4", "2>>")),
    ("x <<3*4", "=13>>13", calculator_loop.Completion("3*4", "12>>", replace="=")),
    ("x <<3*4", "=>", calculator_loop.Completion("3*4", "12>>", replace="=")),
    ("x <<3*4", "=12>>1", calculator_loop.Completion("3*4", "")),
    ("So 3+4 =", " <<3+4=9>>9", calculator_loop.Completion("3+4", "7>>", replace=" <<3+4=")),
    ("x <<3*4=12", "=5", None), ("6", " =", None), ("<<2+2=4>> and", " x=1", None)])
def test_completion_for_keeps_or_heals_the_last_token(before, last, expected):
    assert calculator_loop.completion_for(before, last) == expected


@pytest.mark.parametrize("text, expected", [
    ("x <<3*4=", ("3*4", "")), ("x \u2047 3*4=", ("3*4", "")), ("x <<3*4=12>> y", None),
    ("6 = 2+4", None), ("<<2+2=4", ("2+2", "4"))])
def test_open_annotation_reads_text(text, expected):
    assert calculator_loop.open_annotation(text) == expected
