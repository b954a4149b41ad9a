"""Load test: N simulated employees on real WebSockets against real Daphne processes.

    make up                                   # PostgreSQL + Redis (+ local LLM)
    .venv/bin/python -m bench.ws_load --users 200 --duration 60 --processes 1 --fake-llm

Starts `--processes` Daphne processes (ports from 8101) on the services in .env, optionally
backed by the fake OpenAI-compatible LLM (`--fake-llm`, `--tokens-per-second`), logs one load
user in, spreads the sockets round robin over the processes (what nginx does in production),
and lets each simulated employee ask questions from `--questions` until `--duration` ends.

Reports time to first token p50/p95/p99, answer time, tokens/s, errors by code, the Daphne
processes' RSS (their redaction workers included), and memory per idle connection (RSS growth
over `--idle` idle sockets).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import re
import secrets
import signal
import subprocess
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import psutil
import websockets

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_QUESTIONS = ROOT / "bench" / "questions.txt"


@dataclass
class Stats:
    ttft: list[float] = field(default_factory=list)
    answer: list[float] = field(default_factory=list)
    tokens: int = 0
    frames: int = 0
    errors: Counter[str] = field(default_factory=Counter)
    answers: int = 0
    streaming: int = 0  # answers between their first token and done, right now
    samples: list[int] = field(default_factory=list)


def rss(pids: list[int]) -> int:
    """Resident memory of the Daphne processes and their children (the redaction workers)."""
    total = 0
    for pid in pids:
        process = psutil.Process(pid)
        for member in [process, *process.children(recursive=True)]:
            with contextlib.suppress(psutil.NoSuchProcess):
                total += member.memory_info().rss
    return total


def pct(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return round(ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000, 1)


def env_from_dotenv() -> dict[str, str]:
    env = dict(os.environ)
    dotenv = ROOT / ".env"
    if dotenv.exists():
        for line in dotenv.read_text().splitlines():
            key, sep, value = line.partition("=")
            if sep and not line.startswith("#"):
                env.setdefault(key.strip(), value.strip())
    return env


def ensure_user(env: dict[str, str], password: str) -> None:
    password_file = ROOT / ".data" / "bench-password"
    password_file.parent.mkdir(exist_ok=True)
    password_file.write_text(password)
    code = (
        "from django.contrib.auth.models import User;"
        "from accounts.services import user_create;"
        "from accounts.roles import Role;"
        "u=User.objects.filter(username='loadtest').first();"
        f"u.set_password({password!r}) or u.save() if u else "
        f"user_create(username='loadtest', role=Role.EMPLOYEE, password={password!r}, validate=False)"
    )
    subprocess.run([sys.executable, "manage.py", "shell", "-c", code], cwd=ROOT, env=env, check=True)
    password_file.unlink()


def fake_llm_start(
    env: dict[str, str],
    *,
    tokens_per_second: float,
    repeat: int,
    first_token_delay: float = 0.05,
    answer_mode: str | None = None,
    port: int = 9100,
) -> subprocess.Popen[bytes]:
    """bench.fake_llm in a process, and `env` pointed at it as the only backend."""
    process = subprocess.Popen(
        [sys.executable, "-m", "bench.fake_llm", "--port", str(port),
         "--tokens-per-second", str(tokens_per_second), "--first-token-delay", str(first_token_delay),
         "--repeat", str(repeat)],
        cwd=ROOT, stdout=subprocess.DEVNULL,
    )  # fmt: skip
    backend = {"name": "fake", "kind": "openai", "base_url": f"http://127.0.0.1:{port}/v1",
               "model": "fake-model", "max_concurrency": 10000, "first_token_timeout": 60, "context_tokens": 32768}  # fmt: skip
    if answer_mode:
        backend["answer_mode"] = answer_mode
    env["POLICYDESK_LLM_BACKENDS"] = json.dumps([backend])
    time.sleep(1.5)
    return process


def start_daphnes(
    env: dict[str, str], count: int, *, ready_timeout: float = 180.0
) -> list[tuple[subprocess.Popen[bytes], int]]:
    processes = []
    for i in range(count):
        port = 8101 + i
        cmd = [
            sys.executable,
            "-m",
            "core.daphne",
            "-b",
            "127.0.0.1",
            "-p",
            str(port),
            "config.asgi:application",
        ]
        processes.append((subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.DEVNULL), port))
    for _, port in processes:
        deadline = time.monotonic() + ready_timeout  # models load in about a minute on a busy machine
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.5)
        else:
            raise SystemExit(f"daphne on {port} never became ready")
    return processes


def login(port: int, password: str) -> str:
    with httpx.Client(base_url=f"http://127.0.0.1:{port}", follow_redirects=False) as client:
        page = client.get("/accounts/login/")
        token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.text)
        assert token, "no CSRF token on the login page"
        response = client.post(
            "/accounts/login/",
            data={"username": "loadtest", "password": password, "csrfmiddlewaretoken": token.group(1)},
            headers={"Referer": f"http://127.0.0.1:{port}/accounts/login/"},
        )
        assert response.status_code == 302, f"login failed ({response.status_code})"
        return "; ".join(f"{k}={v}" for k, v in client.cookies.items())


async def employee(port: int, cookie: str, questions: list[str], stats: Stats, deadline: float) -> None:
    headers = {"Cookie": cookie, "Origin": f"http://127.0.0.1:{port}"}
    try:
        async with websockets.connect(
            f"ws://127.0.0.1:{port}/ws/chat/", additional_headers=headers, open_timeout=30, max_size=2**22
        ) as ws:
            while time.monotonic() < deadline:
                sent = time.monotonic()
                await ws.send(
                    json.dumps({"type": "ask", "question": random.choice(questions), "conversation_id": None})
                )
                first = None
                while True:
                    message = json.loads(await asyncio.wait_for(ws.recv(), 120))
                    if message["type"] == "token":
                        # Tokens that arrive together share a frame; the fake model's tokens
                        # each start with a space (bench.fake_llm.split_tokens).
                        stats.tokens += max(1, message["text"].count(" "))
                        stats.frames += 1
                        if first is None:
                            first = time.monotonic()
                            stats.ttft.append(first - sent)
                            stats.streaming += 1
                    elif message["type"] == "done":
                        stats.answer.append(time.monotonic() - sent)
                        stats.answers += 1
                        stats.streaming -= first is not None
                        break
                    elif message["type"] == "error":
                        stats.errors[message["code"]] += 1
                        await asyncio.sleep(1)
                        break
    except Exception as exc:
        stats.errors[type(exc).__name__] += 1


async def idle_memory(ports: list[int], cookie: str, pids: list[int], count: int) -> float | None:
    if count <= 0:
        return None
    before = rss(pids)
    sockets = []
    for i in range(count):
        port = ports[i % len(ports)]
        headers = {"Cookie": cookie, "Origin": f"http://127.0.0.1:{port}"}
        sockets.append(
            await websockets.connect(f"ws://127.0.0.1:{port}/ws/chat/", additional_headers=headers)
        )
    await asyncio.sleep(2)
    after = rss(pids)
    for sock in sockets:
        await sock.close()
    return round((after - before) / count / 1024, 1)


async def run(args: argparse.Namespace) -> dict[str, object]:
    env = env_from_dotenv()
    env["POLICYDESK_CHAT_RATE_LIMIT_PER_MINUTE"] = "1000000"
    env["POLICYDESK_METRICS_ENABLED"] = "true" if args.metrics else "false"
    env["POLICYDESK_LOG_LEVEL"] = "INFO" if args.metrics else "WARNING"
    fake_proc = None
    if args.fake_llm:
        fake_proc = fake_llm_start(env, tokens_per_second=args.tokens_per_second, repeat=args.repeat)
    password = secrets.token_urlsafe(16)
    ensure_user(env, password)
    daphnes = start_daphnes(env, args.processes)
    ports = [port for _, port in daphnes]
    pids = [proc.pid for proc, _ in daphnes]
    try:
        cookie = login(ports[0], password)
        questions = [q.strip() for q in Path(args.questions).read_text().splitlines() if q.strip()]
        idle_kib = await idle_memory(ports, cookie, pids, args.idle)
        stats = Stats()
        deadline = time.monotonic() + args.duration
        tasks = []
        for i in range(args.users):
            tasks.append(
                asyncio.create_task(employee(ports[i % len(ports)], cookie, questions, stats, deadline))
            )
            await asyncio.sleep(args.ramp / max(1, args.users))
        peak_rss = 0
        while not all(t.done() for t in tasks):
            peak_rss = max(peak_rss, rss(pids))
            if time.monotonic() < deadline:
                stats.samples.append(stats.streaming)
            await asyncio.sleep(0.5)
        elapsed = args.duration + args.ramp
        return {
            "users": args.users,
            "processes": args.processes,
            "duration_s": args.duration,
            "metrics_and_logs": args.metrics,
            "answers": stats.answers,
            "concurrent_streams": {
                "mean": round(sum(stats.samples) / max(1, len(stats.samples)), 1),
                "max": max(stats.samples, default=0),
            },
            "ttft_ms": {
                "p50": pct(stats.ttft, 0.5),
                "p95": pct(stats.ttft, 0.95),
                "p99": pct(stats.ttft, 0.99),
            },
            "answer_ms": {"p50": pct(stats.answer, 0.5), "p95": pct(stats.answer, 0.95)},
            "tokens_per_s": round(stats.tokens / elapsed, 1),
            "token_frames_per_s": round(stats.frames / elapsed, 1),
            "errors": dict(stats.errors),
            "server_peak_rss_mib": round(peak_rss / 2**20, 1),
            "idle_connection_kib": idle_kib,
        }
    finally:
        for proc, _ in daphnes:
            proc.send_signal(signal.SIGTERM)
        for proc, _ in daphnes:
            proc.wait(20)
        if fake_proc:
            fake_proc.terminate()
            fake_proc.wait(10)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--users", type=int, default=50)
    parser.add_argument("--duration", type=float, default=30.0, help="seconds of asking after the ramp")
    parser.add_argument("--ramp", type=float, default=10.0, help="seconds over which users join")
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
        "--idle", type=int, default=100, help="idle sockets for the memory-per-connection figure"
    )
    parser.add_argument(
        "--no-metrics", dest="metrics", action="store_false", help="metrics and INFO logs off"
    )
    print(json.dumps(asyncio.run(run(parser.parse_args())), indent=2))


if __name__ == "__main__":
    main()
