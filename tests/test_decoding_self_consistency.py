"""Self-consistency: majority votes on constructed samples, and reproducible sampling."""
from __future__ import annotations

import numpy as np
import pytest
from decoding_helpers import BATCH_SIZE, INPUT_LENGTH, MAX_DECODE_LENGTH, TEMPERATURE, TOP_K, tiny_model  # noqa: E402  pylint: disable=wrong-import-order

from t5x_cot.decoding import self_consistency
from t5x_cot.decoding.codec import SentencePieceCodec
from t5x_cot.decoding.generate import generate_from_tokens
from t5x_cot.decoding.predict import DecodeConfig, Predictor
from t5x_cot.decoding.state import EOS_ID
from t5x_cot.partitioning import Partitioner


def _texts(answers: list[str | None]) -> list[str]:
    return [f"Some steps. The answer is {a}." if a is not None else "I am not sure." for a in answers]


def test_majority_vote_counts_answers_and_breaks_ties_by_first_seen():
    assert self_consistency.majority_vote(["3", "4", "4", None, None, None]) == "4"
    assert self_consistency.majority_vote(["5", "6", "6", "5"]) == "5"
    assert self_consistency.majority_vote([None, None]) is None


def test_accuracy_by_k_votes_over_prefixes_of_the_same_samples():
    # question 1 (gold 18): first sample wrong, majority of 5 and of 10 right, of 20 wrong
    q1 = ["17"] + ["18"] * 4 + ["17"] * 2 + ["18"] * 3 + ["16"] * 10
    q1[10:20] = ["17"] * 10
    # question 2 (gold 7): always right; question 3 (gold 2): no answer ever found
    samples = [_texts(q1), _texts(["7"] * 20), _texts([None] * 20)]
    table = self_consistency.accuracy_by_k(samples, ["18", "7", "2"], "number")
    assert table == pytest.approx({1: 100 / 3, 5: 200 / 3, 10: 200 / 3, 20: 100 / 3})
    assert self_consistency.format_accuracy_by_k(table)["accuracy@5"] == pytest.approx(200 / 3)
    assert self_consistency.vote(samples[0], "number", 10) == "18"
    # k larger than the samples per question is left out
    assert set(self_consistency.accuracy_by_k([s[:5] for s in samples], ["18", "7", "2"], "number")) == {1, 5}


@pytest.fixture(scope="module")
def sampler(vocab_path):
    model = tiny_model()
    import jax  # pylint: disable=import-outside-toplevel
    params = model.init_params(jax.random.PRNGKey(0), {"encoder_input_tokens": (1, 4),
                                                       "decoder_input_tokens": (1, 4),
                                                       "decoder_target_tokens": (1, 4)})
    codec = SentencePieceCodec.from_model_file(str(vocab_path))
    return model.config, params, codec


def _samples(sampler, seed: int) -> list[list[str]]:
    config, params, codec = sampler
    decode = DecodeConfig(strategy="sample", max_decode_length=MAX_DECODE_LENGTH, temperature=TEMPERATURE,
                          topk=TOP_K, seed=seed, num_samples=4)
    # a partitioner as eval.gin's, so the compiled loop is the one the eval tests use too
    predictor = Predictor(config, params, decode, Partitioner(), codec)
    rows = [codec.encode(text)[:INPUT_LENGTH - 1] + [EOS_ID] for text in ["Is it?", "What is 2+2?"]]
    out = generate_from_tokens(predictor, rows, codec.decode, batch_size=BATCH_SIZE, num_samples=4)
    return [[g.text for _, g in gens] for gens in out]


def test_same_seed_gives_same_samples(sampler):
    first, again, other = _samples(sampler, 3), _samples(sampler, 3), _samples(sampler, 4)
    assert first == again
    assert first != other
    assert all(len(set(texts)) > 1 for texts in first)  # the k samples of a question differ
    assert np.array([len(t) for t in first]).tolist() == [4, 4]
