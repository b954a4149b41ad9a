"""Fault run: the whole app under `make run`'s supervisor, one fault after another, then the
records counted.

    make up && .venv/bin/python -m bench.fault_run

Starts `python -m devserver run` on port 8123 (it reuses the services `make up` started
in .data), logs a user in over HTTP and asks over real WebSockets. Faults:

  llm_killed        the local LLM runtime gets SIGKILL at the answer's first token
  redis_killed      Redis gets SIGKILL between answers
  postgres_killed   PostgreSQL gets SIGQUIT (immediate shutdown) at an answer's first token
  worker_killed     the Celery worker gets SIGKILL while it ingests a large document
  ask_then_stop     stop sent straight after ask
  socket_closed     the socket is closed at the first token

For each: whether the interrupted answer still ended in `done`, and "chat back": seconds from
the fault until a new question is answered again. At the end: questions stored against
question audit events and pending hand-offs (counted before and after, so older history does
not count), `audit_verify`, and documents not ready 120 s after the worker was killed.
Prints one JSON object. Stops everything it started (and the embedded services) at the end.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import secrets
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import psutil
import websockets

from bench.ws_load import ROOT, ensure_user, env_from_dotenv, login

PORT = 8123
DATA = ROOT / ".data"
QUESTION = "How many days of paid annual leave do full-time employees receive?"
CHAT_BACK_TIMEOUT = 90.0


def manage(env: dict[str, str], *args: str) -> str:
    done = subprocess.run(
        [sys.executable, "manage.py", *args], cwd=ROOT, env=env, check=True, capture_output=True, text=True
    )
    return done.stdout


COUNTS = (
    "from chat.models import Message, PendingAnswer; from audit.models import AuditEvent; import json;"
    "print(json.dumps([Message.objects.filter(role='user').count(),"
    " AuditEvent.objects.filter(kind='question').count(), PendingAnswer.objects.count()]))"
)


def counts(env: dict[str, str]) -> list[int]:
    return list(json.loads(manage(env, "shell", "-c", COUNTS).strip().splitlines()[-1]))


def pid_in(path: Path) -> int:
    return int(path.read_text().split()[0])


def worker_pids() -> list[int]:
    """The Celery worker's processes (main and pool children) started by the runner."""
    found = []
    for process in psutil.process_iter(["pid", "cmdline"]):
        cmdline = " ".join(process.info["cmdline"] or [])
        if "celery" in cmdline and " worker" in cmdline and "ingestion" in cmdline:
            found.append(process.info["pid"])
    return found


async def ask(
    cookie: str, *, on_first_token: Any = None, stop_at_once: bool = False, close_at_first: bool = False
) -> str:
    """One question; returns the type of the last message ("done", "error", or "closed")."""
    headers = {"Cookie": cookie, "Origin": f"http://127.0.0.1:{PORT}"}
    async with websockets.connect(
        f"ws://127.0.0.1:{PORT}/ws/chat/", additional_headers=headers, open_timeout=10
    ) as ws:
        await ws.send(json.dumps({"type": "ask", "question": QUESTION, "conversation_id": None}))
        if stop_at_once:
            await ws.send(json.dumps({"type": "stop"}))
        while True:
            try:
                # A stopped answer sends nothing more: its record is written all the same.
                message = json.loads(await asyncio.wait_for(ws.recv(), 3 if stop_at_once else 120))
            except websockets.ConnectionClosed:
                return "closed"
            except TimeoutError:
                if stop_at_once:
                    return "stopped"
                raise
            if message["type"] == "token" and on_first_token is not None:
                on_first_token()
                on_first_token = None
            if message["type"] == "token" and close_at_first:
                await ws.close()
                return "closed"
            if message["type"] in ("done", "error"):
                return str(message["type"])


async def chat_back(cookie: str, since: float) -> float | None:
    """Seconds from `since` until a question is answered with `done` again."""
    while time.monotonic() - since < CHAT_BACK_TIMEOUT:
        with contextlib.suppress(Exception):
            if await asyncio.wait_for(ask(cookie), 60) == "done":
                return round(time.monotonic() - since, 1)
        await asyncio.sleep(1.0)
    return None


def kill(pid: int, sig: int) -> float:
    os.kill(pid, sig)
    return time.monotonic()


async def faults(cookie: str, env: dict[str, str]) -> dict[str, dict[str, object]]:
    results: dict[str, dict[str, object]] = {}
    at: dict[str, float] = {}

    def killer(name: str, path: Path, sig: int) -> Any:
        return lambda: at.__setitem__(name, kill(pid_in(path), sig))

    # LLM killed at the first token: the answer still ends, the runtime is restarted.
    end = await ask(cookie, on_first_token=killer("llm", DATA / "llm" / "llm.pid", signal.SIGKILL))
    results["llm_killed"] = {"answer_ended": end, "chat_back_s": await chat_back(cookie, at["llm"])}
    # Redis killed between answers.
    started = kill(pid_in(DATA / "redis" / "redis.pid"), signal.SIGKILL)
    results["redis_killed"] = {"chat_back_s": await chat_back(cookie, started)}
    # PostgreSQL shut down immediately at the first token: the answer is recorded once it is back.
    end = await ask(cookie, on_first_token=killer("pg", DATA / "pg" / "postmaster.pid", signal.SIGQUIT))
    results["postgres_killed"] = {"answer_ended": end, "chat_back_s": await chat_back(cookie, at["pg"])}
    results["ask_then_stop"] = {"answer_ended": await ask(cookie, stop_at_once=True)}
    results["socket_closed"] = {"answer_ended": await ask(cookie, close_at_first=True)}
    results["worker_killed"] = await worker_fault(env)
    return results


async def worker_fault(env: dict[str, str]) -> dict[str, object]:
    big = DATA / "fault-run-handbook.md"
    paragraphs = [
        f"## Section {i}\n\nRule {i}: requests go through the portal within {i % 9 + 1} days."
        for i in range(1500)
    ]
    big.write_text(
        "---\ntitle: Fault run handbook " + secrets.token_hex(4) + "\n---\n" + "\n\n".join(paragraphs)
    )
    manage(env, "ingest", str(big))  # queued for the Celery worker
    status = "queued"
    deadline = time.monotonic() + 60
    while status != "processing" and time.monotonic() < deadline:
        await asyncio.sleep(0.5)
        status = document_status(env, big.name)
    for pid in worker_pids():
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    killed = time.monotonic()
    while time.monotonic() - killed < 300:
        status = document_status(env, big.name)
        if status in ("ready", "failed"):
            break
        await asyncio.sleep(2)
    return {
        "status_when_killed": "processing",
        "final_status": status,
        "ready_after_s": round(time.monotonic() - killed, 1),
    }


def document_status(env: dict[str, str], name: str) -> str:
    code = (
        "from rag.models import Document;"
        f"d=Document.objects.filter(source_path__endswith={name!r}).order_by('-id').first();"
        "print(d.status if d else 'none')"
    )
    return manage(env, "shell", "-c", code).strip().splitlines()[-1]


def wait_ready(timeout: float = 240) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(f"http://127.0.0.1:{PORT}/readyz", timeout=3).status_code == 200:
                return
        time.sleep(1)
    raise SystemExit("the app did not become ready")


def main() -> None:
    log = (DATA / "fault-run.log").open("wb")
    # The runner gets the plain environment: with .env's URLs in it, it would take the
    # embedded services for external ones and not restart them.
    runner_env = {k: v for k, v in os.environ.items() if not k.startswith("POLICYDESK_")}
    runner_env.update({"POLICYDESK_PORT": str(PORT), "POLICYDESK_LOG_LEVEL": "WARNING"})
    runner = subprocess.Popen(
        [sys.executable, "-m", "devserver", "run"],
        cwd=ROOT, env=runner_env, stdout=log, stderr=subprocess.STDOUT,
    )  # fmt: skip
    try:
        wait_ready()
        env = env_from_dotenv()  # the settings the runner wrote
        password = secrets.token_urlsafe(16)
        ensure_user(env, password)
        before = counts(env)
        cookie = login(PORT, password)
        results = asyncio.run(faults(cookie, env))
        time.sleep(3)  # the last stopped answers are stored
        after = counts(env)
        verify = json.loads(manage(env, "audit_verify").strip().splitlines()[-1])
    finally:
        runner.send_signal(signal.SIGINT)
        with contextlib.suppress(subprocess.TimeoutExpired):
            runner.wait(60)
    questions, events, pending = (
        a - b if i < 2 else a for i, (a, b) in enumerate(zip(after, before, strict=True))
    )
    print(json.dumps({
        "faults": results,
        "questions_stored": questions, "question_events": events, "pending_hand_offs": pending,
        "records_lost": questions - events - pending,
        "audit_chain_valid": verify["valid"],
    }, indent=2))  # fmt: skip


if __name__ == "__main__":
    main()
