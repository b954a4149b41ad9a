"""Restricting a document to groups from the documents page: retrieval follows at once (the rule
is in the SQL), and the audit log records who changed access, when, from what to what."""

from __future__ import annotations

import io
from collections.abc import Callable

import pytest
from django.contrib.auth.models import Group, User
from django.test import Client

from accounts.roles import Role
from audit.models import AuditEvent
from audit.services import audit_chain_verify, pseudonym
from rag.models import Document
from rag.selectors import retrieve
from tests.rag_helpers import ingest_bytes

pytestmark = pytest.mark.django_db

PAYROLL = b"# Payroll calendar\n\nSalaries are paid on the 25th of each month by bank transfer.\n"
QUESTION = "When are salaries paid?"


def sources(user: User) -> set[str]:
    return {c.source_path for c in retrieve(query=QUESTION, user=user, k=5)}


def test_an_admin_restricts_a_document_and_retrieval_follows_at_once(make_user: Callable[..., User]) -> None:
    document = ingest_bytes(PAYROLL, "payroll.md")
    admin, employee = make_user("pat", Role.POLICY_ADMIN), make_user("emp")
    client = Client()
    client.force_login(admin)
    assert "payroll.md" in sources(employee)

    response = client.post(f"/documents/{document.pk}/access/", {"new_groups": "finance, hr"})
    assert response.status_code == 302
    assert "payroll.md" not in sources(employee), "restricted from the next question on"
    employee.groups.add(Group.objects.get(name="finance"))
    assert "payroll.md" in sources(employee)

    client.post(f"/documents/{document.pk}/access/", {"groups": []})
    assert not Document.objects.get(pk=document.pk).allowed_groups.exists()
    events = list(AuditEvent.objects.filter(kind=AuditEvent.Kind.DOCUMENT_ACCESS).order_by("seq"))
    assert [(e.detail["from"], e.detail["to"]) for e in events] == [
        ([], ["finance", "hr"]),
        (["finance", "hr"], []),
    ]
    assert {e.actor for e in events} == {pseudonym(user_id=admin.pk)} and events[0].detail[
        "document_id"
    ] == document.pk
    assert audit_chain_verify().valid
    page = client.get("/documents/")
    assert b"Everyone" in page.content and b'value="finance"' in page.content
    auditor = Client()
    auditor.force_login(make_user("aud", Role.AUDITOR))
    assert auditor.get("/audit/?kind=document_access").status_code == 200
    assert b"finance" in auditor.get(f"/audit/{events[0].seq}/").content


def test_an_upload_can_be_restricted_from_the_start(make_user: Callable[..., User]) -> None:
    Group.objects.create(name="finance")
    client = Client()
    client.force_login(make_user("pat", Role.POLICY_ADMIN))
    upload = io.BytesIO(PAYROLL)
    upload.name = "payroll.md"
    client.post("/documents/upload/", {"files": [upload], "groups": ["finance"]})
    document = Document.objects.get()
    assert list(document.allowed_groups.values_list("name", flat=True)) == ["finance"]
    event = AuditEvent.objects.get(kind=AuditEvent.Kind.DOCUMENT_ACCESS)
    assert event.detail["from"] == [] and event.detail["to"] == ["finance"]


def test_a_role_is_not_a_document_group_and_nothing_changes(make_user: Callable[..., User]) -> None:
    document = ingest_bytes(PAYROLL, "payroll.md")
    client = Client()
    client.force_login(make_user("pat", Role.POLICY_ADMIN))
    response = client.post(f"/documents/{document.pk}/access/", {"new_groups": "auditor"}, follow=True)
    assert b"is a role, not a document group" in response.content
    assert not document.allowed_groups.exists() and not AuditEvent.objects.exists()


def test_an_employee_cannot_change_who_reads_a_document(make_user: Callable[..., User]) -> None:
    document = ingest_bytes(PAYROLL, "payroll.md")
    client = Client()
    client.force_login(make_user("emp"))
    assert client.post(f"/documents/{document.pk}/access/", {"new_groups": "secret"}).status_code == 403
    assert not document.allowed_groups.exists()
