"""The ASGI application: OpenAI routes over an `Engine`, with dynamic batching and limits.

Routes: `POST /v1/completions`, `POST /v1/chat/completions`, `GET /v1/models`,
`GET /v1/models/{id}`, plus `GET /health` and `GET /stats` (batch sizes formed so far).

Limits, each answered with OpenAI's error JSON: a body over `max_body_bytes` -> 413; a full
request queue -> 429 with `Retry-After`; a prompt over the input limit, more than
`max_batch` rows (`n` × prompts), or any malformed field -> 400; an unknown model -> 404;
an unknown route or method -> 404 / 405; a server shutting down -> 503; a failure while
decoding -> 500 for the requests of that batch only, the server keeps serving.

Prompt format `question` makes the student usable as a teacher for `t5x-cot generate`:
a few-shot prompt of `t5x_cot.teacher.prompts` ("Q: ... A:" blocks) is reduced to the
question of its last block, the input a student was trained on; other prompts pass as they
are. `as-is` (the default) encodes every prompt unchanged. An input prefix (e.g. `[label] `
for a distilling step-by-step student's label task) is put before every encoder input.

Streaming (`"stream": true`, chat and completions) sends server-sent events in OpenAI's
chunk format, one chunk per generated token and `data: [DONE]` at the end. The chunks go
out once the batched decode has finished: the compiled loop decodes the whole batch on the
device in one call, so streaming gives clients the protocol, not an earlier first token.
"""
from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from typing import Any

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from t5x_cot.serve import protocol
from t5x_cot.serve.batcher import BatcherClosed, DynamicBatcher, QueueFull
from t5x_cot.serve.engine import Engine, PromptTooLong, RowOutput
from t5x_cot.serve.protocol import PROMPT_FORMATS, APIError, ChoiceText
from t5x_cot.teacher.prompts import final_question

log = logging.getLogger("t5x_cot.serve")
COMPLETIONS_DEFAULT_MAX_TOKENS = 16  # OpenAI's default for /v1/completions


class ServerLimits:
    """Batching and request limits of one server."""

    def __init__(self, *, max_batch: int = 32, max_wait_ms: float = 10.0, max_queue: int = 256,
                 max_body_bytes: int = 1 << 20, body_timeout_s: float = 30.0):
        self.max_batch = max_batch
        self.max_wait_s = max_wait_ms / 1000.0
        self.max_queue = max_queue
        self.max_body_bytes = max_body_bytes
        self.body_timeout_s = body_timeout_s


def _error_response(error: APIError) -> JSONResponse:
    return JSONResponse(error.body(), status_code=error.status, headers=error.headers)


def _endpoint(handler: Callable[..., Awaitable[Response]]) -> Callable[[Request], Awaitable[Response]]:
    """Turn APIError into its JSON reply, and any other failure into a 500 one."""
    @functools.wraps(handler)
    async def wrapped(request: Request) -> Response:
        try:
            return await handler(request)
        except APIError as error:
            return _error_response(error)
        except Exception:  # pylint: disable=broad-except  # never let a request kill the server
            log.exception("request failed")
            return _error_response(APIError(500, "internal error while serving the request",
                                            error_type="server_error"))
    return wrapped


async def read_body(request: Request, limit: int, timeout_s: float) -> bytes:
    """The request body; APIError 413 as soon as it is known to exceed `limit` bytes, 408 when
    it has not all arrived `timeout_s` after the headers (a client trickling its body)."""
    try:
        return await asyncio.wait_for(_read_chunks(request, limit), timeout_s)
    except TimeoutError:
        raise APIError(408, f"request body not received within {timeout_s:g} s",
                       code="request_timeout", headers={"Connection": "close"}) from None


async def _read_chunks(request: Request, limit: int) -> bytes:
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise APIError(413, f"request body of {declared} bytes exceeds the limit of {limit}",
                       code="request_too_large")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise APIError(413, f"request body exceeds the limit of {limit} bytes",
                           code="request_too_large")
        chunks.append(chunk)
    return b"".join(chunks)


def finish_choice(output: RowOutput, max_tokens: int, stops: Sequence[str],
                  decode: Callable[[Sequence[int]], str]) -> ChoiceText:
    """The choice text of a decoded row: cut to `max_tokens`, then at the first stop string."""
    ids = output.ids[:max_tokens]
    reason = "stop" if output.ended and len(output.ids) <= max_tokens else "length"
    text = decode(ids)
    cuts = [i for i in (text.find(s) for s in stops) if i >= 0]
    if cuts:
        text, reason = text[:min(cuts)], "stop"
    return ChoiceText(text, reason, len(ids))


def token_deltas(text: str, ids: Sequence[int], decode: Callable[[Sequence[int]], str]) -> list[str]:
    """`text` split where its tokens end (pieces that join back to exactly `text`)."""
    ends = sorted({len(p) for p in (decode(ids[:k]) for k in range(1, len(ids) + 1))
                   if text.startswith(p)} | {len(text)})
    starts = [0] + ends[:-1]
    return [text[a:b] for a, b in zip(starts, ends) if b > a]


class OpenAIServer:
    """State behind the routes: the engine, the batcher and the limits."""

    def __init__(self, engine: Engine, model_name: str, limits: ServerLimits,
                 prompt_format: str = "as-is", input_prefix: str = ""):
        if prompt_format not in PROMPT_FORMATS:
            raise ValueError(f"prompt format {prompt_format!r}; expected one of {PROMPT_FORMATS}")
        self.prompt_format = prompt_format
        self.input_prefix = input_prefix
        self.engine = engine
        self.model_name = model_name
        self.limits = limits
        self.created = int(time.time())
        self.batcher: DynamicBatcher | None = None

    # ------------------------------------------------------------------ lifecycle

    @contextlib.asynccontextmanager
    async def lifespan(self, app: Starlette) -> AsyncIterator[None]:
        del app
        self.batcher = DynamicBatcher(self.engine.run_batch, max_batch=self.limits.max_batch,
                                      max_wait_s=self.limits.max_wait_s, max_queue=self.limits.max_queue)
        self.batcher.start()
        try:
            yield
        finally:
            await self.batcher.stop()

    # ------------------------------------------------------------------ shared request path

    async def _generate(self, request: Request, model_class: type[protocol.SamplingRequest],
                        default_max_tokens: int) -> tuple[Any, list[ChoiceText], list[list[int]], int]:
        """Validate, tokenise, decode (batched); returns (request, choices, ids per choice,
        prompt tokens)."""
        req = protocol.validate(model_class, protocol.parse_body(
            await read_body(request, self.limits.max_body_bytes, self.limits.body_timeout_s)))
        req.check_supported()
        if req.model != self.model_name:
            raise APIError(404, f"The model '{req.model}' does not exist; this server serves "
                                f"'{self.model_name}'", param="model", code="model_not_found",
                           error_type="not_found_error")
        if isinstance(req, protocol.ChatRequest):
            prompts, prompt_param = [req.prompt()], "messages"
        else:
            prompts, prompt_param = req.prompts(), "prompt"
        if self.prompt_format == "question":
            prompts = [final_question(p) or p for p in prompts]
        prompts = [self.input_prefix + p for p in prompts]
        stops = req.stop_sequences()
        max_tokens = req.max_tokens or default_max_tokens
        if max_tokens > self.engine.max_tokens_limit:
            raise APIError(400, f"'max_tokens' is {max_tokens}; this server generates at most "
                                f"{self.engine.max_tokens_limit}", param="max_tokens")
        if len(prompts) * req.n > self.limits.max_batch:
            raise APIError(400, f"{len(prompts)} prompt(s) x n={req.n} is more than this server's "
                                f"{self.limits.max_batch} generations per request", param="n")
        try:
            encoded = [self.engine.encode_prompt(p) for p in prompts]
        except PromptTooLong as error:
            raise APIError(400, str(error), param=prompt_param, code="context_length_exceeded") from None
        key = self.engine.decode_key(temperature=req.temperature, top_p=req.top_p, max_tokens=max_tokens,
                                     use_calculator=req.use_calculator, seed=req.seed)
        try:
            outputs = await self.batcher.submit(key, [ids for ids in encoded for _ in range(req.n)])
        except QueueFull as error:
            raise APIError(429, f"the server is busy ({error}); retry shortly", code="queue_full",
                           error_type="rate_limit_error", headers={"Retry-After": "1"}) from None
        except BatcherClosed:
            raise APIError(503, "the server is shutting down", error_type="server_error",
                           headers={"Retry-After": "1"}) from None
        choices = [finish_choice(o, max_tokens, stops, self.engine.codec.decode) for o in outputs]
        choice_ids = [list(o.ids[:c.num_tokens]) for o, c in zip(outputs, choices)]
        return req, choices, choice_ids, sum(len(ids) for ids in encoded)

    def _stream(self, req: Any, chat: bool, choices: list[ChoiceText], ids: list[list[int]],
                prompt_tokens: int) -> StreamingResponse:
        stream_id = protocol.new_id("chatcmpl" if chat else "cmpl")
        created = int(time.time())
        decode = self.engine.codec.decode

        def chunk(index: int, text: str | None, finish: str | None, role: bool = False) -> str:
            if chat:
                delta: dict[str, Any] = {"role": "assistant", "content": ""} if role else (
                    {} if text is None else {"content": text})
                body: dict[str, Any] = {"index": index, "delta": delta, "finish_reason": finish,
                                        "logprobs": None}
            else:
                body = {"index": index, "text": text or "", "finish_reason": finish, "logprobs": None}
            return _event({"id": stream_id, "object": "chat.completion.chunk" if chat else "text_completion",
                           "created": created, "model": self.model_name, "choices": [body]})

        async def events() -> AsyncIterator[str]:
            for index, (choice, choice_ids) in enumerate(zip(choices, ids)):
                if chat:
                    yield chunk(index, None, None, role=True)
                for piece in token_deltas(choice.text, choice_ids, decode):
                    yield chunk(index, piece, None)
                yield chunk(index, None, choice.finish_reason)
            if req.include_usage:
                yield _event({"id": stream_id, "object": "chat.completion.chunk" if chat else "text_completion",
                              "created": created, "model": self.model_name, "choices": [],
                              "usage": protocol.usage(prompt_tokens, sum(c.num_tokens for c in choices))})
            yield "data: [DONE]\n\n"
        return StreamingResponse(events(), media_type="text/event-stream",
                                 headers={"Cache-Control": "no-cache"})

    # ------------------------------------------------------------------ routes

    async def completions(self, request: Request) -> Response:
        req, choices, ids, prompt_tokens = await self._generate(
            request, protocol.CompletionRequest, COMPLETIONS_DEFAULT_MAX_TOKENS)
        if req.stream:
            return self._stream(req, False, choices, ids, prompt_tokens)
        return JSONResponse(protocol.completion_response(self.model_name, choices, prompt_tokens))

    async def chat_completions(self, request: Request) -> Response:
        req, choices, ids, prompt_tokens = await self._generate(
            request, protocol.ChatRequest, self.engine.max_tokens_limit)
        if req.stream:
            return self._stream(req, True, choices, ids, prompt_tokens)
        return JSONResponse(protocol.chat_response(self.model_name, choices, prompt_tokens))

    async def models(self, request: Request) -> Response:
        del request
        return JSONResponse(protocol.models_response(self.model_name, self.created))

    async def model(self, request: Request) -> Response:
        name = request.path_params["model"]
        if name != self.model_name:
            raise APIError(404, f"The model '{name}' does not exist", param="model",
                           code="model_not_found", error_type="not_found_error")
        return JSONResponse(protocol.model_object(self.model_name, self.created))

    async def health(self, request: Request) -> Response:
        del request
        return JSONResponse({"status": "ok", "queued": self.batcher.queued if self.batcher else 0})

    async def stats(self, request: Request) -> Response:
        del request
        return JSONResponse(self.batcher.stats.as_dict() if self.batcher else {})


def _event(payload: dict[str, Any]) -> str:
    return f"data: {json.dumps(payload, ensure_ascii=False)}\n\n"


async def _http_error(request: Request, error: HTTPException) -> Response:
    del request
    kind = "not_found_error" if error.status_code == 404 else "invalid_request_error"
    return _error_response(APIError(error.status_code, str(error.detail), error_type=kind,
                                    headers=dict(error.headers or {})))


def create_app(engine: Engine, model_name: str, limits: ServerLimits | None = None,
               prompt_format: str = "as-is", input_prefix: str = "") -> Starlette:
    """The Starlette application serving `engine` as `model_name`."""
    server = OpenAIServer(engine, model_name, limits or ServerLimits(), prompt_format, input_prefix)
    routes = [
        Route("/v1/completions", _endpoint(server.completions), methods=["POST"]),
        Route("/v1/chat/completions", _endpoint(server.chat_completions), methods=["POST"]),
        Route("/v1/models", _endpoint(server.models), methods=["GET"]),
        Route("/v1/models/{model:path}", _endpoint(server.model), methods=["GET"]),
        Route("/health", _endpoint(server.health), methods=["GET"]),
        Route("/stats", _endpoint(server.stats), methods=["GET"]),
    ]
    app = Starlette(routes=routes, lifespan=server.lifespan,
                    exception_handlers={HTTPException: _http_error})
    app.state.server = server
    return app
