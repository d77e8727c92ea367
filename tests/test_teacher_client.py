"""The async client against a real misbehaving HTTP server on 127.0.0.1."""
from __future__ import annotations

import asyncio
import time

import pytest
from openai_server import OpenAIServer

from t5x_cot.teacher.client import ClientConfig, EndpointError, EndpointUnavailable, SamplingParams, TeacherClient
from t5x_cot.teacher.ratelimit import RateLimiter

PROMPT = "Q: What is 2 + 3?\nHint: the correct answer is 5.\nA:"
KEY = "sk-test-client-0123456789"


@pytest.fixture(scope="module")
def server():
    with OpenAIServer(stall_s=1.0, echo_auth=True) as srv:
        yield srv


def config(server, **over):
    base = dict(base_url=server.base_url, model="m", api_key=KEY, timeout=0.3,
                backoff_base=0.001, max_retries=4, max_consecutive_failures=50)
    base.update(over)
    return ClientConfig(**base)


def complete(cfg, prompt=PROMPT, n=1, params=SamplingParams()):
    async def go():
        async with TeacherClient(cfg) as client:
            return await client.complete(prompt, n, params), client.requests_sent
    return asyncio.run(go())


@pytest.mark.parametrize("fault", ["429", "500", "stall", "truncate", "reset"])
def test_transient_faults_are_retried(server, fault):
    server.command(fault, fault)
    completion, sent = complete(config(server))
    assert sent == 3
    assert completion.choices[0].text.endswith("The answer is 5.")
    assert completion.choices[0].finish_reason == "stop"
    assert completion.usage["total_tokens"] > 0


def test_retry_after_is_honoured(server):
    server.retry_after = "0.4"
    try:
        server.command("429")
        start = time.monotonic()
        complete(config(server))
        assert time.monotonic() - start >= 0.4
    finally:
        server.retry_after = "0"


def test_n_and_completion_route(server):
    completion, sent = complete(config(server, chat=False), n=3)
    assert sent == 1 and [c.index for c in completion.choices] == [0, 1, 2]


def test_gives_up_after_retries_without_leaking_the_key(server):
    server.command(*["500"] * 5)
    with pytest.raises(EndpointError) as info:
        complete(config(server))
    assert "gave up after 5 attempts" in str(info.value) and "HTTP 500" in str(info.value)
    assert KEY not in str(info.value) and "***" in str(info.value)
    assert f"Bearer {KEY}" in server.authorization


def test_dead_endpoint_stops_with_a_clear_message():
    with OpenAIServer(transient={"500": 1.0}) as dead:
        async def go():
            async with TeacherClient(config(dead, max_consecutive_failures=6,
                                            max_retries=10)) as client:
                results = await asyncio.gather(*(client.complete(PROMPT, 1, SamplingParams())
                                                 for _ in range(4)), return_exceptions=True)
                return results, client.requests_sent
        results, sent = asyncio.run(go())
    assert all(isinstance(r, EndpointUnavailable) for r in results)
    assert sent < 12
    assert "failed 6 consecutive attempts" in str(results[0])
    assert "rerun the same command to resume" in str(results[0])


def test_rate_limiter_caps_requests_per_minute():
    async def go():
        limiter = RateLimiter(rpm=600)  # 10/s, burst 10
        start = time.monotonic()
        for _ in range(15):
            await limiter.acquire(1)
        return time.monotonic() - start
    assert 0.4 <= asyncio.run(go()) < 2.0


def test_rate_limiter_caps_tokens_per_minute():
    async def go():
        limiter = RateLimiter(tpm=60_000)  # 1000 tokens/s, burst 1000
        start = time.monotonic()
        for _ in range(4):
            await limiter.acquire(500)
        return time.monotonic() - start
    assert 0.8 <= asyncio.run(go()) < 3.0
