"""The audit log: append-only in the database, hash-chained, purged without breaking the chain,
and readable by auditors only."""

from __future__ import annotations

import io
import json
import uuid
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings
from django.contrib.auth.models import User
from django.core.management import call_command
from django.db import DatabaseError, connection, transaction
from django.test import Client
from django.utils import timezone

from accounts.roles import Role
from audit.models import AuditChainAnchor, AuditCheckpoint, AuditEvent
from audit.services import audit_chain_verify, audit_event_append, audit_purge_expired, pseudonym

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def head_file(settings: Any, tmp_path: Path) -> Path:
    """Each test its own signed-head file (the default is under the data dir)."""
    settings.AUDIT_HEAD_FILE = tmp_path / "audit" / "signed-heads.jsonl"
    return Path(settings.AUDIT_HEAD_FILE)


def question(n: int = 0, **extra: object) -> AuditEvent:
    fields: dict[str, object] = {
        "conversation_id": uuid.uuid4(),
        "message_id": uuid.uuid4(),
        "question": f"How much leave does <PERSON_1> get? ({n})",
        "answer": "Twenty days [1].",
        "pii_counts": {"PERSON": 1},
        "backend": "local",
        "outcome": "answered",
        "latencies": {"total_ms": 12.5},
    }
    fields.update(extra)
    return audit_event_append(kind=AuditEvent.Kind.QUESTION, actor=pseudonym(user_id=1), **fields)


def _tamper(sql: str, params: list[Any]) -> None:
    """What a DBA with table ownership could do: switch the trigger off and edit a row."""
    with connection.cursor() as cursor:
        cursor.execute("ALTER TABLE audit_auditevent DISABLE TRIGGER audit_event_append_only")
        cursor.execute(sql, params)
        cursor.execute("ALTER TABLE audit_auditevent ENABLE TRIGGER audit_event_append_only")


def test_events_chain_each_to_the_previous_hash() -> None:
    first, second = question(1), question(2)
    assert first.prev_hash == "0" * 64 and second.prev_hash == first.hash
    assert second.seq == first.seq + 1
    assert audit_chain_verify().valid


def test_the_database_rejects_updates_and_deletes() -> None:
    event = question()
    for sql in (
        "UPDATE audit_auditevent SET answer = 'changed' WHERE id = %s",
        "DELETE FROM audit_auditevent WHERE id = %s",
    ):
        with (
            pytest.raises(DatabaseError, match="append-only"),
            transaction.atomic(),
            connection.cursor() as cursor,
        ):
            cursor.execute(sql, [event.id])
    event.refresh_from_db()
    assert event.answer == "Twenty days [1]."


def test_the_orm_cannot_update_an_event_either() -> None:
    event = question()
    event.answer = "rewritten"
    with pytest.raises(DatabaseError), transaction.atomic():
        event.save()


def test_verification_names_the_first_altered_row() -> None:
    events = [question(n) for n in range(5)]
    _tamper("UPDATE audit_auditevent SET answer = 'edited' WHERE id = %s", [events[2].id])
    status = audit_chain_verify()
    assert not status.valid and status.first_broken_seq == events[2].seq
    assert "altered" in status.problem
    out, err = io.StringIO(), io.StringIO()
    with pytest.raises(SystemExit):
        call_command("audit_verify", stdout=out, stderr=err)
    assert json.loads(out.getvalue())["first_broken_id"] == events[2].id
    assert f"#{events[2].seq}" in err.getvalue()


def test_verification_detects_a_deleted_row() -> None:
    events = [question(n) for n in range(4)]
    _tamper("DELETE FROM audit_auditevent WHERE id = %s", [events[1].id])
    status = audit_chain_verify()
    assert not status.valid and status.first_broken_seq == events[2].seq
    assert "missing" in status.problem


def test_verification_detects_a_rehashed_row() -> None:
    """Rewriting a row and its own hash still breaks the next link."""
    events = [question(n) for n in range(3)]
    _tamper("UPDATE audit_auditevent SET hash = %s WHERE id = %s", ["f" * 64, events[1].id])
    status = audit_chain_verify()
    assert not status.valid and status.first_broken_seq == events[1].seq


def test_audit_verify_passes_on_an_intact_chain() -> None:
    for n in range(3):
        question(n)
    out = io.StringIO()
    call_command("audit_verify", stdout=out)
    assert json.loads(out.getvalue()) == {
        "valid": True, "checked": 3, "first_broken_seq": None, "first_broken_id": None, "problem": "",
        "checkpoint_seq": None, "head_file": str(settings.AUDIT_HEAD_FILE), "heads": 0, "head_seq": None,
        "head_problem": "",
    }  # fmt: skip


def test_retention_purge_keeps_the_chain_verifiable() -> None:
    old = [question(n) for n in range(3)]
    _tamper("UPDATE audit_auditevent SET created_at = %s WHERE id = ANY(%s)",
            [timezone.now() - timedelta(days=400), [e.id for e in old]])  # fmt: skip
    # Backdating changed the rows' content, so re-derive hashes as if they were written then.
    _rehash_all()
    recent = [question(n) for n in range(2)]
    assert audit_purge_expired(older_than_days=365) == 3
    assert list(AuditEvent.objects.order_by("seq").values_list("id", flat=True)) == [e.id for e in recent]
    checkpoint = AuditCheckpoint.objects.get()
    assert checkpoint.through_seq == old[-1].seq and checkpoint.purged == 3
    status = audit_chain_verify()
    assert status.valid and status.checked == 2 and status.checkpoint_seq == old[-1].seq
    assert audit_purge_expired(older_than_days=365) == 0, "a second run purges nothing"
    after = question(9)
    assert after.prev_hash == recent[-1].hash and audit_chain_verify().valid


def _backdate(events: list[AuditEvent], days: int = 400) -> None:
    _tamper("UPDATE audit_auditevent SET created_at = %s WHERE id = ANY(%s)",
            [timezone.now() - timedelta(days=days), [e.id for e in events]])  # fmt: skip
    _rehash_all()


def test_a_forged_checkpoint_fails_verification() -> None:
    _backdate([question()])
    assert audit_purge_expired(older_than_days=365) == 1
    AuditCheckpoint.objects.update(through_hash="a" * 64)
    assert not audit_chain_verify().valid


def _rehash_without_the_key(events: list[AuditEvent], start: int) -> None:
    """What someone with the database but not the key can do: recompute plain SHA-256 links."""
    from audit.services import event_hash

    prev = events[start - 1].hash if start else "0" * 64
    with connection.cursor() as cursor:
        cursor.execute("ALTER TABLE audit_auditevent DISABLE TRIGGER audit_event_append_only")
        for event in AuditEvent.objects.filter(seq__gte=events[start].seq).order_by("seq"):
            event.prev_hash = prev
            event.hash = event_hash(event, keyed=False)
            AuditEvent.objects.filter(id=event.id).update(prev_hash=event.prev_hash, hash=event.hash)
            prev = event.hash
        cursor.execute("ALTER TABLE audit_auditevent ENABLE TRIGGER audit_event_append_only")


def test_an_edit_rehashed_without_the_key_fails_verification() -> None:
    events = [question(n) for n in range(5)]
    _tamper("UPDATE audit_auditevent SET answer = 'edited' WHERE id = %s", [events[2].id])
    _rehash_without_the_key(events, 2)
    status = audit_chain_verify()
    assert not status.valid and status.first_broken_seq == events[2].seq and "altered" in status.problem


def test_history_from_before_the_keyed_chain_verifies_and_cannot_be_rewritten() -> None:
    from audit.services import anchor_signature

    AuditChainAnchor.objects.update(keyed_from_seq=3)  # as if upgraded after two events
    unkeyed = [question(n) for n in range(2)]
    AuditChainAnchor.objects.update(
        previous_hash=unkeyed[-1].hash,
        signature=anchor_signature(keyed_from_seq=3, previous_hash=unkeyed[-1].hash),
    )
    keyed = [question(n) for n in range(2, 4)]
    assert audit_chain_verify().valid and audit_chain_verify().checked == 4
    assert keyed[0].prev_hash == unkeyed[-1].hash
    _tamper("UPDATE audit_auditevent SET answer = 'edited' WHERE id = %s", [unkeyed[0].id])
    _rehash_without_the_key(unkeyed, 0)
    status = audit_chain_verify()
    assert not status.valid and status.first_broken_seq == keyed[0].seq


def test_a_moved_or_missing_anchor_fails_verification() -> None:
    question()
    AuditChainAnchor.objects.update(keyed_from_seq=5)
    assert "anchor" in audit_chain_verify().problem
    AuditChainAnchor.objects.all().delete()
    assert audit_chain_verify().problem == "the keyed-chain anchor is missing"


def _rehash_all() -> None:
    from audit.services import GENESIS, event_hash

    prev = GENESIS
    with connection.cursor() as cursor:
        cursor.execute("ALTER TABLE audit_auditevent DISABLE TRIGGER audit_event_append_only")
        for event in AuditEvent.objects.order_by("seq"):
            event.prev_hash = prev
            event.hash = event_hash(event)
            AuditEvent.objects.filter(id=event.id).update(prev_hash=event.prev_hash, hash=event.hash)
            prev = event.hash
        cursor.execute("ALTER TABLE audit_auditevent ENABLE TRIGGER audit_event_append_only")


def test_pseudonyms_are_stable_and_not_the_username() -> None:
    assert pseudonym(user_id=7) == pseudonym(user_id=7) != pseudonym(user_id=8)
    assert len(pseudonym(user_id=7)) == 32


# --- auditor pages ---------------------------------------------------------------------------


@pytest.fixture
def auditor_client(client: Client, make_user: Callable[..., User]) -> Client:
    make_user("audrey", Role.AUDITOR)
    client.login(username="audrey", password="not-used-pw-123")
    return client


@pytest.mark.parametrize("role", [Role.EMPLOYEE, Role.POLICY_ADMIN])
@pytest.mark.parametrize("url", ["/audit/", "/audit/export.csv", "/audit/export.jsonl"])
def test_employees_and_admins_get_403_on_audit_pages(
    client: Client, make_user: Callable[..., User], role: Role, url: str
) -> None:
    make_user("someone", role)
    client.login(username="someone", password="not-used-pw-123")
    assert client.get(url).status_code == 403


def test_the_list_filters_and_each_view_is_itself_audited(auditor_client: Client) -> None:
    question(1, backend="vllm", outcome="answered")
    question(2, backend="extractive", outcome="fallback", pii_counts={})
    page = auditor_client.get("/audit/", {"backend": "extractive"}).content.decode()
    assert "(2)" in page and "(1)" not in page
    page = auditor_client.get("/audit/", {"pii": "yes"}).content.decode()
    assert "(1)" in page and "(2)" not in page
    assert "Chain valid" in page
    views = AuditEvent.objects.filter(kind=AuditEvent.Kind.AUDITOR_VIEW)
    assert views.count() == 2
    assert views.first().detail["filters"] == {"pii": "yes", "kind": "question"}  # type: ignore[union-attr]


def test_the_feedback_filter_follows_feedback_events(auditor_client: Client) -> None:
    liked, _ = question(1), question(2)
    audit_event_append(kind=AuditEvent.Kind.FEEDBACK, actor="x", message_id=liked.message_id, feedback=1)
    page = auditor_client.get("/audit/", {"feedback": "up"}).content.decode()
    assert "(1)" in page and "(2)" not in page


def test_exports_stream_csv_and_jsonl_and_are_audited(auditor_client: Client) -> None:
    question(1)
    response = auditor_client.get("/audit/export.jsonl")
    rows = [json.loads(line) for line in b"".join(response.streaming_content).decode().splitlines()]  # type: ignore[attr-defined]
    assert [row["question"] for row in rows] == ["How much leave does <PERSON_1> get? (1)"]
    response = auditor_client.get("/audit/export.csv")
    text = b"".join(response.streaming_content).decode()  # type: ignore[attr-defined]
    assert text.startswith("seq,created_at,kind") and "<PERSON_1>" in text
    exports = AuditEvent.objects.filter(kind=AuditEvent.Kind.AUDITOR_EXPORT).order_by("seq")
    assert [e.detail["format"] for e in exports] == ["jsonl", "csv"]
    assert audit_chain_verify().valid


def test_the_detail_page_shows_the_redacted_event(auditor_client: Client) -> None:
    event = question(5)
    page = auditor_client.get(f"/audit/{event.seq}/").content.decode()
    assert "&lt;PERSON_1&gt;" in page and event.hash in page


def test_the_csv_export_neutralises_cells_a_spreadsheet_would_run(auditor_client: Client) -> None:
    question(question='=HYPERLINK("http://evil.example","click")', answer="+1 then -2 @SUM(A1)")
    body = b"".join(auditor_client.get("/audit/export.csv").streaming_content).decode()  # type: ignore[attr-defined]
    row = next(line for line in body.splitlines() if "HYPERLINK" in line)
    assert "'=HYPERLINK" in row and "'+1 then" in row
    assert ",=HYPERLINK" not in row and ',"=HYPERLINK' not in row


@pytest.mark.parametrize(
    "query",
    ["?from=0001-01-01&to=9999-12-31", "?actor=%00", "?backend=a%00b&outcome=%00", "?from=2026-13-40"],
)
def test_odd_filters_are_ignored_not_a_server_error(auditor_client: Client, query: str) -> None:
    question()
    assert auditor_client.get("/audit/" + query).status_code == 200
    assert auditor_client.get("/audit/export.jsonl" + query).status_code == 200


def test_a_role_that_owns_no_table_cannot_switch_the_trigger_off() -> None:
    """The role docker-compose and k8s run the app as (deploy/postgres/10-app-role.sh): rows only."""
    event = question()
    with connection.cursor() as cursor:
        cursor.execute("CREATE ROLE policydesk_app_probe NOSUPERUSER NOCREATEDB NOCREATEROLE")
        cursor.execute("GRANT USAGE ON SCHEMA public TO policydesk_app_probe")
        cursor.execute(
            "GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO policydesk_app_probe"
        )
        cursor.execute("SET ROLE policydesk_app_probe")
        try:
            with pytest.raises(DatabaseError, match="must be owner"), transaction.atomic():
                cursor.execute("ALTER TABLE audit_auditevent DISABLE TRIGGER audit_event_append_only")
            with pytest.raises(DatabaseError, match="append-only"), transaction.atomic():
                cursor.execute("UPDATE audit_auditevent SET answer = 'edited' WHERE id = %s", [event.id])
            cursor.execute("SELECT count(*) FROM audit_auditevent")
            assert cursor.fetchone() == (1,)
        finally:
            cursor.execute("RESET ROLE")
            cursor.execute("REVOKE ALL ON ALL TABLES IN SCHEMA public FROM policydesk_app_probe")
            cursor.execute("REVOKE USAGE ON SCHEMA public FROM policydesk_app_probe")
            cursor.execute("DROP ROLE policydesk_app_probe")
