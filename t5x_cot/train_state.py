"""The training state: step, params and optimizer state, as one pytree."""
from __future__ import annotations

from typing import Any

import flax.struct
import jax
import jax.numpy as jnp
import optax


@flax.struct.dataclass
class TrainState:
    """`step` (int32 scalar), `params` (float32 param tree, T5X names), `opt_state` (optax state)."""

    step: jax.Array
    params: Any
    opt_state: Any

    @classmethod
    def create(cls, params: Any, optimizer: optax.GradientTransformation, step: int = 0) -> TrainState:
        """A state at `step` with a fresh optimizer state for `params`."""
        return cls(step=jnp.asarray(step, jnp.int32), params=params, opt_state=optimizer.init(params))

    def apply_gradients(self, grads: Any, optimizer: optax.GradientTransformation) -> TrainState:
        """One optimizer update; increments `step`."""
        updates, opt_state = optimizer.update(grads, self.opt_state, self.params)
        return self.replace(step=self.step + 1, params=optax.apply_updates(self.params, updates),
                            opt_state=opt_state)
