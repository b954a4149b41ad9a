from __future__ import annotations

from celery import shared_task
from django.conf import settings
from django.core.cache import cache
from django.core.management import call_command

from accounts.ldap import directory_accounts_deprovision


@shared_task(soft_time_limit=120, time_limit=150)
def clear_expired_sessions() -> None:
    """Drop expired login sessions (idempotent: a second run finds nothing)."""
    call_command("clearsessions")


@shared_task(soft_time_limit=240, time_limit=300)
def deprovision_directory_accounts(*, force: bool = False) -> int:
    """Deactivate LDAP accounts deleted or disabled in the directory (idempotent: an account
    already deactivated is not looked up again). Beat offers it every minute; it runs once per
    POLICYDESK_LDAP_DEPROVISION_MINUTES, in one worker at a time (the cache key is taken
    atomically). A no-op while LDAP sign-in is off."""
    if not settings.AUTH_LDAP:
        return 0
    period = settings.LDAP_DEPROVISION_MINUTES * 60
    if not cache.add("accounts:ldap-deprovision:ran", 1, timeout=period) and not force:
        return 0
    return directory_accounts_deprovision()
