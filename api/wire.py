"""The OpenAI chat-completions wire format, as the official `openai` SDK and OpenAI-compatible
clients (Open WebUI, LibreChat) speak it: reading a request, and writing errors, completions,
stream chunks and server-sent events. No Django, no database: pure functions and data.

What a request may carry: every parameter of OpenAI's chat completions is either used, accepted
only at the value that changes nothing (`n: 1`, `top_p: 1`...), accepted and documented as
without effect (`user`, `metadata`...), or refused with a 400 that names it. Nothing is ignored
silently, and an unknown parameter is refused as OpenAI refuses one.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from typing import Any

MODEL = "policydesk"
MODEL_CREATED = 1767225600  # 2026-01-01: a fixed `created` for the one model
MAX_TEMPERATURE = 2.0

# Used: what PolicyDesk reads from a request.
USED = ("model", "messages", "stream", "stream_options", "max_tokens", "max_completion_tokens", "temperature")
# Accepted only at a value that changes nothing (or null): another value is refused.
NEUTRAL: dict[str, tuple[Any, ...]] = {
    "n": (1,),
    "top_p": (1,),
    "presence_penalty": (0,),
    "frequency_penalty": (0,),
    "logprobs": (False,),
    "top_logprobs": (0,),
    "logit_bias": ({},),
    "stop": ([],),
    "seed": (),
    "tools": ([],),
    "functions": ([],),
    "tool_choice": ("none",),
    "function_call": ("none",),
    "response_format": ({"type": "text"},),
    "modalities": (["text"],),
    "audio": (),
    "prediction": (),
    "web_search_options": (),
    "reasoning_effort": (),
    "verbosity": (),
}
# Accepted at any value, with no effect on the answer (docs/api.md says so).
WITHOUT_EFFECT = (
    "user",
    "metadata",
    "store",
    "service_tier",
    "parallel_tool_calls",
    "prompt_cache_key",
    "safety_identifier",
)
WHY_REFUSED = {
    "tools": "PolicyDesk does not call tools or functions",
    "functions": "PolicyDesk does not call tools or functions",
    "tool_choice": "PolicyDesk does not call tools or functions",
    "function_call": "PolicyDesk does not call tools or functions",
    "n": "PolicyDesk writes one answer per request",
    "response_format": "answers are Markdown text with citations; JSON output is not supported",
    "modalities": "answers are text only",
    "audio": "answers are text only",
    "logprobs": "token log probabilities are not available",
    "top_logprobs": "token log probabilities are not available",
}
TEXT_ROLES = ("system", "developer", "user", "assistant")
HISTORY_ROLES = ("user", "assistant")


class ApiError(Exception):
    """An error response in OpenAI's shape: {"error": {"message", "type", "param", "code"}}."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        code: str,
        type: str = "invalid_request_error",
        param: str | None = None,
        retry_after: int | None = None,
    ) -> None:
        super().__init__(message)
        self.status, self.message, self.code, self.type, self.param = status, message, code, type, param
        self.retry_after = retry_after

    def body(self) -> dict[str, Any]:
        return {"error": {"message": self.message, "type": self.type, "param": self.param, "code": self.code}}


def bad_request(message: str, *, param: str | None = None, code: str = "invalid_value") -> ApiError:
    return ApiError(400, message, code=code, param=param)


@dataclass(frozen=True)
class ChatRequest:
    question: str
    history: tuple[tuple[str, str], ...] = ()
    stream: bool = False
    include_usage: bool = False
    max_tokens: int | None = None
    temperature: float | None = None
    model: str = MODEL
    # Parameters sent that have no effect (WITHOUT_EFFECT), for the log line.
    without_effect: tuple[str, ...] = field(default=())


def chat_request_parse(body: bytes) -> ChatRequest:
    """The request, or ApiError(400/404) naming what is wrong with it."""
    try:
        data = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        raise bad_request("The request body is not valid JSON.", code="invalid_json") from None
    if not isinstance(data, dict):
        raise bad_request("The request body must be a JSON object.", code="invalid_json")
    known = set(USED) | set(NEUTRAL) | set(WITHOUT_EFFECT)
    for name in data:
        if name not in known:
            raise bad_request(
                f"Unrecognized request argument supplied: {name}", param=name, code="unknown_parameter"
            )
    for name, neutral in NEUTRAL.items():
        value = data.get(name)
        if value is not None and not any(_same(value, n) for n in neutral):
            why = WHY_REFUSED.get(name, f"PolicyDesk does not support '{name}'")
            raise bad_request(
                f"Unsupported parameter '{name}': {why}. Leave it out (or null).",
                param=name,
                code="unsupported_parameter",
            )
    model = data.get("model")
    if not isinstance(model, str) or not model:
        raise bad_request(
            "'model' is required: use 'policydesk'.", param="model", code="missing_required_parameter"
        )
    if model != MODEL:
        raise ApiError(
            404,
            f"The model '{model}' does not exist. Use 'policydesk'.",
            code="model_not_found",
            param="model",
        )
    question, history = _messages(data.get("messages"))
    stream = _boolean(data, "stream")
    options = data.get("stream_options")
    include_usage = False
    if options is not None:
        if not stream:
            raise bad_request(
                "'stream_options' is only allowed when 'stream' is true.", param="stream_options"
            )
        if not isinstance(options, dict) or set(options) - {"include_usage", "include_obfuscation"}:
            raise bad_request(
                "'stream_options' may hold 'include_usage' (and 'include_obfuscation', no effect) only.",
                param="stream_options",
            )
        include_usage = _boolean(options, "include_usage", param="stream_options.include_usage")
    return ChatRequest(
        question=question,
        history=history,
        stream=stream,
        include_usage=include_usage,
        max_tokens=_max_tokens(data),
        temperature=_temperature(data),
        model=model,
        without_effect=tuple(name for name in WITHOUT_EFFECT if data.get(name) is not None),
    )


def _same(value: Any, neutral: Any) -> bool:
    # 1 == 1.0 but True == 1 too: a boolean only matches a boolean.
    return isinstance(value, bool) == isinstance(neutral, bool) and value == neutral


def _boolean(data: dict[str, Any], name: str, *, param: str | None = None) -> bool:
    value = data.get(name)
    if value is None:
        return False
    if not isinstance(value, bool):
        raise bad_request(f"'{param or name}' must be true or false.", param=param or name)
    return value


def _number(data: dict[str, Any], name: str) -> int | float | None:
    value = data.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise bad_request(f"'{name}' must be a number.", param=name)
    return value


def _max_tokens(data: dict[str, Any]) -> int | None:
    limits = [
        value
        for name in ("max_tokens", "max_completion_tokens")
        if (value := _number(data, name)) is not None
    ]
    for value in limits:
        if not float(value).is_integer() or value < 1:
            raise bad_request("'max_tokens' must be a whole number of at least 1.", param="max_tokens")
    return int(min(limits)) if limits else None


def _temperature(data: dict[str, Any]) -> float | None:
    value = _number(data, "temperature")
    if value is not None and not 0 <= value <= MAX_TEMPERATURE:
        raise bad_request(f"'temperature' must be between 0 and {MAX_TEMPERATURE:g}.", param="temperature")
    return None if value is None else float(value)


def _messages(raw: Any) -> tuple[str, tuple[tuple[str, str], ...]]:
    """The last message is the question (a user's); earlier user and assistant turns are the
    history. System and developer messages are accepted and not used: PolicyDesk's own rules
    govern every answer (docs/api.md)."""
    if not isinstance(raw, list) or not raw:
        raise bad_request(
            "'messages' must be a non-empty list.", param="messages", code="missing_required_parameter"
        )
    turns: list[tuple[str, str]] = []
    for index, message in enumerate(raw):
        param = f"messages[{index}]"
        if not isinstance(message, dict):
            raise bad_request(f"'{param}' must be an object.", param=param)
        role = message.get("role")
        if role in ("tool", "function") or message.get("tool_calls") or message.get("function_call"):
            raise bad_request(
                f"'{param}': PolicyDesk does not call tools or functions.",
                param=param,
                code="unsupported_parameter",
            )
        if role not in TEXT_ROLES:
            raise bad_request(
                f"'{param}.role' must be one of {', '.join(TEXT_ROLES)}.", param=f"{param}.role"
            )
        turns.append((role, _text(message.get("content"), param)))
    role, question = turns[-1]
    if role != "user":
        raise bad_request("The last message must be the user's question.", param=f"messages[{len(raw) - 1}]")
    history = tuple((role, text) for role, text in turns[:-1] if role in HISTORY_ROLES and text.strip())
    return question, history


def _text(content: Any, param: str) -> str:
    """A message's text: a string, or text parts joined. Images, audio and files are refused."""
    if content is None or isinstance(content, str):
        return content or ""
    if not isinstance(content, list):
        raise bad_request(
            f"'{param}.content' must be a string or a list of text parts.", param=f"{param}.content"
        )
    texts = []
    for part in content:
        kind = part.get("type") if isinstance(part, dict) else None
        if kind == "text" and isinstance(part.get("text"), str):
            texts.append(part["text"])
        elif kind in ("image_url", "input_image"):
            raise bad_request(
                f"'{param}': images are not supported; send the question as text.",
                param=f"{param}.content",
                code="unsupported_content",
            )
        else:
            raise bad_request(
                f"'{param}': only text content is supported (got {kind or 'an unreadable part'!s}).",
                param=f"{param}.content",
                code="unsupported_content",
            )
    return "\n".join(texts)


# --- responses -----------------------------------------------------------------------------


def completion_id(message_id: str) -> str:
    return "chatcmpl-" + message_id.replace("-", "")


def usage(prompt_tokens: int | None, completion_tokens: int) -> dict[str, int]:
    prompt = prompt_tokens or 0
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion_tokens,
        "total_tokens": prompt + completion_tokens,
    }


def completion(
    *,
    id: str,
    created: int,
    content: str,
    finish_reason: str,
    extension: dict[str, Any],
    usage: dict[str, int],
) -> dict[str, Any]:
    """A whole chat.completion; PolicyDesk's citations ride on the message."""
    return {
        "id": id,
        "object": "chat.completion",
        "created": created,
        "model": MODEL,
        "choices": [
            {
                "index": 0,
                "message": {
                    "role": "assistant",
                    "content": content,
                    "refusal": None,
                    "policydesk": extension,
                },
                "logprobs": None,
                "finish_reason": finish_reason,
            }
        ],
        "usage": usage,
        "system_fingerprint": None,
    }


@dataclass(frozen=True)
class ChunkWriter:
    """The chat.completion.chunk events of one streamed answer, as server-sent events."""

    id: str
    created: int = field(default_factory=lambda: int(time.time()))
    include_usage: bool = False

    def delta(self, delta: dict[str, Any], *, finish_reason: str | None = None, **extra: Any) -> bytes:
        chunk: dict[str, Any] = {
            "id": self.id,
            "object": "chat.completion.chunk",
            "created": self.created,
            "model": MODEL,
            "system_fingerprint": None,
            "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish_reason}],
        }
        if self.include_usage:
            chunk["usage"] = None  # as OpenAI: null on every chunk but the usage chunk
        chunk.update(extra)
        return sse(chunk)

    def usage(self, counts: dict[str, int]) -> bytes:
        return sse(
            {
                "id": self.id,
                "object": "chat.completion.chunk",
                "created": self.created,
                "model": MODEL,
                "system_fingerprint": None,
                "choices": [],
                "usage": counts,
            }
        )


def sse(data: dict[str, Any]) -> bytes:
    return b"data: " + json.dumps(data, ensure_ascii=False, separators=(",", ":")).encode() + b"\n\n"


DONE = b"data: [DONE]\n\n"


def model_object() -> dict[str, Any]:
    return {"id": MODEL, "object": "model", "created": MODEL_CREATED, "owned_by": "policydesk"}
