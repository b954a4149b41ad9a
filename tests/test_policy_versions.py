"""Policy versions with effective dates (docs/policy-versions.md), on the real PostgreSQL: what
is retrieved on which day, "as of" answers, inherited readers, lifecycle audit events, the
exact cited text after a version is superseded, and the command-line contracts."""

from __future__ import annotations

import io
import json
from collections.abc import Callable, Iterator
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from django.contrib.auth.models import Group, User
from django.core.management import CommandError, call_command
from django.test import Client
from django.test.utils import override_settings
from django.urls import reverse

from accounts.roles import Role
from audit.models import AuditEvent
from audit.services import audit_chain_verify
from core.clock import clock_fixed, company_today
from llm.config import BackendConfig
from rag.lifecycle import VersionDates, VersionError, document_set_review_by, versions_purge_expired
from rag.models import Document
from rag.selectors import retrieve
from rag.services import document_retire
from tests.rag_helpers import ingest_bytes

pytestmark = pytest.mark.django_db(transaction=True)

TODAY = date(2026, 10, 15)
V1_FROM, V2_FROM = date(2026, 1, 1), date(2026, 11, 1)
TRAVEL_V1 = b"# Travel policy\n\n## Per diem\n\nThe daily per diem for meals is 59 USD per day.\n"
TRAVEL_V2 = b"# Travel policy\n\n## Per diem\n\nThe daily per diem for meals is 64 USD per day.\n"
QUESTION = "What is the daily per diem for meals?"
# Every backend down (nothing listens on port 9): evidence mode quotes the policy without a model.
DOWN = BackendConfig(
    name="local", kind="local", base_url="http://127.0.0.1:9/v1", model="m", connect_timeout=0.2
)


@pytest.fixture(autouse=True)
def media_root(settings: Any, tmp_path: Path) -> Iterator[Path]:
    settings.MEDIA_ROOT = tmp_path / "media"
    yield settings.MEDIA_ROOT


@pytest.fixture
def today() -> Iterator[date]:
    with clock_fixed(TODAY):
        yield TODAY


def travel(version: bytes, *, effective_from: date, **kwargs: Any) -> Document:
    return ingest_bytes(version, "travel.md", dates=VersionDates(effective_from=effective_from), **kwargs)


def texts(**kwargs: Any) -> list[str]:
    return [c.text for c in retrieve(query=QUESTION, user=kwargs.pop("user", None), k=3, **kwargs)]


def ask_json(username: str, question: str = QUESTION) -> dict[str, Any]:
    out = io.StringIO()
    with override_settings(LLM_BACKENDS=(DOWN,), LLM_PROBE_INTERVAL=0):
        call_command("ask", question, "--user", username, "--json", stdout=out)
    return json.loads(out.getvalue().strip().splitlines()[-1])


# --- retrieval by date ------------------------------------------------------------------------


def test_a_scheduled_version_is_indexed_but_not_retrieved_until_its_date(today: date) -> None:
    v1 = travel(TRAVEL_V1, effective_from=V1_FROM)
    v2 = travel(TRAVEL_V2, effective_from=V2_FROM)
    v1.refresh_from_db()
    assert v2.status == Document.Status.READY and v2.chunks.count() == 1, "indexed at once"
    assert v1.effective_until == date(2026, 10, 31), "closed the day before its successor"
    assert any("59 USD" in t for t in texts()) and not any("64 USD" in t for t in texts())
    with clock_fixed(V2_FROM):  # no job ran: the date alone changes what is in effect
        assert any("64 USD" in t for t in texts()) and not any("59 USD" in t for t in texts())


def test_an_as_of_date_retrieves_the_version_then_in_effect(today: date) -> None:
    travel(TRAVEL_V1, effective_from=V1_FROM)
    travel(TRAVEL_V2, effective_from=date(2026, 7, 1))
    assert not any("59 USD" in t for t in texts()), "superseded: out of current answers"
    assert any("59 USD" in t for t in texts(as_of=date(2026, 3, 15)))
    assert any("64 USD" in t for t in texts(as_of=date(2026, 7, 1)))
    assert texts(as_of=date(2025, 6, 1)) == [], "before the first version nothing was in effect"


def test_an_upload_without_dates_takes_effect_today_and_replaces_its_predecessor(today: date) -> None:
    old = ingest_bytes(TRAVEL_V1, "travel.md")
    new = ingest_bytes(TRAVEL_V2, "travel.md")
    old.refresh_from_db()
    assert (old.effective_from, new.effective_from, new.version) == (TODAY, TODAY, 2)
    assert any("64 USD" in t for t in texts()) and not any("59 USD" in t for t in texts())


def test_a_new_version_inherits_its_predecessors_readers_unless_given(
    today: date, make_user: Callable[..., User]
) -> None:
    finance, travel_desk = Group.objects.create(name="finance"), Group.objects.create(name="travel")
    travel(TRAVEL_V1, effective_from=V1_FROM, allowed_groups=[finance])
    inherited = travel(TRAVEL_V2, effective_from=V2_FROM)
    assert list(inherited.allowed_groups.values_list("name", flat=True)) == ["finance"]
    v3 = ingest_bytes(TRAVEL_V2 + b"\nAsk the travel desk.\n", "travel.md", allowed_groups=[travel_desk])
    assert list(v3.allowed_groups.values_list("name", flat=True)) == ["travel"]
    outsider = make_user("outsider")
    assert texts(user=outsider, as_of=date(2026, 3, 1)) == [], "the inherited rule still holds"


def test_the_upload_form_keeps_a_restricted_policy_restricted_and_audits_a_change_of_readers(
    today: date, make_user: Callable[..., User]
) -> None:
    """A new version uploaded with no reader ticked used to be readable by everyone; now the form
    shows the predecessor's readers ticked, nothing ticked still inherits them, and a version
    given other readers is a `document_access` event from the predecessor's to the new ones."""
    finance = Group.objects.create(name="finance")
    Group.objects.create(name="travel")
    travel(TRAVEL_V1, effective_from=V1_FROM, allowed_groups=[finance])
    client = Client()
    client.force_login(make_user("admin", Role.POLICY_ADMIN))
    page = client.get(reverse("rag:documents"), {"version_of": "travel.md"}).content.decode()
    assert '<option value="travel.md" data-readers="finance" selected>' in page
    assert '<input type="checkbox" name="groups" value="finance" checked>' in page
    assert '<input type="checkbox" name="groups" value="travel">' in page

    def upload(content: bytes, **fields: Any) -> Document:
        upload_file = io.BytesIO(content)
        upload_file.name = "travel.md"
        client.post(reverse("rag:upload"), {"files": upload_file, "version_of": "travel.md", **fields})
        return Document.objects.order_by("-version").first()  # type: ignore[return-value]

    access_events = AuditEvent.objects.filter(kind=AuditEvent.Kind.DOCUMENT_ACCESS)
    before = access_events.count()
    v2 = upload(TRAVEL_V2)  # nothing ticked
    assert list(v2.allowed_groups.values_list("name", flat=True)) == ["finance"]
    assert texts(user=make_user("outsider")) == [], "still restricted"
    v3 = upload(TRAVEL_V2 + b"\nAsk the travel desk.\n", groups=["finance"])  # ticked as shown
    assert access_events.count() == before, "the same readers: no change to record"
    v4 = upload(TRAVEL_V2 + b"\nAsk the travel desk first.\n", groups=["travel"])
    change = access_events.order_by("seq").last()
    assert change is not None and change.detail["document_id"] == v4.pk
    assert (change.detail["from"], change.detail["to"]) == (["finance"], ["travel"])
    assert v3.version == 3 and audit_chain_verify().valid


# --- the lifecycle in the audit log ------------------------------------------------------------


def test_every_lifecycle_change_is_an_audit_event(today: date, make_user: Callable[..., User]) -> None:
    admin = make_user("admin", Role.POLICY_ADMIN)
    v1 = travel(TRAVEL_V1, effective_from=V1_FROM, uploaded_by=admin)  # a first version: no event
    v2 = travel(TRAVEL_V2, effective_from=V2_FROM, uploaded_by=admin)
    document_set_review_by(document=v2, review_by=date(2027, 6, 30), changed_by=admin)
    document_retire(document=v2, retired_by=admin)
    events = AuditEvent.objects.filter(kind=AuditEvent.Kind.DOCUMENT_LIFECYCLE).order_by("seq")
    actions = [(e.detail["action"], e.detail["document_id"]) for e in events]
    assert actions == [
        ("new_version", v2.pk),
        ("scheduled", v2.pk),
        ("superseded", v1.pk),
        ("review_date", v2.pk),
        ("retired", v2.pk),
    ]
    superseded = events.get(detail__action="superseded")
    assert (
        superseded.detail["superseded_by"] == v2.pk and superseded.detail["effective_until"] == "2026-10-31"
    )
    assert (
        events.get(detail__action="new_version", detail__document_id=v2.pk).detail["predecessor_id"] == v1.pk
    )
    assert events.get(detail__action="review_date").detail["after"] == "2027-06-30"
    assert audit_chain_verify().valid


# --- answers ----------------------------------------------------------------------------------


def test_citations_carry_versions_and_only_allowed_readers_hear_of_a_scheduled_one(
    today: date, make_user: Callable[..., User]
) -> None:
    finance = Group.objects.create(name="finance")
    travel(TRAVEL_V1, effective_from=V1_FROM)
    travel(TRAVEL_V2, effective_from=V2_FROM, allowed_groups=[finance])
    make_user("outsider")
    make_user("insider").groups.add(finance)

    outsider = ask_json("outsider")
    cited = next(c for c in outsider["citations"] if c["cited"])
    assert "59 USD" in outsider["answer"] and cited["version"] == 1
    assert (cited["effective_from"], cited["effective_until"], cited["superseded"]) == (
        "2026-01-01",
        "2026-10-31",
        False,
    )
    assert cited["version_label"] == "v1, in effect 2026-01-01 \u2013 2026-10-31"
    assert outsider["as_of"] == "2026-10-15" and "scheduled" not in outsider
    assert "new version" not in outsider["answer"], "a version the asker may not read is never announced"

    insider = ask_json("insider")
    assert "59 USD" in insider["answer"] and "64 USD" not in insider["answer"]
    assert insider["scheduled"] == "2026-11-01"
    assert (
        insider["answer"]
        .rstrip()
        .splitlines()[-1]
        .startswith("A new version takes effect on 1 November 2026")
    )


def test_a_question_about_another_day_is_answered_as_of_it_and_says_so(
    make_user: Callable[..., User],
) -> None:
    with clock_fixed(TODAY):
        travel(TRAVEL_V1, effective_from=V1_FROM)
        travel(TRAVEL_V2, effective_from=V2_FROM)
    make_user("emp")
    with clock_fixed(date(2026, 12, 1)):
        now = ask_json("emp")
        then = ask_json("emp", "What was the daily per diem for meals in March 2026?")
    assert "64 USD" in now["answer"] and now["as_of"] == "2026-12-01"
    assert not now["answer"].startswith("**As of")
    assert then["as_of"] == "2026-03-15"
    assert then["answer"].startswith(
        "**As of 15 March 2026:** answered from the policy versions in effect on that date "
        "(“March 2026” read as 15 March 2026)."
    )
    assert "59 USD" in then["answer"] and "64 USD" not in then["answer"]
    cited = next(c for c in then["citations"] if c["cited"])
    assert cited["version"] == 1 and cited["superseded"] is True


def test_the_auditor_opens_the_exact_cited_text_after_the_version_is_superseded_and_retired(
    make_user: Callable[..., User],
) -> None:
    with clock_fixed(TODAY):
        v1 = travel(TRAVEL_V1, effective_from=V1_FROM)
        travel(TRAVEL_V2, effective_from=V2_FROM)
        make_user("emp")
        ask_json("emp")
    event = AuditEvent.objects.get(kind=AuditEvent.Kind.QUESTION)
    [cited] = event.detail["cited_versions"]
    assert (cited["document_id"], cited["version"], cited["content_hash"]) == (v1.pk, 1, v1.content_hash)
    assert event.detail["as_of"] == "2026-10-15" and event.detail["scheduled"] == "2026-11-01"
    auditor, employee = Client(), Client()
    auditor.force_login(make_user("aud", Role.AUDITOR))
    employee.force_login(User.objects.get(username="emp"))
    url = reverse("rag:cited_passage", args=[cited["chunk_id"]])
    query = {"document": cited["document_id"], "sha": cited["passage_sha256"]}
    with clock_fixed(date(2026, 12, 1)):
        document_retire(document=v1)
        page = auditor.get(url, query)
    html = page.content.decode()
    assert page.status_code == 200 and "59 USD per day" in html
    assert "Superseded on 2026-11-01" in html and "differs" not in html
    assert employee.get(url, query).status_code == 403
    audit_page = auditor.get(reverse("audit:detail", args=[event.seq])).content.decode()
    assert url in audit_page, "the audit event links to the exact passage"


def test_an_overdue_policy_carries_a_review_notice_only_when_configured(
    today: date, make_user: Callable[..., User]
) -> None:
    ingest_bytes(TRAVEL_V1, "travel.md", dates=VersionDates(review_by=date(2026, 9, 30)))
    make_user("emp")
    assert "due for review" not in ask_json("emp")["answer"], "off by default"
    with override_settings(REVIEW_NOTICE_IN_ANSWERS=True):
        answer = ask_json("emp")["answer"]
    assert answer.rstrip().endswith("This policy was due for review on 30 September 2026.")


# --- the changes view and the documents page ---------------------------------------------------


def test_the_changes_view_shows_the_moved_figure(today: date, make_user: Callable[..., User]) -> None:
    travel(TRAVEL_V1, effective_from=V1_FROM)
    v2 = travel(TRAVEL_V2, effective_from=V2_FROM)
    client = Client()
    client.force_login(make_user("admin", Role.POLICY_ADMIN))
    html = client.get(reverse("rag:changes", args=[v2.pk])).content.decode()
    assert "59 \u2192 64 USD" in html and "change-changed" in html
    documents = client.get(reverse("rag:documents")).content.decode()
    assert "takes effect on 2026-11-01" in documents and "in effect 2026-01-01 \u2013 2026-10-31" in documents


def test_the_upload_form_adds_a_dated_version_to_the_chosen_document(
    today: date, make_user: Callable[..., User]
) -> None:
    original = travel(TRAVEL_V1, effective_from=V1_FROM)
    client = Client()
    client.force_login(make_user("admin", Role.POLICY_ADMIN))
    upload = io.BytesIO(TRAVEL_V2)
    upload.name = "travel-2027-draft.md"
    bad = io.BytesIO(TRAVEL_V2)
    bad.name = "travel-2027-draft.md"
    refused = client.post(
        reverse("rag:upload"),
        {
            "files": bad,
            "version_of": "travel.md",
            "effective_from": "2026-11-01",
            "effective_until": "2026-10-01",
        },
        follow=True,
    )
    assert "is before" in refused.content.decode() and Document.objects.count() == 1, "nothing stored"
    client.post(
        reverse("rag:upload"),
        {
            "files": upload,
            "version_of": "travel.md",
            "effective_from": "2026-11-01",
            "review_by": "2027-05-01",
        },
    )
    added = Document.objects.exclude(pk=original.pk).get()
    assert (added.source_path, added.version, added.effective_from) == ("travel.md", 2, V2_FROM)
    assert added.review_by == date(2027, 5, 1)


# --- contracts --------------------------------------------------------------------------------


def test_ingest_takes_a_new_version_with_its_dates_and_refuses_bad_ones(today: date, tmp_path: Path) -> None:
    first, second = tmp_path / "travel.md", tmp_path / "travel-v2.md"
    first.write_bytes(TRAVEL_V1)
    second.write_bytes(TRAVEL_V2)
    call_command("ingest", str(first), "--effective-from", "2026-01-01", "--wait", stdout=io.StringIO())
    with pytest.raises(CommandError, match="before"):
        call_command(
            "ingest", str(second), "--new-version-of", "travel.md", "--effective-from", "2026-11-01",
            "--effective-until", "2026-10-01", "--wait", stdout=io.StringIO(),
        )  # fmt: skip
    with pytest.raises(CommandError, match=r"no document 'nope\.md'"):
        call_command("ingest", str(second), "--new-version-of", "nope.md", "--wait", stdout=io.StringIO())
    assert Document.objects.count() == 1, "a refused version stores nothing"
    out = io.StringIO()
    call_command(
        "ingest", str(second), "--new-version-of", "travel.md", "--effective-from", "2026-11-01",
        "--review-by", "2026-10-01", "--wait", stdout=out,
    )  # fmt: skip
    assert "v2, from 2026-11-01" in out.getvalue()
    v2 = Document.objects.get(version=2)
    assert (v2.source_path, v2.effective_from, v2.review_by) == ("travel.md", V2_FROM, date(2026, 10, 1))


def test_documents_due_for_review_lists_overdue_and_due_policies(today: date) -> None:
    overdue = ingest_bytes(TRAVEL_V1, "travel.md", dates=VersionDates(review_by=date(2026, 9, 1)))
    ingest_bytes(
        b"# Leave\n\nEmployees get 20 days.\n", "leave.md", dates=VersionDates(review_by=date(2026, 11, 1))
    )
    ingest_bytes(
        b"# Gifts\n\nGifts under 50 USD.\n", "gifts.md", dates=VersionDates(review_by=date(2027, 6, 1))
    )
    out = io.StringIO()
    call_command("documents_due_for_review", "--json", stdout=out)
    listed = json.loads(out.getvalue())
    assert listed["today"] == "2026-10-15"
    assert [(d["source_path"], d["overdue"]) for d in listed["documents"]] == [
        ("travel.md", True),
        ("leave.md", False),
    ]
    assert listed["documents"][0]["document_id"] == overdue.pk
    text = io.StringIO()
    call_command("documents_due_for_review", stdout=text)
    assert "OVERDUE 2026-09-01  travel.md" in text.getvalue()


def test_superseded_versions_are_kept_unless_a_retention_is_set(today: date) -> None:
    travel(TRAVEL_V1, effective_from=date(2025, 1, 1))
    travel(TRAVEL_V2, effective_from=date(2025, 7, 1))
    assert versions_purge_expired() == 0 and Document.objects.count() == 2, "kept for ever by default"
    with override_settings(VERSION_RETENTION_DAYS=365):
        assert versions_purge_expired() == 1  # out of effect since 2025-06-30, more than a year ago
    assert list(Document.objects.values_list("version", flat=True)) == [2]


def test_a_version_that_ends_before_it_starts_is_refused() -> None:
    with pytest.raises(VersionError):
        VersionDates(effective_from=date(2026, 5, 1), effective_until=date(2026, 4, 1)).check()


def test_the_clock_is_the_real_one_unless_a_test_sets_it(tmp_path: Path) -> None:
    clock = tmp_path / "clock"
    with override_settings(TEST_CLOCK_FILE=str(clock)):
        assert company_today() != date(2031, 1, 2)
        clock.write_text("2031-01-02\n")
        assert company_today() == date(2031, 1, 2)
        clock.write_text("")
        assert company_today() != date(2031, 1, 2)
