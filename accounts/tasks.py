from __future__ import annotations

from celery import shared_task
from django.core.management import call_command

from accounts.ldap import directory_accounts_deprovision


@shared_task(soft_time_limit=120, time_limit=150)
def clear_expired_sessions() -> None:
    """Drop expired login sessions (idempotent: a second run finds nothing)."""
    call_command("clearsessions")


@shared_task(soft_time_limit=240, time_limit=300)
def deprovision_directory_accounts() -> int:
    """Deactivate LDAP accounts deleted or disabled in the directory (idempotent: an account
    already deactivated is not looked up again). A no-op while LDAP sign-in is off."""
    return directory_accounts_deprovision()
