"""Every stored question ends in exactly one audit event: an outage at the end of an answer
delays its record instead of dropping it, and a question whose answer never got recorded (the
process died) is recorded as interrupted. Real PostgreSQL made unreachable, a real socket."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import psycopg
import pytest
from asgiref.sync import sync_to_async
from django.contrib.auth.models import User
from django.db import connection
from django.test.utils import override_settings

from audit.models import AuditEvent
from audit.services import audit_chain_verify
from chat.models import Message, PendingAnswer
from chat.services import pending_answers_interrupt
from tests.test_chat import ask, backends, employee, fake, fake_backend, receive, socket_for, until

pytestmark = [pytest.mark.django_db(transaction=True)]
__all__ = ["employee"]  # the fixture, shared with the chat socket tests

QUESTION = "How many days of paid annual leave do full-time employees receive?"
LONG_ANSWER = " ".join(["Full-time employees receive 20 days of paid annual leave [1]."] * 6)


def database_reachable(reachable: bool, *, spare: int = 0) -> None:
    """Refuse (or allow again) every new connection to the test database and drop the open
    ones: to the app, PostgreSQL is down. Done from the server's maintenance database."""
    params = connection.get_connection_params()
    server = {k: params[k] for k in ("host", "port", "user", "password") if params.get(k)}
    name = connection.settings_dict["NAME"]
    with psycopg.connect(dbname="postgres", autocommit=True, **server) as admin:
        admin.execute(f'ALTER DATABASE "{name}" WITH ALLOW_CONNECTIONS {str(reachable).lower()}')
        if not reachable:
            admin.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s AND pid <> %s",
                [name, spare],
            )
    connection.close()  # this thread's own connection was dropped too: reconnect on next use


@pytest.fixture
def runner_backend_pid() -> int:
    """The backend of the thread that tears the test down: spared, so teardown still works."""
    connection.ensure_connection()
    assert connection.connection is not None
    return int(connection.connection.info.backend_pid)


def counts() -> tuple[int, int, int]:
    return (
        Message.objects.filter(role=Message.Role.USER).count(),
        AuditEvent.objects.filter(kind=AuditEvent.Kind.QUESTION).count(),
        PendingAnswer.objects.count(),
    )


async def test_an_answer_that_ends_while_the_database_is_down_is_recorded_when_it_is_back(
    employee: User, runner_backend_pid: int
) -> None:
    async with fake(text=LONG_ANSWER, tokens_per_second=30) as server:
        async with backends(fake_backend(server.http.url + "/v1")), socket_for(employee) as ws:
            await ask(ws, QUESTION)
            while (await receive(ws))["type"] != "token":
                pass
            await sync_to_async(database_reachable)(False, spare=runner_backend_pid)
            try:
                await asyncio.sleep(4)  # the stream ends (~2 s) and the writer's first tries fail
            finally:
                await sync_to_async(database_reachable)(True)
            messages = await until(ws, "done")
    assert messages[-1]["type"] == "done", messages[-1]
    assert await sync_to_async(counts)() == (1, 1, 0), "one question, one event, nothing pending"
    event = await sync_to_async(AuditEvent.objects.get)(kind="question")
    assert event.outcome == "answered" and "20 days" in event.answer
    assert await sync_to_async(lambda: audit_chain_verify().valid)()


async def test_a_question_whose_answer_is_never_recorded_gets_one_interrupted_event(employee: User) -> None:
    async with fake(text=LONG_ANSWER, tokens_per_second=8) as server:
        async with backends(fake_backend(server.http.url + "/v1")), socket_for(employee) as ws:
            await ask(ws, QUESTION)
            while (await receive(ws))["type"] != "token":
                pass
            # The answer is still streaming when the periodic task finds it overdue (as if its
            # process had died): it records the question as interrupted.
            assert await sync_to_async(pending_answers_interrupt)(older_than=timedelta(0)) == 1
            await until(ws, "done")
    assert await sync_to_async(counts)() == (1, 1, 0), "the late answer adds no second event"
    event = await sync_to_async(AuditEvent.objects.get)(kind="question")
    assert event.outcome == "interrupted" and event.question == QUESTION
    message = await sync_to_async(Message.objects.get)(role=Message.Role.ASSISTANT)
    assert message.status == Message.Status.FAILED
    assert await sync_to_async(pending_answers_interrupt)(older_than=timedelta(0)) == 0


def test_questions_pending_for_less_than_the_limit_are_left_to_their_writer(employee: User) -> None:
    from chat.models import Conversation

    conversation = Conversation.objects.create(user=employee)
    PendingAnswer.objects.create(
        message_id="00000000-0000-0000-0000-000000000001",
        conversation=conversation,
        user=employee,
        question="q",
    )
    with override_settings(CHAT_INTERRUPTED_AFTER_SECONDS=600):
        from chat.tasks import record_interrupted_answers

        assert record_interrupted_answers() == 0
    assert PendingAnswer.objects.count() == 1 and not AuditEvent.objects.exists()
