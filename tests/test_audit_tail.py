"""The audit log cannot be shortened unnoticed (issue 24, item 1): only the owner's retention
purge deletes rows, a signed head outside the database pins where the log ends, keys rotate with
a signed re-anchor, and the auditors' page verifies only what is new."""

from __future__ import annotations

import importlib
import io
import json
import socket
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from django.core.exceptions import ImproperlyConfigured
from django.core.management import call_command
from django.db import DatabaseError, connection, transaction
from django.test import Client

from audit.heads import SignedHead, audit_head_write, audit_heads_verify
from audit.models import AuditCheckpoint, AuditEvent, AuditVerifiedHead
from audit.services import (
    PurgeRefusedError,
    audit_chain_verify,
    audit_chain_verify_incremental,
    audit_purge_expired,
    pseudonym,
)
from config.env import audit_keyring
from tests.test_audit import _backdate, _tamper, auditor_client, head_file, question

__all__ = ["auditor_client", "head_file"]  # fixtures, used by name

pytestmark = pytest.mark.django_db

MIGRATION = importlib.import_module("audit.migrations.0009_purge_as_owner_key_ids")
APP_ROLE = "policydesk_app_probe"


@pytest.fixture
def app_role() -> Iterator[Callable[[], Any]]:
    """A role like the one compose and k8s run the app as, but granted every table privilege,
    TRUNCATE included, as a careless `GRANT ... ON ALL TABLES` would: what stops it must be the
    trigger, not a missing grant. Yields a context that switches this connection to it."""
    with connection.cursor() as cursor:
        cursor.execute(f"CREATE ROLE {APP_ROLE} NOSUPERUSER NOCREATEDB NOCREATEROLE")
        cursor.execute(f"GRANT USAGE ON SCHEMA public TO {APP_ROLE}")
        cursor.execute(
            f"GRANT SELECT, INSERT, UPDATE, DELETE, TRUNCATE ON ALL TABLES IN SCHEMA public TO {APP_ROLE}"
        )
        cursor.execute(f"GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA public TO {APP_ROLE}")

    class AsApp:
        def __enter__(self) -> Any:
            self.cursor = connection.cursor()
            self.cursor.execute(f"SET ROLE {APP_ROLE}")
            return self.cursor

        def __exit__(self, *exc: object) -> None:
            self.cursor.execute("RESET ROLE")
            self.cursor.close()

    yield AsApp
    with connection.cursor() as cursor:
        cursor.execute("RESET ROLE")
        cursor.execute(f"REVOKE ALL ON ALL TABLES IN SCHEMA public FROM {APP_ROLE}")
        cursor.execute(f"REVOKE ALL ON ALL SEQUENCES IN SCHEMA public FROM {APP_ROLE}")
        cursor.execute(f"REVOKE USAGE ON SCHEMA public FROM {APP_ROLE}")
        cursor.execute(f"DROP ROLE {APP_ROLE}")


def _count() -> int:
    return AuditEvent.objects.count()


# --- 1. deletion only through the owner's purge ------------------------------------------------


@pytest.mark.parametrize(
    "sql",
    [
        "DELETE FROM audit_auditevent WHERE seq > 1",
        "DELETE FROM audit_auditevent",
        "TRUNCATE audit_auditevent",
    ],
)
def test_the_app_role_cannot_delete_the_tail_whatever_it_sets(app_role: Any, sql: str) -> None:
    for n in range(3):
        question(n)
    with app_role() as cursor:
        for setting in ("policydesk.audit_purge", "policydesk.anything"):
            with pytest.raises(DatabaseError, match="append-only"), transaction.atomic():
                cursor.execute(f"SET LOCAL {setting} = 'on'")
                cursor.execute(sql)
    assert _count() == 3 and audit_chain_verify().valid


def test_the_migration_takes_delete_and_truncate_from_every_role_but_the_owner(app_role: Any) -> None:
    """As deploy/postgres/10-app-role.sh grants rows on every table, then `migrate` runs."""
    question()
    with connection.cursor() as cursor:
        cursor.execute(MIGRATION.REVOKE_FROM_OTHERS)
    with app_role() as cursor:
        for sql in ("DELETE FROM audit_auditevent", "TRUNCATE audit_auditevent",
                    "UPDATE audit_retention SET days = 1"):  # fmt: skip
            with pytest.raises(DatabaseError, match="permission denied"), transaction.atomic():
                cursor.execute(sql)
        cursor.execute("SELECT count(*) FROM audit_auditevent")
        assert cursor.fetchone() == (1,)


def test_the_app_role_cannot_shrink_the_retention_window(app_role: Any) -> None:
    with app_role() as cursor:
        for sql in ("UPDATE audit_retention SET days = 1", "DELETE FROM audit_retention"):
            with pytest.raises(DatabaseError, match="owner only"), transaction.atomic():
                cursor.execute(sql)
    with connection.cursor() as cursor:
        cursor.execute("SELECT days FROM audit_retention")
        assert cursor.fetchone() == (settings_days(),)


def settings_days() -> int:
    from django.conf import settings

    return int(settings.AUDIT_RETENTION_DAYS)


def test_the_purge_refuses_a_cutoff_inside_the_retention_window(app_role: Any) -> None:
    for n in range(3):
        question(n)
    with pytest.raises(PurgeRefusedError, match="1 days is inside the 365 day retention window"):
        audit_purge_expired(older_than_days=1)
    with app_role() as cursor, pytest.raises(DatabaseError, match="purge refused"), transaction.atomic():
        cursor.execute("SELECT * FROM audit_purge_expired_events(0)")
    assert _count() == 3


def test_the_app_role_purges_expired_rows_through_the_owners_function(app_role: Any) -> None:
    old = [question(n) for n in range(3)]
    _backdate(old)
    recent = [question(n) for n in range(2)]
    with app_role():
        assert audit_purge_expired(older_than_days=365) == 3
    assert list(AuditEvent.objects.order_by("seq").values_list("id", flat=True)) == [e.id for e in recent]
    status = audit_chain_verify()
    assert status.valid and status.checkpoint_seq == old[-1].seq


# --- 2. the signed head -----------------------------------------------------------------------


def _verify() -> tuple[dict[str, Any], str]:
    out, err = io.StringIO(), io.StringIO()
    try:
        call_command("audit_verify", stdout=out, stderr=err)
    except SystemExit as exit_:
        assert exit_.code == 1
    return json.loads(out.getvalue()), err.getvalue()


def _owner_deletes_after(seq: int) -> None:
    """The owner (or a superuser) can always delete: it can switch the trigger off."""
    _tamper("DELETE FROM audit_auditevent WHERE seq > %s", [seq])


def test_deleting_the_tail_as_the_owner_is_reported_against_the_head_file(head_file: Path) -> None:
    events = [question(n) for n in range(6)]
    head = audit_head_write(min_interval=0)
    assert head is not None and head.seq == events[-1].seq and head_file.exists()
    _owner_deletes_after(events[2].seq)
    assert audit_chain_verify().valid, "the chain alone cannot tell a shortened log"
    report, err = _verify()
    first, last = events[3].seq, events[-1].seq
    assert not report["valid"] and report["head_seq"] == last
    assert f"truncated: events {first}..{last} missing" in err
    assert audit_head_write(min_interval=0) is None, "no head is written behind the newest one"


def test_deleting_every_event_is_reported_too() -> None:
    events = [question(n) for n in range(3)]
    audit_head_write(min_interval=0)
    _owner_deletes_after(0)
    report, err = _verify()
    assert not report["valid"] and f"truncated: events 1..{events[-1].seq} missing" in err


def test_new_events_that_reuse_deleted_sequence_numbers_are_reported() -> None:
    events = [question(n) for n in range(5)]
    audit_head_write(min_interval=0)
    _owner_deletes_after(events[2].seq)
    refill = [question(n) for n in range(10, 14)]
    assert refill[0].seq == events[3].seq, "the sequence numbers were reused"
    assert audit_head_write(min_interval=0) is not None  # the log is longer again
    report, err = _verify()
    assert not report["valid"] and f"reused sequence numbers: #{events[-1].seq}" in err
    assert "truncated" not in err


def test_an_intact_log_verifies_against_its_heads() -> None:
    for n in range(3):
        question(n)
    audit_head_write(min_interval=0)
    assert audit_head_write(min_interval=0) is None, "an unchanged log writes no new head"
    for n in range(2):
        question(n)
    audit_head_write(min_interval=0)
    report, err = _verify()
    assert report["valid"] and report["heads"] == 2 and report["head_seq"] == 5 and not err


def test_the_retention_purge_is_not_mistaken_for_a_deleted_tail() -> None:
    old = [question(n) for n in range(3)]
    _backdate(old)
    audit_head_write(min_interval=0)  # a head at the last old event: it will be purged
    recent = [question(n) for n in range(2)]
    audit_head_write(min_interval=0)
    assert audit_purge_expired(older_than_days=365) == 3
    report, err = _verify()
    assert report["valid"] and report["heads"] == 2 and report["head_seq"] == recent[-1].seq, err


def test_a_log_purged_to_its_last_event_still_matches_its_head() -> None:
    _backdate([question(n) for n in range(3)])
    audit_head_write(min_interval=0)
    assert audit_purge_expired(older_than_days=365) == 3
    report, err = _verify()
    assert report["valid"] and report["checked"] == 0 and report["head_seq"] == 3, err


def test_a_head_is_written_at_most_every_interval_unless_n_events_passed(
    settings: Any, django_capture_on_commit_callbacks: Any
) -> None:
    question(0)
    assert audit_head_write(min_interval=3600) is not None, "the first head is written at once"
    question(1)
    assert audit_head_write(min_interval=3600) is None, "too soon"
    settings.AUDIT_HEAD_EVENTS = 4
    for n in range(2, 5):
        with django_capture_on_commit_callbacks(execute=True):
            question(n)
    assert audit_heads_verify().head_seq == 4, "every 4th event writes a head once committed"


def test_a_forged_or_reordered_head_is_reported(head_file: Path) -> None:
    for n in range(4):
        question(n)
    audit_head_write(min_interval=0)
    genuine = head_file.read_text()
    forged = json.loads(genuine)
    forged["seq"] = 2
    head_file.write_text(genuine + json.dumps(forged) + "\n")
    assert "line 2: its signature does not match" in audit_heads_verify().problem
    older = SignedHead.sign(seq=2, hash=AuditEvent.objects.get(seq=2).hash, at=forged["at"], key_id="")
    head_file.write_text(genuine + older.line())
    assert "goes back from #4 to #2" in audit_heads_verify().problem


def test_the_head_file_and_syslog_hold_no_personal_data(settings: Any, head_file: Path) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sink:
        sink.bind(("127.0.0.1", 0))
        sink.settimeout(5)
        settings.AUDIT_HEAD_SYSLOG = f"127.0.0.1:{sink.getsockname()[1]}"
        event = question(1, question="Does Nguyễn Văn An at an@example.com get leave?")
        head = audit_head_write(min_interval=0)
        received = sink.recv(4096).decode()
    assert head is not None and head.line().strip() in received
    text = head_file.read_text()
    assert set(json.loads(text)) == {"seq", "hash", "at", "kid", "sig"} and event.hash in text
    for raw in ("Nguyễn", "example.com", event.actor, str(event.message_id)):
        assert raw not in text and raw not in received
    assert head_file.stat().st_mode & 0o077 == 0, "readable by its owner only"


# --- 3. key rotation ----------------------------------------------------------------------------


@pytest.fixture
def rotated(settings: Any) -> Callable[..., None]:
    original = dict(settings.AUDIT_HMAC_KEYS)

    def rotate(key_id: str = "2027a", current: str | None = None) -> None:
        settings.AUDIT_HMAC_KEYS = original | {key_id: f"a-new-secret-for-{key_id}"}
        settings.AUDIT_HMAC_KEY_ID = key_id if current is None else current

    return rotate


def test_rotation_adds_a_signed_re_anchor_and_old_and_new_events_verify(
    rotated: Callable[..., None], settings: Any
) -> None:
    old = [question(n) for n in range(2)]
    audit_head_write(min_interval=0)
    before = pseudonym(user_id=7)
    rotated()
    new = [question(n) for n in range(2, 4)]
    anchor = AuditEvent.objects.get(kind=AuditEvent.Kind.KEY_ROTATION)
    assert anchor.seq == old[-1].seq + 1 and new[0].seq == anchor.seq + 1
    assert anchor.detail == {"from": "", "to": "2027a", "previous_hash": old[-1].hash}
    assert {e.key_id for e in old} == {""} and {anchor.key_id, *(e.key_id for e in new)} == {"2027a"}
    assert pseudonym(user_id=7) == before, "pseudonyms do not change with the chain's key"
    audit_head_write(min_interval=0)
    status = audit_chain_verify()
    assert status.valid and status.checked == 5
    report, _ = _verify()
    assert report["valid"] and report["heads"] == 2
    assert [json.loads(line)["kid"] for line in Path(settings.AUDIT_HEAD_FILE).read_text().splitlines()] == [
        "",
        "2027a",
    ]


def test_a_purge_checkpoint_signed_under_a_rotated_key_verifies(rotated: Callable[..., None]) -> None:
    old = [question(n) for n in range(2)]
    _backdate(old)
    rotated()
    question(5)
    assert audit_purge_expired(older_than_days=365) == 2
    assert AuditCheckpoint.objects.get().key_id == "2027a" and audit_chain_verify().valid


def test_a_process_still_naming_the_old_key_follows_the_chains_newer_key(
    rotated: Callable[..., None],
) -> None:
    """A rolling rotation: one process already signs with the new key, another still names the
    old one as current but holds the new one too. The chain does not step back."""
    question(0)
    rotated()
    question(1)
    rotated(current="")
    assert question(2).key_id == "2027a"
    assert AuditEvent.objects.filter(kind=AuditEvent.Kind.KEY_ROTATION).count() == 1
    assert audit_chain_verify().valid


def test_a_step_back_to_an_older_key_or_a_key_missing_from_the_ring_is_reported(
    rotated: Callable[..., None], settings: Any
) -> None:
    question(0)
    rotated()
    question(1)
    full_ring = dict(settings.AUDIT_HMAC_KEYS)
    settings.AUDIT_HMAC_KEYS = {"": settings.AUDIT_HMAC_KEY}  # a process never given the new key
    settings.AUDIT_HMAC_KEY_ID = ""
    question(2)
    assert "key id '2027a', which is not in the keyring" in audit_chain_verify().problem
    settings.AUDIT_HMAC_KEYS = full_ring
    assert "back to the older key" in audit_chain_verify().problem


def test_the_keyring_reads_ids_and_secrets_and_keeps_the_single_key_first() -> None:
    assert audit_keyring("k1:s1, k2:s:2", legacy=None) == {"k1": "s1", "k2": "s:2"}
    assert list(audit_keyring("k1:s1", legacy="old")) == ["", "k1"]
    assert audit_keyring(None, legacy="old") == {"": "old"}
    for bad in ("k1", "k 1:s", "k1:", "k1:a,k1:b"):
        with pytest.raises(ImproperlyConfigured) as error:
            audit_keyring(bad, legacy=None)
        assert "POLICYDESK_AUDIT_HMAC_KEYS" in str(error.value) and ":a" not in str(error.value)


@pytest.mark.parametrize(
    ("env", "error"),
    [
        ({"POLICYDESK_AUDIT_HMAC_KEYS": "k1:" + "a" * 40}, ""),
        ({"POLICYDESK_AUDIT_HMAC_KEYS": "k1:" + "a" * 40, "POLICYDESK_AUDIT_HMAC_KEY_ID": "k9"},
         "POLICYDESK_AUDIT_HMAC_KEY_ID='k9' is not a key id"),
        ({"POLICYDESK_AUDIT_HMAC_KEYS": "k1"}, "POLICYDESK_AUDIT_HMAC_KEYS entry 1 is not id:secret"),
    ],
)  # fmt: skip
def test_a_keyring_alone_is_enough_to_start_and_a_bad_one_stops_it(env: dict[str, str], error: str) -> None:
    from tests.test_settings import _load_settings

    result = _load_settings(POLICYDESK_SECRET_KEY="k" * 50, **env)
    assert (result.returncode == 0) is (not error), result.stderr
    assert error in result.stderr and "a" * 40 not in result.stderr


# --- 4. the auditors' page verifies incrementally -----------------------------------------------


def test_the_page_check_walks_only_events_written_since_the_last_one() -> None:
    for n in range(30):
        question(n)
    first = audit_chain_verify_incremental()
    assert first.valid and first.walked == 30 and first.checked == 30
    question(99)
    second = audit_chain_verify_incremental()
    assert second.valid and second.walked == 1 and second.checked == 31


def test_the_list_page_verifies_incrementally(auditor_client: Client) -> None:
    for n in range(20):
        question(n)
    first = auditor_client.get("/audit/").context["chain"]
    assert first.valid and first.walked == 21  # 20 questions and the view's own event
    again = auditor_client.get("/audit/")
    assert again.context["chain"].walked == 1 and "Chain valid: 22 events verified" in again.content.decode()


def test_an_edit_after_the_verified_head_is_caught_and_a_forged_head_falls_back_to_the_full_walk() -> None:
    events = [question(n) for n in range(6)]
    audit_chain_verify_incremental()
    later = question(7)
    _tamper("UPDATE audit_auditevent SET answer = 'edited' WHERE id = %s", [later.id])
    assert audit_chain_verify_incremental().first_broken_seq == later.seq
    _tamper("UPDATE audit_auditevent SET answer = 'edited' WHERE id = %s", [events[1].id])
    AuditVerifiedHead.objects.update(through_seq=later.seq, through_hash=later.hash)
    status = audit_chain_verify_incremental()
    assert not status.valid and status.first_broken_seq == events[1].seq, "unsigned head: full walk"


def test_the_list_page_shows_a_truncated_tail(auditor_client: Client) -> None:
    events = [question(n) for n in range(4)]
    audit_head_write(min_interval=0)
    _owner_deletes_after(events[1].seq)
    page = auditor_client.get("/audit/").content.decode()
    assert "Chain BROKEN" in page and "truncated" in page
