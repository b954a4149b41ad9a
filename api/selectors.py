"""Reads for the API: who a key acts as (checked from the database on every request, so a
revoked key, a deactivated user or a role switched off stops at once), and the key lists."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from django.contrib.auth.models import Group, User
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


def api_key_check(*, secret: str) -> KeyCheck:
    """The key's verdict and, when it may be used, the key with its user."""
    key = (
        ApiKey.objects.select_related("user")
        .filter(digest=key_digest(secret), revoked_at__isnull=True, user__is_active=True)
        .first()
    )
    if key is None:
        return KeyCheck(KeyVerdict.INVALID)
    if key.expires_at is not None and key.expires_at <= timezone.now():
        return KeyCheck(KeyVerdict.EXPIRED)
    if not key.user.has_perm(ASK_QUESTIONS):
        return KeyCheck(KeyVerdict.NOT_ALLOWED)
    if not user_api_access(user=key.user):
        return KeyCheck(KeyVerdict.API_OFF)
    return KeyCheck(KeyVerdict.OK, key)


def user_api_access(*, user: User) -> bool:
    """Whether an administrator left the API on for one of the user's asking roles. A user who
    may ask without an asking role (a superuser) is governed by no role switch."""
    roles = set(Group.objects.filter(user=user, name__in=ASKING_ROLES).values_list("name", flat=True))
    if not roles:
        return True
    off = set(RoleApiAccess.objects.filter(role__in=roles, enabled=False).values_list("role", flat=True))
    return bool(roles - off)


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
