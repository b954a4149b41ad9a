"""Sign-in settings are validated at start, like the others: each method on or off, every secret
required with no default, and one group map for OIDC and LDAP."""

from __future__ import annotations

import json

import pytest
from django.core.exceptions import ImproperlyConfigured

from accounts.directory import GroupMapError, group_map_parse
from config.identity import LDAP_BACKEND, LOCAL_BACKEND, OIDC_BACKEND, PERMISSIONS_BACKEND, sign_in_settings

OIDC = {
    "AUTH_OIDC": "true",
    "OIDC_ISSUER": "https://login.example.com/realms/corp",
    "OIDC_CLIENT_ID": "policydesk",
    "OIDC_CLIENT_SECRET": "s3cret-value",
}
LDAP = {
    "AUTH_LDAP": "true",
    "LDAP_SERVER_URI": "ldaps://dc1.corp.example",
    "LDAP_BIND_DN": "cn=svc,dc=corp,dc=example",
    "LDAP_BIND_PASSWORD": "bind-pw",
    "LDAP_USER_SEARCH_BASE": "ou=people,dc=corp,dc=example",
}


def configure(monkeypatch: pytest.MonkeyPatch, **values: str) -> None:
    for name, value in values.items():
        monkeypatch.setenv("POLICYDESK_" + name, value)


def test_local_accounts_alone_are_the_default(monkeypatch: pytest.MonkeyPatch) -> None:
    values = sign_in_settings(debug=False)
    assert values["AUTHENTICATION_BACKENDS"] == ["accounts.throttle.WebLoginThrottle", LOCAL_BACKEND]
    assert values["GROUP_MAP"].roles_for([]) == {"employee"}


def test_each_method_adds_its_backend_and_local_accounts_can_be_turned_off(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    configure(monkeypatch, AUTH_LOCAL="false", **OIDC, **LDAP)
    values = sign_in_settings(debug=False)
    assert values["AUTHENTICATION_BACKENDS"][1:] == [OIDC_BACKEND, LDAP_BACKEND, PERMISSIONS_BACKEND]
    assert values["OIDC_USE_PKCE"] and values["OIDC_USE_NONCE"]
    assert values["AUTH_LDAP_USER_SEARCH"].filterstr == "(uid=%(user)s)"


def test_it_refuses_all_methods_off(monkeypatch: pytest.MonkeyPatch) -> None:
    configure(monkeypatch, AUTH_LOCAL="false")
    with pytest.raises(ImproperlyConfigured, match="nobody could sign in"):
        sign_in_settings(debug=False)


@pytest.mark.parametrize("missing", ["OIDC_CLIENT_SECRET", "OIDC_ISSUER", "OIDC_CLIENT_ID"])
def test_oidc_needs_its_issuer_client_and_secret(monkeypatch: pytest.MonkeyPatch, missing: str) -> None:
    configure(monkeypatch, **{k: v for k, v in OIDC.items() if k != missing})
    with pytest.raises(ImproperlyConfigured, match=f"POLICYDESK_{missing} is required"):
        sign_in_settings(debug=False)


def test_a_plain_http_issuer_needs_an_explicit_choice(monkeypatch: pytest.MonkeyPatch) -> None:
    configure(monkeypatch, **{**OIDC, "OIDC_ISSUER": "http://idp.corp.example"})
    with pytest.raises(ImproperlyConfigured, match="must be a https URL"):
        sign_in_settings(debug=False)
    configure(monkeypatch, OIDC_ALLOW_HTTP="true")
    assert sign_in_settings(debug=False)["OIDC_ISSUER"] == "http://idp.corp.example"


@pytest.mark.parametrize("missing", ["LDAP_BIND_PASSWORD", "LDAP_SERVER_URI", "LDAP_USER_SEARCH_BASE"])
def test_ldap_needs_its_server_and_service_account(monkeypatch: pytest.MonkeyPatch, missing: str) -> None:
    configure(monkeypatch, **{k: v for k, v in LDAP.items() if k != missing})
    with pytest.raises(ImproperlyConfigured, match=f"POLICYDESK_{missing} is required"):
        sign_in_settings(debug=False)


def test_ldap_combines_the_user_filter_with_the_active_filter(monkeypatch: pytest.MonkeyPatch) -> None:
    ad_disabled = "(!(userAccountControl:1.2.840.113556.1.4.803:=2))"
    configure(monkeypatch, **LDAP, LDAP_USER_FILTER="(sAMAccountName=%(user)s)", LDAP_ACTIVE_FILTER=ad_disabled,
              LDAP_GROUP_TYPE="nested_active_directory")  # fmt: skip
    values = sign_in_settings(debug=False)
    assert values["AUTH_LDAP_USER_SEARCH"].filterstr == f"(&(sAMAccountName=%(user)s){ad_disabled})"
    assert type(values["AUTH_LDAP_GROUP_TYPE"]).__name__ == "NestedActiveDirectoryGroupType"
    configure(monkeypatch, LDAP_USER_FILTER="(uid=alice)")
    with pytest.raises(ImproperlyConfigured, match="must contain %\\(user\\)s"):
        sign_in_settings(debug=False)


def test_a_bad_group_map_stops_the_start_with_the_reason(monkeypatch: pytest.MonkeyPatch) -> None:
    configure(monkeypatch, GROUP_MAP=json.dumps({"roles": {"Admins": "superuser"}}))
    with pytest.raises(ImproperlyConfigured, match="POLICYDESK_GROUP_MAP maps 'Admins' to 'superuser'"):
        sign_in_settings(debug=False)


def test_the_group_map_maps_roles_and_document_groups_without_regard_to_case() -> None:
    group_map = group_map_parse(json.dumps({
        "roles": {"PolicyDesk Admins": "policy_admin", "All Staff": "employee"},
        "documents": {"HR Managers": "hr"},
        "default_role": None,
    }))  # fmt: skip
    assert group_map.roles_for(["all staff", "POLICYDESK ADMINS", "Other"]) == {"employee", "policy_admin"}
    assert group_map.document_groups_for(["hr managers", "All Staff"]) == {"hr"}
    assert group_map.roles_for(["Other"]) == set(), "no default role: no role"
    assert group_map_parse(json.dumps({"default_role": "employee"})).roles_for([]) == {"employee"}


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        ("{roles:", "not valid JSON"),
        ('{"roles": {}, "extra": 1}', "unknown keys: extra"),
        ('{"documents": {"Finance": "auditor"}}', "the role group 'auditor'"),
        ('{"default_role": "boss"}', "default_role 'boss'"),
        ('{"roles": {"A": "employee", "a": "auditor"}}', "twice"),
        ('{"roles": ["employee"]}', "must map directory group names"),
    ],
)
def test_the_group_map_says_what_is_wrong(raw: str, reason: str) -> None:
    with pytest.raises(GroupMapError, match=reason):
        group_map_parse(raw)


@pytest.mark.parametrize(("method", "variable"), [(OIDC, "OIDC_CA_FILE"), (LDAP, "LDAP_CA_FILE")])
def test_a_company_ca_file_must_exist(
    monkeypatch: pytest.MonkeyPatch, method: dict[str, str], variable: str
) -> None:
    configure(monkeypatch, **method, **{variable: "/nonexistent/company-ca.pem"})
    with pytest.raises(
        ImproperlyConfigured, match=f"POLICYDESK_{variable}='/nonexistent/company-ca.pem' is not"
    ):
        sign_in_settings(debug=False)
