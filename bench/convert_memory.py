"""Peak memory of `t5x-cot convert` on a ~1 GB checkpoint (T5 1.1 shape, random weights).

    python bench/convert_memory.py [--size-gb 1.0] [--workdir DIR] [--json OUT]

Writes a random-weight HF T5 1.1 checkpoint (model.safetensors, float32) of about the asked
size, then runs `hf -> ours` and `ours -> hf` each in its own process, recording the child's
peak RSS (ru_maxrss) and its RSS after imports and JAX start-up (the interpreter, JAX,
orbax, ...). Prints
one JSON object: sizes, peak and import-only RSS, and the peak over the checkpoint size.
Finally checks that the HF file that comes back holds exactly the tensors that went in.
"""
from __future__ import annotations

import argparse
import json
import pathlib
import resource
import subprocess
import sys
import tempfile
import time

import numpy as np

GIB = 1024 ** 3


def _rss_now_bytes() -> int:
    for line in pathlib.Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    return 0


def child(argv: list[str]) -> int:
    """Run one conversion in this process; print RSS after imports and at peak (bytes)."""
    import jax

    from t5x_cot import checkpoints  # noqa: F401  (imported before measuring the baseline)
    from t5x_cot.interop import convert, hf_export, hf_import, ours_io, sources  # noqa: F401

    jax.devices()  # the runtime orbax starts, counted in the baseline rather than the conversion
    parser = argparse.ArgumentParser(prog="t5x-cot convert")
    convert.add_arguments(parser)
    args = parser.parse_args(argv)
    baseline = _rss_now_bytes()
    start = time.perf_counter()
    rc = convert.run(args)
    seconds = time.perf_counter() - start
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    print(json.dumps({"rc": rc, "import_rss": baseline, "peak_rss": peak, "seconds": seconds}))
    return rc


# (d_model, d_ff, num_heads, d_kv): T5 1.1 large and small widths, and a narrow one for tests.
WIDTHS = ((1024, 2816, 16, 64), (512, 1024, 6, 64), (128, 384, 4, 32))


def t5_1_1_config(size_bytes: float) -> dict:
    """HF config.json fields of a T5 1.1-shaped model (gated GELU, untied, vocab 32128) of about
    `size_bytes` in float32: the widest of WIDTHS whose two embeddings take at most half the
    size, with as many layers as fill the rest."""
    vocab = 32128
    d_model, d_ff, heads, d_kv = next((w for w in WIDTHS if 2 * vocab * w[0] * 4 <= size_bytes / 2), WIDTHS[-1])
    embeddings = 2 * vocab * d_model  # shared + lm_head
    encoder_layer = 4 * d_model * heads * d_kv + 3 * d_model * d_ff
    decoder_layer = 8 * d_model * heads * d_kv + 3 * d_model * d_ff
    layers = max(1, round((size_bytes / 4 - embeddings) / (encoder_layer + decoder_layer)))
    return {"model_type": "t5", "vocab_size": vocab, "d_model": d_model, "d_kv": d_kv, "d_ff": d_ff,
            "num_layers": layers, "num_decoder_layers": layers, "num_heads": heads,
            "feed_forward_proj": "gated-gelu", "tie_word_embeddings": False,
            "relative_attention_num_buckets": 32, "relative_attention_max_distance": 128}


def write_random_hf(directory: pathlib.Path, fields: dict) -> int:
    """A random-weight HF checkpoint for `fields`, generated and written tensor by tensor."""
    from t5x_cot.interop.hf_mapping import config_from_hf, hf_shape, tensor_maps
    from t5x_cot.interop.layout import param_shapes
    from t5x_cot.interop.safetensors_io import SafetensorsWriter, TensorSpec

    directory.mkdir(parents=True, exist_ok=True)
    (directory / "config.json").write_text(json.dumps(fields))
    config = config_from_hf(fields, "bench")
    shapes = param_shapes(config)
    specs = [TensorSpec(m.name, np.dtype(np.float32), hf_shape(shapes[m.path], m)) for m in tensor_maps(config)]
    rng = np.random.default_rng(0)
    with SafetensorsWriter(directory / "model.safetensors", specs, {"format": "pt"}) as writer:
        for spec in specs:
            writer.write(spec.name, rng.standard_normal(spec.shape, dtype=np.float32))
    return sum(spec.nbytes for spec in specs)


def measure(argv: list[str]) -> dict:
    result = subprocess.run([sys.executable, __file__, "--child", *argv], capture_output=True, text=True)
    if result.returncode != 0:
        raise SystemExit(f"conversion failed: {' '.join(argv)}\n{result.stderr[-3000:]}")
    return json.loads(result.stdout.strip().splitlines()[-1])


def same_tensors(a: pathlib.Path, b: pathlib.Path) -> bool:
    from t5x_cot.interop.safetensors_io import SafetensorsReader

    with SafetensorsReader(a) as left, SafetensorsReader(b) as right:
        return sorted(left.keys()) == sorted(right.keys()) and all(
            np.array_equal(left.read(name), right.read(name)) for name in left.keys())


def main() -> int:
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        return child(sys.argv[2:])
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-gb", type=float, default=1.0)
    parser.add_argument("--workdir", default=None, help="where to write the checkpoints (default: a temp dir)")
    parser.add_argument("--json", default=None, help="also write the result here")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(dir=args.workdir) as tmp:
        root = pathlib.Path(tmp)
        fields = t5_1_1_config(args.size_gb * GIB)
        size = write_random_hf(root / "hf", fields)
        runs = {
            "hf_to_ours": measure(["--from", "hf", str(root / "hf"), "--to", "ours", str(root / "ours")]),
            "ours_to_hf": measure(["--from", "ours", str(root / "ours"), "--to", "hf", str(root / "hf2")]),
        }
        report = {
            "checkpoint_bytes": size, "d_model": fields["d_model"], "layers": fields["num_layers"],
            "round_trip_bit_exact": same_tensors(root / "hf" / "model.safetensors",
                                                 root / "hf2" / "model.safetensors"),
            **{name: run | {"peak_over_size": run["peak_rss"] / size,
                            "peak_minus_imports_over_size": (run["peak_rss"] - run["import_rss"]) / size}
               for name, run in runs.items()},
        }
    text = json.dumps(report, indent=2)
    print(text)
    if args.json:
        pathlib.Path(args.json).write_text(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
