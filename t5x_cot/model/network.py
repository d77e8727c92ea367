"""T5 encoder–decoder (T5 1.0 and 1.1 / Flan-T5) with T5X's param tree and logical axes.

Param tree (unscanned), as T5X checkpoints::

    token_embedder/embedding                      [vocab, embed]
    encoder/relpos_bias/rel_embedding             [heads, buckets]
    encoder/layers_i/pre_attention_layer_norm/scale
    encoder/layers_i/attention/{query,key,value}/kernel   [embed, heads*head_dim]
    encoder/layers_i/attention/out/kernel         [heads*head_dim, embed]
    encoder/layers_i/pre_mlp_layer_norm/scale
    encoder/layers_i/mlp/{wi_0,wi_1,wo}/kernel    (T5 1.0: mlp/{wi,wo})
    encoder/encoder_norm/scale
    decoder/relpos_bias/rel_embedding
    decoder/layers_i/{pre_self_attention_layer_norm, self_attention,
                      pre_cross_attention_layer_norm, encoder_decoder_attention,
                      pre_mlp_layer_norm, mlp}
    decoder/decoder_norm/scale
    decoder/logits_dense/kernel                   [embed, vocab]  (absent with tied logits)

With `scan_layers=True` the layers live under `encoder/layers/...` and `decoder/layers/...`
with a leading 'layers' axis; `stack_layers` / `unstack_layers` convert between the two.

Decoding, one decoder token per call::

    model = Transformer(config)
    encoded = model.apply({'params': params}, enc_tokens, enable_dropout=False, method=Transformer.encode)
    cache = prefill_cache(config, params, encoded, enc_tokens, max_decode_length)
    logits, variables = model.apply({'params': params, 'cache': cache}, None, enc_tokens,
                                    token, token, enable_dropout=False, decode=True,
                                    max_decode_length=max_decode_length,
                                    method=Transformer.decode, mutable=['cache'])
    cache = variables['cache']                                   # token: [batch, 1]

Each self-attention layer holds `cached_key`, `cached_value` [batch, heads, max_decode_length,
head_dim] and a scalar int32 `cache_index`; each cross-attention layer holds the keys/values of
the encoder outputs, `cached_key`, `cached_value` [batch, heads, input_length, head_dim], computed
once by `prefill_cache` instead of at every step as T5X does (with scan_layers every entry gains a
leading layer axis). Head-major, so that a step's attention dots read the cache in place.

Packed inputs: the relative position bias is computed from sequence offsets; with segment masks
that never attend across examples this equals the bias from per-example positions (packed
segments are contiguous), so `*_positions` only need to be passed for interface compatibility.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable, Mapping
from typing import Any

import gin
import jax
import jax.numpy as jnp
import numpy as np
from flax import linen as nn

from t5x_cot.model import layers as L

Array = jax.Array

REMAT_POLICIES: dict[str, Callable[..., Any] | None] = {
    "minimal": jax.checkpoint_policies.checkpoint_dots_with_no_batch_dims,
    "full": jax.checkpoint_policies.nothing_saveable,
}


@gin.configurable(module="network")
@dataclasses.dataclass(frozen=True)
class T5Config:
    """T5 hyperparameters (field names as T5X's `examples/t5/network.T5Config`)."""

    vocab_size: int = 32128
    dtype: str = "bfloat16"
    emb_dim: int = 512
    num_heads: int = 8
    num_encoder_layers: int = 6
    num_decoder_layers: int = 6
    head_dim: int = 64
    mlp_dim: int = 2048
    mlp_activations: tuple[str, ...] = ("relu",)
    dropout_rate: float = 0.1
    logits_via_embedding: bool = False
    relative_attention_num_buckets: int = 32
    relative_attention_max_distance: int = 128
    layer_norm_epsilon: float = 1e-6
    float32_attention_logits: bool = False
    scan_layers: bool = False
    remat_policy: str = "none"
    #: Ids >= real_vocab_size are padding of the embedding table (e.g. 32100 real of 32128):
    #: their logits are masked to MASKED_LOGIT. None: every id is real.
    real_vocab_size: int | None = None
    #: `jax.nn.dot_product_attention` implementation where no attention dropout applies:
    #: 'xla' (any device) or 'cudnn' (fused GPU kernel, bf16).
    attention_implementation: str = "xla"

    def __post_init__(self) -> None:
        object.__setattr__(self, "mlp_activations", tuple(self.mlp_activations))
        object.__setattr__(self, "dtype", jnp.dtype(self.dtype).name)
        if self.real_vocab_size is not None and not 0 < self.real_vocab_size <= self.vocab_size:
            raise ValueError(f"T5Config.real_vocab_size={self.real_vocab_size}; expected 1..vocab_size "
                             f"({self.vocab_size}) or None")
        if self.remat_policy not in ("none", *REMAT_POLICIES):
            raise ValueError(f"T5Config.remat_policy={self.remat_policy!r}; expected 'none', "
                             + ", ".join(repr(k) for k in REMAT_POLICIES))
        for name in self.mlp_activations:
            L.activation_fn(name)
        if self.attention_implementation not in L.ATTENTION_IMPLEMENTATIONS:
            raise ValueError(f"T5Config.attention_implementation={self.attention_implementation!r}; expected "
                             + " or ".join(repr(k) for k in L.ATTENTION_IMPLEMENTATIONS))

    @property
    def activation_dtype(self) -> jnp.dtype:
        """The compute dtype of activations."""
        return jnp.dtype(self.dtype)

    @property
    def output_vocab_size(self) -> int:
        """Number of ids a model may emit (`real_vocab_size`, else `vocab_size`)."""
        return self.vocab_size if self.real_vocab_size is None else self.real_vocab_size


#: Logit of padded vocabulary ids: exp() is 0, yet finite, so a softmax, log-softmax, z-loss or a
#: division by a sampling temperature never produces inf or NaN.
MASKED_LOGIT = -1e9


def mask_padded_vocab(logits: Array, config: T5Config) -> Array:
    """`logits` [..., vocab] with ids >= `config.real_vocab_size` set to MASKED_LOGIT."""
    if config.output_vocab_size >= logits.shape[-1]:
        return logits
    real = jnp.arange(logits.shape[-1]) < config.output_vocab_size
    return jnp.where(real, logits, jnp.asarray(MASKED_LOGIT, logits.dtype))


#: Scope of each decoder layer's cross-attention (T5X's name); its decode cache holds the
#: keys/values of the encoder outputs, the same for every decoded token and every beam.
CROSS_ATTENTION = "encoder_decoder_attention"


def _attention(config: T5Config, name: str) -> L.MultiHeadDotProductAttention:
    return L.MultiHeadDotProductAttention(
        num_heads=config.num_heads, head_dim=config.head_dim, dtype=config.activation_dtype,
        dropout_rate=config.dropout_rate, float32_logits=config.float32_attention_logits,
        implementation=config.attention_implementation, name=name)


def _norm(config: T5Config, name: str) -> L.LayerNorm:
    return L.LayerNorm(epsilon=config.layer_norm_epsilon, dtype=config.activation_dtype, name=name)


def _residual_dropout(config: T5Config, x: Array, deterministic: bool) -> Array:
    return nn.Dropout(rate=config.dropout_rate, broadcast_dims=(-2,))(x, deterministic=deterministic)


def _mlp(config: T5Config, x: Array, deterministic: bool) -> Array:
    return L.MlpBlock(mlp_dim=config.mlp_dim, activations=config.mlp_activations,
                      intermediate_dropout_rate=config.dropout_rate, dtype=config.activation_dtype,
                      name="mlp")(x, deterministic=deterministic)


def _sublayer(config: T5Config, norm_name: str, x: Array, deterministic: bool,
              block: Callable[[Array], Array]) -> Array:
    """One pre-LN residual sub-block: x + dropout(block(RMSNorm(x)))."""
    return _residual_dropout(config, block(_norm(config, norm_name)(x)), deterministic) + x


class EncoderLayer(nn.Module):
    """Pre-LN self-attention + MLP block."""

    config: T5Config
    deterministic: bool = True
    scanned: bool = False

    @nn.compact
    def __call__(self, inputs: Array, bias: Array | None) -> Any:
        cfg, det = self.config, self.deterministic
        x = L.constrain(inputs, ("batch", "length", "embed"))
        x = _sublayer(cfg, "pre_attention_layer_norm", x, det,
                      lambda h: _attention(cfg, "attention")(h, h, bias, deterministic=det))
        x = _sublayer(cfg, "pre_mlp_layer_norm", x, det, lambda h: _mlp(cfg, h, det))
        x = L.constrain(x, ("batch", "length", "embed"))
        return (x, None) if self.scanned else x


class DecoderLayer(nn.Module):
    """Pre-LN self-attention + cross-attention + MLP block."""

    config: T5Config
    deterministic: bool = True
    decode: bool = False
    max_decode_length: int | None = None
    scanned: bool = False

    @nn.compact
    def __call__(self, inputs: Array, encoded: Array | None, self_bias: Array | None,
                 cross_bias: Array | None) -> Any:
        cfg, det = self.config, self.deterministic
        x = L.constrain(inputs, ("batch", "length", "embed"))
        x = _sublayer(cfg, "pre_self_attention_layer_norm", x, det,
                      lambda h: _attention(cfg, "self_attention")(h, h, self_bias, deterministic=det,
                                                                  decode=self.decode,
                                                                  max_decode_length=self.max_decode_length))
        x = _sublayer(cfg, "pre_cross_attention_layer_norm", x, det,
                      lambda h: _attention(cfg, CROSS_ATTENTION)(h, encoded, cross_bias,
                                                                             deterministic=det,
                                                                             cache_kv=self.decode))
        x = _sublayer(cfg, "pre_mlp_layer_norm", x, det, lambda h: _mlp(cfg, h, det))
        x = L.constrain(x, ("batch", "length", "embed"))
        return (x, None) if self.scanned else x


def _run_layers(config: T5Config, layer_cls: type[nn.Module], num_layers: int, x: Array,
                *broadcast_args: Any, **layer_kwargs: Any) -> Array:
    """Apply `num_layers` layers (unrolled `layers_i`, or one scanned `layers`), with remat."""
    policy = REMAT_POLICIES.get(config.remat_policy)
    cls = layer_cls
    if config.remat_policy != "none":
        cls = nn.remat(layer_cls, policy=policy, prevent_cse=not config.scan_layers)
    if config.scan_layers:
        scanned = nn.scan(cls, variable_axes={"params": 0, "cache": 0},
                          split_rngs={"params": True, "dropout": True},
                          in_axes=(nn.broadcast,) * len(broadcast_args), length=num_layers,
                          metadata_params={nn.PARTITION_NAME: "layers"})
        x, _ = scanned(config, scanned=True, name="layers", **layer_kwargs)(x, *broadcast_args)
        return x
    for i in range(num_layers):
        x = cls(config, name=f"layers_{i}", **layer_kwargs)(x, *broadcast_args)
    return x


class Encoder(nn.Module):
    """Embedding → dropout → layers → final RMS norm → dropout."""

    config: T5Config
    shared_embedding: nn.Module

    @nn.compact
    def __call__(self, encoder_input_tokens: Array, encoder_mask: Array | None, deterministic: bool) -> Array:
        cfg = self.config
        x = self.shared_embedding(encoder_input_tokens.astype(jnp.int32))
        x = _residual_dropout(cfg, x, deterministic).astype(cfg.activation_dtype)
        length = x.shape[-2]
        relpos = L.RelativePositionBiases(cfg.relative_attention_num_buckets, cfg.relative_attention_max_distance,
                                          cfg.num_heads, dtype=jnp.float32, name="relpos_bias")(length, length, True)
        bias = L.mask_to_bias(encoder_mask, relpos)
        x = _run_layers(cfg, EncoderLayer, cfg.num_encoder_layers, x, bias, deterministic=deterministic)
        x = _norm(cfg, "encoder_norm")(x)
        return _residual_dropout(cfg, x, deterministic)


class Decoder(nn.Module):
    """Embedding → dropout → layers → final RMS norm → dropout → logits (float32)."""

    config: T5Config
    shared_embedding: nn.Module

    @nn.compact
    def __call__(self, encoded: Array | None, decoder_input_tokens: Array, decoder_mask: Array | None,
                 encoder_decoder_mask: Array | None, deterministic: bool, decode: bool = False,
                 max_decode_length: int | None = None) -> Array:
        cfg = self.config
        y = self.shared_embedding(decoder_input_tokens.astype(jnp.int32))
        y = _residual_dropout(cfg, y, deterministic).astype(cfg.activation_dtype)
        length = max_decode_length if decode and max_decode_length else y.shape[-2]
        relpos = L.RelativePositionBiases(cfg.relative_attention_num_buckets, cfg.relative_attention_max_distance,
                                          cfg.num_heads, dtype=jnp.float32, name="relpos_bias")(length, length, False)
        self_bias = L.mask_to_bias(decoder_mask, relpos)
        cross_bias = L.mask_to_bias(encoder_decoder_mask, None)
        y = _run_layers(cfg, DecoderLayer, cfg.num_decoder_layers, y, encoded, self_bias, cross_bias,
                        deterministic=deterministic, decode=decode,
                        max_decode_length=max_decode_length if decode else None)
        y = _norm(cfg, "decoder_norm")(y)
        y = _residual_dropout(cfg, y, deterministic)
        if cfg.logits_via_embedding:
            logits = self.shared_embedding.attend(y * jnp.asarray(cfg.emb_dim ** -0.5, y.dtype))
        else:
            logits = L.Dense(cfg.vocab_size, kernel_axes=("embed", "vocab"), dtype=jnp.float32,
                             name="logits_dense")(y)
        return L.constrain(mask_padded_vocab(logits, cfg), ("batch", "length", "vocab"))


class Transformer(nn.Module):
    """T5 encoder–decoder; call signature as T5X's `examples/t5/network.Transformer`."""

    config: T5Config

    def setup(self) -> None:
        cfg = self.config
        self.shared_embedding = L.Embed(cfg.vocab_size, cfg.emb_dim, dtype=cfg.activation_dtype,
                                        name="token_embedder")
        self.encoder = Encoder(cfg, self.shared_embedding)
        self.decoder = Decoder(cfg, self.shared_embedding)

    def encode(self, encoder_input_tokens: Array, encoder_segment_ids: Array | None = None,
               encoder_positions: Array | None = None, enable_dropout: bool = True) -> Array:
        """Encoder outputs [batch, input_len, emb] (padding = token 0; packed via segment ids)."""
        del encoder_positions  # relative positions come from offsets; see the module docstring
        mask = L.make_attention_mask(encoder_input_tokens > 0, encoder_input_tokens > 0)
        if encoder_segment_ids is not None:
            mask = L.combine_masks(mask, L.make_attention_mask(encoder_segment_ids, encoder_segment_ids, jnp.equal))
        return self.encoder(encoder_input_tokens, mask, deterministic=not enable_dropout)

    def decode(self, encoded: Array | None, encoder_input_tokens: Array, decoder_input_tokens: Array,
               decoder_target_tokens: Array, encoder_segment_ids: Array | None = None,
               decoder_segment_ids: Array | None = None, decoder_positions: Array | None = None,
               enable_dropout: bool = True, decode: bool = False,
               max_decode_length: int | None = None) -> Array:
        """Decoder logits [batch, target_len, vocab] (float32).

        With `decode=True` the self-attention mask comes from the cache; cross-attention masks
        only encoder padding, and `encoded` may be None once `prefill_cache` filled the cache.
        """
        del decoder_positions  # relative positions come from offsets; see the module docstring
        if decode:
            decoder_mask = None
            cross_mask = L.make_attention_mask(jnp.ones_like(decoder_target_tokens), encoder_input_tokens > 0)
        else:
            decoder_mask = L.make_decoder_mask(decoder_target_tokens, decoder_segment_ids)
            cross_mask = L.make_attention_mask(decoder_target_tokens > 0, encoder_input_tokens > 0)
        if encoder_segment_ids is not None and decoder_segment_ids is not None:
            cross_mask = L.combine_masks(
                cross_mask, L.make_attention_mask(decoder_segment_ids, encoder_segment_ids, jnp.equal))
        return self.decoder(encoded, decoder_input_tokens, decoder_mask, cross_mask,
                            deterministic=not enable_dropout, decode=decode, max_decode_length=max_decode_length)

    def __call__(self, encoder_input_tokens: Array, decoder_input_tokens: Array, decoder_target_tokens: Array,
                 encoder_segment_ids: Array | None = None, decoder_segment_ids: Array | None = None,
                 encoder_positions: Array | None = None, decoder_positions: Array | None = None,
                 enable_dropout: bool = True, decode: bool = False,
                 max_decode_length: int | None = None) -> Array:
        """Teacher-forced logits [batch, target_len, vocab] (float32)."""
        encoded = self.encode(encoder_input_tokens, encoder_segment_ids, encoder_positions, enable_dropout)
        return self.decode(encoded, encoder_input_tokens, decoder_input_tokens, decoder_target_tokens,
                           encoder_segment_ids, decoder_segment_ids, decoder_positions, enable_dropout,
                           decode, max_decode_length)


def _abstract_variables(config: T5Config, batch_size: int = 1, input_length: int = 1, target_length: int = 1,
                        decode: bool = False) -> Mapping[str, Any]:
    enc = jax.ShapeDtypeStruct((batch_size, input_length), jnp.int32)
    dec = jax.ShapeDtypeStruct((batch_size, target_length), jnp.int32)
    init = functools.partial(Transformer(config).init, enable_dropout=False, decode=decode,
                             max_decode_length=target_length if decode else None)
    return jax.eval_shape(lambda rng, e, d: init(rng, e, d, d), jax.random.PRNGKey(0), enc, dec)


def param_logical_axes(config: T5Config) -> Any:
    """Logical axis names of every param (a `PartitionSpec` of T5X names per leaf), same tree as params."""
    boxed = _abstract_variables(config)["params"]
    return jax.tree.map(lambda p: jax.sharding.PartitionSpec(*p.names), boxed,
                        is_leaf=lambda x: isinstance(x, nn.Partitioned))


def prefill_cache(config: T5Config, params: Any, encoded: Array, encoder_input_tokens: Array,
                  max_decode_length: int) -> Any:
    """Decode cache of a batch: empty self-attention keys/values for `max_decode_length` tokens
    and every layer's cross-attention keys/values of `encoded`, computed here once (the steps
    then pass `encoded=None`). Costs one decoder step."""
    start = jnp.zeros((encoded.shape[0], 1), jnp.int32)
    _, variables = Transformer(config).apply(
        {"params": params}, encoded, encoder_input_tokens, start, start, enable_dropout=False, decode=True,
        max_decode_length=max_decode_length, mutable=["cache"], method=Transformer.decode)
    return variables["cache"]


def _stack_names(tree: Mapping[str, Any]) -> list[str]:
    return [name for name in ("encoder", "decoder") if name in tree]


def stack_layers(params: Mapping[str, Any], config: T5Config) -> dict[str, Any]:
    """Unscanned params (`layers_i`) -> scanned params (`layers`, leading layer axis)."""
    counts = {"encoder": config.num_encoder_layers, "decoder": config.num_decoder_layers}
    out = dict(params)
    for stack in _stack_names(params):
        sub = dict(params[stack])
        per_layer = [sub.pop(f"layers_{i}") for i in range(counts[stack])]
        xp = np if all(isinstance(x, np.ndarray) for x in jax.tree.leaves(per_layer)) else jnp
        sub["layers"] = jax.tree.map(lambda *xs, xp=xp: xp.stack(xs), *per_layer)
        out[stack] = sub
    return out


def unstack_layers(params: Mapping[str, Any]) -> dict[str, Any]:
    """Scanned params (`layers`, leading layer axis) -> unscanned params (`layers_i`)."""
    out = dict(params)
    for stack in _stack_names(params):
        sub = dict(params[stack])
        if "layers" not in sub:
            continue
        stacked = sub.pop("layers")
        num_layers = jax.tree.leaves(stacked)[0].shape[0]
        for i in range(num_layers):
            sub[f"layers_{i}"] = jax.tree.map(lambda x, i=i: x[i], stacked)
        out[stack] = sub
    return out
