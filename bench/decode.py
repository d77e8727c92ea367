"""Greedy decoding throughput: our KV-cache loop (JAX) next to HF `generate` (PyTorch).

    python bench/decode.py [--batch 32] [--new-tokens 256] [--input-length 64] [--dtype float32]
                           [--repeats 1] [--skip-hf] [--json OUT]

T5 1.1 Small shape (8+8 layers, d_model 512, 6 heads of 64, gated-GELU d_ff 1024, vocab
32128), random weights, the same weights on both sides (HF model converted with the interop
converter). Every row decodes exactly `--new-tokens` tokens: our loop runs without an EOS
stop, HF gets min_new_tokens = max_new_tokens. Compilation / warm-up is one untimed run;
then the best of `--repeats` timed runs. Prints tokens/s of each side and the ratio ours/HF
as JSON. Runs on whatever device JAX and PyTorch find (CPU, or a GPU); `--skip-hf` when
PyTorch is absent.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import pathlib
import sys
import tempfile
import time

import numpy as np

SMALL = dict(vocab_size=32128, d_model=512, d_kv=64, d_ff=1024, num_layers=8, num_heads=6,
             feed_forward_proj="gated-gelu", tie_word_embeddings=False)


def _prompts(batch: int, length: int) -> np.ndarray:
    rng = np.random.default_rng(0)
    tokens = rng.integers(2, 32000, (batch, length)).astype(np.int32)
    tokens[:, -1] = 1
    return tokens


def _best_time(fn, repeats: int) -> float:
    fn()  # compile / warm up
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


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


def bench_hf(model, device: str, prompts: np.ndarray, new_tokens: int, repeats: int) -> tuple[float, np.ndarray]:
    import torch  # pylint: disable=import-outside-toplevel
    ids = torch.tensor(prompts, dtype=torch.long, device=device)
    out = {}

    def run():
        with torch.no_grad():
            out["tokens"] = model.generate(input_ids=ids, attention_mask=torch.ones_like(ids), do_sample=False,
                                           max_new_tokens=new_tokens, min_new_tokens=new_tokens)
        if device == "cuda":
            torch.cuda.synchronize()
    seconds = _best_time(run, repeats)
    return seconds, out["tokens"].cpu().numpy()[:, 1:]


def bench_ours(params, config, prompts: np.ndarray, new_tokens: int, repeats: int) -> tuple[float, np.ndarray]:
    import jax  # pylint: disable=import-outside-toplevel
    from t5x_cot.decoding import sampling  # pylint: disable=import-outside-toplevel
    from t5x_cot.decoding.predict import encode_fn, model_tokens_to_logits  # pylint: disable=import-outside-toplevel
    from t5x_cot.model import network  # pylint: disable=import-outside-toplevel

    encode = encode_fn(config)

    @jax.jit
    def decode(params, tokens):
        encoded = encode(params, tokens)
        cache = network.init_cache(config, tokens.shape[0], new_tokens)
        step = model_tokens_to_logits(config, new_tokens, params, encoded, tokens)
        return sampling.temperature_sample(cache, step, batch_size=tokens.shape[0], max_decode_len=new_tokens,
                                           eos_id=None)[0]
    params = jax.device_put(params)
    tokens = jax.device_put(prompts)
    out = {}

    def run():
        out["tokens"] = decode(params, tokens).block_until_ready()
    seconds = _best_time(run, repeats)
    return seconds, np.asarray(out["tokens"])


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--new-tokens", type=int, default=256)
    parser.add_argument("--input-length", type=int, default=64)
    parser.add_argument("--dtype", default="float32", choices=["float32", "bfloat16"],
                        help="activation dtype of both models (params stay float32 on our side)")
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--skip-hf", action="store_true")
    parser.add_argument("--json", default=None, help="also write the result here")
    args = parser.parse_args(argv)

    import jax  # pylint: disable=import-outside-toplevel
    from t5x_cot.model import network  # pylint: disable=import-outside-toplevel
    prompts = _prompts(args.batch, args.input_length)
    tokens_per_run = args.batch * args.new_tokens
    result = {"shape": "t5_1_1_small", "batch": args.batch, "new_tokens": args.new_tokens,
              "input_length": args.input_length, "dtype": args.dtype, "jax_device": str(jax.devices()[0])}
    with tempfile.TemporaryDirectory() as tmp:
        if args.skip_hf:
            config = network.T5Config(vocab_size=32128, emb_dim=512, num_heads=6, num_encoder_layers=8,
                                      num_decoder_layers=8, head_dim=64, mlp_dim=1024,
                                      mlp_activations=("gelu", "linear"), dropout_rate=0.0, dtype=args.dtype)
            from t5x_cot.model import models  # pylint: disable=import-outside-toplevel
            params = models.EncoderDecoderModel(config).init_params(jax.random.PRNGKey(0), {
                "encoder_input_tokens": (1, 4), "decoder_input_tokens": (1, 4), "decoder_target_tokens": (1, 4)})
        else:
            from t5x_cot.interop.hf_import import load_hf  # pylint: disable=import-outside-toplevel
            model, device = hf_model(pathlib.Path(tmp), args.dtype)
            params, config = load_hf(tmp)
            config = dataclasses.replace(config, dtype=args.dtype, dropout_rate=0.0)
            seconds, hf_tokens = bench_hf(model, device, prompts, args.new_tokens, args.repeats)
            result.update(hf_device=device, hf_seconds=round(seconds, 3),
                          hf_tokens_per_s=round(tokens_per_run / seconds, 1))
        seconds, tokens = bench_ours(params, config, prompts, args.new_tokens, args.repeats)
    result.update(ours_seconds=round(seconds, 3), ours_tokens_per_s=round(tokens_per_run / seconds, 1))
    if not args.skip_hf:
        result["ratio_ours_over_hf"] = round(result["ours_tokens_per_s"] / result["hf_tokens_per_s"], 2)
        result["same_tokens_fraction"] = round(float((tokens == hf_tokens).mean()), 4)
    print(json.dumps(result, indent=2))
    if args.json:
        pathlib.Path(args.json).write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
