"""Cross entropy with z-loss / label smoothing, T5X loss normalisation, and the model's loss_fn."""
from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from support import tiny_config

from t5x_cot.model import losses
from t5x_cot.model.models import EncoderDecoderModel

VOCAB = 11


def plain_loss(logits, targets, z_loss, label_smoothing):
    """The textbook formula, differentiated by autodiff."""
    confidence = 1.0 - label_smoothing
    low = label_smoothing / (VOCAB - 1)
    soft = jax.nn.one_hot(targets, VOCAB) * (confidence - low) + low
    log_z = jax.scipy.special.logsumexp(logits, axis=-1)
    entropy = -(confidence * np.log(confidence) + (VOCAB - 1) * low * np.log(low + 1e-20))
    return -jnp.sum(soft * jax.nn.log_softmax(logits), -1) - entropy + z_loss * log_z ** 2


@pytest.fixture(scope="module")
def data():
    rng = np.random.RandomState(0)
    logits = jnp.asarray(3 * rng.standard_normal((2, 5, VOCAB)), jnp.float32)
    targets = jnp.asarray(rng.randint(0, VOCAB, (2, 5)))
    return logits, targets


@pytest.mark.parametrize("z_loss,smoothing", [(0.0, 0.0), (1e-4, 0.0), (0.1, 0.2)])
def test_cross_entropy_value_and_custom_gradient_match_autodiff(data, z_loss, smoothing):
    logits, targets = data
    loss, z = losses.cross_entropy_with_logits(logits, targets, z_loss, smoothing)
    np.testing.assert_allclose(loss, plain_loss(logits, targets, z_loss, smoothing), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(z, z_loss * jax.scipy.special.logsumexp(logits, -1) ** 2, rtol=1e-5)
    weights = jnp.linspace(0.0, 1.0, 10).reshape(2, 5)
    ours = jax.grad(lambda x: jnp.sum(losses.cross_entropy_with_logits(x, targets, z_loss, smoothing)[0] * weights))
    ref = jax.grad(lambda x: jnp.sum(plain_loss(x, targets, z_loss, smoothing) * weights))
    np.testing.assert_allclose(ours(logits), ref(logits), atol=1e-6)


def test_label_smoothing_loss_is_zero_at_the_smoothed_target():
    targets = jnp.array([3, 7])
    smoothing = 0.1
    soft = jax.nn.one_hot(targets, VOCAB) * (1 - smoothing - smoothing / (VOCAB - 1)) + smoothing / (VOCAB - 1)
    loss, _ = losses.cross_entropy_with_logits(jnp.log(soft), targets, 0.0, smoothing)
    np.testing.assert_allclose(loss, 0.0, atol=1e-5)


def test_weighted_sum_and_normalizing_factor(data):
    logits, targets = data
    per_token, per_z = losses.cross_entropy_with_logits(logits, targets, 1e-4)
    weights = np.array([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1]], np.float32)
    total, z_total, weight_sum = losses.compute_weighted_cross_entropy(logits, targets, weights, z_loss=1e-4)
    np.testing.assert_allclose(total, jnp.sum(per_token * weights), rtol=1e-6)
    np.testing.assert_allclose(z_total, jnp.sum(per_z * weights), rtol=1e-6)
    assert float(weight_sum) == 8.0
    normalized, _, _ = losses.compute_weighted_cross_entropy(logits, targets, weights, z_loss=1e-4,
                                                             loss_normalizing_factor=233472.0)
    np.testing.assert_allclose(normalized, total / 233472.0, rtol=1e-6)
    unweighted = losses.compute_weighted_cross_entropy(logits, targets)
    np.testing.assert_allclose(unweighted[0], jnp.sum(per_token - per_z), rtol=1e-6)
    assert float(unweighted[2]) == 10.0
    with pytest.raises(ValueError, match="targets shape"):
        losses.compute_weighted_cross_entropy(logits, targets[0])


def test_special_normalizing_factors():
    targets = np.array([[5, 6, 7, 0], [8, 9, 0, 0]])
    batch = {"decoder_target_tokens": targets}
    factor, weights = losses.get_loss_normalizing_factor_and_weights("num_real_target_tokens", batch)
    assert float(factor) == 5.0 and np.array_equal(weights, targets > 0)
    factor, _ = losses.get_loss_normalizing_factor_and_weights("NUM_TOTAL_TARGET_TOKENS", batch)
    assert factor == 8.0
    factor, weights = losses.get_loss_normalizing_factor_and_weights(
        losses.SpecialLossNormalizingFactor.AVERAGE_PER_SEQUENCE, batch)
    np.testing.assert_allclose(weights, [[1 / 3, 1 / 3, 1 / 3, 0], [0.5, 0.5, 0, 0]], rtol=1e-6)
    assert float(factor) == pytest.approx(2.0)
    passthrough = {"decoder_target_tokens": targets, "decoder_loss_weights": np.ones((2, 4))}
    assert losses.get_loss_normalizing_factor_and_weights(None, passthrough)[0] is None
    assert losses.get_loss_normalizing_factor_and_weights(2.0, passthrough)[1] is passthrough["decoder_loss_weights"]
    with pytest.raises(ValueError, match="AVERAGE_PER_SEQUENCE"):
        losses.get_loss_normalizing_factor_and_weights("per_token", batch)


def test_average_per_sequence_normalizes_each_packed_segment():
    packed = {"decoder_target_tokens": np.array([[5, 6, 7, 8, 9, 0]]),
              "decoder_segment_ids": np.array([[1, 1, 1, 2, 2, 0]]),
              "decoder_positions": np.array([[0, 1, 2, 0, 1, 0]])}
    factor, weights = losses.get_loss_normalizing_factor_and_weights("AVERAGE_PER_SEQUENCE", packed)
    np.testing.assert_allclose(weights, [[1 / 3, 1 / 3, 1 / 3, 0.5, 0.5, 0]], rtol=1e-6)
    assert float(factor) == pytest.approx(2.0)


def test_model_loss_fn_and_metrics():
    config = tiny_config(vocab_size=32, emb_dim=8, head_dim=4, mlp_dim=16, mlp_activations=("relu",),
                         logits_via_embedding=True)
    targets = np.array([[3, 4, 5, 1], [6, 7, 0, 0]])
    batch = {"encoder_input_tokens": np.array([[9, 10, 11], [12, 0, 0]]), "decoder_target_tokens": targets,
             "decoder_input_tokens": np.array([[0, 3, 4, 5], [0, 6, 0, 0]]),
             "decoder_loss_weights": (targets > 0).astype(np.float32)}
    summed = EncoderDecoderModel(config, z_loss=1e-4)
    mean = EncoderDecoderModel(config, loss_normalizing_factor="NUM_REAL_TARGET_TOKENS")
    shapes = summed.param_shapes({name: value.shape for name, value in batch.items()})
    rng = np.random.RandomState(0)
    params = jax.tree.map(lambda s: rng.standard_normal(s.shape).astype(np.float32), shapes)
    (loss, metrics), (mean_loss, mean_metrics), logits = jax.jit(lambda p: (
        summed.loss_fn(p, batch, None), mean.loss_fn(p, batch, None), summed.compute_logits(p, batch)))(params)
    assert float(metrics["num_tokens"]) == 6.0
    np.testing.assert_allclose(mean_loss, loss / 6.0, rtol=1e-5)
    np.testing.assert_allclose(metrics["loss_per_nonpadding_target_token"], loss / 6.0, rtol=1e-5)
    np.testing.assert_allclose(mean_metrics["loss_per_nonpadding_target_token"], loss / 6.0, rtol=1e-5)
    np.testing.assert_allclose(metrics["cross_ent_loss"] + metrics["z_loss"], loss, rtol=1e-6)
    correct = (np.argmax(logits, -1) == targets) & (targets > 0)
    assert float(metrics["accuracy"]) == pytest.approx(correct.sum() / 6.0)
