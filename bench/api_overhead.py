"""What the API path costs over the socket path: the same questions, one at a time, through the
chat WebSocket and through `POST /v1/chat/completions` (stream) on the same Daphne process, with
a fast fake model on a real socket. Both paths run the same pipeline; the difference is the HTTP
request, the key check, and turning events into server-sent chunks.

    make up && .venv/bin/python manage.py seed_demo
    .venv/bin/python -m bench.api_overhead [--questions 200] [--mode evidence|generate]

Time to first content at the client: from sending the `ask` frame (socket) or the request (API,
on a kept-alive connection) to the first token frame / the first chunk with content. The two
paths alternate which goes first. Reports both paths' p50/p95/p99, the difference of their p95s
(the target: ≤ 5 ms), and the per-question differences.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import secrets
import signal
import statistics
import time
from pathlib import Path

import httpx
import websockets

from bench.api_load import api_key_create, api_key_revoke, ask_body, first_content_and_rest
from bench.ws_load import (
    DEFAULT_QUESTIONS,
    ensure_user,
    env_from_dotenv,
    fake_llm_start,
    login,
    start_daphnes,
)

WARM_UP = 5


def quantiles(values: list[float]) -> dict[str, float]:
    q = statistics.quantiles(values, n=100)
    return {"p50": round(q[49], 2), "p95": round(q[94], 2), "p99": round(q[98], 2)}


async def socket_ttfc(ws: websockets.ClientConnection, question: str) -> float:
    sent = time.perf_counter()
    await ws.send(json.dumps({"type": "ask", "question": question, "conversation_id": None}))
    first = None
    while True:
        message = json.loads(await asyncio.wait_for(ws.recv(), 60))
        if message["type"] == "token" and first is None:
            first = time.perf_counter()
        elif message["type"] == "error":
            raise RuntimeError(f"socket error: {message}")
        elif message["type"] == "done":
            assert first is not None, "an answer without content"
            return (first - sent) * 1000


async def api_ttfc(http: httpx.AsyncClient, url: str, key: str, question: str) -> float:
    sent_wall = time.monotonic()
    async with http.stream(
        "POST", url, json=ask_body(question), headers={"Authorization": f"Bearer {key}"}
    ) as response:
        if response.status_code != 200:
            raise RuntimeError(f"API error {response.status_code}: {(await response.aread())[:200]!r}")
        first, error = await first_content_and_rest(response)
    if error or first is None:
        raise RuntimeError(f"API stream error {error!r}")
    return (first - sent_wall) * 1000


async def run(args: argparse.Namespace) -> dict[str, object]:
    env = env_from_dotenv()
    env["POLICYDESK_CHAT_RATE_LIMIT_PER_MINUTE"] = "1000000"
    env["POLICYDESK_LOG_LEVEL"] = "WARNING"
    fake = fake_llm_start(env, tokens_per_second=0, repeat=1, first_token_delay=0, answer_mode=args.mode)
    password = secrets.token_urlsafe(16)
    ensure_user(env, password)
    key = api_key_create(env)
    daphnes = start_daphnes(env, 1)
    port = daphnes[0][1]
    questions = [q.strip() for q in Path(args.questions_file).read_text().splitlines() if q.strip()]
    timings: dict[str, list[float]] = {"socket": [], "api": []}
    try:
        cookie = login(port, password)
        headers = {"Cookie": cookie, "Origin": f"http://127.0.0.1:{port}"}
        url = f"http://127.0.0.1:{port}/v1/chat/completions"
        async with (
            websockets.connect(
                f"ws://127.0.0.1:{port}/ws/chat/", additional_headers=headers, max_size=2**22
            ) as ws,
            httpx.AsyncClient(timeout=60) as http,
        ):
            for i in range(args.questions + WARM_UP):
                question = questions[i % len(questions)]
                order = ("socket", "api") if i % 2 == 0 else ("api", "socket")
                for path in order:
                    measured = (
                        socket_ttfc(ws, question) if path == "socket" else api_ttfc(http, url, key, question)
                    )
                    ms = await asyncio.wait_for(measured, 60)  # a stuck answer fails the run, loudly
                    if i >= WARM_UP:
                        timings[path].append(ms)
    finally:
        daphnes[0][0].send_signal(signal.SIGTERM)
        daphnes[0][0].wait(20)
        api_key_revoke(env, key)
        fake.terminate()
        fake.wait(10)
    socket, api = quantiles(timings["socket"]), quantiles(timings["api"])
    return {
        "questions": args.questions,
        "model": f"fake (fast), {args.mode} mode",
        "socket_first_content_ms": socket,
        "api_first_content_ms": api,
        "api_overhead_ms": {
            "p95_difference": round(api["p95"] - socket["p95"], 2),
            "p50_difference": round(api["p50"] - socket["p50"], 2),
            "per_question": quantiles(
                [a - s for a, s in zip(timings["api"], timings["socket"], strict=True)]
            ),
        },
    }


if __name__ == "__main__":
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--questions", type=int, default=200)
    parser.add_argument("--questions-file", default=str(DEFAULT_QUESTIONS))
    parser.add_argument("--mode", choices=("evidence", "generate"), default="evidence")
    print(json.dumps(asyncio.run(run(parser.parse_args())), indent=2))
