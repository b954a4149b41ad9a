"""Zero raw PII persisted, end to end: questions full of PII go through the real pipeline
(real PostgreSQL, real Redis, the real llama.cpp model behind a recording proxy). Then every
text column of every table, every Redis value, the captured logs and everything the model was
sent are searched for each raw value."""

from __future__ import annotations

import io
import json
import logging
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from asgiref.sync import sync_to_async
from django.conf import settings
from django.contrib.auth.models import User
from django.db import connection
from django.test import Client, override_settings

from accounts.roles import Role
from llm.config import BackendConfig
from privacy.logging import RedactingFilter
from privacy.services import text_redact
from tests.llm_servers import LocalLLMProcess, RecordingProxy
from tests.rag_helpers import ingest_bytes
from tests.test_chat import LEAVE_POLICY, ask, backends, fake, fake_backend, socket_for, until

pytestmark = [pytest.mark.django_db(transaction=True)]

TURNS = [
    "Hi, I'm Maria Gonzalez (maria.gonzalez@gmail.com, +1 415-555-0132). My SSN is 123-45-6789. "
    "How much annual leave do I get?",
    "My manager John Smith (employee KL-20431) lives at 42 Baker Street. Can he refuse my leave?",
]
VIETNAMESE = (
    "Tôi là Nguyễn Văn An, số điện thoại 0903 123 456, CCCD 079203001234. Tôi được nghỉ ốm bao nhiêu ngày?"
)
FEEDBACK = "Please call Maria Gonzalez on 415-555-0132 about this."
RENAME = "Leave for Maria Gonzalez"
RAW_VALUES = [
    "Maria Gonzalez", "maria.gonzalez@gmail.com", "415-555-0132", "123-45-6789", "John Smith", "KL-20431",
    "42 Baker Street", "Nguyễn Văn An", "0903 123 456", "079203001234",
]  # fmt: skip


@pytest.fixture
def captured_logs() -> Iterator[tuple[io.StringIO, io.StringIO]]:
    """Two views of every log record: raw (what the code logged) and through the PII filter."""
    raw, filtered = io.StringIO(), io.StringIO()
    raw_handler, filtered_handler = logging.StreamHandler(raw), logging.StreamHandler(filtered)
    filtered_handler.addFilter(RedactingFilter())
    root = logging.getLogger()
    old_level = root.level
    root.setLevel(logging.DEBUG)
    root.addHandler(raw_handler)
    root.addHandler(filtered_handler)
    yield raw, filtered
    root.removeHandler(raw_handler)
    root.removeHandler(filtered_handler)
    root.setLevel(old_level)


def _database_hits(value: str) -> list[str]:
    hits = []
    with connection.cursor() as cursor:
        cursor.execute(
            """SELECT table_name, column_name FROM information_schema.columns
               WHERE table_schema = 'public'
                 AND data_type IN ('text', 'character varying', 'json', 'jsonb', 'character')"""
        )
        for table, column in cursor.fetchall():
            # Hex digests (hash chain, HMAC keys of placeholders) hold no text but can hold "1992";
            # so can timings and scores in JSON columns (1992.41): both are left out.
            cursor.execute(
                f"""SELECT count(*) FROM "{table}" WHERE regexp_replace(regexp_replace("{column}"::text, '[0-9a-f]{{32,}}', '', 'g'), '[0-9]+\\.[0-9]+', '', 'g') LIKE %s""",  # noqa: S608
                [f"%{value}%"],
            )
            if cursor.fetchone()[0]:
                hits.append(f"{table}.{column}")
    return hits


def _redis_hits(value: str) -> list[str]:
    client = redis.Redis.from_url(settings.REDIS_URL)
    hits = []
    for key in client.scan_iter(count=500):
        kind = client.type(key)
        blobs: list[Any] = [client.get(key)] if kind == b"string" else []
        if kind == b"list":
            blobs = list(client.lrange(key, 0, -1))
        elif kind == b"zset":
            blobs = list(client.zrange(key, 0, -1))
        if any(blob and value.encode() in blob for blob in blobs):
            hits.append(key.decode(errors="replace"))
    return hits


async def test_no_raw_pii_reaches_the_database_redis_logs_or_the_model(
    make_user: Callable[..., User],
    local_llm: LocalLLMProcess,
    captured_logs: tuple[io.StringIO, io.StringIO],
) -> None:
    await sync_to_async(ingest_bytes)(LEAVE_POLICY, "leave-policy.md")
    user = await sync_to_async(make_user)("maria")
    proxy = RecordingProxy(local_llm.url)
    url = await proxy.start()
    # Generate mode: the model gets the whole prompt (passages, history, question), the widest
    # path personal data could take to it.
    local = BackendConfig(
        name="local", kind="local", base_url=url, model="smollm2", max_tokens=24, answer_mode="generate"
    )
    try:
        async with backends(local), socket_for(user) as ws:
            await ask(ws, TURNS[0])
            first = await until(ws, "done", timeout=120)
            conversation = first[0]["conversation_id"]
            await ask(ws, TURNS[1], conversation_id=conversation)
            await until(ws, "done", timeout=120)
            await ws.send_json_to(
                {"type": "feedback", "message_id": first[-1]["message_id"], "value": -1, "comment": FEEDBACK}
            )
            await until(ws, "feedback_saved")
            await ask(ws, VIETNAMESE)
            assert (await until(ws, "done", timeout=120))[-1]["type"] == "done"
    finally:
        await proxy.stop()
    client = Client()
    await sync_to_async(client.force_login)(user)
    await sync_to_async(client.post)(f"/chat/{conversation}/rename/", {"title": RENAME})
    await sync_to_async(lambda: connection.close())()  # the request thread's connection, before teardown

    sent_to_model = proxy.recorded_text()
    assert "<PERSON_1>" in sent_to_model, "precondition: the model saw placeholders"
    raw_logs, filtered_logs = (buffer.getvalue() for buffer in captured_logs)
    leaks = {}
    for value in RAW_VALUES:
        where = await sync_to_async(_database_hits)(value)
        where += [f"redis:{key}" for key in await sync_to_async(_redis_hits)(value)]
        if value in sent_to_model:
            where.append("llm request")
        if value in raw_logs or value in filtered_logs:
            where.append("logs")
        if where:
            leaks[value] = where
    assert leaks == {}


HOLDOUT = Path(__file__).resolve().parent.parent / "privacy" / "cases" / "holdout.jsonl"


async def test_the_holdout_messages_leave_no_value_behind_that_redaction_found(
    make_user: Callable[..., User], captured_logs: tuple[io.StringIO, io.StringIO]
) -> None:
    """Every hold-out message (privacy/cases/holdout.jsonl) asked, one in four also sent as a
    feedback comment, one as a conversation title; then the database, Redis, the logs, the model's
    requests and the auditor's CSV export are searched for each labelled value. A value may only
    be found where the recognizers themselves miss it in that message (their recall is reported
    by `evaluate_redaction`): no path of the pipeline may bypass redaction."""
    cases = [json.loads(line) for line in HOLDOUT.read_text().splitlines() if line.strip()]
    await sync_to_async(ingest_bytes)(LEAVE_POLICY, "leave-policy.md")
    user = await sync_to_async(make_user)("holdout")
    auditor = await sync_to_async(make_user)("auditor", Role.AUDITOR)
    with override_settings(CHAT_RATE_LIMIT_PER_MINUTE=1000, CHAT_FEEDBACK_RATE_LIMIT_PER_MINUTE=1000):
        async with fake(text="You get 20 days of annual leave [1].", tokens_per_second=2000) as server:
            async with backends(fake_backend(server.http.url + "/v1")), socket_for(user) as ws:
                for n, case in enumerate(cases):
                    await ask(ws, case["text"])
                    done = (await until(ws, "done"))[-1]
                    if n % 4 == 0:
                        comment = {"type": "feedback", "message_id": done["message_id"], "value": -1}
                        await ws.send_json_to({**comment, "comment": case["text"]})
                        await until(ws, "feedback_saved")
            sent_to_model = "\n".join(r.body.decode() for r in server.http.requests)
    client = Client()
    await sync_to_async(client.force_login)(user)
    await sync_to_async(client.post)(f"/chat/{done['conversation_id']}/rename/", {"title": cases[1]["text"]})
    await sync_to_async(client.force_login)(auditor)
    export = await sync_to_async(lambda: b"".join(client.get("/audit/export.csv").streaming_content))()  # type: ignore[attr-defined]
    export = re.sub(rb"[0-9a-f]{32,}", b"", export)  # hash columns, as in _database_hits
    # Timings and scores ("total_ms": 1992.41): decimals, which no labelled value is.
    export = re.sub(rb"\d+\.\d+", b"", export)
    # Ids, which a labelled number ("1992") can match by chance: UUIDs, and row ids
    # ("chunk_id": 1992), which grow with every document the test session ingested.
    export = re.sub(rb"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}", b"", export)
    export = re.sub(rb'chunk_id"*: \d+', b"", export)
    await sync_to_async(lambda: connection.close())()

    raw_logs, filtered_logs = (buffer.getvalue() for buffer in captured_logs)
    missed_by_recognizers = {
        item["value"]
        for case in cases
        for item in case["pii"]
        if item["value"] in text_redact(text=case["text"]).text
    }
    leaks = {}
    for value in {item["value"] for case in cases for item in case["pii"]}:
        where = await sync_to_async(_database_hits)(value)
        where += [f"redis:{key}" for key in await sync_to_async(_redis_hits)(value)]
        where += ["llm request"] * (value in sent_to_model) + ["logs"] * (value in raw_logs + filtered_logs)
        where += ["csv export"] * (value.encode() in export)
        if where:
            leaks[value] = where
    assert set(leaks) <= missed_by_recognizers, {
        v: w for v, w in leaks.items() if v not in missed_by_recognizers
    }
    assert len(missed_by_recognizers) <= 2  # hold-out recall 0.989 when this was written (1 of 89)
