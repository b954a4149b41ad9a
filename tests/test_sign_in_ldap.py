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
    # Case-insensitive; and the auditor role does not combine with another (all-staff's employee).
    assert sign_in("carol")[1] == 302 and group_names("carol") == {"auditor"}
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
    assert sessions["carol"].get("/audit/").status_code == 200
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
        assert group_names("carol") == {"auditor"}
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


# --- issue 24: groups re-read by deprovisioning, accounts keyed by entry id, group map by id ------


def entry_uuid(slapd: Slapd, dn: str) -> str:
    ((_, attrs),) = slapd.admin().search_s(dn, ldap.SCOPE_BASE, "(objectClass=*)", ["entryUUID"])
    return str(attrs["entryUUID"][0].decode())


def test_deprovisioning_re_reads_groups_so_a_removed_group_loses_its_documents_within_one_run(
    ldap_on: Slapd,
) -> None:
    document = ingest_bytes(SALARY_BANDS, "salary-bands.md")
    session, _ = sign_in("alice")
    alice = User.objects.get(username="alice")
    from rag.services import document_set_access

    document_set_access(document=document, groups=[alice.groups.get(name="hr")], changed_by=alice)
    question = "When are manager salary bands reviewed?"
    assert "salary-bands.md" in {c.source_path for c in retrieve(query=question, user=alice, k=5)}

    member_remove(ldap_on, "hr-leads", f"uid=alice,ou=people,{BASE_DN}")
    assert deprovision_directory_accounts(force=True) == 0, "alice is still in the directory"
    assert group_names("alice") == {"employee"}, "no sign-in needed: the run re-read her groups"
    assert "salary-bands.md" not in {c.source_path for c in retrieve(query=question, user=alice, k=5)}
    assert session.get(f"/documents/{document.pk}/").status_code == 404, "her open session too"
    last = AuditEvent.objects.filter(kind=AuditEvent.Kind.ACCOUNT_SYNC).order_by("seq").last()
    assert last is not None and (last.detail["from"], last.detail["to"]) == (["employee", "hr"], ["employee"])


def test_a_login_name_given_to_someone_else_is_a_new_account(ldap_on: Slapd) -> None:
    sign_in("alice")
    first = User.objects.get(username="alice")
    first_id = DirectoryAccount.objects.get(user=first).subject
    assert first_id == entry_uuid(ldap_on, f"uid=alice,ou=people,{BASE_DN}"), "keyed by entryUUID"
    admin = ldap_on.admin()
    dn = f"uid=alice,ou=people,{BASE_DN}"
    admin.delete_s(dn)  # alice leaves (slapd keeps group members: all-staff still lists the DN)
    member_remove(ldap_on, "hr-leads", dn)
    # A new Alice joins under the same login name.
    admin.add_s(dn, [("objectClass", [b"inetOrgPerson"]), ("uid", [b"alice"]), ("cn", [b"Alice Pham"]),
                     ("sn", [b"Pham"]), ("userPassword", [b"new-alice-pw-99"])])  # fmt: skip

    _client, status = sign_in("alice", "new-alice-pw-99")
    assert status == 302
    newcomer = User.objects.get(directory_account__subject=entry_uuid(ldap_on, dn))
    assert newcomer.pk != first.pk and newcomer.username.startswith("alice-")
    assert pseudonym(user_id=newcomer.pk) != pseudonym(user_id=first.pk)
    assert group_names(newcomer.username) == {"employee"}, "not the old alice's hr group"
    assert deprovision_directory_accounts(force=True) == 1, "the old account's entry is gone"
    first.refresh_from_db()
    assert not first.is_active and User.objects.get(pk=newcomer.pk).is_active


def test_an_account_linked_by_login_name_before_takes_its_entry_id(ldap_on: Slapd) -> None:
    """Migration 0004 marks existing LDAP accounts `name:<login>`."""
    sign_in("bob")
    bob = User.objects.get(username="bob")
    DirectoryAccount.objects.filter(user=bob).update(subject="name:bob")
    assert sign_in("bob")[1] == 302
    assert DirectoryAccount.objects.get(user=bob).subject == entry_uuid(
        ldap_on, f"uid=bob,ou=people,{BASE_DN}"
    )
    assert User.objects.filter(username__startswith="bob").count() == 1, "the same account"
    DirectoryAccount.objects.filter(user=bob).update(subject="name:bob")
    assert deprovision_directory_accounts(force=True) == 0, "deprovisioning finds it by name once"
    assert DirectoryAccount.objects.get(user=bob).subject == entry_uuid(
        ldap_on, f"uid=bob,ou=people,{BASE_DN}"
    )


def test_a_directory_user_with_an_oidc_users_name_is_not_blocked(ldap_on: Slapd) -> None:
    earlier = User.objects.create(username="bob")
    DirectoryAccount.objects.create(user=earlier, source="oidc", issuer="https://idp.example", subject="s-1",
                                    synced_at=earlier.date_joined)  # fmt: skip
    assert sign_in("bob")[1] == 302, "only a local account's name is refused"
    ldap_bob = User.objects.get(directory_account__source="ldap")
    assert ldap_bob.pk != earlier.pk and ldap_bob.username.startswith("bob-")


def test_the_group_map_matches_groups_by_dn_or_entry_uuid(
    ldap_on: Slapd, settings: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    by_id = {
        "roles": {
            f"cn=all-staff, ou=groups, {BASE_DN}".upper(): "employee",  # a DN, spaced and in capitals
            entry_uuid(ldap_on, f"cn=policy-admins,ou=groups,{BASE_DN}"): "policy_admin",
        },
        "documents": {f"cn=hr-managers,ou=groups,{BASE_DN}": "hr"},  # alice is in it through hr-leads
        "default_role": None,
    }
    sign_in_configure(monkeypatch, settings, {"GROUP_MAP": json.dumps(by_id)})
    assert sign_in("bob")[1] == 302 and group_names("bob") == {"employee", "policy_admin"}
    assert sign_in("alice")[1] == 302 and group_names("alice") == {"employee", "hr"}
    from accounts.checks import group_map_by_name

    assert group_map_by_name() == [], "ids only: no warning"
    sign_in_configure(monkeypatch, settings, {"GROUP_MAP": json.dumps(GROUP_MAP)})
    (warning,) = group_map_by_name()
    assert warning.id == "accounts.W001" and "policy-admins" in warning.msg


def test_the_auditor_role_does_not_combine_with_another(
    ldap_on: Slapd, caplog: pytest.LogCaptureFixture
) -> None:
    admin = ldap_on.admin()
    admin.modify_s(f"cn=policy-admins,ou=groups,{BASE_DN}",
                   [(ldap.MOD_ADD, "member", [f"uid=carol,ou=people,{BASE_DN}".encode()])])  # fmt: skip
    client, status = sign_in("carol")
    assert status == 302 and group_names("carol") == {"auditor"}
    assert "the auditor role does not combine with another: employee, policy_admin dropped" in caplog.text
    assert client.get("/audit/").status_code == 200
    assert client.get("/documents/").status_code == 403 and client.get("/chat/").status_code == 403


def test_a_group_read_that_fails_stops_the_whole_run_and_changes_nothing(
    ldap_on: Slapd, settings: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An error half way (here: the group search base is gone) must not read as "no groups"."""
    sign_in("alice")
    member_remove(ldap_on, "hr-leads", f"uid=alice,ou=people,{BASE_DN}")
    sign_in_configure(monkeypatch, settings, {"LDAP_GROUP_SEARCH_BASE": f"ou=missing,{BASE_DN}"})
    with pytest.raises(DirectoryUnavailable):
        deprovision_directory_accounts(force=True)
    assert group_names("alice") == {"employee", "hr"}, "nothing changed"
    assert User.objects.get(username="alice").is_active


def test_an_active_directory_object_guid_keys_the_account_as_ad_shows_it(
    settings: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """objectGUID arrives as 16 raw bytes (little-endian fields); django-auth-ldap may have
    decoded them as text when they happened to be valid UTF-8. Either way: AD's own notation."""
    import uuid

    from accounts.ldap import _id_filter, directory_id
    from config.identity import sign_in_settings

    for name, value in {**ldap_env(Slapd(""), "ldaps://dc1.corp.example"),
                        "LDAP_GROUP_TYPE": "nested_active_directory"}.items():  # fmt: skip
        monkeypatch.setenv("POLICYDESK_" + name, value)
    assert sign_in_settings(debug=False)["LDAP_ID_ATTRIBUTE"] == "objectGUID", "AD's id by default"
    settings.LDAP_ID_ATTRIBUTE = "objectGUID"
    shown = "4b1a27c5-0d4e-4bd2-9c55-7b0a8e0f6c21"
    raw = uuid.UUID(shown).bytes_le
    assert directory_id({"objectGUID": [raw]}) == shown
    assert directory_id({"objectGUID": [raw.decode("utf-8", "surrogateescape")]}) == shown
    assert _id_filter(shown) == "(objectGUID=" + "".join(f"\\{b:02x}" for b in raw) + ")"
    assert directory_id({"entryUUID": [shown]}) is None, "only the configured attribute counts"
