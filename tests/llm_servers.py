"""Servers for the LLM tests, on real sockets.

`OllamaProtocolAdapter` is a *protocol adapter*, not a model: it speaks Ollama's documented
`/api/chat` (NDJSON) and `/api/tags` wire format and relays generation to a real model (the
llama.cpp server) over its OpenAI-compatible API, so the gateway's `ollama` path is exercised
end to end without an Ollama binary (none installs from the registries here).
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import httpx

from bench.fake_llm import MiniHTTPServer, Request, end_chunked, send_chunk, send_json, start_chunked
from devserver.embedded import free_port

ROOT = Path(__file__).resolve().parent.parent


def _now() -> str:
    return datetime.now(UTC).isoformat().replace("+00:00", "Z")


class OllamaProtocolAdapter:
    def __init__(self, upstream_v1: str, *, model: str = "smollm2:135m") -> None:
        self.upstream = upstream_v1.rstrip("/")
        self.model = model
        self.http = MiniHTTPServer(self.handle)

    async def start(self) -> str:
        await self.http.start()
        return self.http.url

    async def stop(self) -> None:
        await self.http.stop()

    async def handle(
        self, request: Request, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        if request.method == "GET" and request.path == "/api/tags":
            await send_json(writer, 200, {"models": [self._tag()]})
        elif request.method == "POST" and request.path == "/api/chat":
            await self.chat(request, writer)
        else:
            await send_json(writer, 404, {"error": "not found"})

    def _tag(self) -> dict[str, object]:
        return {
            "name": self.model,
            "model": self.model,
            "modified_at": _now(),
            "size": 100_000_000,
            "digest": "0" * 64,
            "details": {"format": "gguf", "family": "llama", "parameter_size": "135M"},
        }

    async def chat(self, request: Request, writer: asyncio.StreamWriter) -> None:
        body = request.json()
        if body.get("model") != self.model:
            await send_json(writer, 404, {"error": f"model '{body.get('model')}' not found"})
            return
        options = body.get("options") or {}
        upstream_body = {
            "messages": body["messages"],
            "stream": True,
            "stream_options": {"include_usage": True},
            "max_tokens": options.get("num_predict", 128),
            "temperature": options.get("temperature", 0.0),
        }
        started = time.perf_counter_ns()
        await start_chunked(writer, "application/x-ndjson")
        prompt_tokens = completion_tokens = 0
        done_reason = "stop"
        async with (
            httpx.AsyncClient(timeout=60) as client,
            client.stream("POST", f"{self.upstream}/chat/completions", json=upstream_body) as response,
        ):
            async for line in response.aiter_lines():
                if not line.startswith("data:") or line.strip() == "data: [DONE]":
                    continue
                event = json.loads(line[5:])
                usage = event.get("usage") or {}
                prompt_tokens = usage.get("prompt_tokens", prompt_tokens)
                completion_tokens = usage.get("completion_tokens", completion_tokens)
                for choice in event.get("choices") or []:
                    if choice.get("finish_reason"):
                        done_reason = "length" if choice["finish_reason"] == "length" else "stop"
                    content = (choice.get("delta") or {}).get("content")
                    if content:
                        line_out = {
                            "model": self.model,
                            "created_at": _now(),
                            "message": {"role": "assistant", "content": content},
                            "done": False,
                        }
                        await send_chunk(writer, (json.dumps(line_out) + "\n").encode())
        total = time.perf_counter_ns() - started
        final = {
            "model": self.model,
            "created_at": _now(),
            "message": {"role": "assistant", "content": ""},
            "done": True,
            "done_reason": done_reason,
            "total_duration": total,
            "load_duration": 0,
            "prompt_eval_count": prompt_tokens,
            "prompt_eval_duration": 0,
            "eval_count": completion_tokens,
            "eval_duration": total,
        }
        await send_chunk(writer, (json.dumps(final) + "\n").encode())
        await end_chunked(writer)


class LocalLLMProcess:
    """The real llama.cpp server (xllamacpp + SmolLM2) in a child process on a free port."""

    def __init__(self, *, threads: int = 1) -> None:
        self.port = free_port()
        self.threads = threads
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def start(self, timeout: float = 90.0) -> None:
        cmd = [sys.executable, "-m", "llm.local_server", "--port", str(self.port)]
        cmd += ["--threads", str(self.threads), "--ctx", "2048", "--parallel", "2"]
        self.proc = subprocess.Popen(
            cmd, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=dict(os.environ)
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError("the local LLM server exited at start")
            try:
                if httpx.get(f"http://127.0.0.1:{self.port}/health", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        self.stop()
        raise RuntimeError("the local LLM server did not become healthy")

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


class RecordingProxy:
    """A real LLM behind a recorder: forwards each request byte for byte to the llama.cpp
    server and keeps what it was sent, so a test can prove what reached the model."""

    def __init__(self, upstream_v1: str) -> None:
        self.upstream = upstream_v1.rstrip("/")
        self.http = MiniHTTPServer(self.handle)
        self.bodies: list[bytes] = []

    async def start(self) -> str:
        await self.http.start()
        return self.http.url + "/v1"

    async def stop(self) -> None:
        await self.http.stop()

    async def handle(
        self, request: Request, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        self.bodies.append(request.body)
        path = request.path.removeprefix("/v1")
        async with (
            httpx.AsyncClient(timeout=120) as client,
            client.stream(request.method, self.upstream + path, content=request.body or None,
                          headers={"content-type": "application/json"}) as response,
        ):  # fmt: skip
            if response.status_code != 200 or "text/event-stream" not in response.headers.get(
                "content-type", ""
            ):
                await send_json(writer, response.status_code, json.loads(await response.aread()))
                return
            await start_chunked(writer, "text/event-stream")
            async for chunk in response.aiter_raw():
                await send_chunk(writer, chunk)
            await end_chunked(writer)

    def recorded_text(self) -> str:
        """Everything the model was sent, decoded (JSON escapes would hide Vietnamese text)."""
        return "\n".join(json.dumps(json.loads(b), ensure_ascii=False) for b in self.bodies if b)
