"""`make run`: the whole app on embedded services, in the foreground, until Ctrl-C."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

from devserver.embedded import (
    BASE_DIR,
    embedded_env,
    logs_dir,
    manage,
    services_down,
    services_status,
    services_up,
    write_env_file,
)
from devserver.supervise import Supervisor

SERVICES_CHECK_SECONDS = 5.0


def run_app(*, data_dir: Path, env_file: Path) -> int:
    host = os.environ.get("POLICYDESK_HOST", "127.0.0.1")
    port = os.environ.get("POLICYDESK_PORT", "8000")
    supervisor: Supervisor | None = None
    stopping = False

    def stop(*_: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)
    try:
        env = _services_started(data_dir=data_dir, env_file=env_file)
        _database_prepared(env=env, log=logs_dir(data_dir) / "setup.log")
        supervisor = _app_supervisor(env=env, data_dir=data_dir, host=host, port=port)
        supervisor.start_all()
        _announce(supervisor=supervisor, data_dir=data_dir, url=f"http://{host}:{port}/")
        last_services_check = time.monotonic()
        while not stopping:
            supervisor.check()
            if time.monotonic() - last_services_check >= SERVICES_CHECK_SECONDS:
                last_services_check = time.monotonic()
                _restart_dead_services(data_dir)
            time.sleep(0.5)
        return 0
    except subprocess.CalledProcessError as exc:
        print(f"error: {' '.join(map(str, exc.cmd[1:3]))} failed (see {logs_dir(data_dir)})", file=sys.stderr)
        return 1
    finally:
        if supervisor is not None:
            supervisor.stop_all()
        stopped = services_down(data_dir=data_dir)
        started = [s.name for s in supervisor.processes] if supervisor is not None else []
        print("stopped: " + ", ".join(started + stopped), flush=True)


def _services_started(*, data_dir: Path, env_file: Path) -> dict[str, str]:
    """Start the embedded services; returns the environment the app's processes run with."""
    print("starting the embedded services (PostgreSQL, Redis, local LLM)...", flush=True)
    urls = services_up(data_dir=data_dir)
    write_env_file(env_file, urls.as_env())
    env = embedded_env(env_file)
    # Daphne, the worker and beat write metrics to files here; /metrics adds them up.
    metrics_dir = data_dir / "metrics"
    shutil.rmtree(metrics_dir, ignore_errors=True)
    metrics_dir.mkdir(parents=True)
    env.setdefault("PROMETHEUS_MULTIPROC_DIR", str(metrics_dir))
    return env


def _database_prepared(*, env: dict[str, str], log: Path) -> None:
    print(f"preparing the database and static files (log: {log})...", flush=True)
    manage("migrate", "--noinput", env=env, log=log)
    # Vectors left by another POLICYDESK_EMBEDDER are re-embedded (a no-op when they match).
    manage("reembed", env=env, log=log)
    manage("seed_demo", env=env, log=log)
    # WhiteNoise serves from the finders, but warns about a STATIC_ROOT that does not exist.
    manage("collectstatic", "--noinput", env=env, log=log)


def _app_supervisor(*, env: dict[str, str], data_dir: Path, host: str, port: str) -> Supervisor:
    supervisor = Supervisor(env=env, cwd=BASE_DIR, log_dir=logs_dir(data_dir))
    python = sys.executable
    supervisor.add("daphne", [python, "-m", "core.daphne", "-b", host, "-p", port, "config.asgi:application"])
    supervisor.add("celery worker", [python, "-m", "celery", "-A", "config", "worker", "-Q", "ingestion,housekeeping",
                                     "--concurrency", "1", "--loglevel", "INFO"])  # fmt: skip
    supervisor.add("celery beat", [python, "-m", "celery", "-A", "config", "beat", "--loglevel", "INFO",
                                   "--schedule", str(data_dir / "celerybeat-schedule")])  # fmt: skip
    return supervisor


def _announce(*, supervisor: Supervisor, data_dir: Path, url: str) -> None:
    for supervised in supervisor.processes:
        print(f"  {supervised.name:14} log: {supervisor.log_file(supervised)}", flush=True)
    print(f"\nPolicyDesk is running at {url}  (Ctrl-C stops everything)", flush=True)
    logins = data_dir / "demo-logins.txt"
    if logins.exists():
        print(logins.read_text(), flush=True)


def _restart_dead_services(data_dir: Path) -> None:
    """An embedded service whose process is gone is started again, on its old port."""
    dead = [name for name, pid in services_status(data_dir=data_dir).items() if pid is None]
    if dead and any(_embedded_service(data_dir, name) for name in dead):
        print(f"restarting embedded services: {', '.join(dead)}", file=sys.stderr, flush=True)
        services_up(data_dir=data_dir)


def _embedded_service(data_dir: Path, name: str) -> bool:
    """Whether `make run` started this one (an external service is not ours to restart)."""
    return (data_dir / {"postgres": "pg"}.get(name, name)).is_dir()
