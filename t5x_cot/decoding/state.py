"""The decoding state handed to a `tokens_to_logits` function, as in T5X's decoding.py."""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

import flax
import jax

PAD_ID = 0
EOS_ID = 1


@flax.struct.dataclass
class DecodingState:
    """What the model sees at one decoding step.

    `cur_index` is the position of `cur_token` in `sequences` (column 0 holds the BOS/pad
    token the decoder starts from); `cache` is the model's key/value cache pytree.
    """

    cur_index: jax.Array  # scalar int32
    sequences: jax.Array  # [batch, max_decode_len + 1] int32
    cur_token: jax.Array  # [batch, 1] int32
    cache: Any


# tokens_to_logits(state) -> (logits [batch, vocab], new cache)
TokensToLogits = Callable[[DecodingState], tuple[jax.Array, Any]]
