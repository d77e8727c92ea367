"""Decoding loops against a toy bigram `tokens_to_logits` (logits depend on the current token)."""
from __future__ import annotations

import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from t5x_cot.decoding import beam, sampling
from t5x_cot.decoding.state import EOS_ID
from t5x_cot.errors import UserError
from t5x_cot.model.layers import first_argmax

VOCAB = 7
MAX_LEN = 6


def _table(seed: int) -> np.ndarray:
    return np.random.RandomState(seed).randn(VOCAB, VOCAB).astype(np.float32) * 2


def _bigram(table: np.ndarray):
    """Logits = table[current token]; the cache counts how many steps the loop ran."""
    table = jnp.asarray(table)

    def tokens_to_logits(state):
        return table[state.cur_token[:, 0]], state.cache + 1
    return tokens_to_logits


def _reference_greedy(table: np.ndarray, length: int) -> list[int]:
    out, token = [], 0
    for _ in range(length):
        token = int(np.argmax(table[token]))
        out.append(token)
        if token == EOS_ID:
            break
    return out


@pytest.fixture(scope="module")
def greedy_fn():
    def run(table, batch):
        return sampling.temperature_sample(jnp.zeros(batch, jnp.int32), _bigram(table), batch_size=batch,
                                           max_decode_len=MAX_LEN)
    return jax.jit(run, static_argnums=1)


def test_greedy_matches_step_by_step_argmax(greedy_fn):
    for seed in range(4):
        table = _table(seed)
        seqs, _ = greedy_fn(table, 2)
        expected = _reference_greedy(table, MAX_LEN)
        assert sampling.trim(seqs[0]) + ([EOS_ID] if EOS_ID in expected else []) == expected
        assert (np.asarray(seqs[0]) == np.asarray(seqs[1])).all()


def test_loop_exits_once_every_sequence_ended():
    table = np.full((VOCAB, VOCAB), -5.0, np.float32)
    table[0, 3] = 5.0  # start -> 3
    table[3, EOS_ID] = 5.0  # 3 -> EOS
    state = sampling.init_state(jnp.zeros((3,), jnp.int32), 3, 50, jax.random.PRNGKey(0))
    final = jax.jit(lambda s: sampling.sample_loop(s, _bigram(table), sampling.GREEDY))(state)
    assert int(final.step) == 2  # two steps, not 50
    assert np.asarray(final.cache).tolist() == [2, 2, 2]
    assert np.asarray(final.sequences[:, 1:4]).tolist() == [[3, EOS_ID, 0]] * 3


def test_forced_tokens_replace_model_choice_and_pause_mask_stops_loop():
    table = _table(0)
    state = sampling.init_state(jnp.zeros((2,), jnp.int32), 2, MAX_LEN, jax.random.PRNGKey(0), max_forced=3)
    state = state.replace(forced=jnp.array([[5, 6, 5], [0, 0, 0]]), forced_len=jnp.array([3, 0]))
    pause = np.zeros(VOCAB, bool)
    run = jax.jit(lambda s, p: sampling.sample_loop(s, _bigram(table), sampling.GREEDY, None, p))
    final = run(state, jnp.asarray(pause))
    assert np.asarray(final.sequences[0, 1:4]).tolist() == [5, 6, 5]
    free = int(np.asarray(final.sequences[1, 1]))
    pause[free] = True
    paused = run(state, jnp.asarray(pause))
    assert bool(paused.paused) and int(paused.step) == 1  # row 1 emitted a pause token at once


def test_sampling_same_seed_same_samples_other_seed_differs():
    table = _table(1) * 0.3
    run = jax.jit(lambda rng: sampling.temperature_sample(
        jnp.zeros(8, jnp.int32), _bigram(table), batch_size=8, max_decode_len=MAX_LEN, rng=rng,
        config=sampling.SamplingConfig(temperature=1.0), eos_id=None)[0])
    a, b, c = run(jax.random.PRNGKey(3)), run(jax.random.PRNGKey(3)), run(jax.random.PRNGKey(4))
    assert (np.asarray(a) == np.asarray(b)).all()
    assert not (np.asarray(a) == np.asarray(c)).all()
    assert len({tuple(row) for row in np.asarray(a).tolist()}) > 1  # rows draw independently


def test_topk_and_topp_filters():
    logits = jnp.array([[1.0, 3.0, 2.0, 0.0]])
    top2 = sampling.filter_logits(logits, sampling.SamplingConfig(temperature=1.0, topk=2))
    assert (np.asarray(top2[0]) > sampling.NEG_INF).tolist() == [False, True, True, False]
    # probabilities ~ [.09, .64, .24, .03]: p=0.7 keeps the two most likely tokens
    nucleus = sampling.filter_logits(logits, sampling.SamplingConfig(temperature=1.0, topp=0.7))
    assert (np.asarray(nucleus[0]) > sampling.NEG_INF).tolist() == [False, True, True, False]
    tiny = sampling.filter_logits(logits, sampling.SamplingConfig(temperature=1.0, topp=0.1))
    assert (np.asarray(tiny[0]) > sampling.NEG_INF).tolist() == [False, True, False, False]
    rngs = jax.random.split(jax.random.PRNGKey(0), 50)
    draws = jax.jit(jax.vmap(lambda r: sampling.choose_tokens(logits, r, sampling.SamplingConfig(1.0, topk=1))))(rngs)
    assert set(np.asarray(draws).ravel().tolist()) == {1}
    for bad in ({"temperature": -1.0}, {"topk": -1}, {"topp": 1.5}):
        with pytest.raises(UserError, match=next(iter(bad))):  # one line, exit 2 at the entry points
            sampling.SamplingConfig(**bad)


def test_brevity_penalty_is_t5x_formula():
    assert float(beam.brevity_penalty(0.6, 10)) == pytest.approx(((5 + 10) / 6) ** 0.6)
    assert float(beam.brevity_penalty(0.0, 10)) == 1.0


def _beam_fn(table, num_beams, alpha, max_len):
    return jax.jit(lambda c: beam.beam_search(c, _bigram(table), batch_size=2, num_beams=num_beams,
                                              max_decode_len=max_len, alpha=alpha))(jnp.zeros(2, jnp.int32))


def _score(table: np.ndarray, seq: list[int], alpha: float) -> float:
    log_probs = table - np.log(np.exp(table).sum(-1, keepdims=True))
    prev, total = 0, 0.0
    for token in seq:
        total += log_probs[prev, token]
        prev = token
    return total / ((5 + len(seq)) / 6) ** alpha


def test_one_beam_without_penalty_is_greedy(greedy_fn):
    table = _table(2)
    seqs, _ = _beam_fn(table, 1, 0.0, MAX_LEN)
    greedy, _ = greedy_fn(table, 2)
    assert (np.asarray(seqs[:, 0]) == np.asarray(greedy)).all()


@pytest.mark.parametrize("alpha", [0.0, 0.6])
def test_wide_beam_finds_best_finished_sequence(alpha):
    """With as many beams as prefixes, beam search is exhaustive: compare with brute force."""
    max_len = 3
    table = _table(5)
    table[:, EOS_ID] += 1.5  # make finishing competitive
    finished = [list(p) + [EOS_ID] for n in range(max_len) for p in
                itertools.product([t for t in range(VOCAB) if t != EOS_ID], repeat=n)]
    best = max(finished, key=lambda s: _score(table, s, alpha))
    seqs, scores = _beam_fn(table, VOCAB ** 2, alpha, max_len)
    got = sampling.trim(seqs[0, 0]) + [EOS_ID]
    assert got == best
    assert float(scores[0, 0]) == pytest.approx(_score(table, best, alpha), rel=1e-5)


def test_beam_reorder_moves_self_attention_cache_and_keeps_cross_attention_cache():
    """Beams move within their example, so the cross-attention keys/values (equal for every beam
    of an example) are left in place while the self-attention cache follows its beam."""
    rows = jnp.arange(4, dtype=jnp.float32)[:, None] * jnp.ones((4, 3))  # [B * K = 2 * 2, 3]
    cache = {"decoder": {"layers_0": {"self_attention": {"cached_key": rows, "cache_index": jnp.int32(2)},
                                      "encoder_decoder_attention": {"cached_key": rows}}}}
    swapped = beam.gather_cache(cache, jnp.array([[1, 1], [1, 0]]), batch_size=2)["decoder"]["layers_0"]
    np.testing.assert_array_equal(swapped["self_attention"]["cached_key"][:, 0], [1, 1, 3, 2])
    assert swapped["self_attention"]["cache_index"] == 2
    assert swapped["encoder_decoder_attention"]["cached_key"] is rows


def test_greedy_argmax_takes_the_first_maximum_like_jnp_argmax():
    logits = jnp.array([[0.0, 3.0, 3.0, 1.0], [-1.0, -2.0, -1.0, -5.0], [jnp.nan, 0.0, 1.0, 2.0]])
    np.testing.assert_array_equal(first_argmax(logits[:2]), jnp.argmax(logits[:2], axis=-1))
    assert 0 <= int(first_argmax(logits)[2]) < logits.shape[-1]
