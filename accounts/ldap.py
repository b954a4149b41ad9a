"""LDAP and Active Directory sign-in: django-auth-ldap binds as the user (after finding their DN
with the service account) and reads their groups, nested ones included; PolicyDesk's group map
then decides their roles and document groups (`accounts.services.directory_user_sync`).

Accounts are keyed by the entry's immutable id, `entryUUID` (OpenLDAP) or `objectGUID` (Active
Directory; POLICYDESK_LDAP_ID_ATTRIBUTE, chosen from the group type), not the login name: a login name freed and given to someone else later signs in as
a new account, never as the old one with its conversations and pseudonym. Accounts linked by
login name before (subject `name:<login>`, migration 0004) take their id at their next sign-in
or deprovisioning run.

Deprovisioning (`directory_accounts_deprovision`, a periodic task) looks each LDAP account up by
its id with the sign-in filter, so a user deleted or disabled in the directory is deactivated
here even if they never sign in again, and re-reads the groups of the others, so a group
removed in the directory takes its documents within one run.
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass
from typing import Any

import ldap
from django.conf import settings
from django.contrib.auth.models import User
from django.dispatch import receiver
from django_auth_ldap.backend import LDAPBackend, _LDAPUser, ldap_error
from django_auth_ldap.config import LDAPSearch
from ldap.filter import escape_filter_chars

from accounts.models import DirectoryAccount
from accounts.selectors import active_user
from accounts.services import (
    SignInRefused,
    directory_user_deprovision,
    directory_user_sync,
    directory_username_free,
)

logger = logging.getLogger(__name__)

LEGACY_PREFIX = "name:"  # a subject from before ids: the login name


def directory_id(attrs: Any) -> str | None:
    """The entry's POLICYDESK_LDAP_ID_ATTRIBUTE (entryUUID, or objectGUID for Active Directory)
    as a lower-case UUID string, or None."""
    values = (attrs or {}).get(settings.LDAP_ID_ATTRIBUTE)
    return _id_text(values[0]) if values else None


def _id_text(value: str | bytes) -> str:
    # objectGUID is 16 raw bytes (little-endian fields, as AD shows them); django-auth-ldap
    # decodes any value that happens to be valid UTF-8, so undo that first.
    raw = value.encode("utf-8", "surrogateescape") if isinstance(value, str) else value
    if len(raw) == 16:
        return str(uuid.UUID(bytes_le=raw))
    return raw.decode("utf-8", "replace").strip().strip("{}").lower()


def group_keys(ldap_user: Any) -> list[str]:
    """What the group map may match for each of the user's groups: its DN, its entryUUID or
    objectGUID (when the group search returns it), and its name (cn)."""
    infos = ldap_user._get_groups()._get_group_infos()  # [(dn, attrs)], read with the group search
    keys = [dn for dn, _attrs in infos]
    keys += [gid for _dn, attrs in infos if (gid := directory_id(attrs))]
    return keys + sorted(ldap_user.group_names)


class DirectoryLDAPBackend(LDAPBackend):
    def authenticate(self, request: Any, username: str | None = None, password: str | None = None,
                     **kwargs: Any) -> User | None:  # fmt: skip
        if not settings.AUTH_LDAP or username is None or password is None:
            return None  # also: the OIDC callback's authenticate() has no password to try here
        return super().authenticate(request, username=username, password=password, **kwargs)

    def get_or_build_user(self, username: str, ldap_user: Any) -> tuple[User, bool]:
        entry_id = directory_id(ldap_user.attrs)
        if entry_id is None:
            raise ldap_user.AuthenticationFailed(f"the directory entry has no {settings.LDAP_ID_ATTRIBUTE}")
        accounts = DirectoryAccount.objects.filter(source=DirectoryAccount.Source.LDAP).select_related("user")
        found = accounts.filter(subject=entry_id).first()
        if found is not None:
            return found.user, False
        legacy = accounts.filter(subject=LEGACY_PREFIX + username.lower()).first()
        if legacy is not None:
            # Linked by login name before ids were kept: this entry's id becomes the key.
            legacy.subject = entry_id
            legacy.save(update_fields=["subject"])
            return legacy.user, False
        taken = User.objects.filter(username__iexact=username).first()
        if taken is None:
            return User(username=username.lower()), True
        if not DirectoryAccount.objects.filter(user=taken).exists():
            # A local account (break-glass admin, say) with the same name is never taken over.
            raise ldap_user.AuthenticationFailed("a local account has this username")
        # Another directory identity has the name (an OIDC user, or an LDAP login name re-used
        # after its first owner left): a new account under a free name, never theirs.
        return User(username=directory_username_free(username.lower())), True

    def authenticate_ldap_user(self, ldap_user: Any, password: str) -> User | None:
        user = super().authenticate_ldap_user(ldap_user, password)
        if user is None:
            return None
        try:
            return directory_user_sync(
                user=user,
                source=DirectoryAccount.Source.LDAP,
                subject=directory_id(ldap_user.attrs) or "",
                directory_groups=group_keys(ldap_user),
            )
        except SignInRefused as refused:
            logger.warning("LDAP sign-in refused: %s", refused)
            return None

    def get_user(self, user_id: int) -> User | None:
        # A deactivated (deprovisioned) account's sessions end.
        return active_user(user_id=user_id)

    def get_group_permissions(self, user: Any, obj: Any = None) -> set[str]:
        # None from LDAP groups (AUTH_LDAP_FIND_GROUP_PERMS): the roles' permissions come from
        # Django's group rules (ModelBackend, or accounts.backends.RolePermissionsBackend).
        return set()


@receiver(ldap_error)
def _log_ldap_error(
    sender: Any, context: str, exception: Exception, request: Any = None, **kwargs: Any
) -> None:
    # django-auth-ldap's own line names the user; this one says only what failed.
    logger.warning("LDAP %s failed: %s", context, type(exception).__name__)
    if request is not None and isinstance(exception, (ldap.SERVER_DOWN, ldap.TIMEOUT, ldap.CONNECT_ERROR)):
        request.ldap_unavailable = True  # the sign-in page says so, not "wrong password"


class DirectoryUnavailable(Exception):
    pass


@dataclass
class _Entry:
    account: DirectoryAccount
    entry_id: str
    groups: list[str]


def directory_accounts_deprovision() -> int:
    """Deactivate the LDAP accounts the directory no longer has or has disabled, and re-sync the
    groups of the others; returns how many were deactivated. Everything is read before anything
    changes, and any LDAP error stops the run: an unreachable directory (or one that fails half
    way) must not look like one that lost every user or every group. Does nothing while LDAP
    sign-in is off."""
    if not settings.AUTH_LDAP:
        return 0
    accounts = list(
        DirectoryAccount.objects.filter(
            source=DirectoryAccount.Source.LDAP, user__is_active=True
        ).select_related("user")
    )
    if not accounts:
        return 0
    found: list[_Entry] = []
    try:
        connection = _service_connection()
        try:
            backend = DirectoryLDAPBackend()
            for account in accounts:
                entry = _entry_read(connection, backend, account)
                if entry is not None:
                    found.append(entry)
        finally:
            connection.unbind_s()
    except ldap.LDAPError as exc:
        raise DirectoryUnavailable(f"the LDAP directory could not be read: {type(exc).__name__}") from None
    present = {entry.account.pk for entry in found}
    gone = [account for account in accounts if account.pk not in present]
    for account in gone:
        directory_user_deprovision(account=account)
    for entry in found:
        _entry_sync(entry)
    return len(gone)


def _entry_read(connection: Any, backend: DirectoryLDAPBackend, account: DirectoryAccount) -> _Entry | None:
    """The account's directory entry (by id; a legacy account by login name) and its groups;
    None when the sign-in filter no longer finds it. LDAP errors propagate."""
    if account.subject.startswith(LEGACY_PREFIX):
        login = account.subject.removeprefix(LEGACY_PREFIX)
        query = settings.LDAP_USER_SEARCH_FILTER % {"user": escape_filter_chars(login)}
    else:
        login = account.user.username
        query = f"(&{settings.LDAP_USER_SEARCH_FILTER % {'user': '*'}}{_id_filter(account.subject)})"
    # LDAPSearch decodes the results as django-auth-ldap's group types expect; its own filter
    # formatting is skipped (the query is complete and escaped here).
    attributes = ["*", settings.LDAP_ID_ATTRIBUTE]  # operational in OpenLDAP: asked for by name
    search = LDAPSearch(settings.LDAP_USER_SEARCH_BASE, ldap.SCOPE_SUBTREE, "%(q)s", attributes)
    results = [(dn, attrs) for dn, attrs in search.execute(connection, {"q": query}, escape=False) if dn]
    if not results:
        return None
    if len(results) > 1:
        # A filter that matches several entries for one account is a configuration error, not
        # a user who left: stop the run rather than deactivate or merge anyone.
        raise DirectoryUnavailable(f"the user filter matches {len(results)} entries for one account")
    dn, attrs = results[0]
    entry_id = directory_id(attrs)
    if entry_id is None:
        return None
    ldap_user = _LDAPUser(backend, username=login)
    ldap_user._user_dn, ldap_user._user_attrs = dn, attrs
    ldap_user._connection, ldap_user._connection_bound = connection, True
    return _Entry(account=account, entry_id=entry_id, groups=group_keys(ldap_user))


def _id_filter(entry_id: str) -> str:
    if settings.LDAP_ID_ATTRIBUTE == "objectGUID":  # matched as its 16 raw bytes, escaped
        return "(objectGUID=" + "".join(f"\\{byte:02x}" for byte in uuid.UUID(entry_id).bytes_le) + ")"
    return f"(entryUUID={escape_filter_chars(entry_id)})"


def _entry_sync(entry: _Entry) -> None:
    account = entry.account
    if account.subject != entry.entry_id:
        account.subject = entry.entry_id  # a legacy account takes its id
        account.save(update_fields=["subject"])
    try:
        directory_user_sync(
            user=account.user,
            source=DirectoryAccount.Source.LDAP,
            subject=entry.entry_id,
            directory_groups=entry.groups,
        )
    except SignInRefused as refused:
        # No role left: its groups are stripped already (and the next sign-in is refused).
        logger.warning("LDAP deprovisioning: %s", refused)


def _service_connection() -> Any:
    connection = ldap.initialize(settings.AUTH_LDAP_SERVER_URI)
    for option, value in settings.AUTH_LDAP_CONNECTION_OPTIONS.items():
        connection.set_option(option, value)
    if settings.AUTH_LDAP_START_TLS:
        connection.start_tls_s()
    connection.simple_bind_s(settings.AUTH_LDAP_BIND_DN, settings.AUTH_LDAP_BIND_PASSWORD)
    return connection
