from __future__ import annotations

import logging
import secrets
from collections.abc import Iterable

from django.conf import settings
from django.contrib.auth.models import Group, Permission, User
from django.contrib.auth.password_validation import validate_password
from django.db import transaction
from django.utils import timezone

from accounts.models import DirectoryAccount
from accounts.roles import ROLE_NAMES, ROLE_PERMISSIONS, Role
from audit.models import AuditEvent
from audit.services import audit_event_append, pseudonym

logger = logging.getLogger(__name__)


@transaction.atomic
def user_create(*, username: str, role: Role, password: str, validate: bool = True) -> User:
    """Create a user in exactly one role group. Raises ValidationError for a weak password."""
    user = User(username=username)
    if validate:
        validate_password(password, user=user)
    user.set_password(password)
    user.full_clean(exclude=["password"])
    user.save()
    user_set_role(user=user, role=role)
    return user


def user_set_role(*, user: User, role: Role) -> None:
    role_groups = Group.objects.filter(name__in=ROLE_NAMES)
    user.groups.remove(*role_groups)
    user.groups.add(Group.objects.get(name=role.value))


def user_roles(*, user: User) -> set[Role]:
    names = set(user.groups.values_list("name", flat=True))
    return {role for role in Role if role.value in names}


def role_groups_ensure(*, using: str = "default") -> None:
    """Create the role groups with exactly their permissions (idempotent)."""
    for role, permissions in ROLE_PERMISSIONS.items():
        group, _ = Group.objects.using(using).get_or_create(name=role.value)
        codenames = [name.split(".", 1)[1] for name in permissions]
        group.permissions.set(
            Permission.objects.using(using).filter(content_type__app_label="accounts", codename__in=codenames)
        )


# --- directory sign-in (OIDC and LDAP) -------------------------------------------------------


class SignInRefused(Exception):
    """Why a user the directory vouched for still may not sign in. The message names no user."""


def directory_user_sign_in(
    *, source: str, issuer: str = "", subject: str, username: str, directory_groups: Iterable[str]
) -> User:
    """The user that this directory subject signs in as, created on first sign-in (just in
    time) with a username not already taken, then synced. Matched by `subject` only: a local
    account or another provider's user with the same name or e-mail is never taken over."""
    directory_groups = list(directory_groups)
    found = (
        DirectoryAccount.objects.filter(source=source, issuer=issuer, subject=subject)
        .select_related("user")
        .first()
    )
    if found is not None:
        return directory_user_sync(user=found.user, source=source, issuer=issuer, subject=subject,
                                   directory_groups=directory_groups)  # fmt: skip
    if not settings.GROUP_MAP.roles_for(directory_groups):
        raise _no_role(directory_groups)
    with transaction.atomic():
        user = User(username=directory_username_free(username))
        user.set_unusable_password()
        user.save()
        return directory_user_sync(user=user, source=source, issuer=issuer, subject=subject,
                                   directory_groups=directory_groups)  # fmt: skip


def _no_role(directory_groups: list[str]) -> SignInRefused:
    # The count tells an administrator setting up the provider whether groups arrive at all
    # (an unconfigured groups claim sends none); the names stay out of the log.
    return SignInRefused(
        f"none of the {len(directory_groups)} directory groups sent maps to a role, and there is no default_role"
    )


def directory_username_free(wanted: str) -> str:
    """`wanted`, or `wanted-<6 hex>` when an account (local, or another directory identity)
    already has that name: a name is never a reason to refuse or to merge two people."""
    wanted = wanted.strip()[:140] or "user"
    if not User.objects.filter(username__iexact=wanted).exists():
        return wanted
    while True:
        candidate = f"{wanted}-{secrets.token_hex(3)}"
        if not User.objects.filter(username__iexact=candidate).exists():
            return candidate


def directory_user_sync(
    *,
    user: User,
    source: str,
    issuer: str = "",
    subject: str,
    directory_groups: Iterable[str],
) -> User:
    """Re-read at every sign-in: the user's roles and document groups become exactly what the
    group map gives for `directory_groups`, so a group removed in the directory takes its role
    and its documents away now (open sockets at their next permission re-check). Raises
    SignInRefused for an account deactivated here, or, once its groups are stripped, for one
    the map gives no role."""
    directory_groups = list(directory_groups)
    with transaction.atomic():
        roles = _groups_sync(user=user, source=source, issuer=issuer, subject=subject,
                             directory_groups=directory_groups)  # fmt: skip
    if not roles:
        raise _no_role(directory_groups)
    return user


def _groups_sync(
    *, user: User, source: str, issuer: str, subject: str, directory_groups: list[str]
) -> set[str]:
    group_map = settings.GROUP_MAP
    roles = group_map.roles_for(directory_groups)
    dropped = group_map.mapped_roles(directory_groups) - roles
    if dropped:
        # Separation of duties (accounts/directory.py): documented precedence, logged without names.
        logger.warning(
            "the auditor role does not combine with another: %s dropped for an auditor's account",
            ", ".join(sorted(dropped)),
        )
    # A first sign-in is the one that links the account (django-auth-ldap has saved a new LDAP
    # user just before; an OIDC one was made in directory_user_sign_in).
    account, created = DirectoryAccount.objects.select_for_update().get_or_create(
        user=user,
        defaults={"source": source, "issuer": issuer, "subject": subject, "synced_at": timezone.now()},
    )
    if (account.source, account.issuer, account.subject) != (source, issuer, subject):
        raise SignInRefused("the account is linked to another directory identity")
    reactivated = _reactivated(user=user, account=account) if roles else False
    before = sorted(user.groups.values_list("name", flat=True))
    wanted = sorted(roles | group_map.document_groups_for(directory_groups)) if roles else []
    if before != wanted:
        user.groups.set([Group.objects.get_or_create(name=name)[0] for name in wanted])
    account.synced_at = timezone.now()
    account.save(update_fields=["synced_at", "deprovisioned_at"])
    if created or reactivated or before != wanted:
        audit_event_append(
            kind=AuditEvent.Kind.ACCOUNT_SYNC,
            actor=pseudonym(user_id=user.pk),
            detail={
                "source": source,
                "created": created,
                "reactivated": reactivated,
                "from": before,
                "to": wanted,
            },
        )
    return roles


def _reactivated(*, user: User, account: DirectoryAccount) -> bool:
    """An account the directory sync deactivated comes back when the directory signs it in
    again; one an administrator deactivated here stays off."""
    if user.is_active:
        return False
    if account.deprovisioned_at is None:
        raise SignInRefused("the account is deactivated in PolicyDesk")
    user.is_active = True
    user.save(update_fields=["is_active"])
    account.deprovisioned_at = None
    return True


@transaction.atomic
def directory_user_deprovision(*, account: DirectoryAccount) -> None:
    """The directory no longer has this user, or has disabled them: deactivate the account (its
    sessions end, open sockets close at their next re-check). Nothing is deleted, so the audit
    trail keeps the same pseudonym."""
    user = account.user
    user.is_active = False
    user.save(update_fields=["is_active"])
    account.deprovisioned_at = timezone.now()
    account.save(update_fields=["deprovisioned_at"])
    audit_event_append(
        kind=AuditEvent.Kind.ACCOUNT_DISABLED,
        actor=pseudonym(user_id=user.pk),
        detail={"source": account.source, "reason": "not found or disabled in the directory"},
    )
