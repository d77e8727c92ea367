"""HuggingFace T5 ⇄ our param tree: tensor names, layouts and config fields.

Layouts: torch Linear weights are [out, in] where T5X kernels are [in, out], so every
projection is transposed; the relative attention bias lives only in block 0 of each HF
stack as [buckets, heads] (ours: [heads, buckets]); `shared.weight` is the embedding
([vocab, d_model] in both) and `lm_head.weight` ([vocab, d_model]) is our
`decoder/logits_dense/kernel` ([d_model, vocab]) for untied models. HF checkpoints may have
fewer vocab rows (32100) than our padded table (32128); imports pad with zero rows.

Tied logits: with tied embeddings HF multiplies the decoder output by d_model**-0.5 before
`lm_head`, exactly what T5X's `logits_via_embedding` does (transformers >= 5 records this
as `scale_decoder_outputs` and always ties `lm_head` to `shared` unless the checkpoint
holds a different `lm_head.weight`).
"""
from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

import numpy as np

from t5x_cot.interop.errors import ConversionError
from t5x_cot.interop.layout import (ATTENTION, EMBEDDING, GATED_ACTIVATIONS, LOGITS_DENSE, RELU_ACTIVATIONS,
                                    STACKS, mlp_input_names, num_layers)
from t5x_cot.model.network import T5Config

SHARED = "shared.weight"
LM_HEAD = "lm_head.weight"
# Copies of `shared.weight` that torch checkpoints often hold; equal to it by construction.
TIED_COPIES = ("encoder.embed_tokens.weight", "decoder.embed_tokens.weight")
# Created by early HF versions, never used by the model (transformers ignores it too).
UNUSED = ("decoder.block.0.layer.1.EncDecAttention.relative_attention_bias.weight",)
# HF "gated-gelu" is gelu_new (tanh approximation), which is T5X's "gelu".
FEED_FORWARD: dict[str, tuple[str, ...]] = {"relu": RELU_ACTIVATIONS, "gated-gelu": GATED_ACTIVATIONS}
MODEL_TYPES = ("t5", "mt5")
VOCAB_MULTIPLE = 128  # T5X pads the vocabulary (32100) to a multiple of 128 (32128)
_HF_ATTENTION = {"attention": "SelfAttention", "self_attention": "SelfAttention",
                 "encoder_decoder_attention": "EncDecAttention"}
_HF_PROJECTION = {"query": "q", "key": "k", "value": "v", "out": "o"}


@dataclasses.dataclass(frozen=True)
class TensorMap:
    """One param: our name, the HF name, whether the layouts are transposes of each other, and
    which axis of our array indexes the vocabulary (None when none does)."""

    path: str
    name: str
    transpose: bool
    vocab_axis: int | None = None


def tensor_maps(config: T5Config) -> list[TensorMap]:
    """The HF tensor for every param of `config`, in HF module order."""
    maps = [TensorMap(EMBEDDING, SHARED, False, vocab_axis=0)]
    for stack in STACKS:
        for i in range(num_layers(config, stack)):
            ours, theirs = f"{stack}/layers_{i}", f"{stack}.block.{i}"
            for j, (module, norm) in enumerate(ATTENTION[stack]):
                sub = f"{theirs}.layer.{j}"
                for name, short in _HF_PROJECTION.items():
                    maps.append(TensorMap(f"{ours}/{module}/{name}/kernel",
                                          f"{sub}.{_HF_ATTENTION[module]}.{short}.weight", True))
                if i == 0 and j == 0:
                    maps.append(TensorMap(f"{stack}/relpos_bias/rel_embedding",
                                          f"{sub}.SelfAttention.relative_attention_bias.weight", True))
                maps.append(TensorMap(f"{ours}/{norm}/scale", f"{sub}.layer_norm.weight", False))
            sub = f"{theirs}.layer.{len(ATTENTION[stack])}"
            for name in [*mlp_input_names(config), "wo"]:
                maps.append(TensorMap(f"{ours}/mlp/{name}/kernel", f"{sub}.DenseReluDense.{name}.weight", True))
            maps.append(TensorMap(f"{ours}/pre_mlp_layer_norm/scale", f"{sub}.layer_norm.weight", False))
        maps.append(TensorMap(f"{stack}/{stack}_norm/scale", f"{stack}.final_layer_norm.weight", False))
    if not config.logits_via_embedding:
        maps.append(TensorMap(LOGITS_DENSE, LM_HEAD, True, vocab_axis=1))
    return maps


def hf_shape(ours: tuple[int, ...], tensor: TensorMap) -> tuple[int, ...]:
    """The HF shape of a param with our shape `ours`."""
    return tuple(reversed(ours)) if tensor.transpose else tuple(ours)


def to_hf(array: np.ndarray, tensor: TensorMap, dtype: np.dtype) -> np.ndarray:
    """Our param as the HF tensor (contiguous, in `dtype`); one copy."""
    return np.ascontiguousarray(array.T if tensor.transpose else array, dtype=dtype)


def check_hf_shape(got: tuple[int, ...], tensor: TensorMap, ours: tuple[int, ...], source: str) -> None:
    """Raise ConversionError unless an HF tensor of shape `got` fits our param of shape `ours`
    (the vocab axis may be shorter: the rows are padded)."""
    expected = hf_shape(ours, tensor)
    hf_vocab_axis = None if tensor.vocab_axis is None else (
        len(ours) - 1 - tensor.vocab_axis if tensor.transpose else tensor.vocab_axis)
    fits = len(got) == len(expected) and all(
        g == e or (axis == hf_vocab_axis and g < e) for axis, (g, e) in enumerate(zip(got, expected)))
    if not fits:
        raise ConversionError(source, f"shape {list(got)}, expected {list(expected)}"
                              + (" (or fewer vocab rows)" if hf_vocab_axis is not None else ""),
                              tensor=tensor.name)


def from_hf(array: np.ndarray, tensor: TensorMap, ours: tuple[int, ...], source: str) -> np.ndarray:
    """The HF tensor as our float32 param of shape `ours`, zero-padding missing vocab rows."""
    check_hf_shape(tuple(array.shape), tensor, ours, source)
    result = np.ascontiguousarray(array.T if tensor.transpose else array, dtype=np.float32)
    if tuple(result.shape) != ours:
        result = np.pad(result, [(0, e - g) for g, e in zip(result.shape, ours)])
    return result


def padded_vocab(size: int) -> int:
    return -(-size // VOCAB_MULTIPLE) * VOCAB_MULTIPLE


def _field(fields: Mapping[str, Any], name: str, source: str, kind: type, default: Any = None) -> Any:
    value = fields.get(name, default)
    if value is None:
        raise ConversionError(source, f"missing; expected {kind.__name__}", field=name)
    if kind is float and isinstance(value, int) and not isinstance(value, bool):
        value = float(value)
    if not isinstance(value, kind) or isinstance(value, bool) != (kind is bool):
        raise ConversionError(source, f"expected {kind.__name__}, got {value!r}", field=name)
    return value


def scales_decoder_output(fields: Mapping[str, Any]) -> bool:
    """Whether HF multiplies the decoder output by d_model**-0.5 (tied-embedding T5)."""
    if "scale_decoder_outputs" in fields:
        return bool(fields["scale_decoder_outputs"])
    return fields.get("tie_word_embeddings", True) is not False


def config_from_hf(fields: Mapping[str, Any], source: str, **overrides: Any) -> T5Config:
    """Our T5Config for an HF T5 config.json; `logits_via_embedding` follows HF's output scaling
    (the importer overrides it when the checkpoint's `lm_head` says otherwise)."""
    model_type = fields.get("model_type", "t5")
    if model_type not in MODEL_TYPES:
        raise ConversionError(source, f"{model_type!r} is not a T5 model (expected one of "
                              f"{', '.join(MODEL_TYPES)})", field="model_type")
    projection = _field(fields, "feed_forward_proj", source, str, "relu")
    if projection not in FEED_FORWARD:
        raise ConversionError(source, f"unknown feed_forward_proj {projection!r} (expected one of "
                              f"{', '.join(FEED_FORWARD)})", field="feed_forward_proj")
    num_layers_ = _field(fields, "num_layers", source, int)
    values: dict[str, Any] = dict(
        vocab_size=padded_vocab(_field(fields, "vocab_size", source, int)),
        emb_dim=_field(fields, "d_model", source, int),
        num_heads=_field(fields, "num_heads", source, int),
        head_dim=_field(fields, "d_kv", source, int),
        mlp_dim=_field(fields, "d_ff", source, int),
        num_encoder_layers=num_layers_,
        num_decoder_layers=_field(fields, "num_decoder_layers", source, int, num_layers_),
        mlp_activations=FEED_FORWARD[projection],
        dropout_rate=_field(fields, "dropout_rate", source, float, 0.1),
        logits_via_embedding=scales_decoder_output(fields),
        relative_attention_num_buckets=_field(fields, "relative_attention_num_buckets", source, int, 32),
        relative_attention_max_distance=_field(fields, "relative_attention_max_distance", source, int, 128),
        layer_norm_epsilon=_field(fields, "layer_norm_epsilon", source, float, 1e-6),
    )
    values.update(overrides)
    return T5Config(**values)


def config_to_hf(config: T5Config, dtype: str = "float32") -> dict[str, Any]:
    """The HF config.json fields for our config (vocab_size = our padded table)."""
    projection = {acts: name for name, acts in FEED_FORWARD.items()}.get(tuple(config.mlp_activations))
    if projection is None:
        raise ConversionError("T5Config", f"{tuple(config.mlp_activations)} has no HF feed_forward_proj "
                              f"(supported: {', '.join(map(str, FEED_FORWARD.values()))})",
                              field="mlp_activations")
    return {
        "architectures": ["T5ForConditionalGeneration"],
        "model_type": "t5",
        "vocab_size": config.vocab_size,
        "d_model": config.emb_dim,
        "d_kv": config.head_dim,
        "d_ff": config.mlp_dim,
        "num_layers": config.num_encoder_layers,
        "num_decoder_layers": config.num_decoder_layers,
        "num_heads": config.num_heads,
        "relative_attention_num_buckets": config.relative_attention_num_buckets,
        "relative_attention_max_distance": config.relative_attention_max_distance,
        "dropout_rate": config.dropout_rate,
        "layer_norm_epsilon": config.layer_norm_epsilon,
        "initializer_factor": 1.0,
        "feed_forward_proj": projection,
        "dense_act_fn": "gelu_new" if projection == "gated-gelu" else "relu",
        "is_gated_act": projection.startswith("gated-"),
        "tie_word_embeddings": bool(config.logits_via_embedding),
        "scale_decoder_outputs": bool(config.logits_via_embedding),
        "is_encoder_decoder": True,
        "use_cache": True,
        "pad_token_id": 0,
        "eos_token_id": 1,
        "decoder_start_token_id": 0,
        "torch_dtype": dtype,
    }
