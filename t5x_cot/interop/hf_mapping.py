"""HuggingFace T5 ⇄ our param tree: tensor names, layouts and config fields.

Layouts: torch Linear weights are [out, in] where T5X kernels are [in, out], so every
projection is transposed; the relative attention bias lives only in block 0 of each HF
stack as [buckets, heads] (ours: [heads, buckets]); `shared.weight` is the embedding
([vocab, d_model] in both) and `lm_head.weight` ([vocab, d_model]) is our
`decoder/logits_dense/kernel` ([d_model, vocab]) for untied models.

Vocabulary: our table has a multiple of 128 rows (T5X pads 32100 to 32128). An HF vocabulary
that is not one is padded with zero rows on import and its size is kept as
`T5Config.real_vocab_size` (the model masks the padded ids out of every softmax); export
writes that many rows and `vocab_size` again.

Output head, as transformers 5 computes it (`modeling_t5.py` / `modeling_mt5.py`):
`T5ForConditionalGeneration` (model_type "t5": T5 1.0, T5 1.1, Flan-T5, UL2, ByT5) multiplies
the decoder output by d_model**-0.5 when its config's `scale_decoder_outputs` is true, which
transformers derives from the saved `tie_word_embeddings` when the field is absent (true for
T5 1.0, false for the others); that is T5X's `logits_via_embedding`.
`MT5ForConditionalGeneration` (model_type "mt5") never scales, whatever `tie_word_embeddings`
says. Both use `shared.weight` as the head unless the checkpoint holds its own
`lm_head.weight`. UMT5 (a relative position bias in every layer) is not a T5X layout.

Feed-forward: `feed_forward_proj` is `[gated-]ACT` with ACT a transformers activation name;
"gated-X" is our (X, "linear") and "gated-gelu" means gelu_new (tanh approximation), which is
T5X's "gelu", while HF's plain "gelu" is the exact one (our "gelu_exact").
"""
from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

import numpy as np

from t5x_cot.interop.errors import ConversionError
from t5x_cot.interop.layout import ATTENTION, EMBEDDING, LOGITS_DENSE, STACKS, mlp_input_names, num_layers
from t5x_cot.model.network import T5Config

SHARED = "shared.weight"
LM_HEAD = "lm_head.weight"
# Copies of `shared.weight` that torch checkpoints often hold; equal to it by construction.
TIED_COPIES = ("encoder.embed_tokens.weight", "decoder.embed_tokens.weight")
# Created by early HF versions, never used by the model (transformers ignores it too).
UNUSED = ("decoder.block.0.layer.1.EncDecAttention.relative_attention_bias.weight",)
# transformers activation name -> ours (T5X's names).
HF_ACTIVATIONS = {"relu": "relu", "gelu": "gelu_exact", "gelu_new": "gelu", "gelu_pytorch_tanh": "gelu",
                  "silu": "silu", "swish": "silu"}
# ours -> the name written to an HF config (gated: "gated-" + name, but "gated-gelu" for "gelu").
HF_ACTIVATION_NAMES = {"relu": "relu", "gelu_exact": "gelu", "gelu": "gelu_new", "silu": "silu", "swish": "silu"}
GATED, LINEAR = "gated", "linear"
# model_type -> whether its HF class may scale the decoder output (see the module docstring).
MODEL_TYPES = {"t5": True, "mt5": False}
ARCHITECTURES = {"T5ForConditionalGeneration": "t5", "MT5ForConditionalGeneration": "mt5"}
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


def hf_shape(ours: tuple[int, ...], tensor: TensorMap, vocab: int | None = None) -> tuple[int, ...]:
    """The HF shape of a param with our shape `ours`, with `vocab` rows (default: ours)."""
    shape = list(ours)
    if vocab is not None and tensor.vocab_axis is not None:
        shape[tensor.vocab_axis] = vocab
    return tuple(reversed(shape)) if tensor.transpose else tuple(shape)


def to_hf(array: np.ndarray, tensor: TensorMap, dtype: np.dtype, vocab: int | None = None) -> np.ndarray:
    """Our param as the HF tensor (contiguous, in `dtype`, the first `vocab` rows); one copy."""
    if vocab is not None and tensor.vocab_axis is not None:
        rows = [slice(None)] * array.ndim
        rows[tensor.vocab_axis] = slice(0, vocab)
        array = array[tuple(rows)]
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


def model_type(fields: Mapping[str, Any], source: str) -> str:
    """The HF model family of a config.json: its `model_type`, else the one its
    `architectures` name; ConversionError for anything but T5 and mT5."""
    value = fields.get("model_type")
    if value is None:
        named = [ARCHITECTURES[a] for a in fields.get("architectures") or () if a in ARCHITECTURES]
        value = named[0] if named else "t5"
    if value not in MODEL_TYPES:
        layout = " (it has a relative position bias in every layer)" if value == "umt5" else ""
        raise ConversionError(source, f"{value!r} is not a T5 model{layout}; expected one of "
                              f"{', '.join(MODEL_TYPES)}", field="model_type")
    return value


def scales_decoder_output(fields: Mapping[str, Any], source: str = "config.json") -> bool:
    """Whether HF multiplies the decoder output by d_model**-0.5 before the head: T5's class
    does when `scale_decoder_outputs` (default: `tie_word_embeddings` is not false), mT5's never."""
    if not MODEL_TYPES[model_type(fields, source)]:
        return False
    if "scale_decoder_outputs" in fields:
        return bool(fields["scale_decoder_outputs"])
    return fields.get("tie_word_embeddings", True) is not False


def activations_from_hf(projection: str, source: str) -> tuple[str, ...]:
    """Our `mlp_activations` for an HF `feed_forward_proj` ("relu", "gated-silu", ...)."""
    gate, _, name = projection.rpartition("-")
    name = "gelu_new" if projection == "gated-gelu" else name
    if gate not in ("", GATED) or name not in HF_ACTIVATIONS:
        raise ConversionError(source, f"unknown feed_forward_proj {projection!r} (expected ACT or gated-ACT "
                              f"with ACT one of {', '.join(HF_ACTIVATIONS)})", field="feed_forward_proj")
    return (HF_ACTIVATIONS[name], LINEAR) if gate else (HF_ACTIVATIONS[name],)


def activations_to_hf(activations: tuple[str, ...]) -> tuple[str, str]:
    """(`feed_forward_proj`, `dense_act_fn`) for our `mlp_activations`."""
    gated = len(activations) == 2 and activations[1] == LINEAR
    name = HF_ACTIVATION_NAMES.get(activations[0]) if len(activations) == 1 or gated else None
    if name is None or (gated and activations[0] == "gelu_exact"):  # HF's gated-gelu is the tanh gelu
        raise ConversionError("T5Config", f"{tuple(activations)} has no HF feed_forward_proj (supported: "
                              f"(ACT,) or (ACT, 'linear') with ACT one of {', '.join(HF_ACTIVATION_NAMES)}; "
                              "not ('gelu_exact', 'linear'))", field="mlp_activations")
    if not gated:
        return name, name
    return (f"{GATED}-gelu" if name == "gelu_new" else f"{GATED}-{name}"), name


def config_from_hf(fields: Mapping[str, Any], source: str, **overrides: Any) -> T5Config:
    """Our T5Config for an HF T5 config.json; `logits_via_embedding` follows HF's output scaling
    (the importer overrides it when the checkpoint's `lm_head` says otherwise)."""
    family = model_type(fields, source)
    default_projection = "relu" if family == "t5" else "gated-gelu"  # the HF config classes' defaults
    activations = activations_from_hf(_field(fields, "feed_forward_proj", source, str, default_projection), source)
    num_layers_ = _field(fields, "num_layers", source, int)
    vocab = _field(fields, "vocab_size", source, int)
    table = padded_vocab(vocab)
    values: dict[str, Any] = dict(
        vocab_size=table,
        real_vocab_size=vocab if vocab != table else None,  # the padded ids are masked
        emb_dim=_field(fields, "d_model", source, int),
        num_heads=_field(fields, "num_heads", source, int),
        head_dim=_field(fields, "d_kv", source, int),
        mlp_dim=_field(fields, "d_ff", source, int),
        num_encoder_layers=num_layers_,
        num_decoder_layers=_field(fields, "num_decoder_layers", source, int, num_layers_),
        mlp_activations=activations,
        dropout_rate=_field(fields, "dropout_rate", source, float, 0.1),
        logits_via_embedding=scales_decoder_output(fields, source),
        relative_attention_num_buckets=_field(fields, "relative_attention_num_buckets", source, int, 32),
        relative_attention_max_distance=_field(fields, "relative_attention_max_distance", source, int, 128),
        layer_norm_epsilon=_field(fields, "layer_norm_epsilon", source, float, 1e-6),
    )
    values.update(overrides)
    return T5Config(**values)


def config_to_hf(config: T5Config, dtype: str = "float32") -> dict[str, Any]:
    """The HF config.json fields for our config (vocab_size: the real vocabulary,
    `config.output_vocab_size`)."""
    projection, activation = activations_to_hf(config.mlp_activations)
    return {
        "architectures": ["T5ForConditionalGeneration"],
        "model_type": "t5",
        "vocab_size": config.output_vocab_size,
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
        "dense_act_fn": activation,
        "is_gated_act": projection.startswith(f"{GATED}-"),
        "tie_word_embeddings": bool(config.logits_via_embedding),
        "scale_decoder_outputs": bool(config.logits_via_embedding),
        "is_encoder_decoder": True,
        "use_cache": True,
        "pad_token_id": 0,
        "eos_token_id": 1,
        "decoder_start_token_id": 0,
        "torch_dtype": dtype,
    }
