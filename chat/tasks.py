from __future__ import annotations

from datetime import timedelta

from celery import shared_task
from django.conf import settings

from chat.services import pending_answers_interrupt


@shared_task(soft_time_limit=60, time_limit=90, queue="housekeeping")
def record_interrupted_answers() -> int:
    """Every question ends in one audit event: those whose answer was never recorded get an
    `interrupted` one (Celery beat, every minute)."""
    return pending_answers_interrupt(older_than=timedelta(seconds=settings.CHAT_INTERRUPTED_AFTER_SECONDS))
