"""OIDC sign-in against a real provider (django-oauth-toolkit, its own process, tests/oidc_provider):
the authorization code flow with PKCE over real HTTP, users created just in time and matched by
`sub`, groups mapped and re-synced, state, nonce and PKCE tampering refused, ID tokens for another
client or past their expiry refused, logout at the provider, and no secret in the logs."""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import secrets
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import httpx
import jwt
import pytest
from django.conf import settings as django_settings
from django.contrib.auth.models import User
from django.core.exceptions import SuspiciousOperation
from django.test import Client

from accounts.models import DirectoryAccount
from accounts.oidc import id_token_claims
from accounts.sessions import SEEN_AT, SIGNED_IN_AT
from audit.models import AuditEvent
from chat.selectors import user_may_ask
from devserver.embedded import free_port
from tests.directory_servers import OIDCProvider, sign_in_configure

pytestmark = pytest.mark.django_db

CLIENT_ID, SECRET = "policydesk", "rp-secret-" + secrets.token_urlsafe(12)
CALLBACK = "http://testserver/accounts/oidc/callback/"
GROUP_MAP = {
    "roles": {"Staff": "employee", "PolicyDesk Admins": "policy_admin"},
    "documents": {"HR Managers": "hr"},
    "default_role": None,
}


@pytest.fixture
def oidc_on(
    oidc_provider: OIDCProvider, settings: object, monkeypatch: pytest.MonkeyPatch
) -> Iterator[OIDCProvider]:
    oidc_provider.client_put(CLIENT_ID, secret=SECRET, redirect_uris=[CALLBACK],
                             logout_uris=["http://testserver/accounts/login/"])  # fmt: skip
    env = {
        "AUTH_OIDC": "true",
        "OIDC_ISSUER": oidc_provider.issuer,
        "OIDC_ALLOW_HTTP": "true",
        "OIDC_CLIENT_ID": CLIENT_ID,
        "OIDC_CLIENT_SECRET": SECRET,
        "OIDC_PROVIDER_NAME": "Example Corp",
        "OIDC_SCOPES": "openid profile groups",
        "GROUP_MAP": json.dumps(GROUP_MAP),
    }
    sign_in_configure(monkeypatch, settings, env)
    yield oidc_provider


@dataclass
class Person:
    username: str
    password: str
    sub: str


def person(provider: OIDCProvider, groups: list[str]) -> Person:
    username = "oidc-" + secrets.token_hex(4)
    password = "idp-pw-" + secrets.token_hex(6)
    return Person(username, password, provider.user_put(username, password=password, groups=groups))


def provider_login(idp: httpx.Client, authorize_url: str, who: Person) -> str:
    """At the provider: the authorize request, its sign-in form, and the redirect back; returns
    the callback URL with code and state (the browser's part, over real HTTP)."""
    response = idp.get(authorize_url)
    if response.status_code == 302 and "/login/" in response.headers["location"]:
        login_url = httpx.URL(authorize_url).join(response.headers["location"])
        form = idp.get(login_url)
        token = form.text.split('name="csrfmiddlewaretoken" value="')[1].split('"')[0]
        next_url = parse_qs(login_url.query.decode())["next"][0]
        posted = idp.post(login_url, data={"csrfmiddlewaretoken": token, "username": who.username,
                                           "password": who.password, "next": next_url})  # fmt: skip
        assert posted.status_code == 302, "the provider refused the test user's password"
        response = idp.get(httpx.URL(authorize_url).join(posted.headers["location"]))
    assert response.status_code == 302, response.text[:500]
    return str(response.headers["location"])


def start(client: Client, idp: httpx.Client, who: Person) -> str:
    started = client.get("/accounts/oidc/authenticate/")
    assert started.status_code == 302
    return provider_login(idp, started["Location"], who)


def finish(client: Client, callback_url: str) -> Any:
    parts = urlsplit(callback_url)
    return client.get(parts.path, parse_qs(parts.query))


def sign_in(who: Person, client: Client | None = None) -> tuple[Client, Any]:
    client = client or Client()
    with httpx.Client(timeout=10) as idp:
        response = finish(client, start(client, idp, who))
    return client, response


def signed_in(client: Client) -> bool:
    return client.get("/chat/").status_code == 200


def test_the_login_page_offers_the_company_sign_in(oidc_on: OIDCProvider) -> None:
    page = Client().get("/accounts/login/")
    assert b"Sign in with Example Corp" in page.content and b'id="id_username"' in page.content
    # Logging out posts a form that redirects to the provider: the policy must allow it.
    assert f"form-action 'self' {oidc_on.url};" in page["Content-Security-Policy"]


def test_a_user_signs_in_through_the_provider_with_the_mapped_roles(oidc_on: OIDCProvider) -> None:
    ann = person(oidc_on, ["Staff", "HR Managers", "Canteen Committee"])
    client, response = sign_in(ann)
    assert response.status_code == 302 and response["Location"] == "/"
    assert signed_in(client)
    user = User.objects.get(directory_account__subject=ann.sub)
    assert user.username == ann.username and not user.has_usable_password()
    assert set(user.groups.values_list("name", flat=True)) == {"employee", "hr"}
    assert DirectoryAccount.objects.get(user=user).issuer == oidc_on.issuer


def test_groups_are_resynced_at_every_sign_in_and_the_user_is_matched_by_sub(oidc_on: OIDCProvider) -> None:
    ben = person(oidc_on, ["Staff", "PolicyDesk Admins"])
    sign_in(ben)
    oidc_on.user_put(ben.username, password=ben.password, groups=["Staff"])
    client, _ = sign_in(ben)
    user = User.objects.get(directory_account__subject=ben.sub)
    assert set(user.groups.values_list("name", flat=True)) == {"employee"}
    assert client.get("/documents/").status_code == 403, "the admin role went with its group"
    assert User.objects.count() == 1
    events = AuditEvent.objects.filter(kind=AuditEvent.Kind.ACCOUNT_SYNC).order_by("seq")
    assert [(e.detail["from"], e.detail["to"]) for e in events] == [
        ([], ["employee", "policy_admin"]), (["employee", "policy_admin"], ["employee"])
    ]  # fmt: skip


def test_a_local_user_with_the_same_name_is_not_taken_over(oidc_on: OIDCProvider) -> None:
    cat = person(oidc_on, ["Staff"])
    local = User.objects.create_user(username=cat.username, password="local-pw-123456")
    sign_in(cat)
    user = User.objects.get(directory_account__subject=cat.sub)
    assert user.pk != local.pk and user.username.startswith(cat.username + "-")


def test_a_user_in_no_mapped_role_group_is_refused(
    oidc_on: OIDCProvider, caplog: pytest.LogCaptureFixture
) -> None:
    dan = person(oidc_on, ["Canteen Committee"])
    client, response = sign_in(dan)
    # For whoever sets up the provider: did groups arrive at all? The names are not logged.
    assert "none of the 1 directory groups sent maps to a role" in caplog.text
    assert "Canteen" not in caplog.text
    assert response["Location"] == "/accounts/login/?sso=failed" and not signed_in(client)
    assert not User.objects.exists()
    page = client.get(response["Location"])
    assert b"Signing in with Example Corp did not complete" in page.content


def test_a_callback_with_a_wrong_state_is_refused(oidc_on: OIDCProvider) -> None:
    client = Client()
    with httpx.Client(timeout=10) as idp:
        callback = start(client, idp, person(oidc_on, ["Staff"]))
    forged = callback.replace("state=", "state=x")
    assert finish(client, forged).status_code == 400
    assert not signed_in(client) and not User.objects.exists()


@pytest.mark.parametrize("tampered", ["nonce", "code_verifier"])
def test_a_wrong_nonce_or_pkce_verifier_is_refused(oidc_on: OIDCProvider, tampered: str) -> None:
    client = Client()
    with httpx.Client(timeout=10) as idp:
        callback = start(client, idp, person(oidc_on, ["Staff"]))
    session = client.session
    state = parse_qs(urlsplit(callback).query)["state"][0]
    session["oidc_states"][state][tampered] = secrets.token_urlsafe(48)
    session.save()
    response = finish(client, callback)
    assert response["Location"] == "/accounts/login/?sso=failed"
    assert not signed_in(client) and not User.objects.exists()


def tokens_for(
    provider: OIDCProvider, client_id: str, secret: str, who: Person, nonce: str
) -> dict[str, Any]:
    """A real token response from the provider for `client_id`, by the code flow with PKCE."""
    verifier = secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    query = {"response_type": "code", "client_id": client_id, "redirect_uri": CALLBACK, "scope": "openid",
             "state": "s", "nonce": nonce, "code_challenge": challenge, "code_challenge_method": "S256"}  # fmt: skip
    with httpx.Client(timeout=10) as idp:
        callback = provider_login(idp, f"{provider.issuer}/authorize/?{urlencode(query)}", who)
        code = parse_qs(urlsplit(callback).query)["code"][0]
        response = idp.post(f"{provider.issuer}/token/", data={
            "grant_type": "authorization_code", "code": code, "redirect_uri": CALLBACK, "client_id": client_id,
            "client_secret": secret, "code_verifier": verifier})  # fmt: skip
    response.raise_for_status()
    return dict(response.json())


def signing_key(provider: OIDCProvider, token: str) -> Any:
    jwks = httpx.get(f"{provider.issuer}/.well-known/jwks.json", timeout=10).json()
    kid = jwt.get_unverified_header(token)["kid"]
    return jwt.PyJWK(next(key for key in jwks["keys"] if key["kid"] == kid))


def test_an_id_token_for_another_client_or_past_its_expiry_is_refused(oidc_on: OIDCProvider) -> None:
    who = person(oidc_on, ["Staff"])
    oidc_on.client_put("another-app", secret="other-secret-123", redirect_uris=[CALLBACK], logout_uris=[])
    ours = tokens_for(oidc_on, CLIENT_ID, SECRET, who, nonce="n-1")["id_token"]
    theirs = tokens_for(oidc_on, "another-app", "other-secret-123", who, nonce="n-2")["id_token"]
    key = signing_key(oidc_on, ours)
    assert id_token_claims(ours, key=key, nonce="n-1")["sub"] == who.sub, "the control passes"
    with pytest.raises(SuspiciousOperation, match="another client"):
        id_token_claims(theirs, key=key, nonce="n-2")
    expiry = jwt.decode(ours, options={"verify_signature": False})["exp"]
    with pytest.raises(SuspiciousOperation, match="expired"):
        id_token_claims(ours, key=key, nonce="n-1", now=expiry + django_settings.OIDC_CLOCK_SKEW_SECONDS + 1)
    with pytest.raises(SuspiciousOperation, match="nonce"):
        id_token_claims(ours, key=key, nonce="n-other")


def test_logout_ends_the_providers_session_too(oidc_on: OIDCProvider) -> None:
    who = person(oidc_on, ["Staff"])
    client = Client()
    with httpx.Client(timeout=10) as idp:
        finish(client, start(client, idp, who))
        assert signed_in(client)
        response = client.post("/accounts/logout/")
        assert not signed_in(client)
        end_session = response["Location"]
        assert end_session.startswith(oidc_on.issuer + "/logout/") and "id_token_hint=" in end_session
        back = idp.get(end_session)
        assert back.status_code == 302 and back.headers["location"] == "http://testserver/accounts/login/"
        # The provider forgot the user too: a new sign-in asks for the password again.
        again = idp.get(client.get("/accounts/oidc/authenticate/")["Location"])
        assert again.status_code == 302 and "/login/" in again.headers["location"]


def test_no_secret_or_token_reaches_the_logs(oidc_on: OIDCProvider, caplog: pytest.LogCaptureFixture) -> None:
    for name in ("", "mozilla_django_oidc", "accounts", "django.request"):
        caplog.set_level(logging.DEBUG, logger=name)
    who = person(oidc_on, ["Staff"])
    client, _ = sign_in(who)
    id_token = client.session["oidc_id_token"]
    sign_in(person(oidc_on, ["Canteen Committee"]))  # refused: a warning is logged
    assert caplog.records
    for secret in (SECRET, id_token, id_token.split(".")[2], who.password):
        assert secret not in caplog.text


def test_a_provider_that_is_down_leaves_the_other_ways_in_working(
    oidc_on: OIDCProvider, settings: Any, make_user: Any
) -> None:
    settings.OIDC_ISSUER = f"http://127.0.0.1:{free_port()}/o"  # nothing listens there
    make_user("local-admin")
    client = Client()
    started = client.get("/accounts/oidc/authenticate/")
    assert started["Location"] == "/accounts/login/?sso=unavailable"
    assert b"Example Corp is not answering right now" in client.get(started["Location"]).content
    signed = client.post("/accounts/login/", {"username": "local-admin", "password": "not-used-pw-123"})
    assert signed.status_code == 302 and signed_in(client), "local sign-in does not wait for the provider"


def test_a_session_is_rechecked_at_the_provider_and_follows_its_groups(oidc_on: OIDCProvider) -> None:
    who = person(oidc_on, ["Staff", "PolicyDesk Admins"])
    client = Client()
    with httpx.Client(timeout=10) as idp:  # the browser: it keeps the provider's session cookie
        finish(client, start(client, idp, who))
        assert client.get("/documents/").status_code == 200
        oidc_on.user_put(who.username, password=who.password, groups=["Staff"])

        def refresh_due() -> Any:
            session = client.session
            session["oidc_id_token_expiration"] = 0  # as when the refresh period has passed
            session.save()
            response = client.get("/documents/")
            assert response.status_code == 302 and "prompt=none" in response["Location"]
            return finish(client, provider_login(idp, response["Location"], who))

        back = refresh_due()
        assert back["Location"] == "/documents/", "straight back, no page shown to the user"
        assert client.get("/documents/").status_code == 403, "the admin group went at the refresh"
        oidc_on.user_put(who.username, password=who.password, groups=["Staff"], active=False)
        assert refresh_due()["Location"] == "/accounts/login/?sso=failed"
        assert not signed_in(client), "disabled at the provider: signed out at the next refresh"


def test_an_error_callback_nobody_started_signs_nobody_out(
    oidc_on: OIDCProvider, make_user: Callable[..., User]
) -> None:
    """A link to /accounts/oidc/callback/?error=x (in a mail, an image tag) used to sign out
    whoever followed it, local and LDAP users included."""
    make_user("local-user")
    local = Client()
    assert (
        local.post("/accounts/login/", {"username": "local-user", "password": "not-used-pw-123"}).status_code
        == 302
    )
    directory, _ = sign_in(person(oidc_on, ["Staff"]))
    for client in (local, directory):
        for query in ("?error=access_denied", "?error=login_required&state=not-one-of-ours"):
            response = client.get("/accounts/oidc/callback/" + query)
            assert response["Location"] == "/accounts/login/?sso=failed"
            assert signed_in(client), query


def test_a_due_recheck_counts_as_signed_out_for_posts_and_sockets_until_a_page_load(
    oidc_on: OIDCProvider,
) -> None:
    """A user disabled at the provider could keep a scripted socket or POSTs alive with the old
    cookie: only page loads went back to the provider."""
    who = person(oidc_on, ["Staff"])
    client = Client()
    rename = f"/chat/{uuid.uuid4()}/rename/"
    with httpx.Client(timeout=10) as idp:
        finish(client, start(client, idp, who))
        user = User.objects.get(directory_account__subject=who.sub)
        session_key = client.session.session_key
        assert client.post(rename, {"title": "x"}).status_code == 404, "signed in: no such conversation"
        assert user_may_ask(user_id=user.pk, session_key=session_key), "the socket's re-check"

        session = client.session
        session["oidc_id_token_expiration"] = 0  # the refresh period has passed
        session.save()
        refused = client.post(rename, {"title": "x"})
        assert refused.status_code == 302 and refused["Location"].startswith("/accounts/login/")
        assert not user_may_ask(user_id=user.pk, session_key=session_key), "an open socket closes"

        page = client.get("/chat/")  # a page load re-checks at the provider, silently
        assert page.status_code == 302 and "prompt=none" in page["Location"]
        finish(client, provider_login(idp, page["Location"], who))
        assert client.post(rename, {"title": "x"}).status_code == 404, "re-checked: signed in again"
        assert user_may_ask(user_id=user.pk, session_key=client.session.session_key)


def test_the_session_keeps_only_what_logout_needs_and_expires_within_a_working_day(
    oidc_on: OIDCProvider,
) -> None:
    who = person(oidc_on, ["Staff", "HR Managers"])
    client, _ = sign_in(who)
    session = client.session
    # The raw ID token (the provider's logout wants it as id_token_hint), nothing else of the
    # provider's: no access or refresh token, no claims copied out of it.
    assert set(session.keys()) <= {
        "_auth_user_id", "_auth_user_backend", "_auth_user_hash", "oidc_states", "oidc_login_next",
        "oidc_id_token", "oidc_id_token_expiration", SIGNED_IN_AT, SEEN_AT,
    }  # fmt: skip
    assert "oidc_access_token" not in session and "oidc_refresh_token" not in session
    assert session.get_expiry_age() <= django_settings.SESSION_HOURS * 3600


def test_the_group_map_matches_an_entra_style_group_object_id(
    oidc_on: OIDCProvider, settings: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Entra ID sends group object ids: the map may hold them (in any case, with or without braces),
    and a group merely *named* like a mapped one grants nothing."""
    admins = "4b1a27c5-0d4e-4bd2-9c55-7b0a8e0f6c21"
    by_id = {"roles": {"{" + admins.upper() + "}": "policy_admin", "Staff": "employee"}, "default_role": None}
    sign_in_configure(monkeypatch, settings, {"GROUP_MAP": json.dumps(by_id)})
    client, _ = sign_in(person(oidc_on, ["Staff", admins]))
    assert client.get("/documents/").status_code == 200
    impostor, _ = sign_in(person(oidc_on, ["Staff", "PolicyDesk Admins"]))
    assert impostor.get("/documents/").status_code == 403


def test_without_an_end_session_endpoint_the_id_token_is_not_kept(
    oidc_on: OIDCProvider, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Google has no end-session endpoint: the ID token would serve no logout, so it goes."""
    import accounts.oidc

    monkeypatch.setattr(accounts.oidc, "_end_session_endpoint", lambda: None)
    client, _ = sign_in(person(oidc_on, ["Staff"]))
    assert signed_in(client) and "oidc_id_token" not in client.session
    response = client.post("/accounts/logout/")
    assert response["Location"] == "/accounts/login/" and not signed_in(client)
