from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import httpx
import psutil
import psycopg
import redis

from devserver.embedded import (
    ServiceUrls,
    process_alive,
    read_pid,
    redis_start,
    redis_stop,
    services_status,
    temporary_services,
)

BASE_DIR = Path(__file__).resolve().parent.parent


def test_the_embedded_services_start_answer_and_stop_without_leaving_processes() -> None:
    with temporary_services(with_llm=True) as urls:
        assert isinstance(urls, ServiceUrls) and urls.database_url and urls.redis_url and urls.llm_url
        with psycopg.connect(urls.database_url) as conn:
            conn.execute("CREATE EXTENSION IF NOT EXISTS vector")
            assert conn.execute("SELECT '[3,4]'::vector <-> '[0,0]'::vector").fetchone() == (5.0,)
        client = redis.Redis.from_url(urls.redis_url)
        assert client.ping() is True
        client.close()
        models = httpx.get(f"{urls.llm_url}/models", timeout=5).json()
        assert models["data"], models
        data_dir = Path(urls.database_url.split("host=")[1]).parent
        pids = [pid for pid in services_status(data_dir=data_dir).values() if pid]
        assert len(pids) == 3
    assert not any(process_alive(pid) for pid in pids)
    assert not data_dir.exists()


def test_a_stale_pid_file_is_detected_and_removed(tmp_path: Path) -> None:
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    pid_file = tmp_path / "x.pid"
    pid_file.write_text(str(dead.pid))
    assert read_pid(pid_file) is None
    assert not pid_file.exists()


def test_redis_starts_again_after_a_killed_run(tmp_path: Path) -> None:
    redis_dir = tmp_path / "r"
    first = redis_start(redis_dir=redis_dir)
    pid = read_pid(redis_dir / "redis.pid")
    assert pid is not None
    os.kill(pid, signal.SIGKILL)
    wait_gone(pid)
    try:
        second = redis_start(redis_dir=redis_dir)
        assert redis.Redis.from_url(second).ping()
        assert read_pid(redis_dir / "redis.pid") not in (None, pid)
        # The same port: processes still holding the old URL reconnect without a restart.
        assert second == first
    finally:
        redis_stop(redis_dir=redis_dir)
    assert read_pid(redis_dir / "redis.pid") is None


def test_up_and_down_are_idempotent_and_write_the_env_file(tmp_path: Path) -> None:
    data_dir = Path("/tmp") / f"pdt{os.getpid()}"
    env = {k: v for k, v in os.environ.items() if not k.startswith("POLICYDESK_")}
    command = [sys.executable, "-m", "devserver"]
    try:
        for _ in range(2):
            result = subprocess.run(
                [*command, "up", "--data-dir", str(data_dir), "--env-file", str(tmp_path / ".env")],
                cwd=BASE_DIR, env=env, capture_output=True, text=True, timeout=180,
            )  # fmt: skip
            assert result.returncode == 0, result.stderr
        values = dict(line.split("=", 1) for line in (tmp_path / ".env").read_text().splitlines())
        assert values["POLICYDESK_DATABASE_URL"].endswith(f"host={data_dir}/pg")
        assert len(values["POLICYDESK_SECRET_KEY"]) > 40
        with psycopg.connect(values["POLICYDESK_DATABASE_URL"]) as conn:
            # `make up` leaves the database migrated: `manage.py ingest` works right after it.
            assert conn.execute("SELECT to_regclass('rag_document') IS NOT NULL").fetchone() == (True,)
        port = int(values["POLICYDESK_REDIS_URL"].rsplit(":", 1)[1].split("/")[0])
        socket.create_connection(("127.0.0.1", port), timeout=2).close()
        pids = [pid for pid in services_status(data_dir=data_dir).values() if pid]
        assert len(pids) == 3
    finally:
        down = subprocess.run([*command, "down", "--data-dir", str(data_dir)], cwd=BASE_DIR, env=env,
                              capture_output=True, text=True, timeout=120)  # fmt: skip
        subprocess.run(["rm", "-rf", str(data_dir)], check=False)
    assert down.returncode == 0
    assert "postgres" in down.stdout
    assert not any(process_alive(pid) for pid in pids)


def wait_gone(pid: int) -> None:
    with contextlib.suppress(psutil.NoSuchProcess):
        psutil.Process(pid).wait(5)
