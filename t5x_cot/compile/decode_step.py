"""The decode path the eval / infer jobs run, lowered for abstract inputs: the prefill (encode
the batch, cross-attention keys/values, empty self-attention cache) and one greedy step of
the decoder on that cache, with params sharded by their logical axes and the batch (and the
cache's batch axis) over 'data', as `decoding.predict.Predictor` places them."""
from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
from jax.sharding import NamedSharding, PartitionSpec

from t5x_cot.decoding import predict
from t5x_cot.decoding.state import DecodingState


def cache_shardings(cache: Any, config: Any, partitioner: Any) -> Any:
    """Cache leaves split over 'data' along their batch axis (scalars, non-dividing: replicated)."""
    axis = 1 if config.scan_layers else 0

    def sharding(x: Any) -> NamedSharding:
        if x.ndim <= axis or x.shape[axis] % partitioner.data_size:
            return partitioner.replicated()
        spec = [None] * x.ndim
        spec[axis] = "data"
        return NamedSharding(partitioner.mesh, PartitionSpec(*spec))
    return jax.tree.map(sharding, cache)


def greedy_step_fn(config: Any, max_len: int) -> Any:
    """step(params, encoder_tokens, cache, cur_token) -> (next token [B, 1], new cache)."""

    def step(params: Any, encoder_tokens: jax.Array, cache: Any, cur_token: jax.Array) -> tuple[jax.Array, Any]:
        batch = encoder_tokens.shape[0]
        state = DecodingState(cur_index=jnp.zeros((), jnp.int32), sequences=jnp.zeros((batch, max_len + 1), jnp.int32),
                              cur_token=cur_token, cache=cache)
        logits, new_cache = predict.model_tokens_to_logits(config, max_len, params, encoder_tokens)(state)
        return jnp.argmax(logits, axis=-1).astype(jnp.int32)[:, None], new_cache
    return step


def lower_decode(config: Any, partitioner: Any, abstract_params: Any, batch_size: int, inputs_length: int,
                 max_decode_length: int) -> dict[str, Any]:
    """{'prefill': lowered, 'greedy_step': lowered} for a [batch_size, inputs_length] batch."""
    batch = partitioner.batch_sharding(2)
    tokens = jax.ShapeDtypeStruct((batch_size, inputs_length), jnp.int32, sharding=batch)
    param_shardings = jax.tree.map(lambda x: x.sharding, abstract_params)
    prefill = predict.prefill_fn(config, max_decode_length)
    with partitioner.context():
        cache = jax.eval_shape(prefill, abstract_params, tokens)
        cache_sharding = cache_shardings(cache, config, partitioner)
        lowered_prefill = jax.jit(prefill, in_shardings=(param_shardings, batch),
                                  out_shardings=cache_sharding).lower(abstract_params, tokens)
        abstract_cache = jax.tree.map(lambda x, s: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=s),
                                      cache, cache_sharding)
        cur = jax.ShapeDtypeStruct((batch_size, 1), jnp.int32, sharding=batch)
        step = jax.jit(greedy_step_fn(config, max_decode_length),
                       in_shardings=(param_shardings, batch, cache_sharding, batch),
                       out_shardings=(batch, cache_sharding), donate_argnums=(2,))
        lowered_step = step.lower(abstract_params, tokens, abstract_cache, cur)
    return {"prefill": lowered_prefill, "greedy_step": lowered_step}
