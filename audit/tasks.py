from __future__ import annotations

from celery import shared_task

from audit.heads import audit_head_write
from audit.services import audit_purge_expired


@shared_task(name="audit.tasks.purge_expired_events", soft_time_limit=300, time_limit=360)
def purge_expired_events() -> int:
    """Retention: idempotent, since a second run finds nothing past the cutoff."""
    return audit_purge_expired()


@shared_task(name="audit.tasks.write_signed_head", soft_time_limit=20, time_limit=30, ignore_result=True)
def write_signed_head() -> int | None:
    """Offered every few seconds; writes a head only when the log moved on and the newest head
    is POLICYDESK_AUDIT_HEAD_SECONDS old (idempotent: an unchanged log writes nothing)."""
    head = audit_head_write()
    return head.seq if head else None
