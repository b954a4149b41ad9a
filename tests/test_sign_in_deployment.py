"""Deployment edges of sign-in (issue 24, item 4): forwarded client addresses only from trusted
proxies (the login throttle counts real addresses), Secure cookies and HSTS by default, no LDAP
password in clear, sessions that end after a working day or when idle, and a document view that
never fails on a hand-written highlight."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from django.contrib.auth.models import User
from django.core.cache import cache
from django.core.exceptions import ImproperlyConfigured
from django.test import Client, override_settings

from accounts.roles import Role
from accounts.sessions import SEEN_AT, SIGNED_IN_AT
from config.identity import sign_in_settings
from core.proxies import TrustedProxies, trusted_proxies_parse
from tests.live_server import LiveDaphne
from tests.rag_helpers import ingest_bytes

ROOT = Path(__file__).resolve().parent.parent


# --- forwarded headers ---------------------------------------------------------------------------


def test_the_shipped_deployments_never_let_daphne_read_forwarded_headers_itself() -> None:
    for path in ("docker-compose.yml", "deploy/k8s/web.yaml", "Dockerfile"):
        assert "--proxy-headers" not in (ROOT / path).read_text(), path
    nginx = (ROOT / "deploy/nginx/policydesk.conf").read_text()
    assert "$proxy_add_x_forwarded_for" not in nginx, "nginx must replace the client's header, not append"
    assert nginx.count("X-Forwarded-For $remote_addr;") == 2
    refused = subprocess.run(
        [sys.executable, "-m", "core.daphne", "--proxy-headers", "config.asgi:application"],
        cwd=ROOT, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert refused.returncode != 0 and "POLICYDESK_TRUSTED_PROXIES" in refused.stderr


def test_the_client_address_comes_from_the_right_of_the_chain_and_only_through_trusted_proxies() -> None:
    none = trusted_proxies_parse("")
    assert none.none and none.client("198.51.100.7", "10.9.9.9") == ("198.51.100.7", False)
    one_hop = trusted_proxies_parse("1")
    # The client wrote "10.9.9.9"; the proxy replaced or appended the address it saw.
    assert one_hop.client("127.0.0.1", "10.9.9.9, 203.0.113.5")[0] == "203.0.113.5"
    assert one_hop.client("127.0.0.1", "")[0] == "127.0.0.1"
    named = trusted_proxies_parse("127.0.0.1, 10.0.0.0/8")
    assert named.client("127.0.0.1", "1.2.3.4, 203.0.113.5, 10.1.2.3") == ("203.0.113.5", True)
    assert named.client("198.51.100.7", "203.0.113.5") == ("198.51.100.7", False), "not from a proxy"
    for bad in ("lots", "11", "10.0.0.0/33"):
        with pytest.raises(ImproperlyConfigured, match="POLICYDESK_TRUSTED_PROXIES"):
            trusted_proxies_parse(bad)


def _failed_logins(server: LiveDaphne, forwarded: list[str]) -> list[int]:
    """Wrong passwords through the web form, each for another account, each with its own
    X-Forwarded-For: only the client address can lock them out."""
    statuses = []
    with httpx.Client(base_url=server.url, timeout=20) as browser:
        form = browser.get("/accounts/login/")
        token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', form.text)
        assert token is not None
        for number, header in enumerate(forwarded):
            response = browser.post(
                "/accounts/login/",
                data={"csrfmiddlewaretoken": token[1], "username": f"nobody-{number}", "password": "wrong-pw-1"},
                headers={"X-Forwarded-For": header, "Origin": server.url, "Referer": server.url + "/accounts/login/"},
            )  # fmt: skip
            statuses.append(response.status_code)
    return statuses


@pytest.mark.django_db(transaction=True)
def test_a_client_cannot_dodge_the_login_throttle_with_its_own_forwarded_header(
    live_daphne: LiveDaphne,
) -> None:
    cache.clear()
    spoofed = [f"203.0.113.{n}" for n in range(7)]
    # Daphne published directly (the default): the header is the client's own and is ignored.
    locked_at_the_fifth = [200] * 4 + [429] * 3  # POLICYDESK_LOGIN_FAILURE_LIMIT: 5
    assert _failed_logins(live_daphne, spoofed) == locked_at_the_fifth
    cache.clear()
    # Behind a trusted proxy that appends: the right-most address is the one it saw.
    with override_settings(TRUSTED_PROXIES=TrustedProxies(hops=1)):
        assert _failed_logins(live_daphne, [f"{a}, 198.51.100.9" for a in spoofed]) == locked_at_the_fifth
        cache.clear()
        # And distinct clients behind the proxy are counted apart.
        assert set(_failed_logins(live_daphne, spoofed)) == {200}
    cache.clear()


# --- cookies, HSTS -------------------------------------------------------------------------------


def _settings_values(**overrides: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("POLICYDESK_")}
    env.update({"POLICYDESK_ENV_FILE": "/dev/null", "DJANGO_SETTINGS_MODULE": "config.settings",
                "POLICYDESK_SECRET_KEY": "k" * 50, "POLICYDESK_AUDIT_HMAC_KEY": "a" * 50, **overrides})  # fmt: skip
    code = (
        "from django.conf import settings as s; "
        "print(s.SESSION_COOKIE_SECURE, s.CSRF_COOKIE_SECURE, s.SECURE_HSTS_SECONDS, s.SESSION_COOKIE_AGE)"
    )
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True,
                            text=True, timeout=60)  # fmt: skip
    assert result.returncode == 0, result.stderr
    secure, csrf_secure, hsts, age = result.stdout.split()
    return {"secure": secure, "csrf_secure": csrf_secure, "hsts": hsts, "age": age}


def test_cookies_are_secure_and_hsts_is_on_unless_debug_or_local_http() -> None:
    assert _settings_values() == {"secure": "True", "csrf_secure": "True", "hsts": "31536000", "age": "36000"}
    for flag in ({"POLICYDESK_DEBUG": "true"}, {"POLICYDESK_LOCAL_HTTP": "true"}):
        values = _settings_values(**flag)
        assert (values["secure"], values["hsts"]) == ("False", "0"), flag
    assert _settings_values(POLICYDESK_SESSION_HOURS="8")["age"] == "28800"


def test_the_embedded_setup_says_it_serves_plain_http() -> None:
    from devserver.embedded import ServiceUrls

    assert ServiceUrls(None, None, None).as_env()["POLICYDESK_LOCAL_HTTP"] == "true"


# --- LDAP in clear -------------------------------------------------------------------------------

LDAP = {
    "AUTH_LDAP": "true",
    "LDAP_BIND_DN": "cn=svc,dc=corp,dc=example",
    "LDAP_BIND_PASSWORD": "bind-pw",
    "LDAP_USER_SEARCH_BASE": "ou=people,dc=corp,dc=example",
}


def test_plain_ldap_without_starttls_is_refused_unless_allowed(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in {**LDAP, "LDAP_SERVER_URI": "ldap://dc1.corp.example"}.items():
        monkeypatch.setenv("POLICYDESK_" + name, value)
    with pytest.raises(ImproperlyConfigured, match="passwords in clear"):
        sign_in_settings(debug=False)
    monkeypatch.setenv("POLICYDESK_LDAP_START_TLS", "true")
    assert sign_in_settings(debug=False)["AUTH_LDAP_START_TLS"] is True
    monkeypatch.setenv("POLICYDESK_LDAP_START_TLS", "false")
    monkeypatch.setenv("POLICYDESK_LDAP_ALLOW_PLAIN", "true")
    assert sign_in_settings(debug=False)["AUTH_LDAP_SERVER_URI"] == "ldap://dc1.corp.example"


# --- session lifetime ----------------------------------------------------------------------------


@pytest.mark.django_db
def test_a_session_ends_after_its_working_day_or_when_idle(
    make_user: Callable[..., User], settings: object
) -> None:
    make_user("worker")
    client = Client()
    assert (
        client.post("/accounts/login/", {"username": "worker", "password": "not-used-pw-123"}).status_code
        == 302
    )
    session = client.session
    assert isinstance(session[SIGNED_IN_AT], float) and client.get("/chat/").status_code == 200

    session[SEEN_AT] = time.time() - 121 * 60  # idle past the default 120 minutes
    session.save()
    assert client.get("/chat/").status_code == 302, "idle too long: signed out"

    client.post("/accounts/login/", {"username": "worker", "password": "not-used-pw-123"})
    session = client.session
    session[SIGNED_IN_AT] = time.time() - 10 * 3600 - 1  # active all along, but the day is over
    session.save()
    assert client.get("/chat/").status_code == 302, "past the working day: signed out"


# --- the document view's highlight ---------------------------------------------------------------


@pytest.mark.django_db
@pytest.mark.parametrize("hl", ["²-3", "1-²", "9" * 5000 + "-1", "1-" + "9" * 5000, "٣-٩", "-", "1-2-3"])
def test_a_hand_written_highlight_is_ignored_never_a_server_error(
    make_user: Callable[..., User], hl: str
) -> None:
    document = ingest_bytes(b"# Leave\n\nAnnual leave is 25 days a year.\n", "leave.md")
    chunk = document.chunks.first()
    assert chunk is not None
    client = Client()
    client.force_login(make_user("reader", Role.EMPLOYEE))
    response = client.get(f"/documents/{document.pk}/", {"chunk": str(chunk.pk), "hl": hl})
    assert response.status_code == 200
    assert b"<mark" not in response.content
    good = client.get(f"/documents/{document.pk}/", {"chunk": str(chunk.pk), "hl": "0-6"})
    assert good.status_code == 200


async def test_a_trusted_proxy_s_scheme_is_believed_and_anyone_else_s_is_not() -> None:
    from core.proxies import ForwardedClientMiddleware

    seen: list[dict[str, object]] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        seen.append(dict(scope))

    headers = [(b"x-forwarded-for", b"203.0.113.5"), (b"x-forwarded-proto", b"https")]
    for proxies, peer in ((TrustedProxies(), "127.0.0.1"), (trusted_proxies_parse("127.0.0.1"), "198.51.100.7"),
                          (trusted_proxies_parse("127.0.0.1"), "127.0.0.1")):  # fmt: skip
        for kind, scheme in (("http", "http"), ("websocket", "ws")):
            scope = {"type": kind, "scheme": scheme, "client": [peer, 5555], "headers": headers}
            await ForwardedClientMiddleware(app, proxies)(scope, None, None)
    assert [(s["client"], s["scheme"]) for s in seen] == [
        (["127.0.0.1", 5555], "http"), (["127.0.0.1", 5555], "ws"),  # no proxy trusted
        (["198.51.100.7", 5555], "http"), (["198.51.100.7", 5555], "ws"),  # not from the proxy
        (["203.0.113.5", 0], "https"), (["203.0.113.5", 0], "wss"),  # through the proxy
    ]  # fmt: skip
