"""Operability: /metrics after a question, /readyz turning 503 and back, one trace id per
question on every log line, request ids, and the deployment manifests."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from asgiref.sync import sync_to_async
from django.conf import settings
from django.contrib.auth.models import User
from django.db import connection
from django.test import Client
from django.test.utils import override_settings

from core.logs import JsonFormatter, TraceFilter
from devserver.embedded import free_port
from llm.config import BackendConfig
from privacy.analysis import redaction_warm_up
from privacy.logging import RedactingFilter
from rag.embedding import get_embedder
from tests.llm_servers import LocalLLMProcess
from tests.rag_helpers import ingest_bytes
from tests.test_chat import LEAVE_POLICY, ask, backends, fake, fake_backend, socket_for, until

ROOT = Path(__file__).resolve().parent.parent
K8S = ROOT / "deploy" / "k8s"


@pytest.fixture
def json_logs() -> Iterator[io.StringIO]:
    """The production log pipeline (PII filter, trace ids, JSON) on a buffer."""
    buffer = io.StringIO()
    handler = logging.StreamHandler(buffer)
    handler.addFilter(RedactingFilter())
    handler.addFilter(TraceFilter())
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    old = root.level
    root.setLevel(logging.INFO)
    root.addHandler(handler)
    yield buffer
    root.removeHandler(handler)
    root.setLevel(old)


@pytest.mark.django_db(transaction=True)
async def test_one_question_has_one_trace_id_on_every_log_line_and_metrics_count_it(
    make_user: Callable[..., User], json_logs: io.StringIO
) -> None:
    await sync_to_async(ingest_bytes)(LEAVE_POLICY, "leave-policy.md")
    user = await sync_to_async(make_user)("emp")
    async with (
        fake(fault="close_mid_stream", text="You get 20 days [1].") as bad,
        fake(continue_from_partial=True, text="You get 20 days [1].") as good,
    ):
        primary, secondary = (
            fake_backend(bad.http.url + "/v1", name="primary"),
            fake_backend(good.http.url + "/v1", name="secondary"),
        )
        async with backends(primary, secondary), socket_for(user) as ws:
            json_logs.seek(0)  # earlier lines (the login) are not this question's
            json_logs.truncate(0)
            await ask(ws, "How much annual leave do I get?")
            await until(ws, "done")
    lines = [json.loads(line) for line in json_logs.getvalue().splitlines() if line.strip()]
    messages = [line["msg"] for line in lines]
    for expected in ("question received", "question redacted", "passages retrieved", "llm attempt failed",
                     "llm attempt succeeded", "answer stored"):  # fmt: skip
        assert expected in messages
    trace_ids = {line.get("trace_id") for line in lines}
    assert len(trace_ids) == 1 and next(iter(trace_ids)), "one non-empty trace id on every line"
    assert not any("annual leave" in json.dumps(line) for line in lines), "no question text in logs"

    staff = await sync_to_async(User.objects.create_user)("ops", password="x-pw-123456", is_staff=True)
    client = Client()
    await sync_to_async(client.force_login)(staff)
    body = (await sync_to_async(client.get)("/metrics")).content.decode()
    await sync_to_async(lambda: connection.close())()
    for name in (
        'policydesk_questions_total{outcome="answered"}',
        "policydesk_time_to_first_token_seconds_count",
        "policydesk_answer_seconds_count",
        "policydesk_tokens_streamed_total",
        'policydesk_stage_seconds_count{stage="redaction"}',
        'policydesk_stage_seconds_count{stage="retrieval"}',
        'policydesk_stage_seconds_count{stage="prompt"}',
        'policydesk_llm_attempts_total{backend="primary",outcome="failed"}',
        "policydesk_llm_fallbacks_total",
        "policydesk_llm_handovers_total",
        'policydesk_llm_breaker_state{backend="primary"}',
        "policydesk_websocket_connections",
        "policydesk_ingestion_jobs_total",
        'policydesk_celery_queue_length{queue="ingestion"}',
    ):
        assert name in body, name


@pytest.mark.django_db
def test_metrics_need_staff_or_the_bearer_token(client: Client, make_user: Callable[..., User]) -> None:
    assert client.get("/metrics").status_code == 401
    with override_settings(METRICS_TOKEN="scrape-secret-123"):
        assert client.get("/metrics", HTTP_AUTHORIZATION="Bearer wrong").status_code == 401
        assert client.get("/metrics", HTTP_AUTHORIZATION="Bearer scrape-secret-123").status_code == 200
    make_user("emp")
    client.login(username="emp", password="not-used-pw-123")
    assert client.get("/metrics").status_code == 401


def _readyz(client: Client) -> tuple[int, dict[str, Any]]:
    """As an operator (the metrics token), with no reuse of earlier checks."""
    with override_settings(METRICS_TOKEN="ops-token", READYZ_CACHE_SECONDS=0):
        response = client.get("/readyz", HTTP_AUTHORIZATION="Bearer ops-token")
    return response.status_code, response.json()


@pytest.mark.django_db
def test_readyz_tells_anonymous_callers_only_whether_it_is_ready_and_reuses_its_checks(
    client: Client,
) -> None:
    with override_settings(LLM_BACKENDS=(), READYZ_CACHE_SECONDS=0):
        anonymous = client.get("/readyz")
    assert anonymous.status_code == 503 and anonymous.json() == {"ready": False}
    # Within the reuse window a broken database is not looked at again: nobody can make every
    # request open connections to it.
    with override_settings(LLM_BACKENDS=(), READYZ_CACHE_SECONDS=60, METRICS_TOKEN="ops-token"):
        first = client.get("/readyz", HTTP_AUTHORIZATION="Bearer ops-token").json()
        broken_db = {**settings.DATABASES["default"], "HOST": "127.0.0.1", "PORT": str(free_port())}
        with override_settings(DATABASES={"default": broken_db}):
            again = client.get("/readyz", HTTP_AUTHORIZATION="Bearer ops-token").json()
    assert again == first and "checks" in first


@pytest.mark.django_db
def test_readyz_turns_503_when_the_database_or_every_llm_is_down_and_recovers(
    client: Client, local_llm: LocalLLMProcess
) -> None:
    get_embedder()
    redaction_warm_up()  # /readyz reports the redaction models too
    working = (BackendConfig(name="local", kind="local", base_url=local_llm.url, model="smollm2"),)
    dead = (
        BackendConfig(name="gone", kind="openai", base_url=f"http://127.0.0.1:{free_port()}/v1", model="m"),
    )
    with override_settings(LLM_BACKENDS=working):
        status, body = _readyz(client)
        assert status == 200 and all(c["ok"] for c in body["checks"].values()), body
        broken_db = {**settings.DATABASES["default"], "HOST": "127.0.0.1", "PORT": str(free_port())}
        with override_settings(DATABASES={"default": broken_db}):
            status, body = _readyz(client)
        assert status == 503 and not body["checks"]["database"]["ok"] and body["checks"]["llm"]["ok"]
        assert _readyz(client)[0] == 200, "recovers"
    with override_settings(LLM_BACKENDS=dead):
        status, body = _readyz(client)
    assert status == 503 and "gone" in body["checks"]["llm"]["status"]
    with override_settings(LLM_BACKENDS=working):
        assert _readyz(client)[0] == 200


@pytest.mark.django_db
def test_http_responses_carry_a_request_id(client: Client) -> None:
    assert len(client.get("/healthz")["X-Request-ID"]) == 16
    assert client.get("/healthz", HTTP_X_REQUEST_ID="abc123")["X-Request-ID"] == "abc123"


# --- deployment manifests ------------------------------------------------------------------


def _documents() -> list[dict[str, Any]]:
    docs = []
    for path in sorted(K8S.glob("*.yaml")):
        docs += [d for d in yaml.safe_load_all(path.read_text()) if d]
    return docs


def _deployments() -> dict[str, dict[str, Any]]:
    return {d["metadata"]["name"]: d for d in _documents() if d["kind"] == "Deployment"}


def test_each_deployment_has_probes_and_resource_requests() -> None:
    deployments = _deployments()
    assert {"policydesk-web", "policydesk-worker", "policydesk-beat"} <= set(deployments)
    for name, deployment in deployments.items():
        for container in deployment["spec"]["template"]["spec"]["containers"]:
            assert (
                container["resources"]["requests"]["cpu"] and container["resources"]["requests"]["memory"]
            ), name
            assert "livenessProbe" in container and "readinessProbe" in container, name
    web = deployments["policydesk-web"]["spec"]["template"]["spec"]["containers"][0]
    assert web["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert web["readinessProbe"]["httpGet"]["path"] == "/readyz"


def test_secrets_come_from_kubernetes_secrets_never_inline() -> None:
    secret_words = ("SECRET", "KEY", "PASSWORD", "TOKEN", "DATABASE_URL")
    for deployment in _deployments().values():
        for container in deployment["spec"]["template"]["spec"]["containers"]:
            for variable in container.get("env", []):
                if any(word in variable["name"] for word in secret_words):
                    assert "value" not in variable and variable["valueFrom"]["secretKeyRef"], variable["name"]
    assert not [d for d in _documents() if d["kind"] == "Secret"], "no Secret objects with values in the repo"


def test_web_and_worker_scale_horizontally() -> None:
    targets = {
        d["spec"]["scaleTargetRef"]["name"] for d in _documents() if d["kind"] == "HorizontalPodAutoscaler"
    }
    assert targets == {"policydesk-web", "policydesk-worker"}


def test_nginx_proxies_websockets_to_several_daphne_processes() -> None:
    conf = (ROOT / "deploy" / "nginx" / "policydesk.conf").read_text()
    assert "proxy_set_header Upgrade $http_upgrade" in conf and "location /ws/" in conf
    directives = [line.split("#")[0].strip() for line in conf.splitlines()]
    assert sum(d.startswith("server 127.0.0.1:") for d in directives) >= 2
    assert not any(d.startswith(("ip_hash", "sticky", "hash ")) for d in directives), "plain round robin"
