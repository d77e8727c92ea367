"""Explicit FLOP count of T5 encoder–decoder training (matmuls only; 1 multiply-add = 2 FLOPs).

Per example with input length S, target length T, model width E, joined head width J =
num_heads * head_dim, MLP width F with `m` input matrices (2 for gated GELU, 1 for ReLU) and
vocabulary V:

- encoder layer: q, k, v, o projections 4·2·S·E·J; scores Q·Kᵀ 2·S·S·J and the weighted sum
  of values 2·S·S·J; MLP (m + 1)·2·S·E·F.
- decoder layer: self-attention as above over T (4·2·T·E·J + 2·2·T·T·J, the full T×T matrix
  is computed even though it is causal); cross-attention q and o over T (2·2·T·E·J), k and v
  over the input S (2·2·S·E·J), scores and weighted sum T×S (2·2·T·S·J); MLP (m + 1)·2·T·E·F.
- logits: 2·T·E·V.

Training = forward + backward = 3 × forward. Layer norms, softmax, activations, embedding
lookups and the optimizer update are ignored (well under 1% at the shipped sizes).

Why not 6·N·tokens: each token goes through only its own stack — an input token touches the
encoder (and the cross-attention k/v), a target token the decoder and the logits — so the
parameter-based estimate 6·N·(S + T) counts every parameter for every token and overstates a
T5 with equal-depth stacks by about 2× (see `six_n_tokens` and tests/test_flops.py).
"""

from __future__ import annotations

import os
from typing import Any

BACKWARD_FACTOR = 2  # backward pass = 2 × forward

# Dense bf16 peak FLOP/s per device, by jax `device_kind` prefix (public spec sheets).
PEAK_FLOPS_BF16 = {
    "NVIDIA H200": 989e12, "NVIDIA H100": 989e12, "NVIDIA A100": 312e12, "NVIDIA L4": 121e12,
    "NVIDIA A10G": 125e12, "NVIDIA V100": 125e12, "TPU v6": 918e12, "TPU v5p": 459e12,
    "TPU v5 lite": 197e12, "TPU v5e": 197e12, "TPU v5": 459e12, "TPU v4": 275e12, "TPU v3": 123e12,
}
PEAK_FLOPS_ENV = "T5X_COT_PEAK_FLOPS"


def _attention_block(q_len: int, kv_len: int, emb: int, joined: int) -> dict[str, int]:
    return {"qo_proj": 2 * 2 * q_len * emb * joined,
            "kv_proj": 2 * 2 * kv_len * emb * joined,
            "scores": 2 * q_len * kv_len * joined,
            "weighted_sum": 2 * q_len * kv_len * joined}


def _mlp_block(length: int, config: Any) -> int:
    num_matrices = len(config.mlp_activations) + 1
    return num_matrices * 2 * length * config.emb_dim * config.mlp_dim


def forward_flops_breakdown(config: Any, input_length: int, target_length: int) -> dict[str, int]:
    """Forward FLOPs of one example, by component (summed over layers)."""
    emb, joined = config.emb_dim, config.num_heads * config.head_dim
    enc_attn = _attention_block(input_length, input_length, emb, joined)
    dec_self = _attention_block(target_length, target_length, emb, joined)
    dec_cross = _attention_block(target_length, input_length, emb, joined)
    n_enc, n_dec = config.num_encoder_layers, config.num_decoder_layers
    return {
        "encoder_attention": n_enc * sum(enc_attn.values()),
        "encoder_mlp": n_enc * _mlp_block(input_length, config),
        "decoder_self_attention": n_dec * sum(dec_self.values()),
        "decoder_cross_attention": n_dec * sum(dec_cross.values()),
        "decoder_mlp": n_dec * _mlp_block(target_length, config),
        "logits": 2 * target_length * emb * config.vocab_size,
    }


def forward_flops_per_example(config: Any, input_length: int, target_length: int) -> int:
    """Forward FLOPs of one (input_length, target_length) example."""
    return sum(forward_flops_breakdown(config, input_length, target_length).values())


def decode_flops_per_example(config: Any, input_length: int, new_tokens: int) -> int:
    """FLOPs of encoding one input and greedily decoding `new_tokens` tokens with a KV cache:
    the encoder once, the cross-attention keys/values once, then per step t (1-based) one
    decoder token attending over t cached positions and the input, and the logits."""
    emb, joined = config.emb_dim, config.num_heads * config.head_dim
    breakdown = forward_flops_breakdown(config, input_length, 1)
    encoder = breakdown["encoder_attention"] + breakdown["encoder_mlp"]
    cross_kv = config.num_decoder_layers * 2 * 2 * input_length * emb * joined
    per_token = config.num_decoder_layers * (4 * 2 * emb * joined + 2 * 2 * emb * joined + 2 * 2 * input_length * joined
                                             + _mlp_block(1, config)) + 2 * emb * config.vocab_size
    self_scores = config.num_decoder_layers * 2 * 2 * joined * new_tokens * (new_tokens + 1) // 2
    return encoder + cross_kv + new_tokens * per_token + self_scores


def train_flops_per_example(config: Any, input_length: int, target_length: int) -> int:
    """Forward + backward FLOPs of one example (3 × forward)."""
    return (1 + BACKWARD_FACTOR) * forward_flops_per_example(config, input_length, target_length)


def train_flops_per_step(config: Any, batch_size: int, input_length: int, target_length: int) -> int:
    """Training FLOPs of one step over a (padded or packed) batch of fixed lengths."""
    return batch_size * train_flops_per_example(config, input_length, target_length)


def six_n_tokens(num_params: int, input_length: int, target_length: int) -> int:
    """The decoder-only rule of thumb 6·N·(S+T) — reported for comparison only, never used."""
    return 6 * num_params * (input_length + target_length)


def peak_flops_per_device(device_kind: str | None = None, override: float | None = None) -> float | None:
    """Peak FLOP/s of one device for MFU: `override`, else env T5X_COT_PEAK_FLOPS, else the bf16
    spec-sheet figure for `device_kind` (default: the first jax device); None when unknown (CPU)."""
    if override is not None:
        return float(override)
    if os.environ.get(PEAK_FLOPS_ENV):
        return float(os.environ[PEAK_FLOPS_ENV])
    if device_kind is None:
        import jax

        device_kind = jax.devices()[0].device_kind
    for prefix, peak in PEAK_FLOPS_BF16.items():
        if device_kind.startswith(prefix):
            return peak
    return None
