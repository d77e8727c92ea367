"""The OpenAI wire format: request validation, error bodies and response objects.

Requests are parsed from raw bytes here (not by the web framework) so every way a body can
be wrong — not UTF-8, not JSON, NaN, nesting too deep, a wrong type, a value out of range,
an unsupported option — ends in an `APIError` with OpenAI's error shape
`{"error": {"message", "type", "param", "code"}}` and a 4xx status. Options a T5 student
cannot honour (`logprobs`, `echo`, `suffix`, `tools`, penalties other than 0) are refused
rather than silently ignored; unknown fields are ignored, as OpenAI's API does.
"""
from __future__ import annotations

import dataclasses
import json
import time
import uuid
from typing import Any, Literal

import pydantic
from pydantic import BaseModel, ConfigDict, Field

MAX_STOP_SEQUENCES = 4
#: How a prompt becomes the encoder input (see `t5x_cot.serve.app`).
PROMPT_FORMATS = ("as-is", "question")
_TYPE_LABELS = {"str", "int", "float", "bool", "list", "dict", "none"}


class APIError(Exception):
    """An error answered to the client with `status` and OpenAI's error JSON."""

    def __init__(self, status: int, message: str, *, param: str | None = None,
                 code: str | None = None, error_type: str = "invalid_request_error",
                 headers: dict[str, str] | None = None):
        super().__init__(message)
        self.status = status
        self.message = message
        self.param = param
        self.code = code
        self.error_type = error_type
        self.headers = headers or {}

    def body(self) -> dict[str, Any]:
        return {"error": {"message": self.message, "type": self.error_type,
                          "param": self.param, "code": self.code}}


class _Strict(BaseModel):
    model_config = ConfigDict(strict=True, extra="ignore", allow_inf_nan=False)


class SamplingRequest(_Strict):
    """Fields shared by /v1/completions and /v1/chat/completions."""

    model: str
    max_tokens: int | None = Field(default=None, ge=1)
    temperature: float = Field(default=1.0, ge=0.0, le=2.0)
    top_p: float = Field(default=1.0, ge=0.0, le=1.0)
    n: int = Field(default=1, ge=1)
    stop: str | list[str] | None = None
    seed: int | None = Field(default=None, ge=-(2**63), le=2**63 - 1)
    stream: bool = False
    stream_options: dict[str, Any] | None = None
    #: t5x_cot extension: complete `<<expr=` annotations with the calculator while decoding.
    use_calculator: bool = False
    presence_penalty: float = 0.0
    frequency_penalty: float = 0.0
    logprobs: Any = None
    tools: list[Any] | None = None

    def stop_sequences(self) -> tuple[str, ...]:
        stops = [self.stop] if isinstance(self.stop, str) else list(self.stop or [])
        if len(stops) > MAX_STOP_SEQUENCES or any(not s for s in stops):
            raise APIError(400, f"'stop' must be a non-empty string or a list of at most "
                                f"{MAX_STOP_SEQUENCES} non-empty strings", param="stop")
        return tuple(stops)

    def check_supported(self) -> None:
        """Refuse options the server cannot honour."""
        if self.logprobs not in (None, False, 0):
            raise APIError(400, "'logprobs' is not supported by this server", param="logprobs")
        if self.tools:
            raise APIError(400, "'tools' are not supported by this server", param="tools")
        for name in ("presence_penalty", "frequency_penalty"):
            if getattr(self, name) != 0.0:
                raise APIError(400, f"'{name}' is not supported (only 0)", param=name)

    @property
    def include_usage(self) -> bool:
        return bool((self.stream_options or {}).get("include_usage"))


class CompletionRequest(SamplingRequest):
    """POST /v1/completions."""

    prompt: str | list[str]
    echo: bool = False
    suffix: str | None = None
    best_of: int | None = None

    def prompts(self) -> list[str]:
        prompts = [self.prompt] if isinstance(self.prompt, str) else list(self.prompt)
        if not prompts:
            raise APIError(400, "'prompt' must not be an empty list", param="prompt")
        if self.echo or self.suffix is not None:
            raise APIError(400, "'echo' and 'suffix' are not supported by this server",
                           param="echo" if self.echo else "suffix")
        if self.best_of not in (None, self.n):
            raise APIError(400, "'best_of' other than 'n' is not supported", param="best_of")
        return prompts


class TextPart(_Strict):
    type: Literal["text"]
    text: str


class ChatMessage(_Strict):
    role: Literal["system", "developer", "user", "assistant", "tool"]
    content: str | list[TextPart] | None = None

    def text(self) -> str:
        if isinstance(self.content, list):
            return "".join(part.text for part in self.content)
        return self.content or ""


class ChatRequest(SamplingRequest):
    """POST /v1/chat/completions."""

    messages: list[ChatMessage] = Field(min_length=1)

    def prompt(self) -> str:
        """The encoder input: the text of the messages, in order, one per line (a T5 student
        has no chat template; a single user message is used as it is)."""
        return "\n".join(text for text in (m.text() for m in self.messages) if text)


def _param(loc: tuple[Any, ...]) -> str:
    """`messages[0].content` from pydantic's location, union branch labels dropped."""
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif not ("[" in part or part in _TYPE_LABELS or part.startswith(("function-", "literal"))):
            out += f".{part}" if out else part
    return out


def parse_body(raw: bytes) -> dict[str, Any]:
    """The JSON object of a request body, or APIError 400 saying what is wrong with it."""
    try:
        payload = json.loads(raw.decode("utf-8"), parse_constant=_reject_constant)
    except UnicodeDecodeError as error:
        raise APIError(400, f"request body is not UTF-8 (byte {error.start})") from None
    except json.JSONDecodeError as error:
        raise APIError(400, f"request body is not valid JSON: {error.msg} at line {error.lineno} "
                            f"column {error.colno}") from None
    except RecursionError:
        raise APIError(400, "request body is nested too deeply") from None
    except ValueError as error:  # NaN / Infinity, integers too long to convert
        raise APIError(400, f"request body is not valid JSON: {error}") from None
    if not isinstance(payload, dict):
        raise APIError(400, f"request body must be a JSON object, got {type(payload).__name__}")
    _check_text(payload)
    return payload


def _check_text(payload: dict[str, Any]) -> None:
    """APIError 400 naming the first string (value or key) that is not valid Unicode text.

    JSON's `\\ud800` escapes decode to lone surrogates, which no tokenizer or response
    encoder accepts; every string in the body is checked once, iteratively (bounded by the
    body size, whatever its nesting).
    """
    pending: list[tuple[str, Any]] = [("", payload)]
    while pending:
        path, value = pending.pop()
        if isinstance(value, str):
            items: list[tuple[str, Any]] = []
            _require_text(path, value)
        elif isinstance(value, dict):
            items = [(_join(path, key), item) for key, item in value.items()]
            for key in value:
                _require_text(_join(path, key), key)
        elif isinstance(value, list):
            items = [(f"{path}[{i}]", item) for i, item in enumerate(value)]
        else:
            items = []
        pending.extend(reversed(items))


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def _require_text(path: str, text: str) -> None:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as error:
        where = path.encode("utf-8", "backslashreplace").decode("ascii", "backslashreplace")
        raise APIError(400, f"'{where}': not valid Unicode text (lone surrogate "
                            f"{text[error.start]!a} at character {error.start})",
                       param=where) from None


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


def validate(model_class: type[SamplingRequest], payload: dict[str, Any]) -> Any:
    """`payload` as `model_class`, or APIError 400 naming the first bad field."""
    try:
        return model_class.model_validate(payload)
    except pydantic.ValidationError as error:
        first = error.errors(include_url=False)[0]
        param = _param(tuple(first["loc"])) or None
        where = f"'{param}': " if param else ""
        raise APIError(400, f"{where}{first['msg']}", param=param) from None
    except RecursionError:
        raise APIError(400, "request body is nested too deeply") from None


# ---------------------------------------------------------------------------- responses


@dataclasses.dataclass(frozen=True)
class ChoiceText:
    """One generated choice as sent back."""

    text: str
    finish_reason: str
    num_tokens: int


def new_id(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:24]}"


def usage(prompt_tokens: int, completion_tokens: int) -> dict[str, int]:
    return {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens}


def completion_response(model: str, choices: list[ChoiceText], prompt_tokens: int) -> dict[str, Any]:
    return {"id": new_id("cmpl"), "object": "text_completion", "created": int(time.time()),
            "model": model,
            "choices": [{"index": i, "text": c.text, "logprobs": None, "finish_reason": c.finish_reason}
                        for i, c in enumerate(choices)],
            "usage": usage(prompt_tokens, sum(c.num_tokens for c in choices))}


def chat_response(model: str, choices: list[ChoiceText], prompt_tokens: int) -> dict[str, Any]:
    return {"id": new_id("chatcmpl"), "object": "chat.completion", "created": int(time.time()),
            "model": model,
            "choices": [{"index": i, "message": {"role": "assistant", "content": c.text},
                         "logprobs": None, "finish_reason": c.finish_reason}
                        for i, c in enumerate(choices)],
            "usage": usage(prompt_tokens, sum(c.num_tokens for c in choices))}


def models_response(model: str, created: int) -> dict[str, Any]:
    return {"object": "list", "data": [model_object(model, created)]}


def model_object(model: str, created: int) -> dict[str, Any]:
    return {"id": model, "object": "model", "created": created, "owned_by": "t5x_cot"}
