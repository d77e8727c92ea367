"""One view over every checkpoint kind: a config plus our params, read one at a time.

A `ParamSource` knows its (unscanned) T5Config and hands out our float32 params by
`/`-joined name; it has already checked that its checkpoint holds exactly the params of
that config (none missing, none left over, every shape right), so a conversion fails
before it writes anything.
"""
from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from typing import Any, Protocol

import numpy as np

from t5x_cot.interop.errors import ConversionError
from t5x_cot.interop.layout import flatten, infer_config, param_shapes, unflatten
from t5x_cot.interop.t5x_ckpt import T5XCheckpoint
from t5x_cot.model.network import T5Config

_SHOWN = 8


class ParamSource(Protocol):
    """A checkpoint seen as our param tree."""

    config: T5Config

    def names(self) -> list[str]: ...

    def read(self, name: str) -> np.ndarray: ...

    def close(self) -> None: ...


def check_params(source: str, present: Mapping[str, tuple[int, ...]], config: T5Config,
                 what: str = "param") -> None:
    """Raise ConversionError (naming the first offending tensor, listing the rest) unless
    `present` holds exactly the params of `config` with their shapes."""
    expected = param_shapes(config)
    problems = [(name, f"missing {what}") for name in expected if name not in present]
    problems += [(name, f"left-over {what}: not part of a model with this config")
                 for name in present if name not in expected]
    problems += [(name, f"shape {list(present[name])}, expected {list(shape)}")
                 for name, shape in expected.items() if name in present and tuple(present[name]) != shape]
    if problems:
        name, first = problems[0]
        rest = "; ".join(f"{n}: {p}" for n, p in problems[1:_SHOWN])
        more = f" (and {len(problems) - _SHOWN} more)" if len(problems) > _SHOWN else ""
        raise ConversionError(source, first + (f"; also {rest}{more}" if rest else ""), tensor=name)


class TreeSource:
    """Params already in memory (a nested dict of arrays, scanned or not)."""

    def __init__(self, params: Mapping[str, Any], config: T5Config, source: str = "params"):
        if config.scan_layers:
            from t5x_cot.model.network import unstack_layers

            params = unstack_layers(params)
            config = dataclasses.replace(config, scan_layers=False)
        self.config = config
        self._flat = flatten(params)
        check_params(source, {n: tuple(np.shape(a)) for n, a in self._flat.items()}, config)

    def names(self) -> list[str]:
        return list(param_shapes(self.config))

    def read(self, name: str) -> np.ndarray:
        return np.asarray(self._flat[name], dtype=np.float32)

    def close(self) -> None:
        self._flat = {}


class T5XSource:
    """The params of a T5X checkpoint; the config is inferred from the param shapes."""

    def __init__(self, path: str | os.PathLike, **config_overrides: Any):
        self.checkpoint = T5XCheckpoint(path)
        names = self.checkpoint.param_names()
        if not names:
            raise ConversionError(path, "no params in the checkpoint (nothing under "
                                  "optimizer/target/ or target/)")
        shapes = {name: self.checkpoint.shape_dtype(self.checkpoint.param_prefix + name)[0] for name in names}
        self.config = infer_config(shapes, str(path), **config_overrides)
        check_params(str(path), shapes, self.config)

    def names(self) -> list[str]:
        return list(param_shapes(self.config))

    def read(self, name: str) -> np.ndarray:
        return self.checkpoint.read_param(name)

    def close(self) -> None:
        """Nothing to release: every array is opened and closed as it is read."""


def read_tree(source: ParamSource) -> dict[str, Any]:
    """All params of a source as our nested param tree (float32 numpy)."""
    return unflatten({name: source.read(name) for name in source.names()})

