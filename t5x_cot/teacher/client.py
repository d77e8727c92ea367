"""Asynchronous client for OpenAI-compatible endpoints (OpenAI, vLLM, TGI, llama.cpp, Ollama).

Requests go through httpcore connection pools (the transport layer under httpx; its
high-level client costs ~50% more CPU per request for features not needed here:
redirects, cookies, auth flows), holding keep-alive connections up to the concurrency.
Each call is bounded by that concurrency, rate-limited (requests/min, tokens/min), retried
with exponential backoff and full jitter on 429, 408, 5xx, timeouts, connection errors
and malformed bodies; a `Retry-After` header pauses every request for that long. After
`max_consecutive_failures` failed attempts in a row (across all requests) the client
stops with `EndpointUnavailable` instead of hammering a dead endpoint. Proxy
environment variables (HTTP(S)_PROXY) are not consulted.

The API key is sent only in the Authorization header; user information in the base URL
("http://user:password@host/v1") is taken out of the URL and sent as HTTP Basic
authentication when there is no key. Neither is stored on exceptions, and every message
this module builds passes through `redact` (`t5x_cot.teacher.redaction`: every written
form of each secret). A request the endpoint refuses for good (400, 401, 403, 404 and any
other non-retryable status) or that cannot be sent at all stops every request with
`EndpointRejected`, carrying the status and the endpoint's own message.
"""
from __future__ import annotations

import asyncio
import base64
import dataclasses
import json
import logging
import random
import ssl
import urllib.parse
from typing import Any

import httpcore

from t5x_cot.errors import UserError
from t5x_cot.teacher.ratelimit import RateLimiter
from t5x_cot.teacher.redaction import Redactor, check_api_key, split_credentials

log = logging.getLogger(__name__)

RETRYABLE_STATUS = frozenset({408, 409, 425, 429, 500, 502, 503, 504})


class EndpointError(UserError, RuntimeError):
    """A request failed for good (non-retryable status or retries exhausted)."""


class EndpointRejected(EndpointError):
    """The endpoint refused a request for good (bad key, wrong URL or model, bad request), or
    the request could not be sent: retrying cannot help, so every request stops."""


class EndpointUnavailable(EndpointError):
    """Too many consecutive failures: the endpoint looks down; stop and resume later."""


@dataclasses.dataclass(frozen=True)
class SamplingParams:
    """Sampling settings sent with every request (and hashed into store keys)."""

    temperature: float = 0.0
    top_p: float = 1.0
    max_tokens: int = 256
    stop: tuple[str, ...] = ("\nQ:",)
    seed: int | None = None

    def as_dict(self) -> dict[str, Any]:
        """JSON-able form, used for provenance and keys."""
        out = dataclasses.asdict(self)
        out["stop"] = list(self.stop)
        return out


@dataclasses.dataclass
class ClientConfig:
    """Where and how to call the endpoint. `api_key` is excluded from repr."""

    base_url: str
    model: str
    api_key: str | None = dataclasses.field(default=None, repr=False)
    chat: bool = True
    concurrency: int = 16
    rpm: float | None = None
    tpm: float | None = None
    timeout: float = 120.0
    max_retries: int = 8
    backoff_base: float = 1.0
    backoff_max: float = 60.0
    max_consecutive_failures: int = 20

    @property
    def endpoint(self) -> str:
        """Full URL of the chat or completion route, without credentials."""
        route = "chat/completions" if self.chat else "completions"
        return f"{split_credentials(self.base_url)[0].rstrip('/')}/{route}"

    def redactor(self) -> Redactor:
        """What masks this configuration's secrets (the key, the URL's user information)."""
        return Redactor([self.api_key, *split_credentials(self.base_url)[1]])


@dataclasses.dataclass(frozen=True)
class Choice:
    """One generated text."""

    index: int
    text: str
    finish_reason: str | None


@dataclasses.dataclass(frozen=True)
class Completion:
    """A parsed response: its choices and the usage the server reported."""

    choices: list[Choice]
    usage: dict[str, int]


def request_body(config: ClientConfig, prompt: str, n: int,
                 params: SamplingParams) -> dict[str, Any]:
    """The JSON body of one request (live, or a line of a Batch API file)."""
    body: dict[str, Any] = {"model": config.model}
    if config.chat:
        body["messages"] = [{"role": "user", "content": prompt}]
    else:
        body["prompt"] = prompt
    body.update(temperature=params.temperature, top_p=params.top_p,
                max_tokens=params.max_tokens, n=n)
    if params.stop:
        body["stop"] = list(params.stop)
    if params.seed is not None:
        body["seed"] = params.seed
    return body


class _Retryable(Exception):
    def __init__(self, message: str, retry_after: float | None = None):
        super().__init__(message)
        self.retry_after = retry_after


def _retry_after(value: str | None) -> float | None:
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        return None


def _error_message(body: bytes) -> str:
    """The endpoint's own message in an error body (OpenAI's `{"error": {"message": ...}}`),
    else the body's start."""
    try:
        payload = json.loads(body)
        message = payload["error"]["message"] if isinstance(payload["error"], dict) \
            else payload["error"]
        if isinstance(message, str) and message.strip():
            return " ".join(message.split())[:500]
    except (ValueError, KeyError, TypeError):
        pass
    return " ".join(body[:200].decode("utf-8", "replace").split()) or "(empty body)"


def parse_completion(payload: Any, chat: bool) -> Completion:
    """Turn a response body into a `Completion`; raise ValueError when it is malformed."""
    if not isinstance(payload, dict) or not isinstance(payload.get("choices"), list) \
            or not payload["choices"]:
        raise ValueError("response has no non-empty 'choices' list")
    choices = []
    for pos, item in enumerate(payload["choices"]):
        if chat:
            text = (item.get("message") or {}).get("content")
        else:
            text = item.get("text")
        if not isinstance(text, str):
            raise ValueError(f"choice {pos} has no text")
        choices.append(Choice(int(item.get("index", pos)), text, item.get("finish_reason")))
    choices.sort(key=lambda c: c.index)
    usage = payload.get("usage") or {}
    usage = {k: int(v) for k, v in usage.items() if isinstance(v, (int, float))}
    return Completion(choices, usage)


class TeacherClient:
    """Async OpenAI-compatible client; use as `async with TeacherClient(cfg) as client`."""

    def __init__(self, config: ClientConfig):
        self.config = config
        self._key = check_api_key(config.api_key, "ClientConfig.api_key")
        self._limiter = RateLimiter(config.rpm, config.tpm)
        self._consecutive = 0
        self._dead: str | None = None
        self._rejected: EndpointRejected | None = None
        self.redact = config.redactor()
        self.requests_sent = 0
        self._headers = [(b"Content-Type", b"application/json"),
                         (b"Accept", b"application/json")]
        userinfo = split_credentials(config.base_url)[1]
        if self._key:
            self._headers.append((b"Authorization", f"Bearer {self._key}".encode()))
        elif userinfo:
            basic = base64.b64encode(urllib.parse.unquote(userinfo[0]).encode()).decode()
            self._headers.append((b"Authorization", f"Basic {basic}".encode()))
        self._url = config.endpoint.encode()
        self._extensions = {"timeout": {"connect": config.timeout, "read": config.timeout,
                                        "write": config.timeout, "pool": config.timeout}}
        # httpcore scans every connection of a pool, several times, on each request, so
        # its cost grows with pool size. Each in-flight slot therefore owns a pool of
        # one keep-alive connection; `_slots` hands them out, which also bounds
        # concurrency (measured: 0.57 ms CPU/request here vs 1.2 ms with one shared pool).
        context = ssl.create_default_context()
        self._pools = [httpcore.AsyncConnectionPool(ssl_context=context, max_connections=1,
                                                    max_keepalive_connections=1)
                       for _ in range(config.concurrency)]
        self._slots: asyncio.Queue[httpcore.AsyncConnectionPool] = asyncio.Queue()
        for pool in self._pools:
            self._slots.put_nowait(pool)

    async def __aenter__(self) -> TeacherClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close the connection pool."""
        for pool in self._pools:
            await pool.aclose()

    async def complete(self, prompt: str, n: int, params: SamplingParams) -> Completion:
        """Request `n` choices for `prompt`, retrying transient failures."""
        body = json.dumps(request_body(self.config, prompt, n, params)).encode("utf-8")
        est_tokens = len(prompt) // 4 + params.max_tokens * n
        cfg = self.config
        last = "no attempt made"
        for attempt in range(cfg.max_retries + 1):
            await self._limiter.acquire(est_tokens)
            pool = await self._slots.get()
            try:
                self._check_stopped()  # after the waits: another request may have stopped it
                return self._succeeded(await self._attempt(pool, body))
            except _Retryable as err:
                error = err
            except EndpointRejected as err:
                self._rejected = err
                raise
            finally:
                self._slots.put_nowait(pool)
            last = self.redact(str(error))
            self._failed(last)
            if attempt == cfg.max_retries:
                break
            delay = random.uniform(0.0, min(cfg.backoff_max, cfg.backoff_base * 2 ** attempt))
            if error.retry_after is not None:
                self._limiter.pause(error.retry_after)
                delay = max(delay, error.retry_after)
            log.info("retrying in %.2fs after: %s", delay, last)
            await asyncio.sleep(delay)
        raise EndpointError(f"{cfg.endpoint}: gave up after {cfg.max_retries + 1} attempts; "
                            f"last error: {last}")

    async def _attempt(self, pool: httpcore.AsyncConnectionPool, body: bytes) -> Completion:
        url = self.config.endpoint
        self.requests_sent += 1
        try:
            resp = await pool.request(b"POST", self._url, headers=self._headers, content=body,
                                      extensions=self._extensions)
        except httpcore.TimeoutException:
            raise _Retryable(f"timed out after {self.config.timeout:g}s") from None
        except (httpcore.LocalProtocolError, httpcore.UnsupportedProtocol) as err:
            raise EndpointRejected(self.redact(
                f"the request to {url} could not be sent ({type(err).__name__}: {err})")) from None
        except (httpcore.NetworkError, httpcore.ProtocolError) as err:
            raise _Retryable(self.redact(f"connection error ({type(err).__name__}: {err})")
                             ) from None
        if resp.status != 200:
            message = self.redact(f"HTTP {resp.status} from {url}: "
                                  f"{_error_message(resp.content)}")
            if resp.status in RETRYABLE_STATUS or resp.status >= 500:
                retry_after = next((v.decode("latin-1") for k, v in resp.headers
                                    if k.lower() == b"retry-after"), None)
                raise _Retryable(message, _retry_after(retry_after))
            raise EndpointRejected(message)
        try:
            return parse_completion(json.loads(resp.content), self.config.chat)
        except (ValueError, AttributeError, TypeError) as err:
            raise _Retryable(f"malformed response from {url} ({err})") from None

    def _check_stopped(self) -> None:
        if self._rejected is not None:
            raise self._rejected
        if self._dead:
            raise EndpointUnavailable(self._dead)

    def _succeeded(self, completion: Completion) -> Completion:
        self._consecutive = 0
        return completion

    def _failed(self, message: str) -> None:
        self._consecutive += 1
        limit = self.config.max_consecutive_failures
        if self._consecutive >= limit and not self._dead:
            self._dead = (f"{self.config.endpoint} failed {self._consecutive} consecutive "
                          f"attempts (limit {limit}); last error: {message}. Stopping; every "
                          f"completion received so far is saved, rerun the same command to "
                          f"resume.")
