"""Login throttling: django-axes, for logins through the web form.

After POLICYDESK_LOGIN_FAILURE_LIMIT wrong passwords for one account, or from one client address,
further attempts are refused for POLICYDESK_LOGIN_LOCKOUT_MINUTES, the right password included,
with a page that says so (429) and one audit event per lockout. Counts live in the shared Redis
cache for the cool-off only.
"""

from __future__ import annotations

import hashlib
from typing import Any

from axes.backends import AxesStandaloneBackend
from axes.signals import user_locked_out
from django.conf import settings
from django.contrib.auth.models import User
from django.core.cache import cache
from django.dispatch import receiver
from django.http import HttpRequest


class WebLoginThrottle(AxesStandaloneBackend):
    """axes' check for logins that come with a request. `authenticate()` without one (a
    management command, the test client's login) has no client address to throttle."""

    def authenticate(
        self,
        request: HttpRequest | None,
        username: str | None = None,
        password: str | None = None,
        **kwargs: Any,
    ) -> None:
        if request is None:
            return None
        return super().authenticate(request, username, password, **kwargs)


@receiver(user_locked_out)
def audit_lockout(
    sender: Any,
    request: HttpRequest | None = None,
    username: str | None = None,
    ip_address: str | None = None,
    **kwargs: Any,
) -> None:
    """One audit event per lockout (axes signals every refused attempt; a script hammering a
    locked account must not flood the audit log): the account's pseudonym when it exists, never
    the username or the address typed at the door."""
    from audit.models import AuditEvent
    from audit.services import audit_event_append, pseudonym

    if _audited_recently(f"user:{username}", f"address:{ip_address}"):
        return
    user = User.objects.filter(username=username).only("pk").first() if username else None
    audit_event_append(
        kind=AuditEvent.Kind.LOGIN_LOCKOUT,
        actor=pseudonym(user_id=user.pk) if user else "",
        detail={"known_account": user is not None},
    )


def _audited_recently(*who: str) -> bool:
    """Whether a lockout of any of these (the account, the address) was audited during the
    cool-off; marks them all as audited now. Keys are digests: no username or address in Redis."""
    keys = [f"login-lockout-audited:{hashlib.sha256(w.encode()).hexdigest()[:32]}" for w in who]
    seen = any(cache.get(key) for key in keys)
    cache.set_many(dict.fromkeys(keys, 1), timeout=settings.AXES_COOLOFF_TIME.total_seconds())
    return seen
