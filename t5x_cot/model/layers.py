"""T5 building blocks (T5X `examples/t5/layers.py` semantics, 2-D kernels as T5X checkpoints).

Params are float32 and boxed with `nn.with_logical_partitioning` (T5X logical axis names);
activations run in the module `dtype`; layer norm and softmax run in float32.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import linen as nn

Array = jax.Array
Dtype = Any
Initializer = Callable[..., Array]

NEG_INF = -1e10

#: T5X's attention init (fan-in normal); the query additionally carries 1/sqrt(head_dim).
attention_kernel_init = nn.initializers.variance_scaling(1.0, "fan_in", "normal")
#: T5X's MLP / logits init.
mlp_kernel_init = nn.initializers.variance_scaling(1.0, "fan_in", "truncated_normal")
embedding_init = nn.initializers.normal(stddev=1.0)
relpos_init = nn.initializers.variance_scaling(1.0, "fan_avg", "uniform")


def constrain(x: Array, axes: tuple[str | None, ...]) -> Array:
    """`nn.with_logical_constraint` (a no-op outside a mesh / axis-rules context)."""
    return nn.with_logical_constraint(x, axes)


_ACTIVATIONS: dict[str, Callable[[Array], Array]] = {
    "linear": lambda x: x,
    "relu": jax.nn.relu,
    "gelu": functools.partial(jax.nn.gelu, approximate=True),
    "gelu_exact": functools.partial(jax.nn.gelu, approximate=False),
    "silu": jax.nn.silu,
    "swish": jax.nn.silu,
    "tanh": jnp.tanh,
    "sigmoid": jax.nn.sigmoid,
}


def activation_fn(name: str) -> Callable[[Array], Array]:
    """T5X activation names: 'relu', 'gelu' (tanh approximation = HF "gelu_new"), 'linear', ..."""
    if name not in _ACTIVATIONS:
        raise ValueError(f"unknown MLP activation {name!r} in T5Config.mlp_activations; expected one of "
                         + ", ".join(sorted(_ACTIVATIONS)))
    return _ACTIVATIONS[name]


def first_argmax(logits: Array) -> Array:
    """`jnp.argmax(logits, axis=-1)` (first index of the maximum) as two plain reductions, which
    XLA vectorizes: its (value, index) pair reduction runs several times slower on a CPU."""
    best = jnp.max(logits, axis=-1, keepdims=True)
    ids = jax.lax.broadcasted_iota(jnp.int32, logits.shape, logits.ndim - 1)
    first = jnp.min(jnp.where(logits == best, ids, logits.shape[-1]), axis=-1)
    return jnp.minimum(first, logits.shape[-1] - 1)  # NaN rows: the last id, not out of range


class Dense(nn.Module):
    """x @ kernel with a 2-D float32 kernel [in, out] (no bias), computed in `dtype`."""

    features: int
    kernel_axes: tuple[str, str]
    kernel_init: Initializer = mlp_kernel_init
    dtype: Dtype = jnp.float32

    @nn.compact
    def __call__(self, x: Array) -> Array:
        kernel = self.param("kernel", nn.with_logical_partitioning(self.kernel_init, self.kernel_axes),
                            (x.shape[-1], self.features), jnp.float32)
        return jnp.dot(x.astype(self.dtype), kernel.astype(self.dtype))


class Embed(nn.Module):
    """Token embedding [vocab, embed]; `attend` gives tied logits."""

    num_embeddings: int
    features: int
    dtype: Dtype = jnp.float32

    def setup(self) -> None:
        self.embedding = self.param("embedding", nn.with_logical_partitioning(embedding_init, ("vocab", "embed")),
                                    (self.num_embeddings, self.features), jnp.float32)

    def __call__(self, tokens: Array) -> Array:
        return jnp.take(self.embedding, tokens, axis=0).astype(self.dtype)

    def attend(self, query: Array) -> Array:
        """query [..., embed] -> [..., vocab] against the embedding, in float32."""
        return jnp.dot(query.astype(jnp.float32), self.embedding.T)


class LayerNorm(nn.Module):
    """T5 RMS norm: no mean subtraction, no bias; statistics in float32."""

    epsilon: float = 1e-6
    dtype: Dtype = jnp.float32

    @nn.compact
    def __call__(self, x: Array) -> Array:
        scale = self.param("scale", nn.with_logical_partitioning(nn.initializers.ones, ("embed",)),
                           (x.shape[-1],), jnp.float32)
        x = x.astype(jnp.float32)
        y = x * jax.lax.rsqrt(jnp.mean(jnp.square(x), axis=-1, keepdims=True) + self.epsilon)
        return y.astype(self.dtype) * scale.astype(self.dtype)


def relative_position_bucket(relative_position: np.ndarray, bidirectional: bool, num_buckets: int,
                             max_distance: int) -> np.ndarray:
    """T5 bucket of `memory_position - query_position` (as HF `_relative_position_bucket`)."""
    relative_position = np.asarray(relative_position, np.int64)
    buckets = np.zeros_like(relative_position)
    if bidirectional:
        num_buckets //= 2
        buckets += (relative_position > 0).astype(np.int64) * num_buckets
        n = np.abs(relative_position)
    else:
        n = -np.minimum(relative_position, 0)
    max_exact = num_buckets // 2
    with np.errstate(divide="ignore"):
        scaled = (np.log(n.astype(np.float32) / np.float32(max_exact))
                  / np.float32(np.log(max_distance / max_exact)) * np.float32(num_buckets - max_exact))
    large = max_exact + np.where(n < max_exact, 0, scaled).astype(np.int64)
    large = np.minimum(large, num_buckets - 1)
    return buckets + np.where(n < max_exact, n, large)


class RelativePositionBiases(nn.Module):
    """Shared per-stack relative position bias `rel_embedding [heads, buckets]`."""

    num_buckets: int
    max_distance: int
    num_heads: int
    dtype: Dtype = jnp.float32

    @nn.compact
    def __call__(self, qlen: int, klen: int, bidirectional: bool) -> Array:
        """Bias [1, heads, qlen, klen] for query positions 0..qlen-1 and key positions 0..klen-1."""
        relative = np.arange(klen)[None, :] - np.arange(qlen)[:, None]
        buckets = relative_position_bucket(relative, bidirectional, self.num_buckets, self.max_distance)
        table = self.param("rel_embedding", nn.with_logical_partitioning(relpos_init, ("heads", "relpos_buckets")),
                           (self.num_heads, self.num_buckets), jnp.float32)
        bias = jnp.take(table, jnp.asarray(buckets, jnp.int32), axis=1)  # [heads, qlen, klen]
        return bias[None].astype(self.dtype)


def make_attention_mask(query_input: Array, key_input: Array,
                        pairwise_fn: Callable[[Array, Array], Array] = jnp.multiply) -> Array:
    """Mask [batch, 1, q, k] from per-position query/key values."""
    mask = pairwise_fn(query_input[..., :, None], key_input[..., None, :])
    return mask[..., None, :, :].astype(jnp.bool_)


def combine_masks(*masks: Array | None) -> Array | None:
    """Logical AND of the non-None masks (None if all are None)."""
    present = [m for m in masks if m is not None]
    if not present:
        return None
    return functools.reduce(jnp.logical_and, present)


def make_decoder_mask(decoder_target_tokens: Array, decoder_segment_ids: Array | None = None) -> Array:
    """Causal & non-padding (target != 0) & same-segment mask [batch, 1, len, len]."""
    length = decoder_target_tokens.shape[-1]
    idx = jnp.arange(length)
    causal = (idx[None, :] <= idx[:, None])[None, None]
    mask = combine_masks(causal, make_attention_mask(decoder_target_tokens > 0, decoder_target_tokens > 0))
    if decoder_segment_ids is not None:
        mask = combine_masks(mask, make_attention_mask(decoder_segment_ids, decoder_segment_ids, jnp.equal))
    return mask


def mask_to_bias(mask: Array | None, bias: Array | None) -> Array | None:
    """Additive float32 attention bias: 0 where attended, -1e10 where masked, plus `bias`."""
    total = None
    if mask is not None:
        total = jnp.where(mask, 0.0, NEG_INF).astype(jnp.float32)
    if bias is not None:
        bias = bias.astype(jnp.float32)
        total = bias if total is None else total + bias
    return total


ATTENTION_IMPLEMENTATIONS = ("xla", "cudnn")


def fused_attention(query: Array, key: Array, value: Array, bias: Array | None, implementation: str) -> Array:
    """softmax(q·kᵀ + bias)·v [batch, q, heads, head_dim] by `jax.nn.dot_product_attention` (no
    1/sqrt(d) scaling: T5 folds it into the query init; logits and softmax in float32).
    'cudnn' is the fused GPU kernel (bf16/fp16 inputs; the bias is cast to their dtype)."""
    if bias is not None and implementation == "cudnn":
        bias = bias.astype(query.dtype)
    return jax.nn.dot_product_attention(query, key, value, bias=bias, scale=1.0, implementation=implementation)


def to_head_major(x: Array) -> Array:
    """[batch, length, heads, head_dim] -> [batch, heads, length, head_dim], the decode cache layout."""
    return jnp.swapaxes(x, 1, 2)


def attention_over_cache(query: Array, key: Array, value: Array, bias: Array | None) -> Array:
    """softmax(q·kᵀ + bias)·v [batch, q, heads, head_dim] for keys/values kept head-major
    [batch, heads, length, head_dim]: both dots read the cache in place (heads as a batch axis,
    head_dim or length contracted), so a decode step never copies or transposes it."""
    logits = jnp.einsum("bqnh,bnkh->bnqk", query, key, preferred_element_type=jnp.float32)
    if bias is not None:
        logits = logits + bias
    weights = jax.nn.softmax(logits).astype(value.dtype)
    return jnp.einsum("bnqk,bnkh->bqnh", weights, value)


class MultiHeadDotProductAttention(nn.Module):
    """T5 attention: no 1/sqrt(d) scaling at run time (it lives in the query init).

    Without dropout on the weights (evaluation, decoding, dropout_rate 0) the attention runs
    through `jax.nn.dot_product_attention` (`implementation` 'xla' or 'cudnn'; decode steps
    always read the cache in place). With `decode=True` one query token per call is written into a
    'cache' collection (`cached_key`, `cached_value` head-major [batch, heads, max_len, head_dim],
    `cache_index` scalar); the first decode call (on full-length inputs, as in `init`) only creates
    the cache.
    """

    num_heads: int
    head_dim: int
    dtype: Dtype = jnp.float32
    dropout_rate: float = 0.0
    float32_logits: bool = False
    implementation: str = "xla"

    @nn.compact
    def __call__(self, inputs_q: Array, inputs_kv: Array | None, bias: Array | None = None, *,
                 deterministic: bool = True, decode: bool = False, cache_kv: bool = False,
                 max_decode_length: int | None = None) -> Array:
        """`bias`: additive float32 [batch|1, heads|1, q, k] (already combines mask and relpos).

        In decode mode `bias` covers all `max_len` query rows; the row at the cache index is used.
        `cache_kv`: `inputs_kv` is the same at every call (cross-attention while decoding): its
        keys/values are computed at the first call, kept in the cache and reused after that,
        when `inputs_kv` may be None.
        """
        features = self.num_heads * self.head_dim
        def query_init(*args: Any) -> jax.Array:
            return attention_kernel_init(*args) / np.sqrt(self.head_dim).astype(np.float32)

        def heads(x: jax.Array) -> jax.Array:
            return constrain(x.reshape(x.shape[:-1] + (self.num_heads, self.head_dim)),
                             ("batch", "length", "heads", "kv"))

        proj = functools.partial(Dense, features=features, kernel_axes=("embed", "joined_kv"), dtype=self.dtype)
        query = heads(proj(kernel_init=query_init, name="query")(inputs_q))
        from_cache = cache_kv and self.has_variable("cache", "cached_key")
        if from_cache:
            key, value = self.get_variable("cache", "cached_key"), self.get_variable("cache", "cached_value")
        else:
            if inputs_kv is None:
                raise ValueError("cross-attention has no cached keys/values yet: pass the encoder outputs")
            key = heads(proj(kernel_init=attention_kernel_init, name="key")(inputs_kv))
            value = heads(proj(kernel_init=attention_kernel_init, name="value")(inputs_kv))
            if cache_kv:
                self.put_variable("cache", "cached_key", to_head_major(key))
                self.put_variable("cache", "cached_value", to_head_major(value))

        if decode:
            key, value, bias, from_cache = self._update_cache(query, key, value, bias, max_decode_length)

        if self.float32_logits:
            query, key = query.astype(jnp.float32), key.astype(jnp.float32)
        if from_cache:
            out = attention_over_cache(query, key, value.astype(query.dtype), bias).astype(self.dtype)
        elif deterministic or self.dropout_rate == 0.0:
            out = fused_attention(query, key, value.astype(query.dtype), bias,
                                  "xla" if decode else self.implementation).astype(self.dtype)
        else:  # dropout on the attention weights: the explicit path
            logits = jnp.einsum("bqhd,bkhd->bhqk", query, key, preferred_element_type=jnp.float32)
            if bias is not None:
                logits = logits + bias
            weights = jax.nn.softmax(logits).astype(self.dtype)
            weights = nn.Dropout(rate=self.dropout_rate)(weights, deterministic=deterministic)
            out = jnp.einsum("bhqk,bkhd->bqhd", weights, value.astype(self.dtype))
        out = constrain(out, ("batch", "length", "heads", "kv"))
        out = out.reshape(out.shape[:-2] + (features,))
        return Dense(inputs_q.shape[-1], kernel_axes=("joined_kv", "embed"), kernel_init=attention_kernel_init,
                     dtype=self.dtype, name="out")(out)

    def _update_cache(self, query: Array, key: Array, value: Array, bias: Array | None,
                      max_decode_length: int | None) -> tuple[Array, Array, Array | None, bool]:
        """(keys, values, bias, head_major) for this call: the given ones when it creates the cache,
        else the updated head-major cache and the bias row of the current position."""
        is_initialized = self.has_variable("cache", "cached_key")
        shape = (key.shape[0], key.shape[2], max_decode_length or key.shape[1], key.shape[3])
        cached_key = self.variable("cache", "cached_key", jnp.zeros, shape, key.dtype)
        cached_value = self.variable("cache", "cached_value", jnp.zeros, shape, value.dtype)
        cache_index = self.variable("cache", "cache_index", lambda: jnp.array(0, dtype=jnp.int32))
        if not is_initialized:  # creating the cache: plain attention over the given tokens
            if bias is not None:
                bias = bias[..., :query.shape[1], :key.shape[1]]
            return key, value, bias, False
        batch, num_heads, max_length, head_dim = cached_key.value.shape
        if query.shape != (batch, 1, num_heads, head_dim):
            raise ValueError(f"decode expects one token per call: query shape {query.shape}, expected "
                             f"{(batch, 1, num_heads, head_dim)}")
        if bias is not None and bias.shape[-2] != max_length:
            raise ValueError(f"decode step got a relative position bias for {bias.shape[-2]} positions but the "
                             f"cache holds {max_length}: pass max_decode_length={max_length}")
        index = cache_index.value
        zero = jnp.array(0, jnp.int32)
        key = jax.lax.dynamic_update_slice(cached_key.value, to_head_major(key).astype(cached_key.value.dtype),
                                           (zero, zero, index, zero))
        value = jax.lax.dynamic_update_slice(cached_value.value, to_head_major(value).astype(cached_value.value.dtype),
                                             (zero, zero, index, zero))
        cached_key.value, cached_value.value = key, value
        cache_index.value = index + 1
        valid = (jnp.arange(max_length) <= index)[None, None, None, :]
        step_bias = jnp.where(valid, 0.0, NEG_INF).astype(jnp.float32)
        if bias is not None:
            row = jax.lax.dynamic_slice_in_dim(bias, index, 1, axis=-2)
            step_bias = step_bias + row.astype(jnp.float32)
        return key, value, step_bias, True


class MlpBlock(nn.Module):
    """T5 MLP: product of activations of `len(activations)` input projections, then `wo`."""

    mlp_dim: int
    activations: Sequence[str] = ("relu",)
    intermediate_dropout_rate: float = 0.1
    dtype: Dtype = jnp.float32

    @nn.compact
    def __call__(self, inputs: Array, deterministic: bool = True) -> Array:
        hidden = None
        for idx, name in enumerate(self.activations):
            dense_name = "wi" if len(self.activations) == 1 else f"wi_{idx}"
            x = Dense(self.mlp_dim, kernel_axes=("embed", "mlp"), dtype=self.dtype, name=dense_name)(inputs)
            x = activation_fn(name)(x)
            hidden = x if hidden is None else hidden * x
        hidden = constrain(hidden, ("batch", "length", "mlp"))
        hidden = nn.Dropout(rate=self.intermediate_dropout_rate, broadcast_dims=(-2,))(
            hidden, deterministic=deterministic)
        out = Dense(inputs.shape[-1], kernel_axes=("mlp", "embed"), dtype=self.dtype, name="wo")(hidden)
        return out
