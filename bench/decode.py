"""Greedy decoding throughput: our KV-cache loop (JAX) next to HF `generate` (PyTorch).

    python bench/decode.py [--batch 32] [--new-tokens 256] [--input-length 64] [--dtype float32]
                           [--rounds 3] [--threads N] [--skip-hf] [--json OUT]

T5 1.1 Small shape (8+8 layers, d_model 512, 6 heads of 64, gated-GELU d_ff 1024, vocab
32128), random weights, the same weights on both sides (HF model converted with the interop
converter). Every row decodes exactly `--new-tokens` tokens: our loop runs without an EOS
stop, HF gets min_new_tokens = max_new_tokens. After one untimed run each (compilation),
the two sides run in turns (ours, HF, ours, HF, ...) `--rounds` times on the same cores
(`--threads`, default all this process may use); prints the median ratio ours/HF with its
min–max, both sides' thread counts, and each side's achieved FLOP/s
(`t5x_cot.model.flops.decode_flops_per_example`) against a float32 matmul measured on the
same device. Runs on whatever device JAX and PyTorch find; `--skip-hf` when PyTorch is absent.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import pathlib
import statistics
import sys
import tempfile
from collections.abc import Callable

import numpy as np

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
import abab  # noqa: E402  pylint: disable=wrong-import-position

SMALL = dict(vocab_size=32128, d_model=512, d_kv=64, d_ff=1024, num_layers=8, num_heads=6,
             feed_forward_proj="gated-gelu", tie_word_embeddings=False)


def _prompts(batch: int, length: int) -> np.ndarray:
    rng = np.random.default_rng(0)
    tokens = rng.integers(2, 32000, (batch, length)).astype(np.int32)
    tokens[:, -1] = 1
    return tokens


def hf_model(directory: pathlib.Path, dtype: str):
    import torch  # pylint: disable=import-outside-toplevel
    import transformers  # pylint: disable=import-outside-toplevel
    torch.manual_seed(0)
    config = transformers.T5Config(**SMALL, dropout_rate=0.0, decoder_start_token_id=0, pad_token_id=0,
                                   eos_token_id=1)
    model = transformers.T5ForConditionalGeneration(config)
    model.lm_head.weight = torch.nn.Parameter(torch.randn(SMALL["vocab_size"], SMALL["d_model"]) * 0.05)
    model.eval()
    model.save_pretrained(directory)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    return model.to(device=device, dtype=getattr(torch, dtype)), device


def hf_decode(model, device: str, prompts: np.ndarray, new_tokens: int) -> tuple[Callable[[], None], dict]:
    """(run, out): `run()` greedily decodes `prompts` with HF generate into out['tokens']."""
    import torch  # pylint: disable=import-outside-toplevel
    ids = torch.tensor(prompts, dtype=torch.long, device=device)
    out: dict = {}

    def run() -> None:
        with torch.no_grad():
            tokens = model.generate(input_ids=ids, attention_mask=torch.ones_like(ids), do_sample=False,
                                    max_new_tokens=new_tokens, min_new_tokens=new_tokens)
        if device == "cuda":
            torch.cuda.synchronize()
        out["tokens"] = tokens[:, 1:].cpu().numpy()
    return run, out


def ours_decode(params, config, prompts: np.ndarray, new_tokens: int) -> tuple[Callable[[], None], dict]:
    """(run, out): `run()` greedily decodes `prompts` with our compiled loop into out['tokens']."""
    import jax  # pylint: disable=import-outside-toplevel

    from t5x_cot.decoding import sampling  # pylint: disable=import-outside-toplevel
    from t5x_cot.decoding.predict import model_tokens_to_logits, prefill_fn  # pylint: disable=import-outside-toplevel

    prefill = prefill_fn(config, new_tokens)

    @jax.jit
    def decode(params, tokens):
        step = model_tokens_to_logits(config, new_tokens, params, tokens)
        return sampling.temperature_sample(prefill(params, tokens), step, batch_size=tokens.shape[0],
                                           max_decode_len=new_tokens, eos_id=None)[0]
    params = jax.device_put(params)
    tokens = jax.device_put(prompts)
    out: dict = {}

    def run() -> None:
        out["tokens"] = np.asarray(decode(params, tokens).block_until_ready())
    return run, out


def small_config(dtype: str):
    from t5x_cot.model import network  # pylint: disable=import-outside-toplevel
    return network.T5Config(vocab_size=32128, emb_dim=512, num_heads=6, num_encoder_layers=8, num_decoder_layers=8,
                            head_dim=64, mlp_dim=1024, mlp_activations=("gelu", "linear"), dropout_rate=0.0,
                            dtype=dtype)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--new-tokens", type=int, default=256)
    parser.add_argument("--input-length", type=int, default=64)
    parser.add_argument("--dtype", default="float32", choices=["float32", "bfloat16"],
                        help="activation dtype of both models (params stay float32 on our side)")
    parser.add_argument("--rounds", type=int, default=3, help="timed turns per side (alternated)")
    parser.add_argument("--threads", type=int, default=None, help="cores for both sides (default: all)")
    parser.add_argument("--skip-hf", action="store_true")
    parser.add_argument("--json", default=None, help="also write the result here")
    args = parser.parse_args(argv)

    threads = abab.pin_threads(args.threads)
    if not args.skip_hf:
        abab.set_torch_threads(threads)
    import jax  # pylint: disable=import-outside-toplevel

    from t5x_cot.model import flops  # pylint: disable=import-outside-toplevel
    from t5x_cot.summaries import measured_matmul_flops  # pylint: disable=import-outside-toplevel
    prompts = _prompts(args.batch, args.input_length)
    tokens_per_run = args.batch * args.new_tokens
    result = {"shape": "t5_1_1_small", "batch": args.batch, "new_tokens": args.new_tokens,
              "input_length": args.input_length, "dtype": args.dtype, "jax_device": str(jax.devices()[0]),
              "threads": abab.thread_report()}
    sides = {}
    with tempfile.TemporaryDirectory() as tmp:
        if args.skip_hf:
            config = small_config(args.dtype)
            from t5x_cot.model import models  # pylint: disable=import-outside-toplevel
            params = models.EncoderDecoderModel(config).init_params(jax.random.PRNGKey(0), {
                "encoder_input_tokens": (1, 4), "decoder_input_tokens": (1, 4), "decoder_target_tokens": (1, 4)})
        else:
            from t5x_cot.interop.hf_import import load_hf  # pylint: disable=import-outside-toplevel
            model, device = hf_model(pathlib.Path(tmp), args.dtype)
            params, config = load_hf(tmp)
            config = dataclasses.replace(config, dtype=args.dtype, dropout_rate=0.0)
            result["hf_device"] = device
        sides["ours"] = ours_decode(params, config, prompts, args.new_tokens)
        if not args.skip_hf:
            sides["hf"] = hf_decode(model, device, prompts, args.new_tokens)
        times = abab.alternate({name: run for name, (run, _) in sides.items()}, args.rounds)
    work = float(flops.decode_flops_per_example(config, args.input_length, args.new_tokens)) * args.batch
    peak = measured_matmul_flops(dtype=args.dtype)
    result["measured_matmul_gflops"] = round(peak / 1e9, 1)
    for name, seconds in times.items():
        median = statistics.median(seconds)
        result[f"{name}_seconds"] = [round(t, 3) for t in seconds]
        result[f"{name}_tokens_per_s"] = round(tokens_per_run / median, 1)
        result[f"{name}_gflops"] = round(work / median / 1e9, 1)
        result[f"{name}_fraction_of_matmul_peak"] = round(work / median / peak, 3)
        print(abab.describe(name, seconds, tokens_per_run, "tokens", work, peak))
    if not args.skip_hf:
        result["ratio_ours_over_hf"] = abab.ratio_summary(times["ours"], times["hf"])
        result["same_tokens_fraction"] = round(float((sides["ours"][1]["tokens"] == sides["hf"][1]["tokens"]).mean()), 4)
        ratio = result["ratio_ours_over_hf"]
        print(f"ours/HF tokens/s: median {ratio['median']:.2f}x (min {ratio['min']:.2f}, max {ratio['max']:.2f}, "
              f"{ratio['rounds']} alternated rounds); same greedy tokens {result['same_tokens_fraction']:.4f}")
    print(json.dumps(result, indent=2))
    if args.json:
        pathlib.Path(args.json).write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
