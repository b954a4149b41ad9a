"""`make run`: the whole app on embedded services, in the foreground, until Ctrl-C."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

from config.embedded import BASE_DIR, embedded_env, manage, services_down, services_up, write_env_file


def run_app(*, data_dir: Path, env_file: Path) -> int:
    host = os.environ.get("POLICYDESK_HOST", "127.0.0.1")
    port = os.environ.get("POLICYDESK_PORT", "8000")
    children: list[subprocess.Popen[bytes]] = []
    stopping = False

    def stop(*_: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)
    try:
        print("starting embedded services (PostgreSQL, Redis, local LLM)...", flush=True)
        urls = services_up(data_dir=data_dir)
        write_env_file(env_file, urls.as_env())
        env = embedded_env(env_file)
        # Daphne, the worker and beat write metrics to files here; /metrics adds them up.
        metrics_dir = data_dir / "metrics"
        shutil.rmtree(metrics_dir, ignore_errors=True)
        metrics_dir.mkdir(parents=True)
        env.setdefault("PROMETHEUS_MULTIPROC_DIR", str(metrics_dir))
        manage("migrate", "--noinput", env=env)
        # Vectors left by another POLICYDESK_EMBEDDER are re-embedded (a no-op when they match).
        manage("reembed", env=env)
        manage("seed_demo", env=env)
        commands = [
            [sys.executable, "-m", "config.daphne", "-b", host, "-p", port, "config.asgi:application"],
            [sys.executable, "-m", "celery", "-A", "config", "worker", "-Q", "ingestion,housekeeping",
             "--concurrency", "1", "--loglevel", "INFO"],
            [sys.executable, "-m", "celery", "-A", "config", "beat", "--loglevel", "INFO",
             "--schedule", str(data_dir / "celerybeat-schedule")],
        ]  # fmt: skip
        for command in commands:
            children.append(subprocess.Popen(command, cwd=BASE_DIR, env=env))
        print(f"\nPolicyDesk is running at http://{host}:{port}/  (Ctrl-C stops everything)", flush=True)
        logins = data_dir / "demo-logins.txt"
        if logins.exists():
            print(logins.read_text(), flush=True)
        while not stopping:
            if any(child.poll() is not None for child in children):
                print("a PolicyDesk process exited; stopping", file=sys.stderr)
                return 1
            time.sleep(0.5)
        return 0
    except subprocess.CalledProcessError as exc:
        print(f"error: {' '.join(map(str, exc.cmd[1:3]))} failed", file=sys.stderr)
        return 1
    finally:
        for child in children:
            if child.poll() is None:
                child.terminate()
        for child in children:
            try:
                child.wait(15)
            except subprocess.TimeoutExpired:
                child.kill()
        stopped = services_down(data_dir=data_dir)
        print("stopped: " + ", ".join(["daphne", "celery"] * bool(children) + stopped), flush=True)
