"""The OpenAI-compatible API end to end: the official `openai` SDK (and raw sockets) → Daphne on a
real port → the same pipeline as the chat socket → a fake model speaking vLLM's SSE over real
HTTP. Citations, reader groups, redaction, rate limits shared with the socket, stop on
disconnect, and the audit record."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import openai
import pytest
from asgiref.sync import sync_to_async
from django.contrib.auth.models import Group, User
from django.test.utils import override_settings
from django.utils import timezone

from accounts.models import DirectoryAccount
from accounts.roles import Role
from accounts.services import directory_user_deprovision
from api.models import ApiKey
from api.services import api_key_create, api_key_revoke, role_api_access_set
from api.wire import NEUTRAL, USED, WITHOUT_EFFECT
from audit.models import AuditEvent
from bench.fake_llm import FakeOpenAI
from chat.models import Message
from llm.config import BackendConfig
from llm.gateway import gateway_reset
from rag.models import Document
from tests.live_server import LiveDaphne
from tests.rag_helpers import ingest_bytes
from tests.test_chat import ask, employee, fake, fake_backend, socket_for, until

pytestmark = [pytest.mark.django_db(transaction=True)]
__all__ = ["employee"]  # the fixture, imported for this module's tests

ANSWER = "You get 20 days of annual leave [1]."
QUESTION = "How many days of annual leave do I get?"
PAYROLL = b"""---
title: Payroll calendar
---
# Payroll calendar

## Pay day

Salaries are paid on the 25th of each month by bank transfer. Payslips arrive two days earlier.
"""


@contextlib.asynccontextmanager
async def served(live: LiveDaphne, *configs: BackendConfig, **overrides: Any) -> AsyncIterator[None]:
    """The live server's gateway rebuilt on these backends (it lives on the server's loop)."""
    with override_settings(LLM_BACKENDS=configs, LLM_PROBE_INTERVAL=0, **overrides):
        await live.call(gateway_reset())
        await gateway_reset()
        try:
            yield
        finally:
            await live.call(gateway_reset())
            await gateway_reset()


@contextlib.asynccontextmanager
async def answering(live: LiveDaphne, text: str = ANSWER, **kwargs: Any) -> AsyncIterator[FakeOpenAI]:
    async with fake(text=text, **kwargs) as server:
        async with served(live, fake_backend(server.http.url + "/v1")):
            yield server


def client(live: LiveDaphne, key: str) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(api_key=key, base_url=live.url + "/v1", max_retries=0, timeout=60)


async def new_key(user: User, **kwargs: Any) -> str:
    created = await sync_to_async(api_key_create)(user=user, name="tests", **kwargs)
    return created.secret


def sent_to_model(server: FakeOpenAI) -> list[str]:
    return [r.body.decode() for r in server.http.requests if r.path.endswith("/chat/completions")]


async def stopped_answer() -> Message | None:
    """The answer a client walked away from, once the pipeline has unwound and recorded it."""
    for _ in range(100):
        stopped = await sync_to_async(Message.objects.filter(role="assistant", status="stopped").first)()
        if stopped is not None:
            return stopped
        await asyncio.sleep(0.1)
    return None


async def question_event() -> AuditEvent:
    return await sync_to_async(AuditEvent.objects.get)(kind="question")


# --- the SDK: streaming and whole answers ---------------------------------------------------------


async def test_the_sdk_streams_an_answer_whose_last_chunk_carries_the_citations(
    employee: User, live_daphne: LiveDaphne
) -> None:
    key = await new_key(employee)
    async with answering(live_daphne):
        stream = await client(live_daphne, key).chat.completions.create(
            model="policydesk",
            messages=[{"role": "user", "content": QUESTION}],
            stream=True,
            stream_options={"include_usage": True},
        )
        chunks = [chunk async for chunk in stream]
    assert chunks[0].choices[0].delta.role == "assistant"
    content = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert content.startswith(ANSWER + "\n\n**What the policy says**")
    assert "\n\nSources:\n- [1] Leave policy \u203a Annual leave (version 1): http://127.0.0.1:" in content
    finish = [c for c in chunks if c.choices and c.choices[0].finish_reason]
    assert len(finish) == 1 and finish[0].choices[0].finish_reason == "stop"
    extension = (finish[0].model_extra or {})["policydesk"]
    assert extension["verified"] is True and extension["declined"] is False
    cited = [c for c in extension["citations"] if c["cited"]]
    assert cited[0]["n"] == 1 and cited[0]["document"] == "Leave policy" and cited[0]["version"] == 1
    assert cited[0]["section"] == "Annual leave" and cited[0]["page"] is None
    assert "20 days of paid annual leave" in cited[0]["quote"]
    assert cited[0]["url"].startswith(live_daphne.url + "/documents/")
    usage = chunks[-1]
    assert (
        usage.choices == []
        and usage.usage is not None
        and usage.usage.completion_tokens == len(ANSWER.split())
    )
    event = await question_event()
    assert event.detail["channel"] == "api" and event.outcome == "answered"
    assert event.detail["api_key_id"] == await sync_to_async(lambda: ApiKey.objects.get().pk)()
    everything = await sync_to_async(lambda: json.dumps(list(AuditEvent.objects.values()), default=str))()
    assert key not in everything and key[3:] not in everything, "the key itself is never recorded"


async def test_the_sdk_gets_a_whole_answer_and_the_raw_response_carries_the_extension(
    employee: User, live_daphne: LiveDaphne
) -> None:
    key = await new_key(employee)
    async with answering(live_daphne):
        raw = await client(live_daphne, key).chat.completions.with_raw_response.create(
            model="policydesk", messages=[{"role": "user", "content": QUESTION}]
        )
    completion = raw.parse()
    message = completion.choices[0].message
    assert message.role == "assistant" and completion.choices[0].finish_reason == "stop"
    assert message.content is not None and message.content.startswith(ANSWER)
    assert "\n\nSources:\n- [1] Leave policy" in message.content
    assert completion.usage is not None and completion.usage.completion_tokens == len(ANSWER.split())
    body = json.loads(raw.http_response.text)
    assert body["object"] == "chat.completion" and body["model"] == "policydesk"
    extension = body["choices"][0]["message"]["policydesk"]
    assert extension["verified"] is True and extension["mode"] == "generate"
    assert {"n", "document", "version", "section", "url", "quote"} <= set(extension["citations"][0])
    assert completion.id == "chatcmpl-" + extension["message_id"].replace("-", "")


async def test_an_unsupported_sentence_is_marked_in_a_whole_answer_and_named_at_the_end_of_a_stream(
    employee: User, live_daphne: LiveDaphne
) -> None:
    key = await new_key(employee)
    text = "You get 20 days of annual leave [1]. You also get 45 days of sabbatical every year [1]."
    async with answering(live_daphne, text=text):
        whole = await client(live_daphne, key).chat.completions.create(
            model="policydesk", messages=[{"role": "user", "content": QUESTION}]
        )
        stream = await client(live_daphne, key).chat.completions.create(
            model="policydesk", messages=[{"role": "user", "content": QUESTION}], stream=True
        )
        streamed = "".join([c.choices[0].delta.content or "" async for c in stream if c.choices])
    content = whole.choices[0].message.content or ""
    assert "⚠ *You also get 45 days of sabbatical every year [1].*" in content
    assert "⚠ Unverified: unsupported claim" in content
    assert "⚠ Not found in the policy text this answer was given: “You also get 45 days" in streamed
    assert (whole.choices[0].message.model_extra or {})["policydesk"]["verified"] is False


async def test_the_raw_stream_is_server_sent_events_ending_with_done(
    employee: User, live_daphne: LiveDaphne
) -> None:
    key = await new_key(employee)
    async with answering(live_daphne):
        async with (
            httpx.AsyncClient(base_url=live_daphne.url, timeout=30) as http,
            http.stream(
                "POST",
                "/v1/chat/completions",
                headers={"Authorization": f"Bearer {key}"},
                json={
                    "model": "policydesk",
                    "messages": [{"role": "user", "content": QUESTION}],
                    "stream": True,
                },
            ) as response,
        ):
            assert response.status_code == 200
            assert response.headers["content-type"].startswith("text/event-stream")
            raw = (await response.aread()).decode()
    events = raw.split("\n\n")
    assert events[-2:] == ["data: [DONE]", ""]
    chunks = [json.loads(e.removeprefix("data: ")) for e in events[:-2]]
    assert all(e.startswith("data: {") for e in events[:-2])
    assert {c["object"] for c in chunks} == {"chat.completion.chunk"} and len({c["id"] for c in chunks}) == 1
    assert "usage" not in chunks[0], "no usage key unless stream_options.include_usage asked for it"
    assert [c["choices"][0]["finish_reason"] for c in chunks].count("stop") == 1
    assert "policydesk" in chunks[-1] and chunks[-1]["choices"][0]["delta"] == {}


async def test_models_lists_policydesk_and_an_unknown_model_is_a_404(
    employee: User, live_daphne: LiveDaphne
) -> None:
    sdk = client(live_daphne, await new_key(employee))
    assert [m.id async for m in sdk.models.list()] == ["policydesk"]
    assert (await sdk.models.retrieve("policydesk")).id == "policydesk"
    with pytest.raises(openai.NotFoundError) as missing:
        await sdk.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": QUESTION}])
    assert missing.value.code == "model_not_found"


# --- errors, as the SDK maps them ---------------------------------------------------------


async def test_a_wrong_or_missing_key_is_a_401(employee: User, live_daphne: LiveDaphne) -> None:
    await new_key(employee)
    with pytest.raises(openai.AuthenticationError) as wrong:
        await client(live_daphne, "pd_not-a-real-key").chat.completions.create(
            model="policydesk", messages=[{"role": "user", "content": QUESTION}]
        )
    assert wrong.value.status_code == 401 and wrong.value.code == "invalid_api_key"
    async with httpx.AsyncClient(base_url=live_daphne.url) as http:
        response = await http.post("/v1/chat/completions", json={"model": "policydesk", "messages": []})
    assert response.status_code == 401 and response.json()["error"]["code"] == "missing_api_key"
    assert response.headers["WWW-Authenticate"].startswith("Bearer")


@pytest.mark.parametrize(
    ("extra", "param"),
    [
        ({"tools": [{"type": "function", "function": {"name": "f", "parameters": {}}}]}, "tools"),
        ({"n": 2}, "n"),
        ({"response_format": {"type": "json_object"}}, "response_format"),
        ({"temperature": 3}, "temperature"),
        ({"frobnicate": True}, "frobnicate"),
    ],
)
async def test_an_unsupported_parameter_is_a_400_that_names_it(
    employee: User, live_daphne: LiveDaphne, extra: dict[str, Any], param: str
) -> None:
    sdk = client(live_daphne, await new_key(employee))
    with pytest.raises(openai.BadRequestError) as refused:
        await sdk.chat.completions.create(
            model="policydesk", messages=[{"role": "user", "content": QUESTION}], extra_body=extra
        )
    assert refused.value.param == param and param in refused.value.message
    assert await sync_to_async(Message.objects.count)() == 0, "nothing was asked"


async def test_an_image_is_refused_and_neutral_defaults_are_accepted(
    employee: User, live_daphne: LiveDaphne
) -> None:
    sdk = client(live_daphne, await new_key(employee))
    image: Any = [
        {"type": "text", "text": "What does this form say?"},
        {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}},
    ]
    with pytest.raises(openai.BadRequestError) as refused:
        await sdk.chat.completions.create(model="policydesk", messages=[{"role": "user", "content": image}])
    assert "images are not supported" in refused.value.message
    async with answering(live_daphne):
        # What Open WebUI and LibreChat send by default: values that change nothing.
        completion = await sdk.chat.completions.create(
            model="policydesk",
            messages=[
                {"role": "system", "content": "You are helpful."},
                {"role": "user", "content": QUESTION},
            ],
            n=1,
            top_p=1,
            presence_penalty=0,
            frequency_penalty=0,
            user="someone",
        )
    assert (completion.choices[0].message.content or "").startswith(ANSWER)


async def test_the_rate_limit_is_shared_with_the_socket_and_a_429_says_when_to_retry(
    employee: User, live_daphne: LiveDaphne
) -> None:
    key = await new_key(employee)
    async with answering(live_daphne):
        with override_settings(CHAT_RATE_LIMIT_PER_MINUTE=2):
            async with socket_for(employee) as ws:
                for _ in range(2):
                    await ask(ws, QUESTION)
                    assert (await until(ws, "done"))[-1]["type"] == "done"
            with pytest.raises(openai.RateLimitError) as limited:
                await client(live_daphne, key).chat.completions.create(
                    model="policydesk", messages=[{"role": "user", "content": QUESTION}]
                )
    assert limited.value.code == "rate_limit_exceeded"
    assert 1 <= int(limited.value.response.headers["Retry-After"]) <= 60


async def test_a_question_over_the_limit_is_a_413(employee: User, live_daphne: LiveDaphne) -> None:
    sdk = client(live_daphne, await new_key(employee))
    with pytest.raises(openai.APIStatusError) as refused:
        await sdk.chat.completions.create(
            model="policydesk", messages=[{"role": "user", "content": "why " * 600}]
        )
    assert refused.value.status_code == 413 and refused.value.code == "too_long"


async def test_every_model_busy_is_a_503_with_retry_after(employee: User, live_daphne: LiveDaphne) -> None:
    key = await new_key(employee)
    async with fake(fault="stall_mid_stream", fault_after_tokens=2) as server:
        busy = fake_backend(server.http.url + "/v1", max_concurrency=1, queue_timeout=0.1, idle_timeout=30)
        async with served(live_daphne, busy):
            first = await client(live_daphne, key).chat.completions.create(
                model="policydesk", messages=[{"role": "user", "content": QUESTION}], stream=True
            )
            await anext(aiter(first))  # the only slot is streaming
            with pytest.raises(openai.InternalServerError) as refused:
                await client(live_daphne, key).chat.completions.create(
                    model="policydesk", messages=[{"role": "user", "content": QUESTION}]
                )
            await first.close()
            # The server records the abandoned stream as it unwinds: the test's end flushes the
            # tables, which must not race that write.
            assert await stopped_answer() is not None
    assert refused.value.status_code == 503 and refused.value.code == "busy"
    assert refused.value.response.headers["Retry-After"] == "5"


async def test_a_revoked_or_expired_key_a_deactivated_user_and_a_role_switched_off_stop_at_once(
    employee: User, live_daphne: LiveDaphne, make_user: Callable[..., User]
) -> None:
    key = await new_key(employee)
    sdk = client(live_daphne, key)
    assert [m.id async for m in sdk.models.list()] == ["policydesk"]
    admin = await sync_to_async(make_user)("boss")
    await sync_to_async(role_api_access_set)(role=Role.EMPLOYEE, enabled=False, by=admin)
    with pytest.raises(openai.PermissionDeniedError) as off:
        await sdk.models.list()
    assert off.value.code == "api_access_disabled"
    await sync_to_async(role_api_access_set)(role=Role.EMPLOYEE, enabled=True, by=admin)
    assert [m.id async for m in sdk.models.list()] == ["policydesk"]

    stored = await sync_to_async(ApiKey.objects.get)()
    await sync_to_async(api_key_revoke)(key=stored, by=employee)
    with pytest.raises(openai.AuthenticationError):
        await sdk.models.list()

    other = client(live_daphne, await new_key(employee))
    assert [m.id async for m in other.models.list()] == ["policydesk"]
    await sync_to_async(_deprovision)(employee)
    with pytest.raises(openai.AuthenticationError):
        await other.models.list()


def _deprovision(user: User) -> None:
    account = DirectoryAccount.objects.create(
        user=user, source="oidc", subject="s-1", synced_at=timezone.now()
    )
    directory_user_deprovision(account=account)


async def test_an_expired_key_is_refused(employee: User, live_daphne: LiveDaphne) -> None:
    key = await new_key(employee, expires_days=1)
    await sync_to_async(lambda: ApiKey.objects.update(expires_at=ApiKey.objects.get().created_at))()
    with pytest.raises(openai.AuthenticationError) as expired:
        await client(live_daphne, key).models.list()
    assert expired.value.code == "expired_api_key"


# --- the same guarantees as the chat ----------------------------------------------------------


async def test_a_key_never_sees_a_document_its_user_may_not_read(
    employee: User, live_daphne: LiveDaphne, make_user: Callable[..., User]
) -> None:
    finance = await sync_to_async(Group.objects.create)(name="finance")
    await sync_to_async(ingest_bytes)(PAYROLL, "payroll.md", allowed_groups=[finance])
    accountant = await sync_to_async(make_user)("acc")
    await sync_to_async(accountant.groups.add)(finance)
    question: Any = [{"role": "user", "content": "When are salaries paid each month?"}]
    answers, models_saw = {}, {}
    async with answering(live_daphne, text="Salaries are paid as the policy says [1].") as server:
        for user in (employee, accountant):
            sdk = client(live_daphne, await new_key(user))
            before = len(sent_to_model(server))
            completion = await sdk.chat.completions.with_raw_response.create(
                model="policydesk", messages=question
            )
            answers[user.username] = completion.http_response.text
            models_saw[user.username] = "".join(sent_to_model(server)[before:])
    assert "Payroll calendar" in answers["acc"] and "25th" in answers["acc"], "the control: a reader sees it"
    assert "Payroll" not in answers["emp"] and "25th" not in answers["emp"]
    assert "25th" not in models_saw["emp"] and "Payroll" not in models_saw["emp"], (
        "nor did the model, for emp"
    )
    assert await sync_to_async(Document.objects.filter(title="Payroll calendar").count)() == 1


async def test_personal_data_reaches_the_model_and_the_database_as_placeholders_and_comes_back_to_the_caller_only(
    employee: User, live_daphne: LiveDaphne, make_user: Callable[..., User]
) -> None:
    other = await sync_to_async(make_user)("other")
    echo = "Hello <PERSON_1>, you get 20 days of annual leave [1]."
    history: list[Any] = [
        {"role": "user", "content": "My manager is Dorothy Pemberton."},
        {"role": "assistant", "content": "Noted."},
    ]
    question: Any = {"role": "user", "content": "I am Margaret Thornbury: how much annual leave do I get?"}
    async with answering(live_daphne, text=echo, tokens_per_second=50) as server:
        mine = client(live_daphne, await new_key(employee))
        stream = await mine.chat.completions.create(
            model="policydesk", messages=[*history, question], stream=True
        )
        streamed = "".join([c.choices[0].delta.content or "" async for c in stream if c.choices])
        whole = await mine.chat.completions.create(model="policydesk", messages=[question])
        theirs = await client(live_daphne, await new_key(other)).chat.completions.create(
            model="policydesk", messages=[{"role": "user", "content": QUESTION}]
        )
        models_saw = "\n".join(sent_to_model(server))
    assert "Hello Dorothy Pemberton, you get 20 days" in streamed, "the history's name is <PERSON_1> here"
    assert "Hello Margaret Thornbury, you get 20 days" in (whole.choices[0].message.content or "")
    assert "Margaret" not in (theirs.choices[0].message.content or "")
    assert "<PERSON_1>" in (theirs.choices[0].message.content or "")
    assert "Margaret" not in models_saw and "Dorothy" not in models_saw
    assert "My manager is <PERSON_1>." in models_saw, "the history is redacted like the question"
    stored = await sync_to_async(lambda: list(Message.objects.values_list("text", flat=True)))()
    assert not any("Margaret" in t or "Dorothy" in t for t in stored)
    events = await sync_to_async(
        lambda: list(AuditEvent.objects.filter(kind="question").values_list("question", flat=True))
    )()
    assert any("<PERSON_" in q for q in events) and not any("Margaret" in q for q in events)


async def test_the_callers_temperature_and_max_tokens_reach_the_model_within_the_servers_limits(
    employee: User, live_daphne: LiveDaphne
) -> None:
    sdk = client(live_daphne, await new_key(employee))
    async with answering(live_daphne) as server:
        await sdk.chat.completions.create(
            model="policydesk",
            messages=[{"role": "user", "content": QUESTION}],
            temperature=0.7,
            max_tokens=5,
        )
        await sdk.chat.completions.create(
            model="policydesk", messages=[{"role": "user", "content": QUESTION}], max_tokens=10**6
        )
        first, second = (json.loads(body) for body in sent_to_model(server))
    assert first["temperature"] == 0.7 and first["max_tokens"] == 5
    assert second["max_tokens"] == fake_backend("http://x").max_tokens, "never above the backend's limit"
    assert second["temperature"] == fake_backend("http://x").temperature


async def test_a_client_that_disconnects_mid_stream_stops_the_model_and_the_question_is_recorded_as_stopped(
    employee: User, live_daphne: LiveDaphne
) -> None:
    key = await new_key(employee)
    body = json.dumps(
        {"model": "policydesk", "stream": True, "messages": [{"role": "user", "content": QUESTION}]}
    ).encode()
    async with fake(fault="stall_mid_stream", fault_after_tokens=3) as server:
        async with served(live_daphne, fake_backend(server.http.url + "/v1", idle_timeout=30)):
            reader, writer = await asyncio.open_connection("127.0.0.1", live_daphne.port)
            writer.write(
                b"POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                + f"Authorization: Bearer {key}\r\nContent-Length: {len(body)}\r\n\r\n".encode()
                + body
            )
            await writer.drain()
            received = b""
            while b'"content":"' not in received:  # the first content chunk, flushed as it came
                received += await asyncio.wait_for(reader.read(4096), 10)
            assert received.startswith(b"HTTP/1.1 200")
            writer.close()  # the client goes away mid-answer
            await asyncio.wait_for(server.http.disconnected.wait(), 5)
    stopped = await stopped_answer()
    assert stopped is not None and stopped.text
    event = await question_event()
    assert event.outcome == "stopped" and event.detail["channel"] == "api"


async def test_the_openapi_description_lists_exactly_the_parameters_the_server_reads(
    live_daphne: LiveDaphne,
) -> None:
    async with httpx.AsyncClient(base_url=live_daphne.url) as http:
        response = await http.get("/v1/openapi.json")
        unknown = await http.get("/v1/embeddings")
    document = response.json()
    assert document["openapi"].startswith("3.1") and document["servers"] == [{"url": live_daphne.url + "/v1"}]
    assert set(document["paths"]) == {"/chat/completions", "/models", "/models/{model}"}
    request = document["components"]["schemas"]["ChatCompletionRequest"]
    assert set(request["properties"]) == set(USED) | set(NEUTRAL) | set(WITHOUT_EFFECT)
    assert unknown.status_code == 404 and unknown.json()["error"]["code"] == "unknown_url"
