"""A fake OpenAI-compatible LLM server on a real socket, speaking vLLM's SSE wire format.

It isolates PolicyDesk's own cost from a model's (load tests, gateway overhead) and, with
`--fault`, reproduces the ways real runtimes fail (tests use it the same way):

    python -m bench.fake_llm --port 9100 --tokens-per-second 20 --first-token-delay 0.05

Faults: blackhole (accepts, never answers), headers_then_stall, stall_mid_stream,
http_500, http_429, malformed, close_mid_stream, slow. A refused connection needs no
server: use a free port nobody listens on.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

FAULTS = (
    "none",
    "blackhole",
    "headers_then_stall",
    "stall_mid_stream",
    "http_500",
    "http_429",
    "malformed",
    "close_mid_stream",
    "slow",
)
DEFAULT_TEXT = (
    "According to the leave policy [1], full-time employees accrue annual leave every month "
    "and may carry over up to five unused days into the next year."
)


@dataclass
class Request:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body or b"null")


Handler = Callable[[Request, asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


class MiniHTTPServer:
    """Just enough HTTP/1.1 to control every byte (and every stall) of a response."""

    def __init__(self, handler: Handler) -> None:
        self.handler = handler
        self.server: asyncio.Server | None = None
        self.port = 0
        self.requests: list[Request] = []
        self.disconnects = 0
        self.disconnected = asyncio.Event()

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> int:
        self.server = await asyncio.start_server(self._serve, host, port)
        self.port = self.server.sockets[0].getsockname()[1]
        return self.port

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def stop(self) -> None:
        if self.server:
            self.server.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self.server.wait_closed(), 2)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                request = await self._read_request(reader)
                if request is None:
                    break
                self.requests.append(request)
                await self.handler(request, reader, writer)
                if writer.is_closing():
                    break
        except (ConnectionError, asyncio.IncompleteReadError):
            self.mark_disconnect()
        except asyncio.CancelledError:
            pass
        finally:
            writer.close()

    def mark_disconnect(self) -> None:
        self.disconnects += 1
        self.disconnected.set()

    async def _read_request(self, reader: asyncio.StreamReader) -> Request | None:
        try:
            head = await reader.readuntil(b"\r\n\r\n")
        except (asyncio.IncompleteReadError, ConnectionError):
            return None
        lines = head.decode("latin-1").split("\r\n")
        method, path, _ = lines[0].split(" ", 2)
        headers = {}
        for line in lines[1:]:
            if ":" in line:
                key, value = line.split(":", 1)
                headers[key.strip().lower()] = value.strip()
        body = await reader.readexactly(int(headers.get("content-length", "0")))
        return Request(method, path, headers, body)

    async def wait_for_disconnect(self, reader: asyncio.StreamReader) -> None:
        """Park until the client goes away; that moment is what cancellation tests observe."""
        with contextlib.suppress(ConnectionError):
            while await reader.read(1024):
                pass
        self.mark_disconnect()


async def send_json(writer: asyncio.StreamWriter, status: int, body: Any) -> None:
    data = json.dumps(body).encode()
    reason = {200: "OK", 404: "Not Found", 429: "Too Many Requests", 500: "Internal Server Error"}
    writer.write(
        f"HTTP/1.1 {status} {reason.get(status, 'Error')}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(data)}\r\n\r\n".encode()
        + data
    )
    await writer.drain()


async def start_chunked(writer: asyncio.StreamWriter, content_type: str) -> None:
    writer.write(
        f"HTTP/1.1 200 OK\r\nContent-Type: {content_type}\r\nTransfer-Encoding: chunked\r\n"
        "Cache-Control: no-cache\r\n\r\n".encode()
    )
    await writer.drain()


async def send_chunk(writer: asyncio.StreamWriter, data: bytes) -> None:
    writer.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
    await writer.drain()


async def end_chunked(writer: asyncio.StreamWriter) -> None:
    writer.write(b"0\r\n\r\n")
    await writer.drain()


def split_tokens(text: str) -> list[str]:
    """Word-ish pieces with their leading space, like a BPE tokenizer's output."""
    words = text.split(" ")
    return [words[0], *(" " + w for w in words[1:])] if words else []


def sse_chunk(model: str, *, content: str | None, role: bool = False, finish: str | None = None) -> bytes:
    delta: dict[str, Any] = {}
    if role:
        delta["role"] = "assistant"
    if content is not None:
        delta["content"] = content
    event = {
        "id": "chatcmpl-fake",
        "object": "chat.completion.chunk",
        "created": int(time.time()),
        "model": model,
        "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}],
    }
    return f"data: {json.dumps(event)}\n\n".encode()


def sse_usage(model: str, prompt: int, completion: int) -> bytes:
    event = {
        "id": "chatcmpl-fake",
        "object": "chat.completion.chunk",
        "created": int(time.time()),
        "model": model,
        "choices": [],
        "usage": {
            "prompt_tokens": prompt,
            "completion_tokens": completion,
            "total_tokens": prompt + completion,
        },
    }
    return f"data: {json.dumps(event)}\n\n".encode()


@dataclass
class FakeOpenAI:
    """OpenAI-compatible chat server: `text` streamed at `tokens_per_second`, or a fault."""

    text: str = DEFAULT_TEXT
    tokens_per_second: float = 0.0  # 0 = as fast as possible
    first_token_delay: float = 0.0
    fault: str = "none"
    fault_after_tokens: int = 3
    model: str = "fake-model"
    # Behave like a perfect model asked to continue: stream the rest of `text` after the
    # partial assistant message (or, with restart=True, start over like small models do).
    continue_from_partial: bool = False
    restart: bool = False
    # Compute the answer from the request instead of `text` (bench/strong_backend.py).
    answerer: Callable[[list[dict[str, str]]], str] | None = None
    http: MiniHTTPServer = field(init=False)

    def __post_init__(self) -> None:
        if self.fault not in FAULTS:
            raise ValueError(f"unknown fault {self.fault!r}; choose from {', '.join(FAULTS)}")
        self.http = MiniHTTPServer(self.handle)

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> str:
        await self.http.start(host, port)
        return f"http://{host}:{self.http.port}/v1"

    async def stop(self) -> None:
        await self.http.stop()

    async def handle(
        self, request: Request, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        if request.method == "GET" and request.path.endswith("/models"):
            await send_json(writer, 200, {"object": "list", "data": [{"id": self.model, "object": "model"}]})
            return
        if request.method == "GET" and request.path == "/health":
            await send_json(writer, 200, {"status": "ok"})
            return
        if not request.path.endswith("/chat/completions"):
            await send_json(writer, 404, {"error": {"message": "not found"}})
            return
        await self.chat(request, reader, writer)

    async def chat(
        self, request: Request, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        fault = self.fault
        body = request.json()
        if body.get("model") != self.model:
            # vLLM's answer to an unknown model name.
            message = f"The model `{body.get('model')}` does not exist."
            await send_json(writer, 404, {"object": "error", "message": message, "type": "NotFoundError"})
            return
        if fault == "blackhole":
            await self.http.wait_for_disconnect(reader)
            writer.close()
            return
        if fault in ("http_500", "http_429"):
            status = 500 if fault == "http_500" else 429
            await send_json(writer, status, {"error": {"message": f"fake {status}", "code": status}})
            return
        await start_chunked(writer, "text/event-stream")
        if fault == "headers_then_stall":
            await self.http.wait_for_disconnect(reader)
            writer.close()
            return
        if self.first_token_delay:
            await asyncio.sleep(self.first_token_delay)
        await send_chunk(writer, sse_chunk(self.model, content="", role=True))
        tokens = split_tokens(self._answer_text(body["messages"]))
        interval = 1.0 / self.tokens_per_second if self.tokens_per_second else 0.0
        if fault == "slow":
            interval = max(interval, 0.3)
        for i, token in enumerate(tokens):
            if i == self.fault_after_tokens and fault in (
                "stall_mid_stream",
                "malformed",
                "close_mid_stream",
            ):
                await self._mid_stream_fault(fault, reader, writer)
                return
            if interval and i:
                await asyncio.sleep(interval)
            await send_chunk(writer, sse_chunk(self.model, content=token))
        prompt_tokens = sum(len(str(m.get("content", "")).split()) for m in body["messages"])
        await send_chunk(writer, sse_chunk(self.model, content=None, finish="stop"))
        await send_chunk(writer, sse_usage(self.model, prompt_tokens, len(tokens)))
        await send_chunk(writer, b"data: [DONE]\n\n")
        await end_chunked(writer)

    def _answer_text(self, messages: list[dict[str, str]]) -> str:
        if self.answerer is not None:
            return self.answerer(messages)
        partial = next((m["content"] for m in reversed(messages) if m["role"] == "assistant"), "")
        if self.continue_from_partial and partial and not self.restart and self.text.startswith(partial):
            return self.text[len(partial) :]
        return self.text

    async def _mid_stream_fault(
        self, fault: str, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        if fault == "stall_mid_stream":
            await self.http.wait_for_disconnect(reader)
        elif fault == "malformed":
            await send_chunk(writer, b'data: {"choices": [{"delta": {"content": "oops"\n\n')
            await self.http.wait_for_disconnect(reader)
        # close_mid_stream: drop the socket without the terminating chunk.
        transport = writer.transport
        transport.abort()


async def _main(args: argparse.Namespace) -> None:
    server = FakeOpenAI(
        tokens_per_second=args.tokens_per_second,
        first_token_delay=args.first_token_delay,
        fault=args.fault,
        text=(DEFAULT_TEXT + " ") * max(1, args.repeat),
    )
    url = await server.start(args.host, args.port)
    print(f"fake LLM ({args.fault}) at {url}", flush=True)
    await asyncio.Event().wait()


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=9100)
    parser.add_argument("--tokens-per-second", type=float, default=20.0)
    parser.add_argument("--first-token-delay", type=float, default=0.05)
    parser.add_argument("--repeat", type=int, default=3, help="answer length, in copies of the sample text")
    parser.add_argument("--fault", choices=FAULTS, default="none")
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(_main(parser.parse_args()))


if __name__ == "__main__":
    main()
