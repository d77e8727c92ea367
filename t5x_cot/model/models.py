"""`EncoderDecoderModel`: the T5 network plus init, abstract shapes and the training loss."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import gin
import jax
import jax.numpy as jnp
from flax import linen as nn

from t5x_cot.model import layers, losses
from t5x_cot.model.network import T5Config, Transformer

Array = jax.Array
Batch = Mapping[str, Array]

_NETWORK_INPUTS = ("encoder_input_tokens", "decoder_input_tokens", "decoder_target_tokens",
                   "encoder_segment_ids", "decoder_segment_ids", "encoder_positions", "decoder_positions")


@gin.configurable(module="models")
class EncoderDecoderModel:
    """T5 encoder–decoder with T5X's loss (z-loss, label smoothing, loss normalising factor).

    Batches are dicts of int arrays as T5X's EncDecFeatureConverter produces them:
    `encoder_input_tokens`, `decoder_input_tokens`, `decoder_target_tokens`,
    `decoder_loss_weights` and, when packed, `{encoder,decoder}_{segment_ids,positions}`.
    """

    def __init__(self, config: T5Config, z_loss: float = 1e-4, label_smoothing: float = 0.0,
                 loss_normalizing_factor: float | str | losses.SpecialLossNormalizingFactor | None = None) -> None:
        self.config = config
        self.module = Transformer(config)
        self.z_loss = z_loss
        self.label_smoothing = label_smoothing
        if isinstance(loss_normalizing_factor, str):
            loss_normalizing_factor = losses.as_special_factor(loss_normalizing_factor)
        self.loss_normalizing_factor = loss_normalizing_factor

    def _dummy_inputs(self, input_shapes: Mapping[str, tuple[int, ...]]) -> dict[str, Array]:
        enc_shape = tuple(input_shapes["encoder_input_tokens"])
        dec_key = "decoder_input_tokens" if "decoder_input_tokens" in input_shapes else "decoder_target_tokens"
        dec_shape = tuple(input_shapes[dec_key])
        return {"encoder_input_tokens": jnp.ones(enc_shape, jnp.int32),
                "decoder_input_tokens": jnp.ones(dec_shape, jnp.int32),
                "decoder_target_tokens": jnp.ones(dec_shape, jnp.int32)}

    def init_params(self, rng: Array, input_shapes: Mapping[str, tuple[int, ...]]) -> Any:
        """Freshly initialised float32 params (plain tree, logical-axis boxes removed)."""
        variables = self.module.init(rng, **self._dummy_inputs(input_shapes), enable_dropout=False)
        return nn.unbox(variables["params"])

    def param_shapes(self, input_shapes: Mapping[str, tuple[int, ...]]) -> Any:
        """`jax.ShapeDtypeStruct` per param, via `jax.eval_shape` (nothing allocated)."""
        return jax.eval_shape(lambda rng: self.init_params(rng, input_shapes), jax.random.PRNGKey(0))

    def compute_logits(self, params: Any, batch: Batch, dropout_rng: Array | None = None) -> Array:
        """Teacher-forced logits [batch, target_len, vocab] (float32); dropout iff `dropout_rng`."""
        inputs = {name: batch[name] for name in _NETWORK_INPUTS if name in batch}
        rngs = {"dropout": dropout_rng} if dropout_rng is not None else None
        return self.module.apply({"params": params}, **inputs, enable_dropout=rngs is not None, rngs=rngs)

    def loss_fn(self, params: Any, batch: Batch, dropout_rng: Array | None) -> tuple[Array, dict[str, Array]]:
        """(loss, metrics) for one batch, as T5X's `EncoderDecoderModel.loss_fn`.

        Metrics: loss, z_loss, cross_ent_loss, accuracy (weighted token accuracy), num_tokens
        (sum of the loss weights) and loss_per_nonpadding_target_token.
        """
        # padded vocabulary ids are no classes: label smoothing spreads over real ids only
        logits = self.compute_logits(params, batch, dropout_rng)[..., :self.config.output_vocab_size]
        factor, weights = losses.get_loss_normalizing_factor_and_weights(self.loss_normalizing_factor, batch)
        targets = batch["decoder_target_tokens"]
        loss, z_loss, _ = losses.compute_weighted_cross_entropy(
            logits, targets, weights, label_smoothing=self.label_smoothing, z_loss=self.z_loss,
            loss_normalizing_factor=factor)
        return loss, self._metrics(logits, targets, weights, loss, z_loss, factor)

    @staticmethod
    def _metrics(logits: Array, targets: Array, weights: Array | None, loss: Array, z_loss: Array,
                 factor: float | Array | None) -> dict[str, Array]:
        mask = jnp.asarray(targets > 0 if weights is None else weights, jnp.float32)
        num_tokens = jnp.sum(mask)
        safe = jnp.maximum(num_tokens, 1e-8)
        correct = (layers.first_argmax(logits) == targets).astype(jnp.float32)
        unnormalized_loss = loss if factor is None else loss * factor
        return {
            "loss": loss,
            "z_loss": z_loss,
            "cross_ent_loss": loss - z_loss,
            "accuracy": jnp.sum(correct * mask) / safe,
            "num_tokens": num_tokens,
            "loss_per_nonpadding_target_token": unnormalized_loss / safe,
        }
