"""Our params checkpoints (layout: `t5x_cot.checkpoints`), read one param at a time and
written without extra copies.

`t5x_cot.checkpoints.load_params` / `save_params` handle whole trees; a conversion would
then hold the model up to ~2.6x over (orbax's defensive copy of every host array plus its
compression buffers when saving, read buffers when restoring). Here each param is restored
on its own (orbax partial restore), and the tree is saved through a numpy handler that does
not copy, uncompressed (float weights barely compress). The files are the same orbax PyTree
plus `config.json`, so `load_params` and INITIAL_CHECKPOINT_PATH read them as usual.
"""
from __future__ import annotations

import dataclasses
import os
import pathlib
from typing import Any

import jax
import numpy as np
import orbax.checkpoint as ocp
from orbax.checkpoint import type_handlers

from t5x_cot import checkpoints
from t5x_cot.interop.errors import ConversionError
from t5x_cot.interop.layout import flatten, param_shapes, unflatten
from t5x_cot.interop.sources import ParamSource, TreeSource, check_params, read_tree


class OursSource:
    """An unscanned "ours" checkpoint (params dir, training step dir or MODEL_DIR)."""

    def __init__(self, path: str | os.PathLike, config: Any, params_dir: pathlib.Path):
        self.path = str(path)
        self.config = config
        self._params_dir = params_dir
        self._checkpointer = ocp.PyTreeCheckpointer()
        metadata = self._checkpointer.metadata(params_dir)
        tree = getattr(getattr(metadata, "item_metadata", metadata), "tree", metadata)
        check_params(self.path, {name: tuple(leaf.shape) for name, leaf in flatten(tree).items()}, config)

    def names(self) -> list[str]:
        return list(param_shapes(self.config))

    def read(self, name: str) -> np.ndarray:
        restored = self._checkpointer.restore(self._params_dir, args=ocp.args.PyTreeRestore(
            item=unflatten({name: 0}), partial_restore=True,
            restore_args=unflatten({name: ocp.RestoreArgs(restore_type=np.ndarray)})))
        return np.asarray(flatten(restored)[name], dtype=np.float32)

    def close(self) -> None:
        """Nothing to release: each read opens and closes the checkpoint."""


def open_ours(path: str | os.PathLike, **config_overrides: Any) -> OursSource | TreeSource:
    """An "ours" checkpoint as a ParamSource; `config_overrides` replace stored config fields.
    Scanned checkpoints (stacked layers) are loaded whole and unstacked."""
    params_dir, config_dir = checkpoints.resolve_params_dir(path)
    fields = checkpoints.read_config_dict(config_dir)
    if fields is None:
        raise ConversionError(path, "no config.json beside the params; cannot tell the model shape",
                              field="config.json")
    config = dataclasses.replace(checkpoints.config_from_dict(fields), **config_overrides)
    if config.scan_layers:
        return TreeSource(checkpoints.restore_params(path), config, source=str(path))
    return OursSource(path, config, params_dir)


def write_ours(source: ParamSource, path: str | os.PathLike) -> pathlib.Path:
    """Save a source as an "ours" params checkpoint (what INITIAL_CHECKPOINT_PATH accepts),
    holding the params once."""
    root = pathlib.Path(path).absolute()
    root.mkdir(parents=True, exist_ok=True)
    registry = type_handlers.create_type_handler_registry(
        (np.ndarray, type_handlers.NumpyHandler(deepcopy_host_arrays=False)),
        (jax.Array, type_handlers.ArrayHandler()))  # unused here; keeps orbax's array metadata on
    handler = ocp.PyTreeCheckpointHandler(type_handler_registry=registry, use_compression=False)
    ocp.Checkpointer(handler).save(root / checkpoints.PARAMS_ITEM, args=ocp.args.PyTreeSave(read_tree(source)),
                                   force=True)
    checkpoints.write_config(root, source.config)
    return root
