"""The training checkpoints of a MODEL_DIR: orbax saves that fail loudly, restores that fall back.

One `MODEL_DIR/checkpoint_<step>/` per saved step, holding the items `params/`, `opt_state/`
and `meta/` (JSON: step, data position), as described in `t5x_cot.checkpoints`. A save that
fails, in the foreground or in orbax's background thread, stops the run with one
CheckpointSaveError; a restore reads every array and falls back from a damaged newest
checkpoint to the newest one that restores.
"""
from __future__ import annotations

import contextlib
import logging
import pathlib
import time
from collections.abc import Iterator, Mapping
from typing import Any

import jax
import numpy as np
import orbax.checkpoint as ocp

from t5x_cot import checkpoints, paths
from t5x_cot.checkpoints import (
    META_ITEM,
    OPT_STATE_ITEM,
    PARAMS_ITEM,
    READ_ERRORS,
    STEP_PREFIX,
    CheckpointError,
)
from t5x_cot.errors import one_line

UNUSABLE_SUFFIX = ".unusable"
logger = logging.getLogger(__name__)


class CheckpointSaveError(CheckpointError):
    """A checkpoint that could not be written (full disk, lost bucket access, ...)."""


class TrainCheckpointer:
    """orbax CheckpointManager of a MODEL_DIR: async saves every `period` steps, keeps `keep`.

    Each `checkpoint_<step>` holds `params`, `opt_state` and `meta` (step, data position).
    A save that fails (now or in the background) raises CheckpointSaveError at the next call;
    `restore_latest` falls back past checkpoints that cannot be read.
    """

    def __init__(self, model_dir: str | pathlib.Path, *, period: int = 1000, keep: int | None = None,
                 use_async: bool = True) -> None:
        self.model_dir = paths.absolute(model_dir)
        self.period = max(1, int(period))
        options = ocp.CheckpointManagerOptions(
            max_to_keep=keep, step_prefix=STEP_PREFIX, create=True,
            enable_async_checkpointing=use_async)
        self.manager = ocp.CheckpointManager(self.model_dir, options=options,
                                             item_names=(PARAMS_ITEM, OPT_STATE_ITEM, META_ITEM))
        self._saving: int | None = None  # the step of the save in flight
        _quiet_orbax_tracebacks()

    def latest_step(self) -> int | None:
        """The newest finished step, or None."""
        return self.manager.latest_step()

    def should_save(self, step: int) -> bool:
        return step % self.period == 0

    def save(self, step: int, state: Any, data_state: Mapping[str, Any] | None = None) -> None:
        """Start an (async) save of `state` (a TrainState) at `step`; returns once it is staged.

        The previous save is finished first (orbax would wait for it too), so its failure is
        reported as its own.
        """
        self.wait()
        if step in self.manager.all_steps():
            return
        meta = {"step": int(step), "data": dict(data_state or {})}
        self._saving = step
        with self._saving_errors():
            self.manager.save(step, args=ocp.args.Composite(**{
                PARAMS_ITEM: ocp.args.StandardSave(state.params),
                OPT_STATE_ITEM: ocp.args.StandardSave(state.opt_state),
                META_ITEM: ocp.args.JsonSave(meta)}), force=True)

    def check_for_errors(self) -> None:
        """Raise CheckpointSaveError if a background save has failed (never waits for one in progress)."""
        if self._saving is not None and not self.manager.is_saving_in_progress():
            self.wait()

    def restore(self, step: int, abstract_state: Any) -> tuple[Any, dict[str, Any]]:
        """(TrainState, meta) at `step`, read into the shardings of `abstract_state`.

        `abstract_state` is a TrainState of ShapeDtypeStructs with shardings; a param tree that
        does not match is refused with the names and shapes that differ. Every array is read
        (a damaged file fails here, not later) and the params must be finite.
        """
        step_dir = paths.join(self.model_dir, f"{STEP_PREFIX}_{step}")
        _check_params_complete(checkpoints.params_metadata(paths.join(step_dir, PARAMS_ITEM)),
                               abstract_state.params, step_dir)
        try:
            restored = self.manager.restore(step, args=ocp.args.Composite(**{
                PARAMS_ITEM: ocp.args.StandardRestore(abstract_state.params),
                OPT_STATE_ITEM: ocp.args.StandardRestore(abstract_state.opt_state),
                META_ITEM: ocp.args.JsonRestore()}))
            meta = dict(restored[META_ITEM] or {})
        except READ_ERRORS as error:
            raise CheckpointError(f"{step_dir}: cannot be restored ({checkpoints.describe(error)})") from error
        if meta.get("step") != step:
            raise CheckpointError(f"{step_dir}: meta/ says step {meta.get('step')!r}, expected {step}")
        if not all_finite(restored[PARAMS_ITEM]):
            raise CheckpointError(f"{step_dir}: its params hold NaN or Inf")
        step_array = jax.device_put(np.asarray(step, np.int32), abstract_state.step.sharding)
        state = abstract_state.replace(step=step_array, params=restored[PARAMS_ITEM],
                                       opt_state=restored[OPT_STATE_ITEM])
        return state, meta

    def restore_latest(self, abstract_state: Any) -> tuple[Any, dict[str, Any]] | None:
        """(TrainState, meta) of the newest checkpoint that restores, or None when there is none.

        Each newer one that cannot be restored is named in a warning and moved aside to
        `checkpoint_<step>.unusable...` (so the run can save that step again); when none
        restores, CheckpointError names each one and why.
        """
        problems: list[tuple[int, str]] = []
        for step in sorted(self.manager.all_steps(), reverse=True):
            try:
                restored = self.restore(step, abstract_state)
            except CheckpointError as error:
                problems.append((step, one_line(error)))
                logger.warning("%s; trying the checkpoint before it", one_line(error))
                logger.debug("why %s_%d cannot be restored", STEP_PREFIX, step, exc_info=error)
                continue
            self._set_aside([bad for bad, _ in problems])
            return restored
        if problems:
            raise CheckpointError(f"MODEL_DIR {self.model_dir}: no checkpoint can be restored: "
                                  + "; ".join(why for _, why in problems))
        return None

    def wait(self) -> None:
        """Block until pending saves are on disk (CheckpointSaveError if one failed)."""
        with self._saving_errors():
            self.manager.wait_until_finished()
            self.manager.check_for_errors()
        self._saving = None

    def close(self) -> None:
        try:
            self.wait()
        finally:
            self.manager.close()

    def _set_aside(self, steps: list[int]) -> None:
        """Rename unusable step dirs (process 0, once every process has restored)."""
        if not steps:
            return
        if jax.process_count() > 1:
            from jax.experimental import multihost_utils

            multihost_utils.sync_global_devices("t5x_cot restored")
        if jax.process_index() == 0:
            for step in steps:
                source = paths.join(self.model_dir, f"{STEP_PREFIX}_{step}")
                target = f"{source}{UNUSABLE_SUFFIX}-{time.strftime('%Y%m%d-%H%M%S')}"
                paths.rename(source, target)
                logger.warning("moved %s aside to %s", source, target)
        self.manager.reload()

    @contextlib.contextmanager
    def _saving_errors(self) -> Iterator[None]:
        """Turn a failed save into one CheckpointSaveError naming the step and MODEL_DIR."""
        try:
            yield
        except (OSError, ValueError) as error:
            step = f"{STEP_PREFIX}_{self._saving}" if self._saving is not None else "a checkpoint"
            raise CheckpointSaveError(f"saving {step} in {self.model_dir} failed ({checkpoints.describe(error)}); "
                                      "training stopped") from error


class _NoTraceback(logging.Filter):
    """Drop the traceback orbax logs with a failed background save (CheckpointSaveError reports it)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno >= logging.ERROR and "/orbax/" in record.pathname.replace("\\", "/"):
            record.exc_info, record.exc_text, record.stack_info = None, None, None
        return True


def _quiet_orbax_tracebacks() -> None:
    absl = logging.getLogger("absl")
    if not any(isinstance(f, _NoTraceback) for f in absl.filters):
        absl.addFilter(_NoTraceback())


def _check_params_complete(stored: Any, expected: Any, step_dir: str) -> None:
    """A step dir of this run (config.json matched) that lacks params is damaged, not another model."""
    stored_names, expected_names = set(checkpoints.tree_shapes(stored)), set(checkpoints.tree_shapes(expected))
    missing = sorted(expected_names - stored_names)
    if missing and stored_names <= expected_names:
        raise CheckpointError(f"{step_dir}: incomplete: {len(missing)} of the model's {len(expected_names)} "
                              f"param arrays are missing ({', '.join(missing[:3])}{', ...' if len(missing) > 3 else ''})")
    checkpoints.check_tree_matches(stored, expected, step_dir)


def all_finite(tree: Any) -> bool:
    """Whether every element of every array in `tree` is finite (computed where the arrays are)."""
    leaves = [leaf for leaf in jax.tree.leaves(tree) if np.issubdtype(leaf.dtype, np.inexact)]
    if not leaves:
        return True
    return bool(jax.device_get(_finite_fn(leaves)))


@jax.jit
def _finite_fn(leaves: list) -> jax.Array:
    import jax.numpy as jnp

    return jnp.stack([jnp.isfinite(leaf).all() for leaf in leaves]).all()
