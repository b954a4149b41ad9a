"""Operators see each backend's health: the llm_status command and the staff status page."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator

import pytest
from django.contrib.auth.models import User
from django.core.management import call_command
from django.test import Client
from django.test.utils import override_settings

from devserver.embedded import free_port
from llm.config import BackendConfig
from tests.llm_servers import LocalLLMProcess


@pytest.fixture
def two_backends(local_llm: LocalLLMProcess) -> Iterator[None]:
    backends = (
        BackendConfig(name="local", kind="local", base_url=local_llm.url, model="smollm2"),
        BackendConfig(name="gpu", kind="openai", base_url=f"http://127.0.0.1:{free_port()}/v1", model="qwen"),
    )
    with override_settings(LLM_BACKENDS=backends):
        yield


def test_llm_status_prints_health_models_and_breaker_state(two_backends: None) -> None:
    out = io.StringIO()
    call_command("llm_status", "--json", stdout=out)
    rows = {row["name"]: row for row in json.loads(out.getvalue())["backends"]}
    assert rows["local"]["healthy"] is True and rows["local"]["models"]
    assert rows["gpu"]["healthy"] is False and rows["gpu"]["probe_error"] == "connect_failed"
    assert {row["breaker"] for row in rows.values()} <= {"closed", "open", "half_open"}


def test_llm_status_fails_when_no_backend_is_healthy() -> None:
    dead = (
        BackendConfig(name="gone", kind="openai", base_url=f"http://127.0.0.1:{free_port()}/v1", model="m"),
    )
    with override_settings(LLM_BACKENDS=dead), pytest.raises(SystemExit):
        call_command("llm_status", stdout=io.StringIO(), stderr=io.StringIO())


@pytest.mark.django_db
def test_the_status_page_is_for_staff_only(two_backends: None, client: Client, make_user) -> None:
    make_user("emp")
    client.login(username="emp", password="not-used-pw-123")
    assert client.get("/llm/status/").status_code == 302  # to the admin login
    User.objects.create_user("ops", password="not-used-pw-123", is_staff=True)
    client.login(username="ops", password="not-used-pw-123")
    page = client.get("/llm/status/").content.decode()
    assert "local" in page and "gpu" in page and "connect_failed" in page
