"""Parameter counts of every shipped model size equal HuggingFace T5ForConditionalGeneration's.

Ours come from `jax.eval_shape` (nothing allocated), HF's from a model built on torch's `meta`
device (nothing allocated either). HF ties the 1.0 lm_head to the shared embedding, and keeps
the relative attention bias only in layer 0 of each stack, as our one `relpos_bias` per stack.
"""
from __future__ import annotations

import math

import gin
import jax
import pytest

from t5x_cot.gin_utils import shipped_config_dir
from t5x_cot.model.models import EncoderDecoderModel
from t5x_cot.model.network import T5Config

SIZES = [("t5_1_1", s) for s in ("tiny", "small", "base", "large", "xl", "xxl")] + \
        [("t5_1_0", s) for s in ("tiny", "small", "base", "large", "3B", "11B")]

# Published sizes (millions) as a sanity anchor for the big ones.
APPROX_MILLIONS = {("t5_1_1", "small"): 77, ("t5_1_1", "base"): 248, ("t5_1_1", "large"): 783,
                   ("t5_1_1", "xl"): 2850, ("t5_1_1", "xxl"): 11136, ("t5_1_0", "small"): 60,
                   ("t5_1_0", "base"): 223, ("t5_1_0", "large"): 738, ("t5_1_0", "3B"): 2852,
                   ("t5_1_0", "11B"): 11308}


def gin_config(version: str, size: str) -> T5Config:
    gin.clear_config()
    try:
        gin.parse_config_file(str(shipped_config_dir() / "models" / version / f"{size}.gin"))
        return gin.query_parameter("MODEL/macro.value").scoped_configurable_fn().config
    finally:
        gin.clear_config()


def our_count(config: T5Config) -> int:
    shapes = EncoderDecoderModel(config).param_shapes({"encoder_input_tokens": (1, 1), "decoder_target_tokens": (1, 1)})
    return sum(math.prod(leaf.shape) for leaf in jax.tree.leaves(shapes))


def hf_count(config: T5Config) -> int:
    torch = pytest.importorskip("torch")
    transformers = pytest.importorskip("transformers")
    gated = tuple(config.mlp_activations) == ("gelu", "linear")
    hf_config = transformers.T5Config(
        vocab_size=config.vocab_size, d_model=config.emb_dim, d_kv=config.head_dim, d_ff=config.mlp_dim,
        num_layers=config.num_encoder_layers, num_decoder_layers=config.num_decoder_layers,
        num_heads=config.num_heads, relative_attention_num_buckets=config.relative_attention_num_buckets,
        relative_attention_max_distance=config.relative_attention_max_distance,
        feed_forward_proj="gated-gelu" if gated else "relu", tie_word_embeddings=config.logits_via_embedding)
    with torch.device("meta"):
        model = transformers.T5ForConditionalGeneration(hf_config)
        if not config.logits_via_embedding:  # transformers >= 5 ties lm_head even when told not to
            model.lm_head.weight = torch.nn.Parameter(torch.empty(config.vocab_size, config.emb_dim))
    return sum(p.numel() for p in model.parameters())  # parameters() counts a tied weight once


@pytest.fixture(scope="module")
def counts() -> dict[tuple[str, str], tuple[int, int]]:
    table = {key: (our_count(gin_config(*key)), hf_count(gin_config(*key))) for key in SIZES}
    print(f"\n{'model':<16}{'ours':>16}{'HF':>16}")
    for (version, size), (ours, hf) in table.items():
        print(f"{version + '/' + size:<16}{ours:>16,}{hf:>16,}")
    return table


@pytest.mark.parametrize("key", SIZES, ids=[f"{v}-{s}" for v, s in SIZES])
def test_param_count_equals_hf(counts, key):
    ours, hf = counts[key]
    assert ours == hf
    if key in APPROX_MILLIONS:
        assert abs(ours / 1e6 - APPROX_MILLIONS[key]) / APPROX_MILLIONS[key] < 0.02


def test_gin_sizes_have_the_published_shapes():
    small = gin_config("t5_1_1", "small")
    assert (small.emb_dim, small.num_heads, small.head_dim, small.mlp_dim, small.num_encoder_layers) == \
        (512, 6, 64, 1024, 8)
    assert small.mlp_activations == ("gelu", "linear") and not small.logits_via_embedding
    big = gin_config("t5_1_0", "11B")
    assert (big.emb_dim, big.num_heads, big.head_dim, big.mlp_dim, big.num_decoder_layers) == \
        (1024, 128, 128, 65536, 24)
    assert big.mlp_activations == ("relu",) and big.logits_via_embedding
    assert big.dtype == "bfloat16" and big.dropout_rate == 0.0 and big.vocab_size == 32128
