"""Load test: N simulated tools streaming answers from the OpenAI-compatible API over real HTTP,
against real Daphne processes (the API's sibling of bench/ws_load.py, with its setup and report).

    make up && .venv/bin/python manage.py seed_demo
    .venv/bin/python -m bench.api_load --users 200 --duration 40 --ramp 15 --fake-llm \\
        --tokens-per-second 20 --repeat 15

Each simulated tool POSTs `/v1/chat/completions` with `stream: true` (an API key of the load user,
created for the run and revoked after it), reads the server-sent events, and asks again as soon
as `[DONE]` arrives, until `--duration` ends. Time to first content is from sending the request
to the first chunk with content. Requests are spread round robin over the processes.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import secrets
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx

from bench.ws_load import (
    DEFAULT_QUESTIONS,
    ROOT,
    Stats,
    ensure_user,
    env_from_dotenv,
    fake_llm_start,
    pct,
    rss,
    start_daphnes,
)


def api_key_create(env: dict[str, str], username: str = "loadtest") -> str:
    """A key for the run, printed once by the management command (its prefix revokes it)."""
    result = subprocess.run(
        [sys.executable, "manage.py", "create_api_key", username, "--name", "bench"],
        cwd=ROOT, env=env, check=True, capture_output=True, text=True,
    )  # fmt: skip
    return result.stdout.strip()


def api_key_revoke(env: dict[str, str], key: str) -> None:
    subprocess.run(
        [sys.executable, "manage.py", "revoke_api_key", key[:11]],
        cwd=ROOT, env=env, check=True, capture_output=True,
    )  # fmt: skip


def ask_body(question: str) -> dict[str, object]:
    return {"model": "policydesk", "stream": True, "messages": [{"role": "user", "content": question}]}


async def first_content_and_rest(
    response: httpx.Response, stats: Stats | None = None
) -> tuple[float | None, str]:
    """Reads one streamed answer: when its first content arrived (monotonic), and an error code."""
    first = None
    async for line in response.aiter_lines():
        if not line.startswith("data: "):
            continue
        data = line[6:]
        if data == "[DONE]":
            break
        chunk = json.loads(data)
        if "error" in chunk:
            return first, str(chunk["error"].get("code"))
        content = chunk["choices"][0]["delta"].get("content") if chunk["choices"] else None
        if content:
            if first is None:
                first = time.monotonic()
                if stats is not None:
                    stats.streaming += 1
            if stats is not None:
                stats.tokens += max(1, content.count(" "))  # the fake model's tokens start with a space
                stats.frames += 1
    return first, ""


async def tool(
    http: httpx.AsyncClient, port: int, key: str, questions: list[str], stats: Stats, deadline: float
) -> None:
    url = f"http://127.0.0.1:{port}/v1/chat/completions"
    headers = {"Authorization": f"Bearer {key}"}
    while time.monotonic() < deadline:
        sent = time.monotonic()
        first = None
        try:
            async with http.stream(
                "POST", url, json=ask_body(random.choice(questions)), headers=headers
            ) as response:
                if response.status_code != 200:
                    await response.aread()
                    stats.errors[f"http_{response.status_code}"] += 1
                    await asyncio.sleep(1)
                    continue
                first, error = await first_content_and_rest(response, stats)
            if first is not None:
                stats.ttft.append(first - sent)
                stats.streaming -= 1
            if error:
                stats.errors[error] += 1
                await asyncio.sleep(1)
                continue
            stats.answer.append(time.monotonic() - sent)
            stats.answers += 1
        except Exception as exc:
            stats.errors[type(exc).__name__] += 1
            await asyncio.sleep(1)


async def run(args: argparse.Namespace) -> dict[str, object]:
    env = env_from_dotenv()
    env["POLICYDESK_CHAT_RATE_LIMIT_PER_MINUTE"] = "1000000"
    env["POLICYDESK_METRICS_ENABLED"] = "true" if args.metrics else "false"
    env["POLICYDESK_LOG_LEVEL"] = "INFO" if args.metrics else "WARNING"
    fake_proc = None
    if args.fake_llm:
        fake_proc = fake_llm_start(env, tokens_per_second=args.tokens_per_second, repeat=args.repeat)
    ensure_user(env, secrets.token_urlsafe(16))
    key = api_key_create(env)
    daphnes = start_daphnes(env, args.processes)
    ports = [port for _, port in daphnes]
    pids = [proc.pid for proc, _ in daphnes]
    try:
        questions = [q.strip() for q in Path(args.questions).read_text().splitlines() if q.strip()]
        stats = Stats()
        limits = httpx.Limits(max_connections=args.users + 10, max_keepalive_connections=args.users + 10)
        async with httpx.AsyncClient(limits=limits, timeout=httpx.Timeout(120, connect=30)) as http:
            deadline = time.monotonic() + args.duration  # as bench/ws_load.py counts it, for comparison
            tasks = []
            for i in range(args.users):
                port = ports[i % len(ports)]
                tasks.append(asyncio.create_task(tool(http, port, key, questions, stats, deadline)))
                await asyncio.sleep(args.ramp / max(1, args.users))
            peak_rss = 0
            while not all(t.done() for t in tasks):
                peak_rss = max(peak_rss, rss(pids))
                if time.monotonic() < deadline:
                    stats.samples.append(stats.streaming)
                await asyncio.sleep(0.5)
        elapsed = args.duration + args.ramp
        return {
            "transport": "OpenAI-compatible API (SSE)",
            "users": args.users,
            "processes": args.processes,
            "duration_s": args.duration,
            "metrics_and_logs": args.metrics,
            "answers": stats.answers,
            "concurrent_streams": {
                "mean": round(sum(stats.samples) / max(1, len(stats.samples)), 1),
                "max": max(stats.samples, default=0),
            },
            "time_to_first_content_ms": {
                "p50": pct(stats.ttft, 0.5),
                "p95": pct(stats.ttft, 0.95),
                "p99": pct(stats.ttft, 0.99),
            },
            "answer_ms": {"p50": pct(stats.answer, 0.5), "p95": pct(stats.answer, 0.95)},
            "tokens_per_s": round(stats.tokens / elapsed, 1),
            "content_chunks_per_s": round(stats.frames / elapsed, 1),
            "errors": dict(stats.errors),
            "server_peak_rss_mib": round(peak_rss / 2**20, 1),
        }
    finally:
        for proc, _ in daphnes:
            proc.send_signal(signal.SIGTERM)
        for proc, _ in daphnes:
            proc.wait(20)
        api_key_revoke(env, key)
        if fake_proc:
            fake_proc.terminate()
            fake_proc.wait(10)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--users", type=int, default=50)
    parser.add_argument("--duration", type=float, default=30.0, help="seconds of asking after the ramp")
    parser.add_argument("--ramp", type=float, default=10.0, help="seconds over which tools join")
    parser.add_argument("--processes", type=int, default=1, help="Daphne processes to start")
    parser.add_argument(
        "--fake-llm", action="store_true", help="use bench.fake_llm instead of the configured LLM"
    )
    parser.add_argument("--tokens-per-second", type=float, default=20.0)
    parser.add_argument(
        "--repeat", type=int, default=3, help="fake answer length in copies of the sample text"
    )
    parser.add_argument("--questions", default=str(DEFAULT_QUESTIONS))
    parser.add_argument(
        "--no-metrics", dest="metrics", action="store_false", help="metrics and INFO logs off"
    )
    print(json.dumps(asyncio.run(run(parser.parse_args())), indent=2))


if __name__ == "__main__":
    main()
