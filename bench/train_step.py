"""Train-step throughput of t5x_cot (JAX) against HuggingFace T5ForConditionalGeneration (PyTorch).

Same model shape (default T5 1.1 Small), same batch (default 8 x inputs 512 / targets 256,
no padding), same optimizer family (Adafactor with T5X's settings on both sides:
transformers' Adafactor with scale_parameter, no relative step, clip 1.0, decay -0.8, lr 1e-3).
After `--warmup` untimed alternated rounds, the two sides run in turns (`--steps` steps of ours,
then of HF, `--rounds` times) on the same cores (`--threads`); prints steps/s and tokens/s of
each, the median JAX/HF ratio with its min–max, both thread counts, and each side's achieved
FLOP/s against a float32 matmul measured on the same device (CPU), or MFU against the
spec-sheet dense bf16 peak (GPU/TPU; "MFU n/a" on a CPU). JAX uses its default device; torch
uses CUDA when available. FLOPs come from `t5x_cot.model.flops` for both (the explicit
encoder-decoder count, not 6*N*tokens).

    python bench/train_step.py                         # CPU: float32, 2 + 3 alternated rounds of 1 step
    python bench/train_step.py --steps 10 --warmup 3   # on a GPU: bfloat16 autocast / activations
"""
from __future__ import annotations

import argparse
import dataclasses
import pathlib
import statistics
import sys
from collections.abc import Callable
from typing import Any

import numpy as np

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
import abab  # noqa: E402  pylint: disable=wrong-import-position


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--gin_file", default="gin/models/t5_1_1/small.gin")
    parser.add_argument("--batch_size", type=int, default=8)
    parser.add_argument("--inputs_length", type=int, default=512)
    parser.add_argument("--targets_length", type=int, default=256)
    parser.add_argument("--warmup", type=int, default=2,
                        help="untimed alternated rounds (compilation, first host allocations)")
    parser.add_argument("--steps", type=int, default=1, help="steps per timed turn")
    parser.add_argument("--rounds", type=int, default=3, help="timed turns per framework (alternated)")
    parser.add_argument("--threads", type=int, default=None, help="cores for both sides (default: all)")
    parser.add_argument("--dtype", choices=("float32", "bfloat16"), default=None,
                        help="activation dtype of both (default: bfloat16 on GPU/TPU, float32 on CPU)")
    parser.add_argument("--skip_hf", action="store_true")
    return parser.parse_args()


def make_batch(batch: int, inputs_length: int, targets_length: int, vocab: int) -> dict[str, np.ndarray]:
    """Random token ids, no padding: every position is a real token."""
    rng = np.random.RandomState(0)
    targets = rng.randint(2, vocab, size=(batch, targets_length)).astype(np.int32)
    decoder_inputs = np.concatenate([np.zeros((batch, 1), np.int32), targets[:, :-1]], axis=1)
    return {"encoder_input_tokens": rng.randint(2, vocab, size=(batch, inputs_length)).astype(np.int32),
            "decoder_input_tokens": decoder_inputs, "decoder_target_tokens": targets,
            "decoder_loss_weights": np.ones_like(targets)}


def jax_step(model: Any, batch: dict[str, np.ndarray]) -> Callable[[], None]:
    """One blocking train step of ours (T5X Adafactor, constant LR 1e-3) per call."""
    import jax

    from t5x_cot import optimizers
    from t5x_cot.partitioning import Partitioner
    from t5x_cot.trainer import Trainer

    partitioner = Partitioner()
    trainer = Trainer(model, optimizers.adafactor(optimizers.constant_schedule(1e-3)), partitioner,
                      {k: v.shape for k, v in batch.items()})
    state = trainer.init_state(jax.random.PRNGKey(0))
    global_batch = partitioner.global_batch(batch, len(batch["encoder_input_tokens"]))
    holder = {"state": state}

    def step() -> None:
        holder["state"], metrics = trainer.train_step(holder["state"], global_batch)
        jax.block_until_ready(metrics["loss"])

    return step


def hf_step(config: Any, batch: dict[str, np.ndarray], dtype: str) -> tuple[Callable[[], None], str]:
    """(one blocking HF train step per call, torch device): same shape, HF's Adafactor as T5X's."""
    import torch
    import transformers
    from transformers.optimization import Adafactor

    device = "cuda" if torch.cuda.is_available() else "cpu"
    hf_config = transformers.T5Config(
        vocab_size=config.vocab_size, d_model=config.emb_dim, d_kv=config.head_dim, d_ff=config.mlp_dim,
        num_layers=config.num_encoder_layers, num_decoder_layers=config.num_decoder_layers,
        num_heads=config.num_heads, relative_attention_num_buckets=config.relative_attention_num_buckets,
        relative_attention_max_distance=config.relative_attention_max_distance,
        dropout_rate=config.dropout_rate, layer_norm_epsilon=config.layer_norm_epsilon,
        feed_forward_proj="gated-gelu" if len(config.mlp_activations) == 2 else "relu",
        tie_word_embeddings=config.logits_via_embedding, decoder_start_token_id=0, pad_token_id=0)
    model = transformers.T5ForConditionalGeneration(hf_config).to(device).train()
    optimizer = Adafactor(model.parameters(), lr=1e-3, scale_parameter=True, relative_step=False,
                          warmup_init=False, clip_threshold=1.0, decay_rate=-0.8, beta1=None)
    inputs = torch.as_tensor(batch["encoder_input_tokens"], dtype=torch.long, device=device)
    labels = torch.as_tensor(batch["decoder_target_tokens"], dtype=torch.long, device=device)
    autocast = torch.autocast(device, dtype=torch.bfloat16, enabled=dtype == "bfloat16")

    def step() -> None:
        with autocast:
            loss = model(input_ids=inputs, labels=labels).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        if device == "cuda":
            torch.cuda.synchronize()

    return step, device


def repeat(step: Callable[[], None], times: int) -> Callable[[], None]:
    def run() -> None:
        for _ in range(times):
            step()
    return run


def main() -> None:
    args = parse_args()
    threads = abab.pin_threads(args.threads)
    if not args.skip_hf:
        abab.set_torch_threads(threads)
    import jax

    from t5x_cot import gin_utils
    from t5x_cot.model import flops
    from t5x_cot.summaries import device_peak_flops, measured_matmul_flops

    on_accelerator = jax.devices()[0].platform != "cpu"
    dtype = args.dtype or ("bfloat16" if on_accelerator else "float32")
    model = gin_utils.model_from_gin([args.gin_file])
    model = type(model)(dataclasses.replace(model.config, dtype=dtype))
    config = model.config
    batch = make_batch(args.batch_size, args.inputs_length, args.targets_length, config.vocab_size)
    tokens = args.batch_size * (args.inputs_length + args.targets_length) * args.steps
    turn_flops = float(flops.train_flops_per_step(config, args.batch_size, args.inputs_length,
                                                  args.targets_length)) * args.steps
    peak, peak_source = device_peak_flops()
    num_params = sum(int(np.prod(x.shape)) for x in jax.tree.leaves(model.param_shapes({k: v.shape for k, v in batch.items()})))
    print(f"model {args.gin_file} ({num_params:,} params), batch {args.batch_size} x "
          f"{args.inputs_length}/{args.targets_length}, dtype {dtype}, "
          f"{turn_flops / args.steps / 1e12:.3f} TFLOP per train step")
    print(f"devices: {jax.device_count()} x {jax.devices()[0].device_kind}; threads {abab.thread_report()}")
    sides = {"t5x_cot (JAX)": repeat(jax_step(model, batch), args.steps)}
    if not args.skip_hf:
        step, device = hf_step(config, batch, dtype)
        sides["HF T5ForConditionalGeneration"] = repeat(step, args.steps)
    times = abab.alternate(sides, args.rounds, warmup=args.warmup)
    if peak is None:
        matmul = measured_matmul_flops(dtype=dtype)
        print(f"MFU n/a ({peak_source}); measured {dtype} matmul: {matmul / 1e9:.1f} GFLOP/s")
        for name, seconds in times.items():
            print(abab.describe(name, seconds, tokens, "tokens", turn_flops, matmul))
    else:
        peak *= jax.device_count()
        print(f"peak {peak / 1e12:.1f} TFLOP/s ({peak_source})")
        for name, seconds in times.items():
            median = statistics.median(seconds)
            print(f"{name:34} {args.steps / median:9.3f} steps/s {tokens / median:12,.0f} tokens/s  "
                  f"MFU {100 * turn_flops / median / peak:5.1f}%")
    if len(times) == 2:
        ours, theirs = times.values()
        ratio = abab.ratio_summary(ours, theirs)
        print(f"ratio JAX/HF (steps/s): median {ratio['median']:.2f}x (min {ratio['min']:.2f}, "
              f"max {ratio['max']:.2f}, {ratio['rounds']} alternated rounds)")


if __name__ == "__main__":
    main()
