"""A real OpenAI-compatible HTTP server on 127.0.0.1 for teacher tests and benchmarks.

Speaks `POST /v1/chat/completions` and `POST /v1/completions` (HTTP/1.1 keep-alive),
honours `n`, reports `usage` and `finish_reason`. It answers correctly by reading the
annotated question from the prompt: the hint line ("Hint: the correct answer is X."),
else an `answers` table keyed by question, else the Coinflip puzzle itself.

It misbehaves on command. Transient faults (the client should retry them):
  "429" (with Retry-After), "500" (its body echoes the Authorization header when
  `echo_auth`, like a careless proxy), "stall" (no reply for `stall_s`), "truncate" (half a
  JSON body, then close), "reset" (TCP RST).
Rejections (the client must stop at once, not retry): "400", "401", "403", "404"; and with
`api_key` set, every request whose Authorization is not "Bearer <api_key>" gets a 401 (its
message echoes the header when `echo_auth`).
Content faults (a reply the filter should drop):
  "wrong" (a wrong final answer), "none" (no final answer), "length" (cut off,
  finish_reason "length").
Faults come from `command(...)` (a queue applied to the next requests, in order) or
from rates: `transient={"500": 0.05, ...}` decided per (prompt, attempt number) and
`content={"wrong": 0.05, ...}` decided per (prompt, choice), both by a seeded hash, so
a run is reproducible and a retried request eventually succeeds.

Run standalone (for `bench/`): `python tests/openai_server.py` prints the base URL.
"""
from __future__ import annotations

import asyncio
import collections
import hashlib
import json
import re
import socket
import struct
import sys
import threading
from collections.abc import Mapping

TRANSIENT = ("429", "500", "stall", "truncate", "reset")
REJECTIONS = ("400", "401", "403", "404")
CONTENT = ("wrong", "none", "length")
_HINT = re.compile(r"\nHint: the correct answer is (.*)\.\s*\nA:\s*$")


def _unit(*parts: object) -> float:
    digest = hashlib.blake2b(repr(parts).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2.0 ** 64


def _pick(rates: Mapping[str, float], u: float) -> str | None:
    acc = 0.0
    for kind, rate in rates.items():
        acc += rate
        if u < acc:
            return kind
    return None


def _wrong(answer: str) -> str:
    if answer in ("yes", "no"):
        return "no" if answer == "yes" else "yes"
    try:
        return str(int(float(answer)) + 1)
    except ValueError:
        return answer + "x"


try:
    from t5x_cot.data import coinflip as _coinflip
except ImportError:  # the package is not importable (standalone use)
    _coinflip = None


def _coinflip_answer(question: str) -> str | None:
    if _coinflip is None or not question.startswith("A coin is"):
        return None
    try:
        return _coinflip.answer_for(_coinflip.parse_question(question))
    except ValueError:  # not a well-formed coinflip question
        return None


class OpenAIServer:
    """The server; use as a context manager or call start()/stop()."""

    def __init__(self, *, transient: Mapping[str, float] | None = None,
                 content: Mapping[str, float] | None = None, seed: int = 0,
                 stall_s: float = 2.0, retry_after: str = "0", supports_n: bool = True,
                 distinct: int = 1, answers: Mapping[str, str] | None = None,
                 latency: float = 0.0, echo_auth: bool = False, api_key: str | None = None):
        self.transient = dict(transient or {})
        self.content = dict(content or {})
        self.seed = seed
        self.stall_s = stall_s
        self.retry_after = retry_after
        self.supports_n = supports_n
        self.distinct = max(1, distinct)
        self.answers = dict(answers or {})
        self.latency = latency
        self.echo_auth = echo_auth
        self.api_key = api_key
        self.queue: collections.deque[str] = collections.deque()
        self.stats: collections.Counter[str] = collections.Counter()
        self.authorization: set[str] = set()
        self.bodies_seen = 0
        self._attempts: collections.Counter[str] = collections.Counter()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._server: asyncio.base_events.Server | None = None
        self.port = 0

    # ---- lifecycle -------------------------------------------------------------------
    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def start(self) -> OpenAIServer:
        ready = threading.Event()

        def serve() -> None:
            loop = asyncio.new_event_loop()
            self._loop = loop
            asyncio.set_event_loop(loop)
            self._server = loop.run_until_complete(
                loop.create_server(lambda: _Protocol(self), "127.0.0.1", 0, backlog=1024))
            self.port = self._server.sockets[0].getsockname()[1]
            ready.set()
            loop.run_forever()
            self._server.close()
            loop.run_until_complete(self._server.wait_closed())
            loop.close()

        self._thread = threading.Thread(target=serve, name="openai-server", daemon=True)
        self._thread.start()
        ready.wait(10)
        return self

    def stop(self) -> None:
        if self._loop is not None and self._thread is not None:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(10)
            self._loop = None

    def __enter__(self) -> OpenAIServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def command(self, *faults: str) -> None:
        """Apply these faults, in order, to the next requests."""
        for fault in faults:
            if fault not in TRANSIENT + REJECTIONS + CONTENT:
                raise ValueError(f"unknown fault {fault!r}")
        self._loop.call_soon_threadsafe(self.queue.extend, faults)

    # ---- request handling ------------------------------------------------------------
    def answer_for(self, prompt: str) -> str | None:
        """The correct answer for the question being annotated in `prompt`."""
        last = prompt.rsplit("Q:", 1)[-1]
        match = _HINT.search(last)
        if match:
            return match.group(1).strip()
        question = last.split("\n", 1)[0].strip()
        return self.answers.get(question) or _coinflip_answer(question)

    def respond(self, path: str, body: bytes, auth: str = "") -> tuple[str, int, bytes]:
        """Decide the fault (or none) and build the reply: (fault, status, body)."""
        echo = f" (request had Authorization: {auth})" if self.echo_auth else ""
        if self.api_key is not None and auth != f"Bearer {self.api_key}":
            message = "Incorrect API key provided" + echo
            return "401", 401, json.dumps({"error": {"message": message}}).encode()
        chat = path.endswith("/chat/completions")
        if not chat and not path.endswith("/completions"):
            return "", 404, b'{"error": {"message": "not found"}}'
        try:
            req = json.loads(body)
            prompt = req["messages"][-1]["content"] if chat else req["prompt"]
            n = int(req.get("n", 1))
        except (ValueError, KeyError, TypeError, IndexError):
            return "", 400, b'{"error": {"message": "bad request body"}}'
        self.bodies_seen += 1
        attempt_key = f"{prompt}\x00{req.get('seed')}\x00{n}"
        self._attempts[attempt_key] += 1
        fault = self.queue.popleft() if self.queue else _pick(
            self.transient, _unit(self.seed, "t", attempt_key, self._attempts[attempt_key]))
        if fault == "429":
            return fault, 429, b'{"error": {"message": "rate limited"}}'
        if fault in REJECTIONS:
            return fault, int(fault), json.dumps({"error": {"message": f"rejected{echo}"}}).encode()
        if fault == "500":
            return fault, 500, json.dumps({"error": {"message": "internal error" + echo}}).encode()
        if fault in ("stall", "truncate", "reset"):
            return fault, 200, b""
        answer = self.answer_for(prompt)
        choices = []
        completion_tokens = 0
        for i in range(n if self.supports_n else 1):
            kind = fault if fault in CONTENT else _pick(
                self.content, _unit(self.seed, "c", prompt, req.get("seed"), i))
            if kind:
                self.stats[kind] += 1
            text, finish = self._text(prompt, answer, i + int(req.get("seed") or 0), kind)
            completion_tokens += max(1, len(text) // 4)
            item = {"index": i, "finish_reason": finish}
            if chat:
                item["message"] = {"role": "assistant", "content": text}
            else:
                item["text"] = text
            choices.append(item)
        prompt_tokens = max(1, len(prompt) // 4)
        payload = {
            "id": "cmpl-test", "object": "chat.completion" if chat else "text_completion",
            "model": req.get("model", ""), "choices": choices,
            "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
                      "total_tokens": prompt_tokens + completion_tokens},
        }
        return "ok", 200, json.dumps(payload).encode()

    def _text(self, prompt: str, answer: str | None, i: int, kind: str | None) -> tuple[str, str]:
        tag = hashlib.blake2b(prompt.encode(), digest_size=4).hexdigest()
        body = (f"We read the question carefully ({tag}). "
                f"Working it through along path {i % self.distinct} gives the result.")
        if kind == "length":
            return body[: len(body) // 2], "length"
        if kind == "none" or answer is None:
            return body + " So we cannot tell for sure.", "stop"
        if kind == "wrong":
            answer = _wrong(answer)
        return f"{body} The answer is {answer}.", "stop"


class _Protocol(asyncio.Protocol):
    """Minimal HTTP/1.1 request parser with keep-alive."""

    def __init__(self, server: OpenAIServer):
        self.server = server
        self.buf = b""
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        self.buf += data
        while True:
            end = self.buf.find(b"\r\n\r\n")
            if end < 0:
                return
            lines = self.buf[:end].decode("latin-1").split("\r\n")
            headers = {}
            for line in lines[1:]:
                name, _, value = line.partition(":")
                headers[name.strip().lower()] = value.strip()
            length = int(headers.get("content-length", "0"))
            if len(self.buf) < end + 4 + length:
                return
            body = self.buf[end + 4:end + 4 + length]
            self.buf = self.buf[end + 4 + length:]
            parts = lines[0].split(" ")
            self.handle(parts[1] if len(parts) > 1 else "/", headers, body)

    def handle(self, path: str, headers: dict[str, str], body: bytes) -> None:
        srv = self.server
        if "authorization" in headers:
            srv.authorization.add(headers["authorization"])
        fault, status, payload = srv.respond(path, body, headers.get("authorization", ""))
        srv.stats[fault or str(status)] += 1
        transport = self.transport
        if fault == "stall":
            asyncio.get_running_loop().call_later(srv.stall_s, transport.close)
            return
        if fault == "reset":
            sock = transport.get_extra_info("socket")
            if sock is not None:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            transport.abort()
            return
        if fault == "truncate":
            full = b'{"id": "cmpl-test", "choices": [{"index": 0, "text": "cut'
            head = (f"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                    f"Content-Length: {len(full) * 2}\r\n\r\n").encode()
            transport.write(head + full)
            transport.close()
            return
        reason = {200: "OK", 400: "Bad Request", 401: "Unauthorized", 403: "Forbidden",
                  404: "Not Found", 429: "Too Many Requests", 500: "Internal Server Error"}[status]
        extra = f"Retry-After: {srv.retry_after}\r\n" if status == 429 else ""
        head = (f"HTTP/1.1 {status} {reason}\r\nContent-Type: application/json\r\n{extra}"
                f"Content-Length: {len(payload)}\r\n\r\n").encode()
        if srv.latency:
            asyncio.get_running_loop().call_later(srv.latency, self._send, head + payload)
        else:
            transport.write(head + payload)

    def _send(self, data: bytes) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(data)


if __name__ == "__main__":
    server = OpenAIServer().start()
    print(server.base_url, flush=True)
    try:
        sys.stdin.read()
    finally:
        server.stop()
