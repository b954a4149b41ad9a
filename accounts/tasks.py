from __future__ import annotations

from celery import shared_task
from django.core.management import call_command


@shared_task(soft_time_limit=120, time_limit=150)
def clear_expired_sessions() -> None:
    """Drop expired login sessions (idempotent: a second run finds nothing)."""
    call_command("clearsessions")
