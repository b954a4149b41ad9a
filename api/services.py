"""API keys: created (shown once), revoked, and the per-role switch. Each change is an audit event
that names the key by its id and prefix, never by the key."""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import timedelta

from django.contrib.auth.models import User
from django.db import IntegrityError, transaction
from django.utils import timezone

from accounts.roles import Role
from api.models import ApiKey, RoleApiAccess
from audit.models import AuditEvent
from audit.services import audit_event_append, pseudonym

KEY_PREFIX = "pd_"
PREFIX_CHARS = len(KEY_PREFIX) + 8  # what lists show: "pd_" and 48 random bits
MAX_NAME_CHARS = 100
MAX_EXPIRY_DAYS = 3650


class KeyRefused(ValueError):
    """Why a key cannot be created or changed, in words for the person who asked."""


@dataclass(frozen=True)
class NewKey:
    key: ApiKey
    secret: str  # the whole key: shown to its owner once, never stored


def key_digest(secret: str) -> str:
    """SHA-256 of the key. The key is 256 random bits, so a slow password hash adds nothing but
    time on every request."""
    return hashlib.sha256(secret.encode()).hexdigest()


def api_key_create(*, user: User, name: str, expires_days: int | None = None) -> NewKey:
    name = " ".join(name.split())
    if not name:
        raise KeyRefused("Give the key a name, so you can tell it from your other keys.")
    if len(name) > MAX_NAME_CHARS:
        raise KeyRefused(f"A key's name is at most {MAX_NAME_CHARS} characters.")
    if expires_days is not None and not 1 <= expires_days <= MAX_EXPIRY_DAYS:
        raise KeyRefused(f"A key expires after 1 to {MAX_EXPIRY_DAYS} days, or never.")
    expires_at = timezone.now() + timedelta(days=expires_days) if expires_days else None
    for attempt in range(3):
        secret = KEY_PREFIX + secrets.token_urlsafe(32)
        try:
            with transaction.atomic():
                key = ApiKey.objects.create(
                    user=user,
                    name=name,
                    prefix=secret[:PREFIX_CHARS],
                    digest=key_digest(secret),
                    expires_at=expires_at,
                )
                _audit(actor=user, key=key, action="created")
            return NewKey(key=key, secret=secret)
        except IntegrityError:  # the same 48-bit prefix twice: draw another key
            if attempt == 2:
                raise
    raise AssertionError("unreachable")


def api_key_revoke(*, key: ApiKey, by: User | None) -> ApiKey:
    """Revoked at once: the next request with it gets 401. Revoking twice changes nothing.
    `by`: who revoked it; None for `manage.py revoke_api_key` (an operator, no account)."""
    with transaction.atomic():
        key = ApiKey.objects.select_for_update().get(pk=key.pk)
        if key.revoked_at is None:
            key.revoked_at, key.revoked_by = timezone.now(), by
            key.save(update_fields=["revoked_at", "revoked_by"])
            _audit(actor=by, key=key, action="revoked")
    return key


def role_api_access_set(*, role: Role, enabled: bool, by: User) -> None:
    with transaction.atomic():
        access, _ = RoleApiAccess.objects.select_for_update().get_or_create(role=role.value)
        if access.enabled == enabled:
            return
        access.enabled = enabled
        access.save(update_fields=["enabled", "updated_at"])
        audit_event_append(
            kind=AuditEvent.Kind.API_KEY,
            actor=pseudonym(user_id=by.pk),
            detail={"action": "role_access", "role": role.value, "enabled": enabled},
        )


def api_key_used(*, key: ApiKey) -> None:
    """Remember when a key was last used, to the minute (one write a minute at most)."""
    now = timezone.now()
    if key.last_used_at is None or now - key.last_used_at >= timedelta(minutes=1):
        ApiKey.objects.filter(pk=key.pk).update(last_used_at=now)


def _audit(*, actor: User | None, key: ApiKey, action: str) -> None:
    audit_event_append(
        kind=AuditEvent.Kind.API_KEY,
        actor=pseudonym(user_id=actor.pk) if actor else "",
        detail={
            "action": action,
            "api_key_id": key.pk,
            "prefix": key.prefix,
            "owner": pseudonym(user_id=key.user_id),
            "expires_at": key.expires_at.isoformat() if key.expires_at else None,
        },
    )
