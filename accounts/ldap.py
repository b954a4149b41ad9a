"""LDAP and Active Directory sign-in: django-auth-ldap binds as the user (after finding their DN
with the service account) and reads their groups, nested ones included; PolicyDesk's group map
then decides their roles and document groups (`accounts.services.directory_user_sync`).

Deprovisioning (`directory_accounts_deprovision`, a periodic task) looks each LDAP account up
with the same filter as sign-in, so a user deleted or disabled in the directory is deactivated
here even if they never sign in again.
"""

from __future__ import annotations

import logging
from typing import Any

import ldap
from django.conf import settings
from django.contrib.auth.models import User
from django.dispatch import receiver
from django_auth_ldap.backend import LDAPBackend, ldap_error
from ldap.filter import escape_filter_chars

from accounts.models import DirectoryAccount
from accounts.selectors import active_user
from accounts.services import SignInRefused, directory_user_deprovision, directory_user_sync

logger = logging.getLogger(__name__)


class DirectoryLDAPBackend(LDAPBackend):
    def authenticate(self, request: Any, username: str | None = None, password: str | None = None,
                     **kwargs: Any) -> User | None:  # fmt: skip
        if not settings.AUTH_LDAP or username is None or password is None:
            return None  # also: the OIDC callback's authenticate() has no password to try here
        return super().authenticate(request, username=username, password=password, **kwargs)

    def get_or_build_user(self, username: str, ldap_user: Any) -> tuple[User, bool]:
        account = DirectoryAccount.objects.filter(
            source=DirectoryAccount.Source.LDAP, subject=username.lower()
        )
        found = account.select_related("user").first()
        if found is not None:
            return found.user, False
        if User.objects.filter(username__iexact=username).exists():
            # A local account (break-glass admin, say) with the same name is never taken over.
            raise ldap_user.AuthenticationFailed("a local account has this username")
        return User(username=username.lower()), True

    def authenticate_ldap_user(self, ldap_user: Any, password: str) -> User | None:
        user = super().authenticate_ldap_user(ldap_user, password)
        if user is None:
            return None
        try:
            return directory_user_sync(
                user=user,
                source=DirectoryAccount.Source.LDAP,
                subject=user.username.lower(),
                directory_groups=ldap_user.group_names,
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


def directory_accounts_deprovision() -> int:
    """Deactivate the LDAP accounts the directory no longer has or has disabled; returns how
    many. Any LDAP error stops the run before anything changes: an unreachable directory must
    not look like one that lost every user. Does nothing while LDAP sign-in is off."""
    if not settings.AUTH_LDAP:
        return 0
    accounts = list(
        DirectoryAccount.objects.filter(
            source=DirectoryAccount.Source.LDAP, user__is_active=True
        ).select_related("user")
    )
    if not accounts:
        return 0
    try:
        connection = _service_connection()
        try:
            gone = [account for account in accounts if not _in_directory(connection, account.subject)]
        finally:
            connection.unbind_s()
    except ldap.LDAPError as exc:
        raise DirectoryUnavailable(f"the LDAP directory could not be read: {type(exc).__name__}") from None
    for account in gone:
        directory_user_deprovision(account=account)
    return len(gone)


def _service_connection() -> Any:
    connection = ldap.initialize(settings.AUTH_LDAP_SERVER_URI)
    for option, value in settings.AUTH_LDAP_CONNECTION_OPTIONS.items():
        connection.set_option(option, value)
    if settings.AUTH_LDAP_START_TLS:
        connection.start_tls_s()
    connection.simple_bind_s(settings.AUTH_LDAP_BIND_DN, settings.AUTH_LDAP_BIND_PASSWORD)
    return connection


def _in_directory(connection: Any, username: str) -> bool:
    query = settings.LDAP_USER_SEARCH_FILTER % {"user": escape_filter_chars(username)}
    found = connection.search_s(settings.LDAP_USER_SEARCH_BASE, ldap.SCOPE_SUBTREE, query, ["1.1"])
    return any(dn for dn, _ in found)
