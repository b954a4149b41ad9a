"""Reads for the API: who a key acts as (checked from the database on every request, so a
revoked key, a deactivated user or a role switched off stops at once), and the key lists."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from django.contrib.auth.models import User
from django.db import connection
from django.db.models import QuerySet
from django.utils import timezone

from accounts.roles import ASK_QUESTIONS, ROLE_PERMISSIONS, Role
from api.models import ApiKey, RoleApiAccess
from api.services import key_digest
from rag.models import Document

# Roles whose members may ask at all; only theirs can turn the API on.
ASKING_ROLES = frozenset(
    role.value for role, permissions in ROLE_PERMISSIONS.items() if ASK_QUESTIONS in permissions
)


class KeyVerdict(StrEnum):
    OK = "ok"
    INVALID = "invalid"  # unknown, revoked, or its user deactivated: nothing more is said
    EXPIRED = "expired"
    NOT_ALLOWED = "not_allowed"  # the user may not ask questions
    API_OFF = "api_off"  # an administrator turned the API off for the user's role


@dataclass(frozen=True)
class KeyCheck:
    verdict: KeyVerdict
    key: ApiKey | None = None


# Whether a user may ask (superuser, or the permission directly or through a group: what
# Django's ModelBackend grants) and whether an asking role of theirs has the API on (no asking
# role, as a superuser without one: no switch applies). Plain SQL: the same rule through the
# ORM cost ~15 ms of query building per request on a busy machine, 3 queries more through
# has_perm(); this is one round trip.
ACCESS_SQL = """
SELECT
  u.is_superuser
  OR EXISTS (
    SELECT 1 FROM auth_user_user_permissions up
    JOIN auth_permission p ON p.id = up.permission_id
    JOIN django_content_type ct ON ct.id = p.content_type_id
    WHERE up.user_id = u.id AND ct.app_label = %(app_label)s AND p.codename = %(codename)s
  )
  OR EXISTS (
    SELECT 1 FROM auth_user_groups ug
    JOIN auth_group_permissions gp ON gp.group_id = ug.group_id
    JOIN auth_permission p ON p.id = gp.permission_id
    JOIN django_content_type ct ON ct.id = p.content_type_id
    WHERE ug.user_id = u.id AND ct.app_label = %(app_label)s AND p.codename = %(codename)s
  ) AS may_ask,
  NOT EXISTS (
    SELECT 1 FROM auth_user_groups ug JOIN auth_group g ON g.id = ug.group_id
    WHERE ug.user_id = u.id AND g.name = ANY(%(roles)s)
  )
  OR EXISTS (
    SELECT 1 FROM auth_user_groups ug JOIN auth_group g ON g.id = ug.group_id
    WHERE ug.user_id = u.id AND g.name = ANY(%(roles)s)
      AND NOT EXISTS (SELECT 1 FROM api_roleapiaccess r WHERE r.role = g.name AND NOT r.enabled)
  ) AS api_on
FROM auth_user u
WHERE u.id = %(user_id)s AND u.is_active
"""


@dataclass(frozen=True)
class Access:
    may_ask: bool = False
    api_on: bool = False


def user_access(*, user_id: int) -> Access:
    """From the database on every call: a role removed or switched off counts at once."""
    app_label, codename = ASK_QUESTIONS.split(".")
    params: dict[str, Any] = {
        "app_label": app_label,
        "codename": codename,
        "roles": sorted(ASKING_ROLES),
        "user_id": user_id,
    }
    with connection.cursor() as cursor:
        cursor.execute(ACCESS_SQL, params)
        row = cursor.fetchone()
    return Access(may_ask=bool(row[0]), api_on=bool(row[1])) if row else Access()


def api_key_check(*, secret: str) -> KeyCheck:
    """The key's verdict and, when it may be used, the key with its user (two queries)."""
    key = (
        ApiKey.objects.select_related("user")
        .filter(digest=key_digest(secret), revoked_at__isnull=True, user__is_active=True)
        .first()
    )
    if key is None:
        return KeyCheck(KeyVerdict.INVALID)
    if key.expires_at is not None and key.expires_at <= timezone.now():
        return KeyCheck(KeyVerdict.EXPIRED)
    access = user_access(user_id=key.user_id)
    if not access.may_ask:
        return KeyCheck(KeyVerdict.NOT_ALLOWED)
    if not access.api_on:
        return KeyCheck(KeyVerdict.API_OFF)
    return KeyCheck(KeyVerdict.OK, key)


def user_api_access(*, user: User) -> bool:
    """Whether an administrator left the API on for one of the user's asking roles."""
    return user_access(user_id=user.pk).api_on


def api_keys_of(*, user: User) -> QuerySet[ApiKey]:
    return ApiKey.objects.filter(user=user).order_by("-created_at")


def api_keys_active() -> QuerySet[ApiKey]:
    """Every key that still works or would (not revoked), for administrators."""
    return ApiKey.objects.filter(revoked_at__isnull=True).select_related("user").order_by("-created_at")


def api_key_by_prefix(*, prefix: str) -> ApiKey | None:
    return ApiKey.objects.filter(prefix=prefix.strip()).first()


def document_versions(*, document_ids: set[int]) -> dict[int, int]:
    """The current version of each document an answer cites (ids the asker's retrieval gave)."""
    return dict(Document.objects.filter(id__in=document_ids).values_list("id", "version"))


def role_api_access() -> dict[Role, bool]:
    """Each asking role and whether its members may use the API."""
    off = set(RoleApiAccess.objects.filter(enabled=False).values_list("role", flat=True))
    return {Role(role): role not in off for role in sorted(ASKING_ROLES)}
