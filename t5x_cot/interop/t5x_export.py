"""`t5x-cot convert --to t5x`: a native T5X checkpoint with params and Adafactor state.

The optimizer state comes from the source when it has one (a T5X checkpoint's
`param_states`, the `opt_state` of one of our training checkpoints, read without knowing the
optimizer's settings); otherwise (HF models, params-only checkpoints) it is T5X's fresh
Adafactor state (its default factoring, no momentum), so T5X can fine-tune from it.
"""
from __future__ import annotations

import pathlib
import re
from collections.abc import Mapping

import jax
import numpy as np

from t5x_cot.interop.layout import param_shapes, unflatten
from t5x_cot.interop.sources import ParamSource
from t5x_cot.interop.t5x_optimizer_state import (
    MOMENTUM,
    SECOND_MOMENTS,
    checkpoint_step,
    state_prefix,
    t5x_param_states,
)
from t5x_cot.interop.t5x_write import write_t5x_checkpoint

States = dict[str, dict[str, np.ndarray]]


def fresh_param_states(shapes: Mapping[str, tuple[int, ...]]) -> States:
    """T5X's initial Adafactor state (default settings) for params of these shapes."""
    from t5x_cot import optimizers

    abstract = unflatten({name: jax.ShapeDtypeStruct(shape, np.float32) for name, shape in shapes.items()})
    structs = jax.eval_shape(optimizers.adafactor().init, abstract)
    return t5x_param_states(jax.tree.map(lambda s: np.zeros(s.shape, s.dtype), structs))


def _t5x_states(source: ParamSource) -> tuple[States, int]:
    checkpoint = source.checkpoint  # type: ignore[attr-defined]
    prefix = state_prefix(checkpoint) + "param_states/"
    if not any(name.startswith(prefix) for name in checkpoint.names()):
        return fresh_param_states(param_shapes(source.config)), checkpoint_step(checkpoint)
    states = {name: {key: checkpoint.read(f"{prefix}{name}/{key}") for key in (*SECOND_MOMENTS, MOMENTUM)}
              for name in source.names()}
    return states, checkpoint_step(checkpoint)


def _ours_states(path: str, source: ParamSource) -> tuple[States, int]:
    import orbax.checkpoint as ocp

    from t5x_cot import checkpoints

    params_dir, _ = checkpoints.resolve_params_dir(path)
    match = re.fullmatch(rf"{checkpoints.STEP_PREFIX}_(\d+)", params_dir.parent.name)
    opt_dir = params_dir.parent / checkpoints.OPT_STATE_ITEM
    if match is None or not opt_dir.is_dir():
        return fresh_param_states(param_shapes(source.config)), 0
    return t5x_param_states(ocp.StandardCheckpointer().restore(opt_dir)), int(match.group(1))


def export_t5x(source: ParamSource, source_kind: str, source_path: str, target: str) -> pathlib.Path:
    """Write `source` (params, plus its optimizer state and step when it has them) as
    `target/checkpoint_<step>/`; returns that directory."""
    if source_kind == "t5x":
        states, step = _t5x_states(source)
    elif source_kind == "ours":
        states, step = _ours_states(source_path, source)
    else:
        states, step = fresh_param_states(param_shapes(source.config)), 0
    return write_t5x_checkpoint(target, ((name, source.read(name)) for name in source.names()), states, step)

