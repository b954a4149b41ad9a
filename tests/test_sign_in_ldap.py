"""LDAP sign-in against a real OpenLDAP (`slapd`, started per test with tests/fixtures/directory.ldif):
users created on first sign-in with the mapped roles, nested groups, groups re-synced at every
sign-in, a disabled user refused, deprovisioning, and no secret in the logs."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import ldap
import pytest
from django.contrib.auth.models import User
from django.core.cache import cache
from django.test import Client

from accounts.ldap import DirectoryUnavailable
from accounts.models import DirectoryAccount
from accounts.roles import Role
from accounts.tasks import deprovision_directory_accounts
from audit.models import AuditEvent
from audit.services import audit_chain_verify, pseudonym
from rag.selectors import retrieve
from tests.directory_servers import BASE_DN, Slapd, sign_in_configure
from tests.rag_helpers import ingest_bytes

pytestmark = pytest.mark.django_db

GROUP_MAP = {
    "roles": {"all-staff": "employee", "policy-admins": "policy_admin", "Internal-Audit": "auditor"},
    "documents": {"hr-managers": "hr"},
    "default_role": None,
}
PASSWORDS = {"alice": "alice-pw-7431", "bob": "bob-pw-7431", "carol": "carol-pw-7431", "dave": "dave-pw-7431"}
SALARY_BANDS = b"# Salary bands\n\nManager salary bands are reviewed every March by the HR committee.\n"


@pytest.fixture
def ldap_on(slapd: Slapd, settings: object, monkeypatch: pytest.MonkeyPatch) -> Iterator[Slapd]:
    sign_in_configure(monkeypatch, settings, ldap_env(slapd, slapd.uri))
    yield slapd


def ldap_env(server: Slapd, uri: str) -> dict[str, str]:
    return {
        "AUTH_LDAP": "true",
        "LDAP_SERVER_URI": uri,
        "LDAP_ALLOW_PLAIN": "true",  # the test's own slapd on 127.0.0.1
        "LDAP_BIND_DN": server.service_dn,
        "LDAP_BIND_PASSWORD": server.service_password,
        "LDAP_USER_SEARCH_BASE": f"ou=people,{BASE_DN}",
        "LDAP_GROUP_SEARCH_BASE": f"ou=groups,{BASE_DN}",
        "LDAP_ACTIVE_FILTER": "(!(employeeType=disabled))",
        "GROUP_MAP": json.dumps(GROUP_MAP),
    }


def sign_in(username: str, password: str | None = None) -> tuple[Client, int]:
    client = Client()
    response = client.post(
        "/accounts/login/", {"username": username, "password": password or PASSWORDS[username]}
    )
    return client, response.status_code


def group_names(username: str) -> set[str]:
    return set(User.objects.get(username=username).groups.values_list("name", flat=True))


def member_remove(slapd: Slapd, group: str, member: str) -> None:
    slapd.admin().modify_s(
        f"cn={group},ou=groups,{BASE_DN}", [(ldap.MOD_DELETE, "member", [member.encode()])]
    )


def test_a_directory_user_signs_in_and_gets_the_mapped_roles_and_nested_groups(ldap_on: Slapd) -> None:
    client, status = sign_in("alice")
    assert status == 302
    alice = User.objects.get(username="alice")
    # hr only through hr-leads, nested in hr-managers, as Active Directory nests groups.
    assert group_names("alice") == {"employee", "hr"}
    assert not alice.has_usable_password(), "the directory keeps the password, not PolicyDesk"
    assert DirectoryAccount.objects.get(user=alice).source == "ldap"
    assert client.get("/chat/").status_code == 200
    assert sign_in("bob")[1] == 302 and group_names("bob") == {"employee", "policy_admin"}
    assert sign_in("carol")[1] == 302 and group_names("carol") == {"employee", "auditor"}  # case-insensitive
    event = AuditEvent.objects.filter(
        kind=AuditEvent.Kind.ACCOUNT_SYNC, actor=pseudonym(user_id=alice.pk)
    ).get()
    assert event.detail == {"source": "ldap", "created": True, "reactivated": False, "from": [],
                            "to": ["employee", "hr"]}  # fmt: skip
    assert sign_in("alice", "wrong-password")[1] == 200, "a wrong password is refused"


def test_a_group_removed_in_the_directory_takes_its_documents_at_the_next_sign_in(ldap_on: Slapd) -> None:
    document = ingest_bytes(SALARY_BANDS, "salary-bands.md")
    sign_in("alice")
    alice = User.objects.get(username="alice")
    from rag.services import document_set_access

    hr = alice.groups.get(name="hr")
    document_set_access(document=document, groups=[hr], changed_by=alice)
    question = "When are manager salary bands reviewed?"
    assert "salary-bands.md" in {c.source_path for c in retrieve(query=question, user=alice, k=5)}

    member_remove(ldap_on, "hr-leads", f"uid=alice,ou=people,{BASE_DN}")
    client, status = sign_in("alice")
    assert status == 302
    assert group_names("alice") == {"employee"}
    assert "salary-bands.md" not in {c.source_path for c in retrieve(query=question, user=alice, k=5)}
    assert client.get(f"/documents/{document.pk}/").status_code == 404
    assert AuditEvent.objects.filter(kind="account_sync").order_by("seq").last().detail["to"] == ["employee"]  # type: ignore[union-attr]


def test_losing_every_role_group_refuses_sign_in_and_strips_the_roles(ldap_on: Slapd) -> None:
    first, _ = sign_in("bob")
    member_remove(ldap_on, "all-staff", f"uid=bob,ou=people,{BASE_DN}")
    member_remove(ldap_on, "policy-admins", f"uid=bob,ou=people,{BASE_DN}")
    assert sign_in("bob")[1] == 200, "no role group and no default role: refused"
    assert group_names("bob") == set()
    # The session opened earlier has no role any more either.
    assert first.get("/documents/").status_code == 403


def test_a_disabled_user_is_refused_and_no_account_is_made(ldap_on: Slapd) -> None:
    assert sign_in("dave")[1] == 200
    assert not User.objects.filter(username="dave").exists()


def test_a_local_account_with_the_same_name_is_never_taken_over(
    ldap_on: Slapd, make_user: Callable[..., User]
) -> None:
    local = make_user("alice", Role.POLICY_ADMIN)
    assert sign_in("alice")[1] == 200, "the directory's alice may not sign in as the local alice"
    assert not DirectoryAccount.objects.filter(user=local).exists()
    assert sign_in("alice", "not-used-pw-123")[1] == 302, "the local account still signs in"


def test_deprovisioning_deactivates_users_deleted_or_disabled_in_the_directory(
    ldap_on: Slapd, make_user: Callable[..., User]
) -> None:
    sessions = {name: sign_in(name)[0] for name in ("alice", "bob", "carol")}
    before = {name: pseudonym(user_id=User.objects.get(username=name).pk) for name in sessions}
    cache.clear()
    assert deprovision_directory_accounts() == 0, "beat's first offer runs: nobody is gone yet"
    admin = ldap_on.admin()
    admin.modify_s(f"uid=alice,ou=people,{BASE_DN}", [(ldap.MOD_ADD, "employeeType", [b"disabled"])])
    admin.delete_s(f"uid=bob,ou=people,{BASE_DN}")

    assert deprovision_directory_accounts() == 0, "offered again within the period: it waits"
    assert deprovision_directory_accounts(force=True) == 2
    assert deprovision_directory_accounts(force=True) == 0, "idempotent"
    active = dict(User.objects.values_list("username", "is_active"))
    assert active == {"alice": False, "bob": False, "carol": True}
    assert sessions["alice"].get("/chat/").status_code == 302, "a deactivated user's session ends"
    assert sessions["carol"].get("/chat/").status_code == 200
    events = AuditEvent.objects.filter(kind=AuditEvent.Kind.ACCOUNT_DISABLED)
    assert {e.actor for e in events} == {before["alice"], before["bob"]}, "the same pseudonyms"
    assert audit_chain_verify().valid
    auditor = Client()
    auditor.force_login(make_user("aud", Role.AUDITOR))
    listing = auditor.get("/audit/?kind=account_disabled")
    assert listing.status_code == 200 and before["alice"][:8].encode() in listing.content

    admin.modify_s(f"uid=alice,ou=people,{BASE_DN}", [(ldap.MOD_DELETE, "employeeType", [b"disabled"])])
    assert sign_in("alice")[1] == 302, "re-enabled in the directory: the account comes back"
    assert User.objects.get(username="alice").is_active


def test_an_account_deactivated_by_an_administrator_stays_off(ldap_on: Slapd) -> None:
    sign_in("carol")
    User.objects.filter(username="carol").update(is_active=False)
    assert sign_in("carol")[1] == 200


def test_deprovisioning_changes_nothing_while_the_directory_is_down(ldap_on: Slapd) -> None:
    sign_in("alice")
    ldap_on.stop()
    with pytest.raises(DirectoryUnavailable):
        deprovision_directory_accounts(force=True)
    assert User.objects.get(username="alice").is_active
    response = Client().post("/accounts/login/", {"username": "alice", "password": PASSWORDS["alice"]})
    assert response.status_code == 200, "no directory: no sign-in, and no server error"
    assert b"The company directory is not answering" in response.content
    assert b"did not match" not in response.content


def test_no_password_reaches_the_logs(ldap_on: Slapd, caplog: pytest.LogCaptureFixture) -> None:
    for name in ("", "django_auth_ldap", "accounts"):
        caplog.set_level(logging.DEBUG, logger=name)
    sign_in("alice")
    sign_in("bob", "a-wrong-password-55")
    sign_in("dave")
    deprovision_directory_accounts(force=True)
    assert caplog.records, "the test must see log lines to mean anything"
    for secret in (ldap_on.service_password, PASSWORDS["alice"], "a-wrong-password-55", PASSWORDS["dave"]):
        assert secret not in caplog.text


def test_ldaps_to_a_directory_with_a_company_ca(settings: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """Active Directory wants LDAPS, usually under the company's own CA: trusted through
    POLICYDESK_LDAP_CA_FILE, and refused without it (the certificate cannot be checked)."""
    server = Slapd((Path(__file__).parent / "fixtures" / "directory.ldif").read_text(), tls=True)
    server.start()
    try:
        sign_in_configure(monkeypatch, settings, ldap_env(server, server.ldaps_uri))
        assert sign_in("carol")[1] == 200, "the company CA is not among the system's"
        sign_in_configure(monkeypatch, settings, {"LDAP_CA_FILE": str(server.ca_file)})
        assert sign_in("carol")[1] == 302
        assert group_names("carol") == {"employee", "auditor"}
        assert deprovision_directory_accounts(force=True) == 0, "deprovisioning trusts the same CA"
    finally:
        server.stop()


def test_with_local_accounts_off_a_directory_user_still_gets_the_roles_permissions(
    ldap_on: Slapd, settings: Any, monkeypatch: pytest.MonkeyPatch, make_user: Callable[..., User]
) -> None:
    """Roles grant permissions through Django's group rules, whichever way the user came in."""
    make_user("break-glass", Role.POLICY_ADMIN)
    sign_in_configure(monkeypatch, settings, {"AUTH_LOCAL": "false"})
    client, status = sign_in("bob")
    assert status == 302
    assert client.get("/chat/").status_code == 200 and client.get("/documents/").status_code == 200
    assert sign_in("break-glass", "not-used-pw-123")[1] == 200, "local passwords are off"
