"""OIDC sign-in: mozilla-django-oidc's authorization code flow with PKCE, state and nonce, and
stricter ID token checks than the library's (audience, issuer, expiry, issued-at), with the
endpoints read from the provider's discovery document.

Users are matched by a stable claim (POLICYDESK_OIDC_SUBJECT_CLAIM: `sub`, or `oid` for Entra ID),
never by e-mail; `accounts.services.directory_user_sign_in` creates or updates them and maps
their groups.
"""

from __future__ import annotations

import logging
import time
from functools import cache
from typing import Any
from urllib.parse import urlencode

import httpx
import jwt
import requests
from django.conf import settings
from django.contrib import auth
from django.contrib.auth.models import User
from django.core.exceptions import SuspiciousOperation
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.urls import reverse
from django.utils.crypto import constant_time_compare
from django.utils.deprecation import MiddlewareMixin
from django.utils.functional import cached_property
from django.views import View
from mozilla_django_oidc.auth import OIDCAuthenticationBackend
from mozilla_django_oidc.middleware import SessionRefresh
from mozilla_django_oidc.utils import import_from_settings
from mozilla_django_oidc.views import OIDCAuthenticationCallbackView, OIDCAuthenticationRequestView

from accounts.models import DirectoryAccount
from accounts.selectors import active_user
from accounts.services import SignInRefused, directory_user_sign_in

logger = logging.getLogger(__name__)

# mozilla-django-oidc's setting names, and the discovery document's keys that give them.
_DISCOVERED = {
    "OIDC_OP_AUTHORIZATION_ENDPOINT": "authorization_endpoint",
    "OIDC_OP_TOKEN_ENDPOINT": "token_endpoint",
    "OIDC_OP_USER_ENDPOINT": "userinfo_endpoint",
    "OIDC_OP_JWKS_ENDPOINT": "jwks_uri",
}


@cache
def _discovery(issuer: str) -> dict[str, Any]:
    """The provider's metadata, read once per process (a failed read is not cached)."""
    url = issuer + "/.well-known/openid-configuration"
    response = httpx.get(url, timeout=settings.OIDC_TIMEOUT, verify=settings.OIDC_VERIFY_SSL)
    response.raise_for_status()
    document = dict(response.json())
    if document.get("issuer", "").rstrip("/") != issuer:
        raise SuspiciousOperation("the provider's discovery document names another issuer")
    return document


def _setting(attr: str, *args: Any) -> Any:
    if attr in _DISCOVERED:
        return _discovery(settings.OIDC_ISSUER)[_DISCOVERED[attr]]
    return import_from_settings(attr, *args)


def _oidc_on() -> None:
    if not settings.AUTH_OIDC:
        raise Http404("OIDC sign-in is off")


# What a provider that is down or misconfigured raises while its discovery document is read.
_DISCOVERY_FAILURES = (httpx.HTTPError, ValueError, KeyError, SuspiciousOperation)


class DirectoryOIDCAuthenticateView(OIDCAuthenticationRequestView):
    """Sends the browser to the provider, with state, nonce and a PKCE challenge."""

    get_settings = staticmethod(_setting)

    def __init__(self, **kwargs: Any) -> None:
        # The library reads the endpoint here; get() does, where a failure can be answered.
        View.__init__(self, **kwargs)

    def get(self, request: HttpRequest) -> HttpResponse:
        _oidc_on()
        try:
            self.OIDC_OP_AUTH_ENDPOINT = self.get_settings("OIDC_OP_AUTHORIZATION_ENDPOINT")
        except _DISCOVERY_FAILURES as exc:
            logger.warning(
                "OIDC sign-in unavailable: the provider's discovery document (%s)", type(exc).__name__
            )
            return HttpResponseRedirect(reverse("login") + "?sso=unavailable")
        self.OIDC_RP_CLIENT_ID = settings.OIDC_RP_CLIENT_ID
        return super().get(request)


class DirectoryOIDCCallbackView(OIDCAuthenticationCallbackView):
    get_settings = staticmethod(_setting)

    # Whether this callback answers a sign-in (or silent re-check) this browser started.
    pending_sign_in = False

    def dispatch(self, request: HttpRequest, *args: Any, **kwargs: Any) -> Any:
        _oidc_on()
        return super().dispatch(request, *args, **kwargs)

    def get(self, request: HttpRequest) -> HttpResponse:
        state = request.GET.get("state")
        self.pending_sign_in = isinstance(state, str) and state in request.session.get("oidc_states", {})
        if request.GET.get("error") and not self.pending_sign_in:
            # A link to /accounts/oidc/callback/?error=x must not sign anybody out: an error
            # counts only as the answer to a sign-in this browser started.
            return HttpResponseRedirect(self.failure_url)
        response: HttpResponse = super().get(request)
        return response

    def login_success(self) -> HttpResponse:
        response: HttpResponse = super().login_success()
        if not _end_session_endpoint():
            # The ID token (name, e-mail, groups) is kept only as the provider's logout hint.
            self.request.session.pop("oidc_id_token", None)
        return response

    def login_failure(self) -> HttpResponse:
        # A silent refresh that the provider or the group map refuses ends the old session too;
        # a callback nobody started (no matching state) leaves the session alone.
        if self.pending_sign_in and self.request.user.is_authenticated:
            auth.logout(self.request)
        return super().login_failure()


class DirectorySessionRefresh(SessionRefresh):
    """Every POLICYDESK_OIDC_SESSION_REFRESH_MINUTES, an OIDC user's next page load goes to the
    provider with prompt=none and straight back: the callback re-reads their groups, and a user
    disabled or removed at the provider is signed out. Local and LDAP sessions are left alone."""

    get_settings = staticmethod(_setting)

    def __init__(self, get_response: Any) -> None:
        # The library reads every setting here, the provider's endpoints too, at start; those
        # are read per request (discovery may fail, tests change settings), the rest are fixed.
        MiddlewareMixin.__init__(self, get_response)
        self.OIDC_EXEMPT_URLS: list[str] = []
        self.OIDC_STATE_SIZE = self.OIDC_NONCE_SIZE = 32
        self.OIDC_USE_NONCE = True
        self.OIDC_AUTHENTICATION_CALLBACK_URL = "oidc_authentication_callback"

    @cached_property
    def exempt_urls(self) -> set[str]:
        return {
            reverse(name) for name in ("oidc_authentication_init", "oidc_authentication_callback", "logout")
        }

    def process_request(self, request: HttpRequest) -> HttpResponse | None:
        if not settings.AUTH_OIDC or not self.is_refreshable_url(request):
            return None
        try:
            self.OIDC_OP_AUTHORIZATION_ENDPOINT = self.get_settings("OIDC_OP_AUTHORIZATION_ENDPOINT")
        except _DISCOVERY_FAILURES:
            return None  # the provider is down: keep the session rather than lock everyone out
        self.OIDC_RP_CLIENT_ID = settings.OIDC_RP_CLIENT_ID
        self.OIDC_RP_SCOPES = self.get_settings("OIDC_RP_SCOPES")
        response: HttpResponse | None = super().process_request(request)
        return response


class DirectoryOIDCBackend(OIDCAuthenticationBackend):
    get_settings = staticmethod(_setting)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        # Django builds every backend for every sign-in, local and LDAP ones included, so the
        # library's reading of the provider's endpoints waits for an OIDC callback: a provider
        # that is down must not break the other ways in.
        self.UserModel = User

    def authenticate(self, request: HttpRequest | None, **kwargs: Any) -> User | None:
        """None, so the callback sends the browser back to the sign-in page with a message, for
        a refused token exchange (a wrong PKCE verifier, a used code) or an ID token that fails
        a check. The reason is logged; tokens and the client secret never are."""
        if request is None or "password" in kwargs or not {"code", "state"} <= set(request.GET):
            return None  # not an OIDC callback
        try:
            super().__init__()  # the endpoints, from the discovery document
            return super().authenticate(request, **kwargs)
        except (requests.RequestException, httpx.HTTPError) as exc:
            status = getattr(getattr(exc, "response", None), "status_code", None)
            logger.warning("OIDC sign-in failed: the provider refused or did not answer (%s, HTTP %s)",
                           type(exc).__name__, status)  # fmt: skip
        except SuspiciousOperation as exc:
            logger.warning("OIDC sign-in failed: %s", exc)
        except (ValueError, KeyError) as exc:
            logger.warning("OIDC sign-in failed: the provider's discovery document (%s)", type(exc).__name__)
        return None

    def verify_token(self, token: str, **kwargs: Any) -> dict[str, Any]:
        # mozilla-django-oidc also calls this, without a nonce, for a userinfo response served
        # as a JWT: that carries none and is checked like an ID token otherwise.
        return id_token_claims(
            token,
            key=self.retrieve_matching_jwk(token),
            nonce=kwargs.get("nonce"),
            check_nonce="nonce" in kwargs,
        )

    def get_or_create_user(self, access_token: str, id_token: str, payload: dict[str, Any]) -> User | None:
        claims = dict(payload)
        userinfo = self.get_userinfo(access_token, id_token, payload)
        if userinfo.get("sub") != payload.get("sub"):
            # OpenID Connect Core 5.3.2: a userinfo response for another subject must be refused.
            raise SuspiciousOperation("userinfo names another subject than the ID token")
        claims.update(userinfo)
        subject = claims.get(settings.OIDC_SUBJECT_CLAIM)
        if not isinstance(subject, str) or not subject:
            raise SuspiciousOperation(f"the ID token has no {settings.OIDC_SUBJECT_CLAIM} claim")
        groups = claims.get(settings.OIDC_GROUPS_CLAIM) or []
        try:
            return directory_user_sign_in(
                source=DirectoryAccount.Source.OIDC,
                issuer=settings.OIDC_ISSUER,
                subject=subject,
                username=_username(claims, subject),
                directory_groups=[g for g in groups if isinstance(g, str)]
                if isinstance(groups, list)
                else [],
            )
        except SignInRefused as refused:
            logger.warning("OIDC sign-in refused: %s", refused)
            return None

    def get_user(self, user_id: int) -> User | None:
        # A deactivated account's session ends (the library's get_user does not check).
        return active_user(user_id=user_id)


def _username(claims: dict[str, Any], subject: str) -> str:
    for name in (settings.OIDC_USERNAME_CLAIM, "preferred_username", "email"):
        value = claims.get(name)
        if isinstance(value, str) and value.strip():
            return value.strip()[:150]
    return subject[:150]


def id_token_claims(
    token: str, *, key: Any, nonce: str | None, check_nonce: bool = True, now: float | None = None
) -> dict[str, Any]:
    """The ID token's claims once its signature, audience (this client), issuer, expiry and
    nonce hold; SuspiciousOperation says which did not. `now` is for tests of expiry."""
    algorithm = settings.OIDC_RP_SIGN_ALGO
    if jwt.get_unverified_header(token).get("alg") != algorithm:
        raise SuspiciousOperation(f"the ID token is not signed with {algorithm}")
    try:
        claims: dict[str, Any] = jwt.decode(
            token,
            key,
            algorithms=[algorithm],
            audience=settings.OIDC_RP_CLIENT_ID,
            issuer=settings.OIDC_ISSUER,
            # Expiry is checked below, against `now`.
            options={
                "require": ["exp", "iat", "iss", "aud", "sub"],
                "verify_exp": False,
                "verify_iat": False,
            },
        )
    except jwt.InvalidAudienceError:
        raise SuspiciousOperation("the ID token was issued for another client") from None
    except jwt.InvalidIssuerError:
        raise SuspiciousOperation("the ID token was issued by another issuer") from None
    except jwt.PyJWTError as exc:
        raise SuspiciousOperation(f"the ID token is invalid: {type(exc).__name__}") from None
    moment, skew = time.time() if now is None else now, settings.OIDC_CLOCK_SKEW_SECONDS
    if float(claims["exp"]) + skew < moment:
        raise SuspiciousOperation("the ID token has expired")
    if float(claims["iat"]) - skew > moment:
        raise SuspiciousOperation("the ID token was issued in the future")
    audiences = claims["aud"] if isinstance(claims["aud"], list) else [claims["aud"]]
    if len(audiences) > 1 and claims.get("azp") != settings.OIDC_RP_CLIENT_ID:
        raise SuspiciousOperation("the ID token was issued for another client")
    if check_nonce and not (nonce and constant_time_compare(str(claims.get("nonce", "")), nonce)):
        raise SuspiciousOperation("the ID token's nonce does not match this sign-in")
    return claims


def _end_session_endpoint() -> str | None:
    try:
        endpoint = _discovery(settings.OIDC_ISSUER).get("end_session_endpoint")
    except _DISCOVERY_FAILURES:
        logger.warning("OIDC logout: the provider's discovery document could not be read")
        return None
    return str(endpoint) if endpoint else None


def provider_logout_url(request: HttpRequest) -> str | None:
    """Where to send the browser to end the provider's session too (RP-initiated logout), or
    None when the provider has no end_session_endpoint (Google) or this was no OIDC sign-in."""
    id_token = request.session.get("oidc_id_token")
    if not settings.AUTH_OIDC or not id_token:
        return None
    endpoint = _end_session_endpoint()
    if not endpoint:
        return None
    query = {
        "id_token_hint": id_token,
        "client_id": settings.OIDC_RP_CLIENT_ID,
        "post_logout_redirect_uri": request.build_absolute_uri(reverse("login")),
    }
    return f"{endpoint}?{urlencode(query)}"
