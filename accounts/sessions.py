"""How long a signed-in session holds, whatever the sign-in method.

- At most POLICYDESK_SESSION_HOURS (a working day, 10 h) after signing in, and no longer than
  POLICYDESK_SESSION_IDLE_MINUTES (120) after the last page load or form post (0: no idle limit).
- An OIDC session whose re-check at the provider is due (POLICYDESK_OIDC_SESSION_REFRESH_MINUTES)
  counts as signed out for anything but a page load, which does the re-check: a form post, an
  open socket's permission re-check. A user disabled at the provider cannot keep a scripted
  socket or POSTs alive with the old cookie.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from typing import Any

from django.conf import settings
from django.contrib import auth
from django.contrib.auth.signals import user_logged_in
from django.dispatch import receiver
from django.http import HttpRequest, HttpResponse

SIGNED_IN_AT = "policydesk_signed_in_at"
SEEN_AT = "policydesk_seen_at"
# Written by mozilla-django-oidc at each OIDC sign-in and silent re-check.
OIDC_RECHECK_DUE_AT = "oidc_id_token_expiration"
SEEN_WRITE_SECONDS = 60  # a page load writes the session at most once a minute for "seen"


@receiver(user_logged_in)
def _stamp_sign_in(sender: Any, request: HttpRequest | None = None, **kwargs: Any) -> None:
    session = getattr(request, "session", None)
    if session is not None:
        now = time.time()
        session[SIGNED_IN_AT] = now
        session[SEEN_AT] = now


def session_too_old(session: Mapping[str, Any], *, now: float, idle: bool = True) -> bool:
    """Past its working day (or, with `idle`, idle too long). A session from before these
    stamps existed counts from the first request that sees it."""
    signed_in_at = session.get(SIGNED_IN_AT)
    if isinstance(signed_in_at, (int, float)) and now - signed_in_at > settings.SESSION_HOURS * 3600:
        return True
    seen_at = session.get(SEEN_AT)
    idle_limit = settings.SESSION_IDLE_MINUTES * 60
    return bool(idle and idle_limit and isinstance(seen_at, (int, float)) and now - seen_at > idle_limit)


def oidc_recheck_due(session: Mapping[str, Any], *, now: float) -> bool:
    """An OIDC session whose re-check at the provider has not happened in time."""
    if not settings.AUTH_OIDC:
        return False
    due_at = session.get(OIDC_RECHECK_DUE_AT)
    return isinstance(due_at, (int, float)) and due_at < now


def session_holds(session: Mapping[str, Any], *, now: float | None = None) -> bool:
    """For an open socket's permission re-check: the working day, and a due OIDC re-check.
    Not the idle limit: questions over an open socket are activity no page load records."""
    now = time.time() if now is None else now
    return not session_too_old(session, now=now, idle=False) and not oidc_recheck_due(session, now=now)


class SessionLifetimeMiddleware:
    """Signs out a session past its working day or idle limit, and treats a non-GET request of
    an OIDC session whose re-check is due as signed out (the session is kept: the next page load
    goes to the provider, and a form post after it works again)."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        user = getattr(request, "user", None)
        if user is not None and user.is_authenticated:
            self._check(request)
        return self.get_response(request)

    def _check(self, request: HttpRequest) -> None:
        session, now = request.session, time.time()
        if session_too_old(session, now=now):
            auth.logout(request)
            return
        if SIGNED_IN_AT not in session:
            session[SIGNED_IN_AT] = now
        seen_at = session.get(SEEN_AT)
        if not isinstance(seen_at, (int, float)) or now - seen_at >= SEEN_WRITE_SECONDS:
            session[SEEN_AT] = now
        if request.method not in ("GET", "HEAD", "OPTIONS") and oidc_recheck_due(session, now=now):
            from django.contrib.auth.models import AnonymousUser

            if request.path != _logout_path():
                request.user = AnonymousUser()


def _logout_path() -> str:
    from django.urls import reverse

    return reverse("logout")
