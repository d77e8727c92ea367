"""The jitted, partitioned train step: shardings in and out, donated state, microbatching.

`Trainer` derives the sharding of every array of the `TrainState` from the params' logical
axes (optimizer state included, see `partitioning.optimizer_state_axes`), compiles `init`
and `train_step` with explicit in/out shardings, and keeps metrics on device: the step
returns a dict of scalar arrays that the caller fetches when it wants to (no host sync).
Each step also updates an on-device record of the first step whose loss, gradients or
updated params were not finite (`first_nonfinite_step`, read only when the caller asks).
"""
from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import jax
import jax.numpy as jnp
import optax
from jax.sharding import NamedSharding, PartitionSpec

from t5x_cot.errors import UserError
from t5x_cot.partitioning import Partitioner, normalize_axes_tree, optimizer_state_axes
from t5x_cot.train_state import TrainState

Batch = Mapping[str, jax.Array]
# Model metrics that are sums over tokens (added across microbatches); the others are
# per-token ratios (token-weighted across microbatches), as EncoderDecoderModel.loss_fn returns.
SUMMED_METRICS = frozenset({"loss", "z_loss", "cross_ent_loss", "num_tokens"})


class NonFiniteError(UserError):
    """Training produced a NaN or Inf (loss, gradients or params); nothing of it was saved."""


class Trainer:
    """Compiled init / train / eval steps of one model, optimizer and mesh.

    Args:
      model: `EncoderDecoderModel` (`init_params`, `param_shapes`, `loss_fn`, `config`).
      optimizer: an optax transformation (see `t5x_cot.optimizers.adafactor`).
      partitioner: mesh and logical axis rules.
      input_shapes: global batch shapes by feature name (what the data pipeline yields).
      learning_rate_fn: schedule, reported as the `learning_rate` metric.
      num_microbatches: gradient accumulation; grads (and the loss) are summed over
        microbatches, as T5X does.
      param_axes: logical axes of the params; default `network.param_logical_axes(config)`.
      seed: dropout randomness is `fold_in(PRNGKey(seed), step)`, so resuming is exact.
    """

    def __init__(self, model: Any, optimizer: optax.GradientTransformation, partitioner: Partitioner,
                 input_shapes: Mapping[str, tuple[int, ...]], *,
                 learning_rate_fn: Callable[[jax.Array], jax.Array] | None = None,
                 num_microbatches: int = 1, param_axes: Any = None, seed: int = 0) -> None:
        self.model = model
        self.optimizer = optimizer
        self.partitioner = partitioner
        self.input_shapes = {name: tuple(shape) for name, shape in input_shapes.items()}
        self.learning_rate_fn = learning_rate_fn
        self.num_microbatches = max(1, int(num_microbatches or 1))
        batch_size = next(iter(self.input_shapes.values()))[0]
        if batch_size % self.num_microbatches:
            raise ValueError(f"batch size {batch_size} is not divisible by num_microbatches {num_microbatches}")
        if param_axes is None:
            from t5x_cot.model import network
            param_axes = network.param_logical_axes(model.config)
        self.param_axes = normalize_axes_tree(param_axes)
        self.abstract_params = model.param_shapes(self.input_shapes)
        self.abstract_state = jax.eval_shape(lambda p: TrainState.create(p, optimizer), self.abstract_params)
        self.state_axes = TrainState(
            step=PartitionSpec(), params=self.param_axes,
            opt_state=optimizer_state_axes(self.abstract_state.opt_state, self.abstract_params, self.param_axes))
        self.state_shardings = partitioner.tree_shardings(self.abstract_state, self.state_axes)
        self.batch_shardings = {name: partitioner.batch_sharding(len(shape))
                                for name, shape in self.input_shapes.items()}
        self.dropout_key = jax.random.PRNGKey(seed)
        replicated = partitioner.replicated()
        self._init = jax.jit(self._init_fn, in_shardings=replicated, out_shardings=self.state_shardings)
        self._from_params = jax.jit(self._from_params_fn, in_shardings=(self.state_shardings.params,),
                                    out_shardings=self.state_shardings, donate_argnums=(0,))
        self._train = jax.jit(self._train_fn,
                              in_shardings=(self.state_shardings, self.batch_shardings, replicated, replicated),
                              out_shardings=(self.state_shardings, replicated, replicated), donate_argnums=(0, 3))
        self._first_nonfinite: jax.Array | None = None  # created by the first train_step
        self._eval = jax.jit(self._eval_fn, in_shardings=(self.state_shardings.params, self.batch_shardings),
                             out_shardings=replicated)

    # ------------------------------------------------------------------ public API

    def abstract_sharded_state(self) -> TrainState:
        """ShapeDtypeStructs with shardings of the state (for orbax restore, memory planning)."""
        return jax.tree.map(lambda x, s: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=s),
                            self.abstract_state, self.state_shardings)

    def init_state(self, rng: jax.Array) -> TrainState:
        """Randomly initialised params and a fresh optimizer state, created sharded."""
        with self.partitioner.context():
            return self._init(rng)

    def state_from_params(self, params: Any, step: int = 0) -> TrainState:
        """State at `step` around given (already sharded) params with a fresh optimizer state."""
        with self.partitioner.context():
            state = self._from_params(params)
        if not step:
            return state
        return state.replace(step=jax.device_put(jnp.asarray(step, jnp.int32), self.state_shardings.step))

    def train_step(self, state: TrainState, batch: Batch) -> tuple[TrainState, dict[str, jax.Array]]:
        """One update; `state` is donated. Returns the new state and on-device scalar metrics."""
        if self._first_nonfinite is None:  # not in __init__: compile-only devices cannot run it
            self._first_nonfinite = jax.device_put(jnp.zeros((), jnp.int32), self.partitioner.replicated())
        with self.partitioner.context():
            state, metrics, self._first_nonfinite = self._train(state, dict(batch), self.dropout_key,
                                                                self._first_nonfinite)
        return state, metrics

    def first_nonfinite_step(self) -> int | None:
        """The first step whose loss, gradients or new params held a NaN or Inf, or None.

        The only call here that waits for the device: make it where the host syncs anyway
        (the metric fetch, a checkpoint save).
        """
        if self._first_nonfinite is None:
            return None
        step = int(jax.device_get(self._first_nonfinite))
        return step or None

    def eval_step(self, params: Any, batch: Batch) -> dict[str, jax.Array]:
        """Loss and metrics of a batch without dropout."""
        with self.partitioner.context():
            return self._eval(params, dict(batch))

    def lower_train_step(self) -> Any:
        """The lowered (not yet compiled) train step for abstract inputs, e.g. for memory_analysis()."""
        batch = {name: jax.ShapeDtypeStruct(shape, jnp.int32, sharding=self.batch_shardings[name])
                 for name, shape in self.input_shapes.items()}
        with self.partitioner.context():
            return self._train.lower(self.abstract_sharded_state(), batch, self.dropout_key,
                                     jax.ShapeDtypeStruct((), jnp.int32, sharding=self.partitioner.replicated()))

    # ------------------------------------------------------------------ traced functions

    def _init_fn(self, rng: jax.Array) -> TrainState:
        return TrainState.create(self.model.init_params(rng, self.input_shapes), self.optimizer)

    def _from_params_fn(self, params: Any) -> TrainState:
        return TrainState.create(params, self.optimizer)

    def _eval_fn(self, params: Any, batch: Batch) -> dict[str, jax.Array]:
        loss, metrics = self.model.loss_fn(params, batch, None)
        return {**_scalars(metrics), "loss": loss}

    def _train_fn(self, state: TrainState, batch: Batch, key: jax.Array,
                  first_nonfinite: jax.Array) -> tuple[TrainState, dict[str, jax.Array], jax.Array]:
        rng = jax.random.fold_in(key, state.step)
        loss, metrics, grads = self._accumulate_grads(state.params, batch, rng)
        new_state = state.apply_gradients(grads, self.optimizer)
        grad_norm = optax.global_norm(grads)
        metrics = {**metrics, "loss": loss, "grad_norm": grad_norm}
        if self.learning_rate_fn is not None:
            metrics["learning_rate"] = jnp.asarray(self.learning_rate_fn(state.step), jnp.float32)
        finite = jnp.isfinite(loss) & jnp.isfinite(grad_norm) & _all_finite(new_state.params)
        first_nonfinite = jnp.where((first_nonfinite == 0) & ~finite, new_state.step, first_nonfinite)
        return new_state, metrics, first_nonfinite

    def _accumulate_grads(self, params: Any, batch: Batch, rng: jax.Array) -> tuple[jax.Array, dict, Any]:
        grad_fn = jax.value_and_grad(self.model.loss_fn, has_aux=True)
        if self.num_microbatches == 1:
            (loss, metrics), grads = grad_fn(params, batch, rng)
            return loss, _scalars(metrics), grads
        micro = {name: self._split_microbatches(value) for name, value in batch.items()}

        def body(carry: tuple, inputs: tuple) -> tuple:
            loss_sum, metric_sum, grad_sum = carry
            index, microbatch = inputs
            (loss, metrics), grads = grad_fn(params, microbatch, jax.random.fold_in(rng, index))
            metrics = _scalars(metrics)
            weight = metrics.get("num_tokens", jnp.ones((), jnp.float32))
            metrics = {name: value if name in SUMMED_METRICS else value * weight for name, value in metrics.items()}
            return (loss_sum + loss, jax.tree.map(jnp.add, metric_sum, metrics),
                    jax.tree.map(jnp.add, grad_sum, grads)), None

        first = {name: value[0] for name, value in micro.items()}
        metric_shapes = jax.eval_shape(lambda *a: _scalars(self.model.loss_fn(*a)[1]), params, first, rng)
        zeros_metrics = jax.tree.map(lambda s: jnp.zeros(s.shape, jnp.float32), metric_shapes)
        zeros_grads = jax.tree.map(lambda p: jnp.zeros(p.shape, jnp.float32), params)
        init = (jnp.zeros((), jnp.float32), zeros_metrics, zeros_grads)
        (loss, metric_sum, grads), _ = jax.lax.scan(body, init, (jnp.arange(self.num_microbatches), micro))
        return loss, self._combine_microbatch_metrics(metric_sum), grads

    def _combine_microbatch_metrics(self, totals: dict[str, jax.Array]) -> dict[str, jax.Array]:
        """Sums stay sums; per-token ratios were accumulated token-weighted and are divided back."""
        tokens = totals.get("num_tokens")
        return {name: value if name in SUMMED_METRICS
                else value / (jnp.maximum(tokens, 1e-8) if tokens is not None else self.num_microbatches)
                for name, value in totals.items()}

    def _split_microbatches(self, value: jax.Array) -> jax.Array:
        """[B, ...] -> [M, B/M, ...] taking every M-th row, so each microbatch stays spread over 'data'."""
        m = self.num_microbatches
        split = value.reshape((value.shape[0] // m, m) + value.shape[1:]).swapaxes(0, 1)
        if split.shape[1] % self.partitioner.data_size:
            return split
        spec = PartitionSpec(None, "data", *([None] * (value.ndim - 1)))
        return jax.lax.with_sharding_constraint(split, NamedSharding(self.partitioner.mesh, spec))


def _scalars(metrics: Mapping[str, Any] | None) -> dict[str, jax.Array]:
    """The model's metrics as float32 scalars (non-scalar entries are summed)."""
    return {name: jnp.sum(jnp.asarray(value, jnp.float32)) for name, value in (metrics or {}).items()}


def _all_finite(tree: Any) -> jax.Array:
    """Whether every element of every array in `tree` is finite (a bool scalar)."""
    return jnp.stack([jnp.isfinite(leaf).all() for leaf in jax.tree.leaves(tree)]).all()
