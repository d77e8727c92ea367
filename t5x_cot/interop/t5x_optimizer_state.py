"""Adafactor optimizer state between T5X checkpoints and our optax Adafactor.

T5X keeps, per param, `state/param_states/<param>/{v_row, v_col, v, m}` (factored second
moments, the full second moment, momentum; the unused ones are zeros of shape (1,)) and one
`state/step`. Our optax chain (`t5x_cot.optimizers.adafactor`) holds the same arrays under the
same layout: `FactoredState.{v_row, v_col, v}` per param, `EmaState.ema` (momentum, with
`beta1`) and a `count` in each stateful part, which is T5X's step. `restore_adafactor_state`
fills an optax state from a checkpoint exactly, `initial_opt_state` picks it or a fresh state
(counting from the checkpoint's step) for a run's start; `t5x_param_states` is the way back.
"""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import jax
import numpy as np
import optax

from t5x_cot.interop.errors import ConversionError
from t5x_cot.interop.layout import flatten, unflatten
from t5x_cot.interop.t5x_ckpt import T5XCheckpoint

SECOND_MOMENTS = ("v_row", "v_col", "v")
MOMENTUM = "m"
_COUNTED = (optax.FactoredState, optax.EmaState, optax.ScaleByScheduleState)
FRESH_HINT = ("start with a fresh optimizer state: train.restore_optimizer_state = False (T5X run files: "
              "utils.RestoreCheckpointConfig.assignment_map = ((r'state/param_states.*', None),))")


def _is_part(node: Any) -> bool:
    return isinstance(node, _COUNTED)


def state_prefix(checkpoint: T5XCheckpoint) -> str:
    """`optimizer/state/` (flax optimizer checkpoints) or `state/` (newer T5X checkpoints)."""
    if checkpoint.param_prefix is None:
        raise ConversionError(checkpoint.path, "no params, so no optimizer state to restore")
    return checkpoint.param_prefix[:-len("target/")] + "state/"


def _read(checkpoint: T5XCheckpoint, name: str, template: Any) -> np.ndarray:
    """The checkpoint array `name`, which must have the template's shape (T5X's structure check)."""
    if name not in checkpoint.names():
        raise ConversionError(checkpoint.path, f"no Adafactor state for this param; {FRESH_HINT}", tensor=name)
    shape, _ = checkpoint.shape_dtype(name)
    if tuple(shape) != tuple(template.shape):
        raise ConversionError(
            checkpoint.path, f"Adafactor state of shape {tuple(shape)} where this optimizer has "
            f"{tuple(template.shape)} (factoring, beta1 or the model differ); {FRESH_HINT}", tensor=name)
    return checkpoint.read(name).astype(template.dtype)


def _per_param(checkpoint: T5XCheckpoint, tree: Mapping[str, Any], key: str) -> dict[str, Any]:
    prefix = state_prefix(checkpoint) + "param_states/"
    flat = flatten(tree)
    scanned = [name for name in flat if "/layers/" in f"/{name}/"]
    if scanned:
        raise ConversionError(checkpoint.path, "T5X keeps Adafactor state per unscanned layer; this model "
                              f"scans its layers ({scanned[0]}); {FRESH_HINT}")
    return unflatten({name: _read(checkpoint, f"{prefix}{name}/{key}", leaf) for name, leaf in flat.items()})


def checkpoint_step(checkpoint: T5XCheckpoint) -> int:
    """The optimizer step saved in the checkpoint."""
    name = state_prefix(checkpoint) + "step"
    if name not in checkpoint.names():
        raise ConversionError(checkpoint.path, f"no optimizer step; {FRESH_HINT}", tensor=name)
    return int(checkpoint.read(name))


def _parts(opt_state: Any) -> list[Any]:
    return [part for part in jax.tree.leaves(opt_state, is_leaf=_is_part) if _is_part(part)]


def with_step(opt_state: Any, step: int) -> Any:
    """`opt_state` with every optax `count` set to `step` (host numpy): T5X keys its schedule and
    Adafactor's decay on the train step, so a state started at step N counts from N."""
    return jax.tree.map(lambda part: part._replace(count=np.asarray(step, part.count.dtype)) if _is_part(part)
                        else part, opt_state, is_leaf=_is_part)


def restore_adafactor_state(checkpoint: T5XCheckpoint | str, opt_state: Any) -> Any:
    """`opt_state` (our optax Adafactor state, arrays or ShapeDtypeStructs) with T5X's
    v_row / v_col / v, its momentum `m` and its step filled in from `checkpoint`, as host numpy
    arrays of the template's dtypes. A structure that differs (another optimizer or factoring,
    momentum on one side only, scanned layers, another model) raises ConversionError naming it."""
    if not isinstance(checkpoint, T5XCheckpoint):
        checkpoint = T5XCheckpoint(checkpoint)
    parts = _parts(opt_state)
    if sum(isinstance(part, optax.FactoredState) for part in parts) != 1:
        raise ConversionError(checkpoint.path, f"this optimizer is not one Adafactor; {FRESH_HINT}")
    if not any(isinstance(part, optax.EmaState) for part in parts):
        _check_no_momentum(checkpoint, opt_state)

    def fill(part: Any) -> Any:
        if isinstance(part, optax.FactoredState):
            return part._replace(**{key: _per_param(checkpoint, getattr(part, key), key) for key in SECOND_MOMENTS})
        if isinstance(part, optax.EmaState):
            return part._replace(ema=_per_param(checkpoint, part.ema, MOMENTUM))
        return part

    return with_step(jax.tree.map(fill, opt_state, is_leaf=_is_part), checkpoint_step(checkpoint))


def _check_no_momentum(checkpoint: T5XCheckpoint, opt_state: Any) -> None:
    """T5X's `m` is (1,) without beta1: a full-size `m` cannot be dropped silently."""
    prefix = state_prefix(checkpoint) + "param_states/"
    for part in _parts(opt_state):
        if isinstance(part, optax.FactoredState):
            for name in flatten(part.v):
                shape, _ = checkpoint.shape_dtype(f"{prefix}{name}/{MOMENTUM}")
                if tuple(shape) != (1,):
                    raise ConversionError(checkpoint.path, "the checkpoint has Adafactor momentum (beta1) and "
                                          f"this optimizer has none: set adafactor.Adafactor.beta1; {FRESH_HINT}",
                                          tensor=f"{prefix}{name}/{MOMENTUM}")


def _raw_part(node: Any) -> bool:
    """An optax part as orbax restores it without a template: a dict of its fields."""
    return isinstance(node, Mapping) and set(node) in ({"count", *SECOND_MOMENTS}, {"count", "ema"})


def t5x_param_states(opt_state: Any) -> dict[str, dict[str, np.ndarray]]:
    """{param name: {v_row, v_col, v, m}} of our Adafactor state (optax parts, or the dicts orbax
    restores them as without a template), as T5X saves it: `m` is zeros (1,) without momentum."""
    parts = [part._asdict() if _is_part(part) else part
             for part in jax.tree.leaves(opt_state, is_leaf=lambda n: _is_part(n) or _raw_part(n))
             if _is_part(part) or _raw_part(part)]
    factored = [part for part in parts if "v_row" in part]
    if len(factored) != 1:
        raise ConversionError("optimizer state", f"expected one Adafactor (FactoredState) part, found {len(factored)}")
    moments = {key: flatten(factored[0][key]) for key in SECOND_MOMENTS}
    scanned = [name for name in moments["v"] if "/layers/" in f"/{name}/"]
    if scanned:
        raise ConversionError("optimizer state", "T5X keeps Adafactor state per unscanned layer; this state "
                              f"is of scanned layers ({scanned[0]})")
    ema = next((flatten(part["ema"]) for part in parts if "ema" in part), None)
    states = {}
    for name in moments["v"]:
        state = {key: np.asarray(jax.device_get(moments[key][name])) for key in SECOND_MOMENTS}
        state[MOMENTUM] = (np.asarray(jax.device_get(ema[name])) if ema is not None
                           else np.zeros((1,), np.float32))
        states[name] = state
    return states


def initial_opt_state(path: str, abstract_opt_state: Any, fresh_opt_state: Any, step: int,
                      restore: bool = True) -> tuple[Any, bool]:
    """(optimizer state, whether it came from the checkpoint) to start training from the
    checkpoint at `path` (INITIAL_CHECKPOINT_PATH): a T5X checkpoint's Adafactor state when
    `restore` (T5X restores it) and the checkpoint has one, else `fresh_opt_state` counting
    from `step`."""
    from t5x_cot import checkpoints

    if restore and checkpoints.is_t5x_checkpoint(path):
        checkpoint = T5XCheckpoint(str(path))
        if has_param_states(checkpoint):
            return restore_adafactor_state(checkpoint, abstract_opt_state), True
    return with_step(fresh_opt_state, step), False


def has_param_states(checkpoint: T5XCheckpoint) -> bool:
    """Whether the checkpoint holds any per-param optimizer state (a params-only export has none)."""
    if checkpoint.param_prefix is None:
        return False
    prefix = state_prefix(checkpoint) + "param_states/"
    return any(name.startswith(prefix) for name in checkpoint.names())
