"""Our param tree as flat `/`-joined names: the shape of every param for a config, and the
config a tree of shapes implies (T5X checkpoints carry no config).

The tree is T5X's unscanned one (`encoder/layers_0/attention/query/kernel`, ...); a
scan_layers model converts with `t5x_cot.model.network.unstack_layers` / `stack_layers`.
"""
from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from t5x_cot.interop.errors import ConversionError
from t5x_cot.model.network import T5Config

EMBEDDING = "token_embedder/embedding"
LOGITS_DENSE = "decoder/logits_dense/kernel"
# mlp_activations of T5 1.1 / Flan-T5 (gated GELU) and of T5 1.0 (ReLU).
GATED_ACTIVATIONS = ("gelu", "linear")
RELU_ACTIVATIONS = ("relu",)

STACKS = ("encoder", "decoder")
# (attention module, its pre-norm) in each layer of a stack, in order.
ATTENTION = {
    "encoder": (("attention", "pre_attention_layer_norm"),),
    "decoder": (("self_attention", "pre_self_attention_layer_norm"),
                ("encoder_decoder_attention", "pre_cross_attention_layer_norm")),
}


def flatten(tree: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested dict to `{"a/b/c": leaf}`."""
    flat: dict[str, Any] = {}
    for key, value in tree.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            flat.update(flatten(value, name + "/"))
        else:
            flat[name] = value
    return flat


def unflatten(flat: Mapping[str, Any]) -> dict[str, Any]:
    """`{"a/b/c": leaf}` to a nested dict."""
    tree: dict[str, Any] = {}
    for name, value in flat.items():
        node = tree
        *parents, leaf = name.split("/")
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = value
    return tree


def mlp_input_names(config: T5Config) -> list[str]:
    """`["wi"]` for one activation (T5 1.0), `["wi_0", "wi_1", ...]` for gated ones (T5 1.1)."""
    count = len(config.mlp_activations)
    return ["wi"] if count == 1 else [f"wi_{i}" for i in range(count)]


def num_layers(config: T5Config, stack: str) -> int:
    return config.num_encoder_layers if stack == "encoder" else config.num_decoder_layers


def param_shapes(config: T5Config) -> dict[str, tuple[int, ...]]:
    """Every param of the (unscanned) model and its shape, in a stable order."""
    embed, joined = config.emb_dim, config.num_heads * config.head_dim
    shapes: dict[str, tuple[int, ...]] = {EMBEDDING: (config.vocab_size, embed)}
    for stack in STACKS:
        shapes[f"{stack}/relpos_bias/rel_embedding"] = (
            config.num_heads, config.relative_attention_num_buckets)
        for i in range(num_layers(config, stack)):
            layer = f"{stack}/layers_{i}"
            for module, norm in ATTENTION[stack]:
                shapes[f"{layer}/{norm}/scale"] = (embed,)
                for name in ("query", "key", "value"):
                    shapes[f"{layer}/{module}/{name}/kernel"] = (embed, joined)
                shapes[f"{layer}/{module}/out/kernel"] = (joined, embed)
            shapes[f"{layer}/pre_mlp_layer_norm/scale"] = (embed,)
            for name in mlp_input_names(config):
                shapes[f"{layer}/mlp/{name}/kernel"] = (embed, config.mlp_dim)
            shapes[f"{layer}/mlp/wo/kernel"] = (config.mlp_dim, embed)
        shapes[f"{stack}/{stack}_norm/scale"] = (embed,)
    if not config.logits_via_embedding:
        shapes[LOGITS_DENSE] = (embed, config.vocab_size)
    return shapes


def _layer_count(shapes: Mapping[str, Any], stack: str) -> int:
    pattern = re.compile(rf"^{stack}/layers_(\d+)/")
    found = {int(m.group(1)) for name in shapes if (m := pattern.match(name))}
    return max(found) + 1 if found else 0


def infer_config(shapes: Mapping[str, tuple[int, ...]], source: str, **overrides: Any) -> T5Config:
    """The T5Config whose param tree has these shapes; `overrides` set fields shapes cannot show
    (relative_attention_max_distance, dtype, ...). Gated MLPs are taken as T5 1.1's gelu."""

    def shape_of(name: str) -> tuple[int, ...]:
        if name not in shapes:
            raise ConversionError(source, "missing; cannot infer the model config without it", tensor=name)
        return tuple(shapes[name])

    vocab, embed = shape_of(EMBEDDING)
    heads, buckets = shape_of("encoder/relpos_bias/rel_embedding")
    joined = shape_of("encoder/layers_0/attention/query/kernel")[1]
    gated = "encoder/layers_0/mlp/wi_0/kernel" in shapes
    wi = "encoder/layers_0/mlp/wi_0/kernel" if gated else "encoder/layers_0/mlp/wi/kernel"
    fields: dict[str, Any] = dict(
        vocab_size=vocab, emb_dim=embed, num_heads=heads, head_dim=joined // heads,
        num_encoder_layers=_layer_count(shapes, "encoder"),
        num_decoder_layers=_layer_count(shapes, "decoder"),
        mlp_dim=shape_of(wi)[1], mlp_activations=GATED_ACTIVATIONS if gated else RELU_ACTIVATIONS,
        logits_via_embedding=LOGITS_DENSE not in shapes, relative_attention_num_buckets=buckets)
    fields.update(overrides)
    return T5Config(**fields)

