"""Load and fuzz `t5x-cot serve`.

Load: C concurrent clients each send R chat requests back to back (greedy, fixed
max_tokens); prints requests/s, p50/p99 latency, failures and the batch sizes the server
formed (its /stats). Fuzz: N malformed payloads (seeded), every reply must be a 4xx with
OpenAI's error JSON, and a valid request must still succeed afterwards.

    python bench/serve_load.py --write-checkpoint /tmp/small --model-gin gin/models/t5_1_1/small.gin
    python bench/serve_load.py --checkpoint /tmp/small --clients 64 --requests 20 --fuzz 1000

With --checkpoint the bench starts `t5x-cot serve --port 0` itself (stopped at the end);
with --base-url it uses a running server.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import random
import subprocess
import sys
import time
from typing import Any

import httpx
import numpy as np

ROUTES = ("chat/completions", "completions")


# ---------------------------------------------------------------------------- malformed payloads

def _valid(route: str, model: str) -> dict[str, Any]:
    if route == "completions":
        return {"model": model, "prompt": "Is the coin heads up?", "max_tokens": 4}
    return {"model": model, "messages": [{"role": "user", "content": "Is the coin heads up?"}],
            "max_tokens": 4}


_BAD_VALUES: dict[str, list[Any]] = {
    "model": [None, 3, ["m"], {"id": "m"}, "", "no-such-model"],
    "max_tokens": [0, -5, 1.5, "4", True, 10**9, 10**30, [4]],
    "temperature": [-0.1, 2.5, "hot", None, [1], {"t": 1}, True, 1e308 * 10],
    "top_p": [-1, 1.5, "0.9", [0.9]],
    "n": [0, -1, 1000, 2.5, "2", False],
    "stop": [5, ["a", "b", "c", "d", "e"], [""], "", [1, 2], {"s": "x"}],
    "seed": ["x", 1.5, [1], {"s": 1}, 2**70, -(2**64)],
    "stream": ["yes", 1, None, [True]],
    "stream_options": ["x", [1], 3],
    "use_calculator": ["on", 2],
    "logprobs": [True, 5],
    "presence_penalty": [1.0, "x"],
    "frequency_penalty": [-1.0],
    "tools": [[{"type": "function"}]],
}
_BAD_PROMPTS = [None, 5, [], [1, 2, 3], [["a"]], {"text": "x"}, ["a", 5], True]
_BAD_MESSAGES = [None, "hello", [], [1], [None], [{"role": "user"}, 5],
                 [{"role": "wizard", "content": "x"}], [{"content": "x"}],
                 [{"role": "user", "content": 5}], [{"role": "user", "content": [{"type": "image_url"}]}],
                 [{"role": "user", "content": [{"type": "text", "text": 3}]}],
                 [{"role": ["user"], "content": "x"}]]
_RAW = [b"", b"{", b"}", b"null", b"[]", b"42", b'"text"', b"\xff\xfe\x00", b"{'model': 'x'}",
        b'{"model": "m",}', b'{"a": NaN}', b'{"a": Infinity}', b"[" * 5000 + b"]" * 5000,
        b'{"model": "' + b"\xc3\x28" + b'"}', b'{"n": 1' + b"0" * 5000 + b"}"]


def malformed_payloads(count: int, seed: int, model: str, max_body_bytes: int) -> list[tuple[str, str, bytes]]:
    """`count` (label, route, body) triples, each certain to be invalid (seeded)."""
    rng = random.Random(seed)
    out: list[tuple[str, str, bytes]] = []
    while len(out) < count:
        route = rng.choice(ROUTES)
        kind = rng.randrange(7)
        if kind == 0:
            raw = rng.choice(_RAW)
            out.append((f"raw {raw[:20]!r}", route, raw))
            continue
        body = _valid(route, model)
        if kind == 1:  # one required field missing
            missing = rng.choice(["model", "prompt" if route == "completions" else "messages"])
            del body[missing]
            label = f"missing {missing}"
        elif kind == 2:  # the prompt or messages malformed
            if route == "completions":
                body["prompt"] = rng.choice(_BAD_PROMPTS)
            else:
                body["messages"] = rng.choice(_BAD_MESSAGES)
            label = f"bad input {body.get('prompt', body.get('messages'))!r}"[:80]
        elif kind == 3:  # body over the size limit
            text = "word " * (max_body_bytes // 5 + 10)
            body["prompt" if route == "completions" else "messages"] = (
                text if route == "completions" else [{"role": "user", "content": text}])
            label = "oversized body"
        elif kind == 4:  # prompt over the token limit, body under the size limit
            text = " ".join(f"w{i}" for i in range(min(max_body_bytes // 8, 3000)))
            body["prompt" if route == "completions" else "messages"] = (
                text if route == "completions" else [{"role": "user", "content": text}])
            label = "too many prompt tokens"
        else:  # one or two fields with a wrong type or value
            fields = rng.sample(sorted(_BAD_VALUES), rng.choice((1, 2)))
            for name in fields:
                body[name] = rng.choice(_BAD_VALUES[name])
            label = "bad " + ", ".join(f"{f}={body[f]!r}"[:40] for f in fields)
        try:
            data = json.dumps(body, allow_nan=True).encode()
        except (ValueError, OverflowError):
            continue
        out.append((label, route, data))
    return out


# ---------------------------------------------------------------------------- load

async def _client(client: httpx.AsyncClient, url: str, model: str, requests: int, index: int,
                  max_tokens: int, latencies: list[float], failures: list[str]) -> None:
    for r in range(requests):
        body = {"model": model, "max_tokens": max_tokens, "temperature": 0,
                "messages": [{"role": "user", "content": f"Client {index} asks question {r}: is the coin heads up?"}]}
        start = time.perf_counter()
        try:
            response = await client.post(f"{url}/chat/completions", json=body)
            ok = response.status_code == 200 and response.json()["choices"][0]["message"]["content"] is not None
        except (httpx.HTTPError, ValueError, KeyError) as error:
            failures.append(f"{type(error).__name__}: {error}")
            continue
        latencies.append(time.perf_counter() - start)
        if not ok:
            failures.append(f"HTTP {response.status_code}: {response.text[:200]}")


async def load(url: str, model: str, clients: int, requests: int, max_tokens: int) -> dict[str, Any]:
    """Run the load; returns the figures."""
    stats_url = url.removesuffix("/v1") + "/stats"
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(timeout=600, limits=limits) as client:
        # warm-up: compile the batch shapes the run will use
        await asyncio.gather(*(_client(client, url, model, 1, -i, max_tokens, [], [])
                               for i in range(clients)))
        before = (await client.get(stats_url)).json()
        latencies: list[float] = []
        failures: list[str] = []
        start = time.perf_counter()
        await asyncio.gather(*(_client(client, url, model, requests, i, max_tokens, latencies, failures)
                               for i in range(clients)))
        elapsed = time.perf_counter() - start
        after = (await client.get(stats_url)).json()
    formed = {k: v - before["batch_rows"].get(k, 0) for k, v in after["batch_rows"].items()}
    formed = {k: v for k, v in sorted(formed.items(), key=lambda kv: int(kv[0])) if v}
    batches = sum(formed.values())
    return {"clients": clients, "requests_per_client": requests, "requests": clients * requests,
            "failed": len(failures), "failures_sample": failures[:3], "seconds": round(elapsed, 2),
            "requests_per_s": round(len(latencies) / elapsed, 2),
            "latency_p50_s": round(float(np.percentile(latencies, 50)), 3) if latencies else None,
            "latency_p99_s": round(float(np.percentile(latencies, 99)), 3) if latencies else None,
            "batches": batches, "mean_batch_rows": round(sum(int(k) * v for k, v in formed.items()) / batches, 2)
            if batches else 0, "batch_rows_histogram": formed}


def fuzz(url: str, model: str, count: int, seed: int, max_body_bytes: int) -> dict[str, Any]:
    """Send the malformed payloads; count statuses; check the server still answers."""
    statuses: dict[int, int] = {}
    not_4xx: list[str] = []
    with httpx.Client(timeout=120) as client:
        for label, route, data in malformed_payloads(count, seed, model, max_body_bytes):
            response = client.post(f"{url}/{route}", content=data, headers={"Content-Type": "application/json"})
            statuses[response.status_code] = statuses.get(response.status_code, 0) + 1
            error = response.json().get("error") if response.headers.get("content-type", "").startswith(
                "application/json") else None
            if not 400 <= response.status_code < 500 or not isinstance(error, dict):
                not_4xx.append(f"{label}: {response.status_code} {response.text[:120]}")
        alive = client.post(f"{url}/chat/completions", json=_valid("chat/completions", model)).status_code
    return {"payloads": count, "statuses": dict(sorted(statuses.items())), "not_4xx": len(not_4xx),
            "not_4xx_sample": not_4xx[:5], "valid_request_after_fuzz": alive}


# ---------------------------------------------------------------------------- setup

def write_checkpoint(path: str, model_gin: str, seed: int = 0) -> None:
    """A random-weight checkpoint of the model in `model_gin`."""
    import gin  # pylint: disable=import-outside-toplevel
    import jax  # pylint: disable=import-outside-toplevel

    from t5x_cot import checkpoints  # pylint: disable=import-outside-toplevel
    with gin.unlock_config():
        gin.parse_config_file(model_gin)
        model = gin.get_configurable("models.EncoderDecoderModel")()
    shapes = {name: (1, 4) for name in ("encoder_input_tokens", "decoder_input_tokens", "decoder_target_tokens")}
    checkpoints.save_params(path, model.init_params(jax.random.PRNGKey(seed), shapes), model.config)


def start_server(checkpoint: str, extra: list[str]) -> tuple[subprocess.Popen, str]:
    process = subprocess.Popen([sys.executable, "-m", "t5x_cot.cli", "serve", "--checkpoint", checkpoint,
                                "--port", "0", "--model-name", "bench", *extra],
                               stdout=subprocess.PIPE, text=True)
    line = process.stdout.readline()
    if " at " not in line:
        process.kill()
        raise SystemExit(f"server did not start: {line!r}")
    return process, line.split(" at ")[1].strip()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--checkpoint", help="start a server on this checkpoint")
    parser.add_argument("--base-url", help="or use a running server (…/v1)")
    parser.add_argument("--model", default="bench", help="model name of a running server")
    parser.add_argument("--write-checkpoint", help="write a random-weight checkpoint here and exit")
    parser.add_argument("--model-gin", default="gin/models/t5_1_1/small.gin")
    parser.add_argument("--clients", type=int, default=64)
    parser.add_argument("--requests", type=int, default=20)
    parser.add_argument("--max-tokens", type=int, default=16)
    parser.add_argument("--fuzz", type=int, default=0, help="malformed payloads to send after the load")
    parser.add_argument("--max-body-bytes", type=int, default=1 << 20)
    parser.add_argument("--server-args", default="", help="extra `t5x-cot serve` flags")
    args = parser.parse_args()
    if args.write_checkpoint:
        write_checkpoint(args.write_checkpoint, args.model_gin)
        print(f"wrote {args.write_checkpoint}")
        return 0
    process = None
    url, model = args.base_url, args.model
    if args.checkpoint:
        process, url = start_server(args.checkpoint, ["--max-body-bytes", str(args.max_body_bytes),
                                                      *args.server_args.split()])
        model = "bench"
    try:
        if args.clients and args.requests:
            print(json.dumps({"load": asyncio.run(load(url, model, args.clients, args.requests,
                                                       args.max_tokens))}), flush=True)
        if args.fuzz:
            print(json.dumps({"fuzz": fuzz(url, model, args.fuzz, 0, args.max_body_bytes)}), flush=True)
    finally:
        if process is not None:
            process.terminate()
            process.wait(timeout=60)
    return 0


if __name__ == "__main__":
    sys.exit(main())
