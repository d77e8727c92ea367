"""HuggingFace T5 / T5 1.1 / Flan-T5 / mT5 directories as a ParamSource.

Reads `config.json` and the weights (see `hf_files`), maps the config onto our T5Config,
and checks every HF tensor before anything is converted: each one our config needs must be
there with the right shape, and nothing may be left over except the known copies of the
embedding and the one tensor transformers itself ignores.

Output head (see `hf_mapping` for which configs HF scales): a scaled model whose head is
`shared.weight` is our `logits_via_embedding=True`. An unscaled `lm_head.weight` (T5 1.1,
Flan-T5, UL2, mT5) -> our `logits_dense`; an unscaled model without `lm_head.weight`
(transformers >= 5 ties it to `shared`, e.g. every mT5 it saves) gives
`logits_dense = shared.T`; a scaled config whose `lm_head.weight` differs from `shared` gets
the scale folded into `logits_dense`.
"""
from __future__ import annotations

import dataclasses
import json
import os
import pathlib
from typing import Any

import numpy as np

from t5x_cot.interop.errors import ConversionError
from t5x_cot.interop.hf_files import open_weights
from t5x_cot.interop.hf_mapping import (
    LM_HEAD,
    SHARED,
    TIED_COPIES,
    UNUSED,
    check_hf_shape,
    config_from_hf,
    from_hf,
    scales_decoder_output,
    tensor_maps,
)
from t5x_cot.interop.layout import LOGITS_DENSE, param_shapes
from t5x_cot.interop.sources import read_tree
from t5x_cot.model.network import T5Config

CONFIG_FILE = "config.json"


def read_hf_config(directory: str | os.PathLike) -> dict[str, Any]:
    """The fields of an HF model directory's config.json."""
    path = pathlib.Path(directory) / CONFIG_FILE
    if not path.is_file():
        raise ConversionError(path, "missing: an HF model directory needs its config.json")
    try:
        fields = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as error:
        raise ConversionError(f"{path}:{error.lineno}", f"not valid JSON ({error.msg})") from error
    if not isinstance(fields, dict):
        raise ConversionError(path, "expected a JSON object of config fields")
    return fields


class HFSource:
    """The params of an HF T5 model directory, converted to our layout as they are read."""

    def __init__(self, directory: str | os.PathLike, **config_overrides: Any):
        self.path = pathlib.Path(directory)
        fields = read_hf_config(self.path)
        config = config_from_hf(fields, str(self.path / CONFIG_FILE), **config_overrides)
        self.weights = open_weights(self.path)
        try:
            self._setup(fields, config)
        except BaseException:
            self.weights.close()
            raise

    def _setup(self, fields: dict[str, Any], config: T5Config) -> None:
        where = str(self.weights.path)
        names = set(self.weights.keys())
        if SHARED not in names:
            raise ConversionError(where, "missing tensor (the token embedding)", tensor=SHARED)
        scaled, has_head = scales_decoder_output(fields, where), LM_HEAD in names
        head_is_shared = has_head and scaled and np.array_equal(
            self.weights.read(LM_HEAD), self.weights.read(SHARED))
        self._head_scale = config.emb_dim ** -0.5 if has_head and scaled and not head_is_shared else None
        self.config = dataclasses.replace(config, logits_via_embedding=scaled and not has_head or head_is_shared)
        self._maps = {m.path: m for m in tensor_maps(self.config)}
        if LOGITS_DENSE in self._maps and not has_head:
            self._maps[LOGITS_DENSE] = dataclasses.replace(self._maps[LOGITS_DENSE], name=SHARED)
        self._shapes = param_shapes(self.config)
        used = {m.name for m in self._maps.values()}
        for m in self._maps.values():
            if m.name not in names:
                raise ConversionError(where, "missing tensor", tensor=m.name)
            check_hf_shape(self.weights.shape(m.name), m, self._shapes[m.path], where)
        allowed = set(TIED_COPIES) | set(UNUSED) | ({LM_HEAD} if head_is_shared else set())
        left_over = sorted(names - used - allowed)
        if left_over:
            raise ConversionError(where, "left-over tensor: not part of a T5 model with this config"
                                  + (f" (also {', '.join(left_over[1:6])}...)" if len(left_over) > 1 else ""),
                                  tensor=left_over[0])

    def names(self) -> list[str]:
        return list(self._shapes)

    def read(self, name: str) -> np.ndarray:
        m = self._maps[name]
        array = from_hf(self.weights.read(m.name), m, self._shapes[name], str(self.weights.path))
        if name == LOGITS_DENSE and self._head_scale is not None:
            array *= np.float32(self._head_scale)
        return array

    def close(self) -> None:
        self.weights.close()


def load_hf(directory: str | os.PathLike, **config_overrides: Any) -> tuple[dict[str, Any], T5Config]:
    """(our float32 param tree, T5Config) from an HF T5 model directory."""
    source = HFSource(directory, **config_overrides)
    try:
        return read_tree(source), source.config
    finally:
        source.close()
