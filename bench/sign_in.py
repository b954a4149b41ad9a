"""Sign-in time through OIDC and LDAP, PolicyDesk's part only (target: under 1 s each).

    .venv/bin/python -m bench.sign_in [--rounds 30]

Starts a real OpenLDAP (`slapd`) and the tests' real OIDC provider (django-oauth-toolkit, its
own process), and fresh embedded PostgreSQL + Redis. LDAP: the sign-in form's POST, which binds
as the service account, finds the user, binds as the user, reads nested groups and syncs the
roles. OIDC: the redirect to the provider plus the callback (code exchange with PKCE, JWKS,
ID token checks, userinfo, user sync); the provider's own sign-in page and authorize step are
the provider's time and are left out. Prints one JSON object in milliseconds.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import time
from urllib.parse import parse_qs, urlsplit

from bench.common import ROOT, percentiles, scratch_django
from tests.directory_servers import BASE_DN, OIDCProvider, Slapd

GROUP_MAP = {"roles": {"all-staff": "employee", "Staff": "employee"}, "documents": {"hr-managers": "hr"}}


def configure(slapd: Slapd, provider: OIDCProvider, client_secret: str, *, local: bool) -> None:
    os.environ.update(
        {
            "POLICYDESK_AUTH_LOCAL": "true" if local else "false",
            "POLICYDESK_ALLOWED_HOSTS": "testserver",
            "POLICYDESK_LOG_LEVEL": "WARNING",
            "POLICYDESK_AUTH_LDAP": "true",
            "POLICYDESK_LDAP_SERVER_URI": slapd.uri,
            "POLICYDESK_LDAP_BIND_DN": slapd.service_dn,
            "POLICYDESK_LDAP_BIND_PASSWORD": slapd.service_password,
            "POLICYDESK_LDAP_USER_SEARCH_BASE": f"ou=people,{BASE_DN}",
            "POLICYDESK_LDAP_GROUP_SEARCH_BASE": f"ou=groups,{BASE_DN}",
            "POLICYDESK_AUTH_OIDC": "true",
            "POLICYDESK_OIDC_ISSUER": provider.issuer,
            "POLICYDESK_OIDC_ALLOW_HTTP": "true",
            "POLICYDESK_OIDC_CLIENT_ID": "bench",
            "POLICYDESK_OIDC_CLIENT_SECRET": client_secret,
            "POLICYDESK_GROUP_MAP": json.dumps(GROUP_MAP),
            "POLICYDESK_LOGIN_FAILURE_LIMIT": "1000",
        }
    )


def ldap_rounds(rounds: int) -> list[float]:
    from django.test import Client

    timings = []
    for _ in range(rounds + 2):  # the first two warm the connection pool and caches
        client = Client()
        started = time.perf_counter()
        response = client.post("/accounts/login/", {"username": "alice", "password": "alice-pw-7431"})
        timings.append((time.perf_counter() - started) * 1000)
        assert response.status_code == 302, "LDAP sign-in failed"
    return timings[2:]


def oidc_rounds(provider: OIDCProvider, rounds: int) -> list[float]:
    import httpx
    from django.test import Client

    from tests.test_sign_in_oidc import Person, provider_login

    password = "idp-" + secrets.token_hex(8)
    who = Person("bench-user", password, provider.user_put("bench-user", password=password, groups=["Staff"]))
    timings = []
    with httpx.Client(timeout=10) as idp:
        for _ in range(rounds + 2):
            client = Client()
            started = time.perf_counter()
            redirect = client.get("/accounts/oidc/authenticate/")
            ours = time.perf_counter() - started
            callback = urlsplit(provider_login(idp, redirect["Location"], who))  # the provider's time
            started = time.perf_counter()
            response = client.get(callback.path, parse_qs(callback.query))
            ours += time.perf_counter() - started
            assert response.status_code == 302 and response["Location"] == "/", "OIDC sign-in failed"
            timings.append(ours * 1000)
    return timings[2:]


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rounds", type=int, default=30)
    # With local accounts on, Django's own backend is tried first and runs its password hasher
    # even for a directory user (it has no usable password: the hash keeps timing uniform).
    parser.add_argument("--local-off", action="store_true", help="POLICYDESK_AUTH_LOCAL=false")
    args = parser.parse_args()
    slapd = Slapd((ROOT / "tests" / "fixtures" / "directory.ldif").read_text())
    provider = OIDCProvider()
    slapd.start()
    provider.start()
    try:
        client_secret = secrets.token_urlsafe(24)
        provider.client_put("bench", secret=client_secret, redirect_uris=["http://testserver/accounts/oidc/callback/"],
                            logout_uris=[])  # fmt: skip
        configure(slapd, provider, client_secret, local=not args.local_off)
        with scratch_django():
            result = {
                "rounds": args.rounds,
                "local_accounts": not args.local_off,
                "ldap_ms": percentiles(ldap_rounds(args.rounds)),
                "oidc_ms": percentiles(oidc_rounds(provider, args.rounds)),
            }
        print(json.dumps(result))
    finally:
        provider.stop()
        slapd.stop()


if __name__ == "__main__":
    main()
