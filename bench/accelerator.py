"""One-shot speed and numerics report of t5x_cot on one accelerator, next to HF PyTorch.

    python bench/accelerator.py --out DIR [--cpu-smoke] [--budget-scale 1.0]

Sections, each with its own time budget (the whole stays under 8 minutes on one H100/H200),
written to DIR/accelerator.json and DIR/accelerator.md after every section:

- device: name, spec-sheet dense bf16 peak (MFU is only reported against it), a measured
  bf16 matmul;
- numerics: max |logit difference| of our bf16-activation forward against float32 (T5 1.1 base);
- train: T5 1.1 base, large, XL at inputs 512 / targets 256, bf16 activations, float32 params,
  T5X Adafactor: the largest batch that runs (tried, doubling, until out of memory or out of
  budget), steps/s, tokens/s and MFU for ours and for HF T5ForConditionalGeneration (bf16
  autocast, HF Adafactor with T5X's settings) at that batch (halved until it fits);
- decode: greedy and beam-4 tokens/s, ours against HF `generate`, batch 32 and 128, 256 new
  tokens (T5 1.1 base, random weights);
- xxl: whether one full fine-tuning step of T5 1.1 XXL fits with the remat / scan settings
  `t5x_cot.plan.recommend_settings` picks for this device's memory, and its step time.

Without a GPU (or with --cpu-smoke) the same sections run on tiny shapes, end to end.
Imports JAX, flax, optax, torch, transformers and gin-config only (no TensorFlow, no seqio).
"""
from __future__ import annotations

import argparse
import dataclasses
import gc
import json
import pathlib
import statistics
import sys
import time
import traceback
from collections.abc import Callable
from typing import Any

import numpy as np

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent.parent))
import abab  # noqa: E402  pylint: disable=wrong-import-position

T5_1_1 = {  # emb_dim, num_heads, layers per stack, mlp_dim (head_dim 64, gated GELU, vocab 32128)
    "base": (768, 12, 12, 2048), "large": (1024, 16, 24, 2816), "xl": (2048, 32, 24, 5120),
    "xxl": (4096, 64, 24, 10240), "tiny": (32, 2, 1, 64),
}


@dataclasses.dataclass(frozen=True)
class Shapes:
    """What one run measures: model sizes, lengths, batch candidates, budgets (seconds)."""

    train_sizes: tuple[str, ...]
    lengths: tuple[int, int]
    first_batch: int
    max_batch: int
    decode_size: str
    decode_batches: tuple[int, ...]
    new_tokens: int
    xxl_size: str
    budgets: dict[str, float]


GPU = Shapes(("base", "large", "xl"), (512, 256), 16, 512, "base", (32, 128), 256, "xxl",
             {"numerics": 25, "base": 55, "large": 70, "xl": 90, "decode": 100, "xxl": 90})
CPU_SMOKE = Shapes(("tiny",), (32, 16), 2, 4, "tiny", (2,), 8, "tiny",
                   {"numerics": 60, "tiny": 120, "decode": 120, "xxl": 60})


def t5_config(size: str, dtype: str = "bfloat16", **overrides: Any):
    from t5x_cot.model.network import T5Config
    emb, heads, layers, mlp = T5_1_1[size]
    vocab = 32128 if size != "tiny" else 128
    return T5Config(vocab_size=vocab, emb_dim=emb, num_heads=heads, num_encoder_layers=layers,
                    num_decoder_layers=layers, head_dim=64 if size != "tiny" else 16, mlp_dim=mlp,
                    mlp_activations=("gelu", "linear"), dropout_rate=0.0, dtype=dtype, **overrides)


def is_out_of_memory(error: BaseException) -> bool:
    text = f"{type(error).__name__} {error}".lower()
    return any(s in text for s in ("resource_exhausted", "out of memory", "outofmemory", "oom"))


def release() -> None:
    """Free what the last try left on the device (JAX executables and buffers, torch cache)."""
    import jax
    gc.collect()
    jax.clear_caches()
    if "torch" in sys.modules and sys.modules["torch"].cuda.is_available():
        sys.modules["torch"].cuda.empty_cache()


class Report:
    """The JSON + markdown report, rewritten after every section so a cut-off run keeps its figures."""

    def __init__(self, out: pathlib.Path) -> None:
        self.out = out
        self.data: dict[str, Any] = {"started": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime())}
        self.lines: list[str] = []
        out.mkdir(parents=True, exist_ok=True)

    def section(self, name: str, result: Any, markdown: list[str]) -> None:
        self.data[name] = result
        self.lines += [f"## {name}", "", *markdown, ""]
        (self.out / "accelerator.json").write_text(json.dumps(self.data, indent=2, default=str) + "\n")
        title = f"# t5x_cot accelerator report ({self.data.get('device', {}).get('name', '?')})"
        (self.out / "accelerator.md").write_text("\n".join([title, "", *self.lines]) + "\n")
        print("\n".join(markdown), flush=True)


def run_section(report: Report, name: str, budget: float, fn: Callable[[float], tuple[Any, list[str]]]) -> None:
    """Run one section with a deadline; an error is recorded, never fatal to the other sections."""
    start = time.perf_counter()
    try:
        result, markdown = fn(start + budget)
    except Exception as error:  # pylint: disable=broad-except
        result, markdown = {"error": repr(error)[:2000]}, [f"error: {repr(error)[:300]}"]
        traceback.print_exc()
    if isinstance(result, dict):
        result["seconds"] = round(time.perf_counter() - start, 1)
    release()
    report.section(name, result, markdown)


def device_section(_: float) -> tuple[dict, list[str]]:
    import jax

    from t5x_cot.summaries import device_peak_flops, measured_matmul_flops
    device = jax.devices()[0]
    peak, source = device_peak_flops(device)
    n = 8192 if device.platform != "cpu" else 512
    matmul = measured_matmul_flops(device, n=n, repeats=20, dtype="bfloat16")
    stats = device.memory_stats() or {}
    result = {"name": device.device_kind, "platform": device.platform, "peak_flops": peak, "peak_source": source,
              "measured_bf16_matmul_flops": matmul, "memory_bytes": stats.get("bytes_limit"),
              "jax": jax.__version__, "threads": abab.thread_report()}
    peak_text = f"{peak / 1e12:.0f} TFLOP/s dense bf16 ({source})" if peak else f"MFU n/a: {source}"
    return result, [f"- device: {device.device_kind} ({device.platform}); peak {peak_text}",
                    f"- measured bf16 matmul {n}x{n}: {matmul / 1e12:.1f} TFLOP/s",
                    f"- memory: {stats.get('bytes_limit', 'n/a')} bytes"]


def batch_of(size: int, lengths: tuple[int, int], vocab: int) -> dict[str, np.ndarray]:
    from train_step import make_batch  # bench/train_step.py
    return make_batch(size, lengths[0], lengths[1], vocab)


def numerics_section(shapes: Shapes) -> Callable[[float], tuple[dict, list[str]]]:
    def run(_: float) -> tuple[dict, list[str]]:
        import jax

        from t5x_cot.model.models import EncoderDecoderModel
        size = shapes.decode_size
        batch = batch_of(shapes.first_batch, shapes.lengths, t5_config(size).vocab_size)
        model32 = EncoderDecoderModel(t5_config(size, "float32"))
        params = model32.init_params(jax.random.PRNGKey(0), {k: v.shape for k, v in batch.items()})
        logits = {dtype: np.asarray(jax.jit(EncoderDecoderModel(t5_config(size, dtype)).compute_logits)(params, batch))
                  for dtype in ("float32", "bfloat16")}
        delta = float(np.abs(logits["bfloat16"] - logits["float32"]).max())
        scale = float(np.abs(logits["float32"]).max())
        agree = float((logits["bfloat16"].argmax(-1) == logits["float32"].argmax(-1)).mean())
        result = {"size": size, "max_abs_delta_logit": delta, "max_abs_logit": scale, "argmax_agreement": agree}
        lines = [f"- T5 1.1 {size}, random weights, batch {shapes.first_batch} x {shapes.lengths}: max |Δlogit| "
                 f"bf16 vs float32 {delta:.4f} (max |logit| {scale:.2f}), argmax agreement {agree:.4f}"]
        if jax.devices()[0].platform == "gpu":
            try:
                cudnn = EncoderDecoderModel(t5_config(size, attention_implementation="cudnn"))
                fused = np.asarray(jax.jit(cudnn.compute_logits)(params, batch))
                result["cudnn_vs_xla_max_abs_delta_logit"] = float(np.abs(fused - logits["bfloat16"]).max())
                lines.append(f"- cuDNN fused attention (bf16) vs XLA attention (bf16): max |Δlogit| "
                             f"{result['cudnn_vs_xla_max_abs_delta_logit']:.4f}")
            except Exception as error:  # pylint: disable=broad-except
                result["cudnn_error"] = repr(error)[:500]
                lines.append(f"- cuDNN fused attention did not run: {repr(error)[:200]}")
        return result, lines
    return run


def _try_batches(make_step: Callable[[int], Callable[[], None]], first: int, largest: int, deadline: float,
                 timed_steps: int = 3) -> list[dict]:
    """Try batches first, 2*first, ... (each: one compiling step, then `timed_steps` timed) until one
    fails for memory, `largest` is passed or the next try would not end before `deadline`."""
    tries, batch, last = [], first, 0.0
    while batch <= largest and time.perf_counter() + 2.5 * last < deadline:
        start = time.perf_counter()
        try:
            step = make_step(batch)
            step()
            seconds = [abab.timed(step) for _ in range(timed_steps)]
            tries.append({"batch": batch, "fits": True, "seconds_per_step": statistics.median(seconds)})
        except Exception as error:  # pylint: disable=broad-except
            if not is_out_of_memory(error):
                raise
            tries.append({"batch": batch, "fits": False, "error": str(error)[:300]})
            break
        finally:
            step = None
            release()
        last = time.perf_counter() - start
        batch *= 2
    return tries


def ours_train_step(config: Any, lengths: tuple[int, int]) -> Callable[[int], Callable[[], None]]:
    from train_step import jax_step  # bench/train_step.py

    from t5x_cot.model.models import EncoderDecoderModel

    def make(batch: int) -> Callable[[], None]:
        return jax_step(EncoderDecoderModel(config), batch_of(batch, lengths, config.vocab_size))
    return make


def hf_train_step(config: Any, lengths: tuple[int, int]) -> Callable[[int], Callable[[], None]]:
    from train_step import hf_step  # bench/train_step.py

    def make(batch: int) -> Callable[[], None]:
        return hf_step(config, batch_of(batch, lengths, config.vocab_size), "bfloat16")[0]
    return make


def train_section(size: str, shapes: Shapes, peak: float | None) -> Callable[[float], tuple[dict, list[str]]]:
    def run(deadline: float) -> tuple[dict, list[str]]:
        from t5x_cot.model import flops
        config = t5_config(size)
        inputs, targets = shapes.lengths
        ours_budget = time.perf_counter() + 0.65 * (deadline - time.perf_counter())
        ours = _try_batches(ours_train_step(config, shapes.lengths), shapes.first_batch, shapes.max_batch, ours_budget)
        fitting = [t for t in ours if t["fits"]]
        result: dict[str, Any] = {"size": size, "ours_tries": ours}
        lines = [f"- T5 1.1 {size}, inputs {inputs} / targets {targets}, bf16 activations, float32 params, Adafactor"]
        if not fitting:
            return result, lines + ["  - ours: no batch ran"]
        best = fitting[-1]
        hf: list[dict] = []
        batch = best["batch"]
        try:  # an HF failure must not lose our figures
            while batch >= 1 and not any(t["fits"] for t in hf) and time.perf_counter() < deadline:
                hf += _try_batches(hf_train_step(config, shapes.lengths), batch, batch, deadline + 60)
                batch //= 2
        except Exception as error:  # pylint: disable=broad-except
            result["hf_error"] = repr(error)[:1000]
            lines.append(f"  - HF PyTorch failed: {repr(error)[:200]}")
        result["hf_tries"] = hf
        rows = [("ours (JAX)", best)] + [("HF PyTorch", t) for t in hf if t["fits"]][:1]
        for name, row in rows:
            step_flops = flops.train_flops_per_step(config, row["batch"], inputs, targets)
            row["steps_per_s"] = 1 / row["seconds_per_step"]
            row["tokens_per_s"] = row["batch"] * (inputs + targets) / row["seconds_per_step"]
            row["mfu"] = step_flops / row["seconds_per_step"] / peak if peak else None
            mfu = f"{100 * row['mfu']:.1f}%" if peak else "n/a"
            lines.append(f"  - {name}: largest batch tried that ran {row['batch']}, {row['steps_per_s']:.3f} steps/s, "
                         f"{row['tokens_per_s']:,.0f} tokens/s, MFU {mfu}")
        stop = ours[-1]
        lines.append(f"  - ours stopped after batch {stop['batch']}: "
                     + ("out of memory" if not stop["fits"] else "batch cap or time budget"))
        return result, lines
    return run


def decode_section(shapes: Shapes) -> Callable[[float], tuple[dict, list[str]]]:
    def run(deadline: float) -> tuple[dict, list[str]]:
        import jax
        from decode import hf_decode, ours_decode  # bench/decode.py

        from t5x_cot.decoding.predict import DecodeConfig, compiled_function
        from t5x_cot.model.models import EncoderDecoderModel
        config = t5_config(shapes.decode_size)
        new, inputs = shapes.new_tokens, shapes.lengths[0]
        params = EncoderDecoderModel(config).init_params(jax.random.PRNGKey(0), {
            "encoder_input_tokens": (1, 4), "decoder_target_tokens": (1, 4)})
        hf, device = hf_model_for(config)
        results, lines = [], [f"- T5 1.1 {shapes.decode_size}, random weights, inputs {inputs}, {new} new tokens, bf16"]
        beam_fn = compiled_function(config, DecodeConfig(strategy="beam", max_decode_length=new, num_beams=4), "beam")
        for batch in shapes.decode_batches:
            prompts = np.random.default_rng(0).integers(2, config.vocab_size - 1, (batch, inputs)).astype(np.int32)
            sides = {"greedy": {"ours": ours_decode(params, config, prompts, new)[0],
                                "hf": hf_decode(hf, device, prompts, new)[0]},
                     "beam4": {"ours": lambda p=prompts: jax.block_until_ready(beam_fn(params, p)),
                               "hf": hf_beam(hf, device, prompts, new)}}
            for strategy, pair in sides.items():
                if time.perf_counter() > deadline:
                    lines.append(f"  - {strategy} batch {batch}: skipped (time budget)")
                    continue
                times = abab.alternate(pair, rounds=2)
                row = {"strategy": strategy, "batch": batch,
                       **{f"{k}_tokens_per_s": batch * new / statistics.median(v) for k, v in times.items()}}
                row["ratio"] = row["ours_tokens_per_s"] / row["hf_tokens_per_s"]
                results.append(row)
                lines.append(f"  - {strategy} batch {batch}: ours {row['ours_tokens_per_s']:,.0f} tokens/s, HF "
                             f"{row['hf_tokens_per_s']:,.0f} tokens/s ({row['ratio']:.2f}x)")
        return {"rows": results}, lines
    return run


def hf_model_for(config: Any) -> tuple[Any, str]:
    import torch
    import transformers
    device = "cuda" if torch.cuda.is_available() else "cpu"
    hf_config = transformers.T5Config(
        vocab_size=config.vocab_size, d_model=config.emb_dim, d_kv=config.head_dim, d_ff=config.mlp_dim,
        num_layers=config.num_encoder_layers, num_heads=config.num_heads, feed_forward_proj="gated-gelu",
        tie_word_embeddings=False, dropout_rate=0.0, decoder_start_token_id=0, pad_token_id=0, eos_token_id=1)
    model = transformers.T5ForConditionalGeneration(hf_config).eval()
    return model.to(device=device, dtype=torch.bfloat16 if device == "cuda" else torch.float32), device


def hf_beam(model: Any, device: str, prompts: np.ndarray, new_tokens: int) -> Callable[[], None]:
    import torch
    ids = torch.tensor(prompts, dtype=torch.long, device=device)

    def run() -> None:
        with torch.no_grad():
            model.generate(input_ids=ids, attention_mask=torch.ones_like(ids), num_beams=4, do_sample=False,
                           max_new_tokens=new_tokens, min_new_tokens=new_tokens)
        if device == "cuda":
            torch.cuda.synchronize()
    return run


def xxl_section(shapes: Shapes, memory: int | None) -> Callable[[float], tuple[dict, list[str]]]:
    def run(deadline: float) -> tuple[dict, list[str]]:
        from t5x_cot import plan
        from t5x_cot.model.models import EncoderDecoderModel
        from t5x_cot.model.network import param_logical_axes
        inputs, targets = shapes.lengths
        base = t5_config(shapes.xxl_size)
        result: dict[str, Any] = {"size": shapes.xxl_size, "device_memory": memory}
        for batch in (32, 16, 8, 4, 2, 1):
            built = plan.build_plan(EncoderDecoderModel(base), param_logical_axes(base), mesh_shape={"data": 1, "model": 1},
                                    rules="standard", batch_size=batch, lengths=shapes.lengths)
            settings = plan.recommend_settings(built, memory)
            if settings is not None:
                break
        if settings is None:
            return result | {"fits": False}, [f"- T5 1.1 {shapes.xxl_size}: plan says no batch fits {memory} bytes"]
        config = dataclasses.replace(base, **settings)
        result |= {"batch": batch, "settings": settings}
        tries = _try_batches(ours_train_step(config, shapes.lengths), batch, batch, deadline + 120, timed_steps=2)
        result["tries"] = tries
        row = tries[0] if tries else {"fits": False}
        result["fits"] = row["fits"]
        verdict = (f"fits, {row['seconds_per_step']:.2f} s/step" if row["fits"] else
                   f"does NOT fit: {row.get('error', 'not tried')[:200]}")
        return result, [f"- T5 1.1 {shapes.xxl_size}, one full fine-tuning step, batch {batch} x {inputs}/{targets}, "
                        f"plan's settings {settings}: {verdict}"]
    return run


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", required=True, help="folder for accelerator.json and accelerator.md")
    parser.add_argument("--cpu-smoke", action="store_true", help="tiny shapes (automatic without a GPU)")
    parser.add_argument("--budget-scale", type=float, default=1.0, help="multiply every section's time budget")
    args = parser.parse_args(argv)
    import jax
    smoke = args.cpu_smoke or jax.devices()[0].platform == "cpu"
    shapes = CPU_SMOKE if smoke else GPU
    report = Report(pathlib.Path(args.out))
    report.data["mode"] = "cpu-smoke" if smoke else "accelerator"
    budget = {k: v * args.budget_scale for k, v in shapes.budgets.items()}
    run_section(report, "device", 30, device_section)
    peak = report.data["device"].get("peak_flops")
    memory = report.data["device"].get("memory_bytes")
    run_section(report, "numerics", budget["numerics"], numerics_section(shapes))
    for size in shapes.train_sizes:
        run_section(report, f"train_{size}", budget[size], train_section(size, shapes, peak))
    run_section(report, "decode", budget["decode"], decode_section(shapes))
    run_section(report, "xxl", budget["xxl"], xxl_section(shapes, memory))
    report.data["finished"] = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime())
    report.section("imports", {"tensorflow": "tensorflow" in sys.modules, "seqio": "seqio" in sys.modules},
                   [f"- tensorflow imported: {'tensorflow' in sys.modules}; seqio imported: {'seqio' in sys.modules}"])
    return 0


if __name__ == "__main__":
    sys.exit(main())
