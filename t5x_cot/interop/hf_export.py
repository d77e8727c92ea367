"""Our params as a HuggingFace T5 directory that `T5ForConditionalGeneration.from_pretrained`
loads: `config.json`, `model.safetensors` (written one tensor at a time) and, given a
SentencePiece model, the T5Tokenizer files (`spiece.model`, `tokenizer_config.json`,
`special_tokens_map.json`, 100 extra ids).

The vocabulary is `config.output_vocab_size` in both the tensors and `vocab_size`: the size
an HF import recorded as `real_vocab_size` (the padded rows are dropped), else our padded
table (32128, as the public T5 checkpoints on the HF hub have); tied models (`logits_via_embedding`) write
`shared.weight` only, untied ones also `lm_head.weight`.
"""
from __future__ import annotations

import json
import os
import pathlib
import shutil
from collections.abc import Mapping
from typing import Any

from t5x_cot.interop.errors import ConversionError
from t5x_cot.interop.hf_files import SAFETENSORS
from t5x_cot.interop.hf_import import CONFIG_FILE
from t5x_cot.interop.hf_mapping import config_to_hf, hf_shape, tensor_maps, to_hf
from t5x_cot.interop.layout import param_shapes
from t5x_cot.interop.safetensors_io import DTYPES, SafetensorsWriter, TensorSpec
from t5x_cot.interop.sources import ParamSource, TreeSource
from t5x_cot.model.network import T5Config

EXPORT_DTYPES = {"float32": "F32", "bfloat16": "BF16", "float16": "F16"}
EXTRA_IDS = 100
SPIECE = "spiece.model"
SPECIAL_TOKENS = {"eos_token": "</s>", "unk_token": "<unk>", "pad_token": "<pad>"}


def export_source(source: ParamSource, directory: str | os.PathLike, *, dtype: str = "float32",
                  spm_model: str | os.PathLike | None = None) -> pathlib.Path:
    """Write `source` as an HF T5 directory, reading and writing one tensor at a time."""
    if dtype not in EXPORT_DTYPES:
        raise ConversionError(directory, f"unknown dtype {dtype!r} (expected one of "
                              f"{', '.join(EXPORT_DTYPES)})", field="dtype")
    np_dtype = DTYPES[EXPORT_DTYPES[dtype]]
    out = pathlib.Path(directory)
    out.mkdir(parents=True, exist_ok=True)
    hf_config = config_to_hf(source.config, dtype)
    maps, shapes = tensor_maps(source.config), param_shapes(source.config)
    vocab = source.config.output_vocab_size
    specs = [TensorSpec(m.name, np_dtype, hf_shape(shapes[m.path], m, vocab)) for m in maps]
    with SafetensorsWriter(out / SAFETENSORS, specs, metadata={"format": "pt"}) as writer:
        for m in maps:
            writer.write(m.name, to_hf(source.read(m.path), m, np_dtype, vocab))
    (out / CONFIG_FILE).write_text(json.dumps(hf_config, indent=2) + "\n", encoding="utf-8")
    if spm_model is not None:
        write_tokenizer(out, spm_model)
    return out


def export_hf(params: Mapping[str, Any], config: T5Config, directory: str | os.PathLike, *,
              dtype: str = "float32", spm_model: str | os.PathLike | None = None) -> pathlib.Path:
    """Write our param tree as an HF T5 directory (see `export_source`)."""
    return export_source(TreeSource(params, config), directory, dtype=dtype, spm_model=spm_model)


def write_tokenizer(directory: str | os.PathLike, spm_model: str | os.PathLike) -> None:
    """The T5Tokenizer files for a SentencePiece model, with T5's 100 sentinel ids."""
    source = pathlib.Path(spm_model)
    if not source.is_file():
        raise ConversionError(source, "no such SentencePiece model file")
    out = pathlib.Path(directory)
    shutil.copyfile(source, out / SPIECE)
    sentinels = [f"<extra_id_{i}>" for i in range(EXTRA_IDS)]
    special = SPECIAL_TOKENS | {"additional_special_tokens": sentinels}
    tokenizer_config = special | {"tokenizer_class": "T5Tokenizer", "extra_ids": EXTRA_IDS,
                                  "model_max_length": 512}
    for name, fields in (("tokenizer_config.json", tokenizer_config), ("special_tokens_map.json", special)):
        (out / name).write_text(json.dumps(fields, indent=2) + "\n", encoding="utf-8")

