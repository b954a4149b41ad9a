"""The whole app for browser tests: Daphne + Celery worker on free ports, on the test run's
PostgreSQL and Redis (its own database), with two real llama.cpp servers as LLM backends
(the first one is killed in scenario 4). Chromium is Debian's, driven by Playwright."""

from __future__ import annotations

import os
import secrets
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import psycopg
import pytest

from config.env import parse_database_url
from devserver.embedded import free_port
from tests.directory_servers import OIDCProvider
from tests.llm_servers import LocalLLMProcess

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "test-artifacts" / "e2e"
CHROMIUM = "/usr/bin/chromium"
PASSWORD = "e2e-" + secrets.token_urlsafe(12)
# Signs in through the OIDC provider's own page (scenario 10); an employee by group.
IDP_USER, IDP_PASSWORD = "nora", "idp-" + secrets.token_urlsafe(12)
# Plain text keeps markup verbatim (Markdown and HTML parsing drop tags at ingestion), so this
# passage really carries a <script> and an <img onerror> into pages and answers.
XSS_DOCUMENT = """Security notice: suspicious attachments

Never open attachments that contain code such as <script>alert("doc-xss")</script> or images like
<img src=x onerror=alert("img-xss")> from unknown senders. Report suspicious attachments to the
security team at once.
"""


@dataclass
class LiveApp:
    url: str
    env: dict[str, str]
    primary: LocalLLMProcess
    secondary: LocalLLMProcess
    processes: list[subprocess.Popen[bytes]] = field(default_factory=list)
    # The app's test clock (core/clock.py): empty means the real today; scenario 11 moves it.
    clock: Path | None = None

    def manage(self, *args: str) -> str:
        return subprocess.run(
            [sys.executable, "manage.py", *args],
            cwd=ROOT,
            env=self.env,
            check=True,
            capture_output=True,
            text=True,
        ).stdout


def _fresh_database(env: dict[str, str]) -> str:
    """A database of its own on the test run's server, so the app never sees pytest's."""
    base = env["POLICYDESK_DATABASE_URL"]
    name = "e2e_" + secrets.token_hex(4)
    db = parse_database_url(base)
    with psycopg.connect(
        dbname="postgres", user=db["USER"] or None, password=db["PASSWORD"] or None,
        host=db["HOST"] or None, port=db["PORT"] or None, autocommit=True,
    ) as conn:  # fmt: skip
        conn.execute(f'CREATE DATABASE "{name}"')
    path, _, query = base.partition("?")
    return path.rsplit("/", 1)[0] + "/" + name + ("?" + query if query else "")


def _wait_ready(url: str, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if httpx.get(url + "/readyz", timeout=3).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    raise RuntimeError(f"the app at {url} never became ready")


# Module scope: Playwright's sync API keeps an event loop running in the main thread while it
# is open, so it must be closed before any asyncio test runs (the e2e tests are ordered last).
@pytest.fixture(scope="module")
def live_app(
    local_llm: LocalLLMProcess, oidc_provider: OIDCProvider, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LiveApp]:
    if not Path(CHROMIUM).exists():
        if os.environ.get("CI"):
            pytest.fail(f"{CHROMIUM} is missing: .ci/run installs Debian's chromium")
        pytest.skip(f"{CHROMIUM} is missing (apt-get install chromium chromium-driver)")
    shutil.rmtree(ARTIFACTS, ignore_errors=True)
    ARTIFACTS.mkdir(parents=True)
    primary = LocalLLMProcess(threads=1)
    primary.start()
    env = {k: v for k, v in os.environ.items() if not k.startswith("DJANGO_")}
    port = free_port()
    backends = [
        {"name": "primary", "kind": "openai", "base_url": primary.url, "model": "smollm2", "max_tokens": 96,
         "context_tokens": 1536, "first_token_timeout": 20, "idle_timeout": 5, "temperature": 0.0},
        {"name": "secondary", "kind": "openai", "base_url": local_llm.url, "model": "smollm2", "max_tokens": 96,
         "context_tokens": 1536, "first_token_timeout": 20, "idle_timeout": 5, "temperature": 0.0},
    ]  # fmt: skip
    import json

    clock = tmp_path_factory.mktemp("clock") / "today"
    clock.write_text("")
    client_secret = secrets.token_urlsafe(24)
    oidc_provider.client_put(
        "policydesk-e2e",
        secret=client_secret,
        redirect_uris=[f"http://127.0.0.1:{port}/accounts/oidc/callback/"],
        logout_uris=[f"http://127.0.0.1:{port}/accounts/login/"],
    )
    oidc_provider.user_put(IDP_USER, password=IDP_PASSWORD, groups=["All Staff"])
    env.update(
        {
            "DJANGO_SETTINGS_MODULE": "config.settings",
            "POLICYDESK_ENV_FILE": "/dev/null",
            "POLICYDESK_LOCAL_HTTP": "true",  # served on http://127.0.0.1: cookies not Secure-only
            "POLICYDESK_DATABASE_URL": _fresh_database(env),
            "POLICYDESK_LLM_BACKENDS": json.dumps(backends),
            "POLICYDESK_LLM_BREAKER_COOLDOWN": "600",
            "POLICYDESK_CHAT_RATE_LIMIT_PER_MINUTE": "1000",
            "POLICYDESK_LOG_LEVEL": "WARNING",
            "POLICYDESK_REDACTION_PROCESSES": "1",  # answers redacted in a worker, as deployed
            "POLICYDESK_MEDIA_ROOT": str(tmp_path_factory.mktemp("media")),
            "PROMETHEUS_MULTIPROC_DIR": str(tmp_path_factory.mktemp("metrics")),
            # Local accounts for the role scenarios, and the company provider beside them.
            "POLICYDESK_AUTH_OIDC": "true",
            "POLICYDESK_OIDC_ISSUER": oidc_provider.issuer,
            "POLICYDESK_OIDC_ALLOW_HTTP": "true",
            "POLICYDESK_OIDC_CLIENT_ID": "policydesk-e2e",
            "POLICYDESK_OIDC_CLIENT_SECRET": client_secret,
            "POLICYDESK_OIDC_PROVIDER_NAME": "Example Corp",
            "POLICYDESK_GROUP_MAP": json.dumps({"roles": {"All Staff": "employee"}, "default_role": None}),
            "POLICYDESK_TEST_CLOCK_FILE": str(clock),
        }
    )
    app = LiveApp(url=f"http://127.0.0.1:{port}", env=env, primary=primary, secondary=local_llm, clock=clock)
    try:
        app.manage("migrate", "--noinput")
        password_file = tmp_path_factory.mktemp("pw") / "password"
        password_file.write_text(PASSWORD)
        for name, role in (("emma", "employee"), ("paul", "policy_admin"), ("aud", "auditor")):
            app.manage("create_user", name, "--role", role, "--password-file", str(password_file))
        app.manage("ingest", str(ROOT / "demo_corpus"), "--wait")
        extra = tmp_path_factory.mktemp("extra") / "security-notice.txt"
        extra.write_text(XSS_DOCUMENT)
        app.manage("ingest", str(extra), "--wait")
        log = (ARTIFACTS / "server.log").open("wb")
        app.processes.append(
            subprocess.Popen(
                [sys.executable, "-m", "core.daphne", "-b", "127.0.0.1", "-p", str(port), "config.asgi:application"],
                cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
            )
        )  # fmt: skip
        app.processes.append(
            subprocess.Popen(
                [sys.executable, "-m", "celery", "-A", "config", "worker", "-Q", "ingestion,housekeeping",
                 "--concurrency", "1", "--loglevel", "WARNING", "--pool", "solo"],
                cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
            )
        )  # fmt: skip
        _wait_ready(app.url)
        yield app
    finally:
        for process in app.processes:
            process.send_signal(signal.SIGTERM)
        for process in app.processes:
            try:
                process.wait(20)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        primary.stop()


@pytest.fixture(scope="module")
def browser(live_app: LiveApp) -> Iterator[object]:
    from playwright.sync_api import sync_playwright

    args = ["--disable-background-networking", "--disable-dev-shm-usage", "--disable-gpu"]
    if os.geteuid() == 0:
        args.append("--no-sandbox")  # Chromium refuses to sandbox as root
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=args)
        yield browser
        browser.close()
