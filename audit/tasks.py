from __future__ import annotations

from celery import shared_task

from audit.services import audit_purge_expired


@shared_task(name="audit.tasks.purge_expired_events", soft_time_limit=300, time_limit=360)
def purge_expired_events() -> int:
    """Retention: idempotent, since a second run finds nothing past the cutoff."""
    return audit_purge_expired()
