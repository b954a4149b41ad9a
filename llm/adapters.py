"""Wire protocols: OpenAI-compatible SSE (vLLM, llama.cpp, TGI, LM Studio) and Ollama NDJSON.

An adapter turns one HTTP streaming response into `Delta`s and nothing else: timeouts,
fallback and cancellation live in the gateway, which drives these generators.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncGenerator, Callable
from dataclasses import dataclass
from typing import Any

import httpx

from llm.config import BackendConfig
from llm.transport import polled_stream


class BackendError(Exception):
    """A failure that makes the gateway move on to the next backend; `reason` is a short code."""

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason
        self.detail = detail


@dataclass(frozen=True)
class Delta:
    text: str = ""
    finish_reason: str | None = None
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    # Stream events with text joined into this delta (one per token on vLLM and llama.cpp).
    events: int = 1


Message = dict[str, str]
# Seconds to leave a stream alone after relaying text (asked each time: it grows with load).
Interval = Callable[[], float]

# A read that took longer than this waited for the network rather than for the buffer.
NETWORK_WAIT = 0.002


def _check_status(response: httpx.Response, body: bytes) -> None:
    if response.status_code < 400:
        return
    snippet = body[:200].decode("utf-8", "replace")
    if response.status_code == 429:
        raise BackendError("rate_limited", snippet)
    if response.status_code == 404:
        raise BackendError("model_not_found", snippet)
    if response.status_code >= 500:
        raise BackendError(f"http_{response.status_code}", snippet)
    # 400/401/403/422: the request or the key is wrong for this backend; another may accept it.
    raise BackendError(f"http_{response.status_code}", snippet)


def openai_payload(
    backend: BackendConfig, messages: list[Message], *, continuing: bool, max_tokens: int
) -> dict[str, Any]:
    payload: dict[str, Any] = {
        "model": backend.model,
        "messages": messages,
        "stream": True,
        "stream_options": {"include_usage": True},
        "max_tokens": max_tokens,
        "temperature": backend.temperature,
    }
    if continuing and backend.continue_final_message:
        # vLLM's chat template extensions: extend the last assistant message in place.
        payload["continue_final_message"] = True
        payload["add_generation_prompt"] = False
    return payload


async def openai_stream(
    client: httpx.AsyncClient,
    backend: BackendConfig,
    messages: list[Message],
    *,
    continuing: bool,
    max_tokens: int,
    interval: Interval,
) -> AsyncGenerator[Delta, None]:
    payload = openai_payload(backend, messages, continuing=continuing, max_tokens=max_tokens)
    headers = {"Accept": "text/event-stream"}
    if backend.api_key:
        headers["Authorization"] = f"Bearer {backend.api_key}"
    async with client.stream("POST", "/chat/completions", json=payload, headers=headers) as response:
        if response.status_code >= 400:
            _check_status(response, await response.aread())
        async for delta in _relay(response, _openai_line, "the stream ended without [DONE]", interval):
            yield delta


def _openai_line(line: str) -> tuple[Delta | None, bool]:
    """One SSE line: a delta, or nothing; and whether it ended the stream."""
    if not line.startswith("data:"):
        # Blank separators, SSE comments (keep-alives), `event:`/`id:`/`retry:` fields.
        return None, False
    data = line[5:].strip()
    if data == "[DONE]":
        return None, True
    return _openai_delta(data), False


async def _relay(
    response: httpx.Response,
    parse_line: Callable[[str], tuple[Delta | None, bool]],
    unterminated: str,
    interval: Interval,
) -> AsyncGenerator[Delta, None]:
    """The deltas of a line-based stream (SSE or NDJSON): one per body chunk, paced.

    A stream that ends before its protocol's final line fails as `stream_closed`.
    """
    polled = polled_stream(response)
    try:
        async for lines, waited in _line_batches(response):
            pieces: list[Delta] = []
            done = False
            for line in lines:
                piece, done = parse_line(line)
                if piece is not None:
                    pieces.append(piece)
                if done:
                    break
            if pieces:
                delta = _merged(pieces)
                yield delta
                if delta.text and polled is not None:
                    polled.poll_every = interval  # from now on the stream paces its own reads
                elif delta.text and waited and not done:
                    await _pace(interval())
            if done:
                return
        raise BackendError("stream_closed", unterminated)
    finally:
        if polled is not None:
            polled.poll_every = None  # should the connection be pooled again, it is unpaced


async def _pace(interval: float) -> None:
    """After relaying text that had to be waited for, leave the socket alone for `interval`.

    What the server sends meanwhile is read back in one receive and relayed as one piece
    (one WebSocket frame), so the per-read costs (selector registration, a wake-up, a frame:
    most of the web process's CPU at 200 streams) are paid once per interval instead of once
    per token. Reads that return at once are never delayed, so the stream keeps the model's
    pace, and nothing waits before the first text: time to first token is unchanged. The
    polled transport (llm.transport) does the same without the selector at all.
    """
    if interval > 0:
        await asyncio.sleep(interval)


async def _line_batches(response: httpx.Response) -> AsyncGenerator[tuple[list[str], bool], None]:
    """The stream's complete lines, one list per body chunk (one SSE event, usually), and
    whether reading that chunk had to wait for the network (rather than for the buffer)."""
    pending = ""
    chunks = response.aiter_text().__aiter__()
    while True:
        started = time.monotonic()
        try:
            chunk = await anext(chunks)
        except StopAsyncIteration:
            break
        waited = time.monotonic() - started > NETWORK_WAIT
        lines = (pending + chunk).split("\n")
        pending = lines.pop()
        if lines:
            yield [line.rstrip("\r") for line in lines], waited
    if pending:
        yield [pending.rstrip("\r")], False


def _merged(pieces: list[Delta]) -> Delta:
    """Deltas of one read as one: the text joined, the last finish reason and usage seen."""
    if len(pieces) == 1:
        return pieces[0]
    return Delta(
        text="".join(p.text for p in pieces),
        events=sum(p.events for p in pieces if p.text),
        finish_reason=next((p.finish_reason for p in reversed(pieces) if p.finish_reason), None),
        prompt_tokens=next((p.prompt_tokens for p in reversed(pieces) if p.prompt_tokens is not None), None),
        completion_tokens=next(
            (p.completion_tokens for p in reversed(pieces) if p.completion_tokens is not None), None
        ),
    )


def _decode_event(data: str) -> dict[str, Any]:
    """One JSON object of a stream (SSE data line or NDJSON line); an error object fails it."""
    try:
        event = json.loads(data)
    except json.JSONDecodeError:
        raise BackendError("malformed_stream", data[:120]) from None
    if not isinstance(event, dict):
        raise BackendError("malformed_stream", data[:120])
    if "error" in event:
        raise BackendError("stream_error", str(event["error"])[:200])
    return event


def _openai_delta(data: str) -> Delta:
    event = _decode_event(data)
    usage = event.get("usage") or {}
    choices = event.get("choices") or []
    text, finish = "", None
    if choices:
        choice = choices[0]
        if not isinstance(choice, dict):
            raise BackendError("malformed_stream", data[:120])
        delta = choice.get("delta") or {}
        text = delta.get("content") or ""  # null, "" or absent on the role-only first chunk
        finish = choice.get("finish_reason")
    return Delta(
        text=text,
        finish_reason=finish,
        prompt_tokens=usage.get("prompt_tokens"),
        completion_tokens=usage.get("completion_tokens"),
    )


async def ollama_stream(
    client: httpx.AsyncClient,
    backend: BackendConfig,
    messages: list[Message],
    *,
    continuing: bool,
    max_tokens: int,
    interval: Interval,
) -> AsyncGenerator[Delta, None]:
    payload = {
        "model": backend.model,
        "messages": messages,
        "stream": True,
        "options": {"temperature": backend.temperature, "num_predict": max_tokens},
    }
    async with client.stream("POST", "/api/chat", json=payload) as response:
        if response.status_code >= 400:
            _check_status(response, await response.aread())
        async for delta in _relay(response, _ollama_line, "the stream ended before done=true", interval):
            yield delta


def _ollama_line(line: str) -> tuple[Delta | None, bool]:
    """One NDJSON line: a delta (the last one carries done=true), or nothing for a blank line."""
    if not line.strip():
        return None, False
    return _ollama_delta(line)


def _ollama_delta(line: str) -> tuple[Delta, bool]:
    event = _decode_event(line)
    message = event.get("message") or {}
    done = bool(event.get("done"))
    return (
        Delta(
            text=message.get("content") or "",
            finish_reason=(event.get("done_reason") or "stop") if done else None,
            prompt_tokens=event.get("prompt_eval_count"),
            completion_tokens=event.get("eval_count"),
        ),
        done,
    )


def stream_for(
    client: httpx.AsyncClient,
    backend: BackendConfig,
    messages: list[Message],
    *,
    continuing: bool,
    max_tokens: int,
    interval: Interval,
) -> AsyncGenerator[Delta, None]:
    stream = ollama_stream if backend.wire == "ollama" else openai_stream
    return stream(client, backend, messages, continuing=continuing, max_tokens=max_tokens, interval=interval)


async def list_models(client: httpx.AsyncClient, backend: BackendConfig) -> list[str]:
    """The health probe: the model list endpoint of each protocol."""
    headers = {"Authorization": f"Bearer {backend.api_key}"} if backend.api_key else {}
    path = "/api/tags" if backend.wire == "ollama" else "/models"
    response = await client.get(path, headers=headers)
    _check_status(response, response.content)
    try:
        body = response.json()
    except ValueError:
        raise BackendError("malformed_response", response.text[:120]) from None
    items = body.get("models") if backend.wire == "ollama" else body.get("data")
    if not isinstance(items, list):
        raise BackendError("malformed_response", "no model list")
    key = "name" if backend.wire == "ollama" else "id"
    return [str(item.get(key, "")) for item in items if isinstance(item, dict)]
