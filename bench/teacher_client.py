"""Throughput of the teacher client against the local OpenAI-compatible test server.

The server (tests/openai_server.py) runs in its own process with no added latency, so
the figure is what the client (plus a minimal server) can push through this machine:

    python bench/teacher_client.py --requests 5000 --concurrency 64
"""
from __future__ import annotations

import argparse
import asyncio
import pathlib
import subprocess
import sys
import time

from t5x_cot.teacher.client import ClientConfig, SamplingParams, TeacherClient

SERVER = pathlib.Path(__file__).resolve().parents[1] / "tests" / "openai_server.py"


async def drive(base_url: str, requests: int, concurrency: int, chat: bool) -> float:
    """Send `requests` requests at `concurrency`; return requests per second."""
    config = ClientConfig(base_url=base_url, model="bench", api_key="bench-key",
                          chat=chat, concurrency=concurrency)
    params = SamplingParams(max_tokens=64)
    async with TeacherClient(config) as client:
        prompts = [f"Q: question {i}\nHint: the correct answer is {i}.\nA:" for i in range(requests)]
        await asyncio.gather(*(client.complete(p, 1, params) for p in prompts[:concurrency]))
        start = time.perf_counter()
        await asyncio.gather(*(client.complete(p, 1, params) for p in prompts))
        return requests / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=5000)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--completion", action="store_true", help="use /v1/completions")
    args = parser.parse_args()
    proc = subprocess.Popen([sys.executable, str(SERVER)], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, text=True)
    try:
        base_url = proc.stdout.readline().strip()
        rate = asyncio.run(drive(base_url, args.requests, args.concurrency, not args.completion))
        print(f"{args.requests} requests at concurrency {args.concurrency}: {rate:.0f} requests/s")
    finally:
        proc.stdin.close()
        proc.wait(10)


if __name__ == "__main__":
    main()
