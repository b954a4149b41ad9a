"""API keys: the page where users create, list and revoke theirs (shown once, stored hashed),
administrators' view of every key and the per-role switch, the two management commands, and
the audit trail of each change."""

from __future__ import annotations

import io
import re
from collections.abc import Callable

import pytest
from django.contrib.auth.models import User
from django.core.management import CommandError, call_command
from django.test import Client

from accounts.roles import Role
from accounts.services import user_set_role
from api.models import ApiKey, RoleApiAccess
from api.selectors import KeyVerdict, api_key_check
from api.services import api_key_create, key_digest
from audit.models import AuditEvent
from audit.services import audit_chain_verify, pseudonym

pytestmark = pytest.mark.django_db

KEY = re.compile(r'id="new-key-secret">(pd_[A-Za-z0-9_-]+)<')


def signed_in(user: User) -> Client:
    client = Client()
    client.force_login(user)
    return client


def test_a_new_key_is_shown_once_and_only_its_hash_is_stored(make_user: Callable[..., User]) -> None:
    user = make_user("emp")
    client = signed_in(user)
    created = client.post("/api-keys/create/", {"name": "Open WebUI", "expires_days": "30"})
    assert created.status_code == 201 and created["Cache-Control"] == "no-store"
    secret = KEY.search(created.content.decode())
    assert secret is not None
    key = ApiKey.objects.get()
    assert key.name == "Open WebUI" and key.user == user and key.expires_at is not None
    assert key.digest == key_digest(secret.group(1)) and secret.group(1).startswith(key.prefix)
    stored = " ".join(str(v) for v in ApiKey.objects.values().get().values())
    assert secret.group(1) not in stored, "the key itself is never stored"
    listing = client.get("/api-keys/").content.decode()
    assert secret.group(1) not in listing and f"{key.prefix}…" in listing and "Open WebUI" in listing
    assert api_key_check(secret=secret.group(1)).verdict == KeyVerdict.OK
    event = AuditEvent.objects.get(kind=AuditEvent.Kind.API_KEY)
    assert event.detail["action"] == "created" and event.detail["api_key_id"] == key.pk
    assert secret.group(1) not in str(event.detail) and event.actor == pseudonym(user_id=user.pk)


def test_a_key_needs_a_name_and_a_sensible_expiry(make_user: Callable[..., User]) -> None:
    client = signed_in(make_user("emp"))
    assert client.post("/api-keys/create/", {"name": "  "}).status_code == 400
    assert client.post("/api-keys/create/", {"name": "ci", "expires_days": "-3"}).status_code == 400
    assert client.post("/api-keys/create/", {"name": "ci", "expires_days": "99999"}).status_code == 400
    assert not ApiKey.objects.exists()


def test_users_revoke_their_own_keys_but_not_anyone_elses(make_user: Callable[..., User]) -> None:
    owner, other = make_user("emp"), make_user("other")
    created = api_key_create(user=owner, name="laptop")
    assert signed_in(other).post(f"/api-keys/{created.key.pk}/revoke/").status_code == 404
    assert api_key_check(secret=created.secret).verdict == KeyVerdict.OK
    assert signed_in(owner).post(f"/api-keys/{created.key.pk}/revoke/").status_code == 302
    assert api_key_check(secret=created.secret).verdict == KeyVerdict.INVALID
    assert "revoked" in signed_in(owner).get("/api-keys/").content.decode()
    actions = list(
        AuditEvent.objects.filter(kind="api_key").order_by("seq").values_list("detail__action", flat=True)
    )
    assert actions == ["created", "revoked"] and audit_chain_verify().valid


def test_an_administrator_lists_and_revokes_any_key_and_turns_a_role_off(
    make_user: Callable[..., User],
) -> None:
    employee = make_user("emp")
    admin = make_user("root", role=None)
    admin.is_staff = True
    admin.save()
    created = api_key_create(user=employee, name="bot")
    page = signed_in(admin).get("/api-keys/").content.decode()
    assert 'id="all-keys"' in page and "bot" in page and f"{created.key.prefix}…" in page
    assert 'id="my-keys"' not in page, "an administrator without the ask permission has no keys of their own"
    assert signed_in(employee).get("/api-keys/").content.decode().count('id="all-keys"') == 0

    signed_in(admin).post("/api-keys/roles/", {"api_policy_admin": "on"})  # employee unticked
    assert RoleApiAccess.objects.get(role="employee").enabled is False
    assert api_key_check(secret=created.secret).verdict == KeyVerdict.API_OFF
    page = signed_in(employee).get("/api-keys/").content.decode()
    assert 'id="api-off"' in page and 'id="create-key"' not in page
    assert signed_in(employee).post("/api-keys/create/", {"name": "x"}).status_code == 403
    assert signed_in(employee).post("/api-keys/roles/", {"api_employee": "on"}).status_code == 403

    signed_in(admin).post("/api-keys/roles/", {"api_employee": "on", "api_policy_admin": "on"})
    assert api_key_check(secret=created.secret).verdict == KeyVerdict.OK
    assert signed_in(admin).post(f"/api-keys/{created.key.pk}/revoke/").status_code == 302
    assert ApiKey.objects.get().revoked_by == admin
    roles = AuditEvent.objects.filter(kind="api_key", detail__action="role_access")
    assert [(e.detail["role"], e.detail["enabled"]) for e in roles.order_by("seq")] == [
        ("employee", False),
        ("employee", True),
    ]


def test_an_auditor_has_no_api_keys_page(make_user: Callable[..., User]) -> None:
    client = signed_in(make_user("aud", Role.AUDITOR))
    assert client.get("/api-keys/").status_code == 403
    assert client.post("/api-keys/create/", {"name": "x"}).status_code == 403
    assert Client().get("/api-keys/").status_code == 302, "anonymous: to the sign-in page"


def test_create_api_key_prints_the_key_once_and_revoke_api_key_takes_its_prefix(
    make_user: Callable[..., User],
) -> None:
    make_user("emp")
    out, err = io.StringIO(), io.StringIO()
    call_command("create_api_key", "emp", "--name", "CI", "--expires-days", "7", stdout=out, stderr=err)
    secret = out.getvalue().strip()
    assert secret.startswith("pd_") and "\n" not in secret and secret not in err.getvalue()
    key = ApiKey.objects.get()
    assert key.name == "CI" and key.expires_at is not None and key.digest == key_digest(secret)
    revoked = io.StringIO()
    call_command("revoke_api_key", key.prefix, stdout=revoked)
    assert "revoked" in revoked.getvalue() and api_key_check(secret=secret).verdict == KeyVerdict.INVALID
    event = AuditEvent.objects.filter(kind="api_key").order_by("seq").last()
    assert event is not None and event.detail["action"] == "revoked" and event.actor == ""
    with pytest.raises(CommandError, match="no API key"):
        call_command("revoke_api_key", "pd_nothere")
    make_user("aud", Role.AUDITOR)
    with pytest.raises(CommandError, match="may not ask"):
        call_command("create_api_key", "aud", stdout=io.StringIO())
    with pytest.raises(CommandError, match="no user"):
        call_command("create_api_key", "nobody", stdout=io.StringIO())


def test_a_keys_rights_are_its_users_rights_now(make_user: Callable[..., User]) -> None:
    user = make_user("emp")
    created = api_key_create(user=user, name="bot")
    user_set_role(user=user, role=Role.AUDITOR)  # an auditor may not ask
    assert api_key_check(secret=created.secret).verdict == KeyVerdict.NOT_ALLOWED
    user_set_role(user=user, role=Role.POLICY_ADMIN)
    assert api_key_check(secret=created.secret).verdict == KeyVerdict.OK
    RoleApiAccess.objects.create(role="employee", enabled=False)
    assert api_key_check(secret=created.secret).verdict == KeyVerdict.OK, "only the employee role is off"
    root = User.objects.create_superuser("root", password="not-used-pw-123")
    assert api_key_check(secret=api_key_create(user=root, name="ops").secret).verdict == KeyVerdict.OK
    user.is_active = False
    user.save()
    assert api_key_check(secret=created.secret).verdict == KeyVerdict.INVALID
