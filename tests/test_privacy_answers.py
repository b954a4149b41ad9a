"""Redaction where answers meet people: quoted policy text stays readable, the asker's own words
come back on their own socket only, and no log (Daphne's access log included) carries what a
client sent."""

from __future__ import annotations

import io
import logging
import os
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
from asgiref.sync import sync_to_async
from django.contrib.auth.models import User

from audit.models import AuditEvent
from chat.models import Message
from core.daphne import ScrubbedAccessLog, scrub_request
from devserver.embedded import free_port
from tests.test_chat import ask, backends, employee, fake, fake_backend, socket_for, until

pytestmark = [pytest.mark.django_db(transaction=True)]
__all__ = ["employee"]  # the fixture, imported for this module's tests
ROOT = Path(__file__).resolve().parent.parent


async def test_an_answer_keeps_the_policy_contact_it_quotes_but_not_an_invented_one(employee: User) -> None:
    text = "Questions go to people@kestrel.example [1]. Or ask rita.made.up@kestrel.example."
    async with fake(text=text) as server:
        async with backends(fake_backend(server.http.url + "/v1")), socket_for(employee) as ws:
            await ask(ws, "Who do I ask about carrying over leave?")
            await until(ws, "done")
    stored = await sync_to_async(Message.objects.get)(role=Message.Role.ASSISTANT)
    assert "people@kestrel.example" in stored.text
    assert "rita.made.up@kestrel.example" not in stored.text and "<EMAIL_ADDRESS_1>" in stored.text
    event = await sync_to_async(AuditEvent.objects.get)(kind="question")
    # Kept twice: in the model's sentence and in the quoted evidence that follows it.
    assert event.detail["document_text_kept"] == 2 and "people@kestrel.example" in event.answer


async def test_the_same_address_typed_by_the_user_as_their_own_is_redacted_in_the_answer(
    employee: User,
) -> None:
    async with fake(
        text="You wrote from people@kestrel.example; leave questions go there too [1]."
    ) as server:
        async with backends(fake_backend(server.http.url + "/v1")), socket_for(employee) as ws:
            await ask(ws, "My own mailbox is people@kestrel.example: how do I carry over leave?")
            await until(ws, "done")
    stored = await sync_to_async(Message.objects.get)(role=Message.Role.ASSISTANT)
    assert "people@kestrel.example" not in stored.text


async def test_the_askers_own_words_come_back_on_their_socket_only(
    make_user: Callable[..., User], employee: User
) -> None:
    other = await sync_to_async(make_user)("other")
    echo = "Hello <PERSON_1>, you get 20 days of annual leave [1]."
    async with fake(text=echo, tokens_per_second=50) as server:
        async with backends(fake_backend(server.http.url + "/v1")):
            async with socket_for(employee) as mine, socket_for(other) as theirs:
                await ask(mine, "I am Margaret Thornbury: how much annual leave do I get?")
                streamed = await until(mine, "done")
                assert await theirs.receive_nothing(timeout=0.3)
                await ask(theirs, "How much annual leave do I get?")
                seen_by_other = await until(theirs, "done")
    tokens = "".join(m["text"] for m in streamed if m["type"] == "token")
    assert "Hello Margaret Thornbury, you get 20 days" in tokens
    assert "Margaret Thornbury" in streamed[-1]["html"]
    assert "Margaret" not in str(seen_by_other) and "&lt;PERSON_1&gt;" in seen_by_other[-1]["html"]
    # Stored and sent upstream with the placeholder only.
    stored: list[str] = await sync_to_async(lambda: list(Message.objects.values_list("text", flat=True)))()
    assert not any("Margaret" in text for text in stored)
    assert all("Margaret" not in r.body.decode() for r in server.http.requests)


async def test_a_client_supplied_conversation_id_is_not_logged_as_sent(
    employee: User, caplog: pytest.LogCaptureFixture
) -> None:
    async with fake() as server:
        async with backends(fake_backend(server.http.url + "/v1")), socket_for(employee) as ws:
            with caplog.at_level(logging.INFO, logger="chat.pipeline"):
                await ask(ws, "How much leave do I get?", conversation_id="jane.doe@example.com is my id")
                await until(ws, "error")
    logged = [
        getattr(r, "conversation_id", None) for r in caplog.records if r.getMessage() == "question received"
    ]
    assert logged == ["invalid"]
    assert "jane.doe" not in caplog.text


def test_the_access_log_leaves_query_strings_out() -> None:
    assert scrub_request("GET /audit/?actor=jane.doe%40example.com&card=4111111111111111") == "GET /audit/?…"
    assert scrub_request("WSCONNECT /ws/chat/") == "WSCONNECT /ws/chat/"
    stream = io.StringIO()
    ScrubbedAccessLog(stream)("http", "complete", {
        "client": "127.0.0.1:5", "method": "GET", "path": "/chat/?q=0903 123 456", "status": 200, "size": 10
    })  # fmt: skip
    assert '"GET /chat/?…" 200' in stream.getvalue() and "0903" not in stream.getvalue()


def test_daphne_started_as_the_app_starts_it_writes_no_query_string_to_its_access_log() -> None:
    port = free_port()
    env = {**os.environ, "POLICYDESK_WARM_UP": "false", "PYTHONUNBUFFERED": "1"}
    daphne = subprocess.Popen(
        [sys.executable, "-m", "core.daphne", "-b", "127.0.0.1", "-p", str(port), "config.asgi:application"],
        cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            with socket.socket() as probe:
                if probe.connect_ex(("127.0.0.1", port)) == 0:
                    break
            time.sleep(0.2)
        response = httpx.get(
            f"http://127.0.0.1:{port}/healthz?email=jane.doe@example.com&card=4111111111111111"
        )
        assert response.status_code == 200
        time.sleep(0.5)
    finally:
        daphne.terminate()
        output = daphne.communicate(timeout=30)[0].decode()
    assert "GET /healthz?…" in output
    assert "jane.doe" not in output and "4111111111111111" not in output
