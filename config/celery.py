"""The Celery app: Redis broker, JSON only, time limits from settings, a beat schedule."""

from __future__ import annotations

import os

from celery import Celery
from celery.schedules import crontab

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

app = Celery("policydesk")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


app.conf.beat_schedule = {
    "clear-expired-sessions": {
        "task": "accounts.tasks.clear_expired_sessions",
        "schedule": crontab(hour=3, minute=17),
    },
    "recover-stuck-documents": {
        "task": "rag.tasks.recover_stuck_documents",
        # With the 60 s processing threshold: a dead worker's document is re-queued within 90 s.
        "schedule": 30.0,
        "options": {"queue": "housekeeping"},
    },
    "record-interrupted-answers": {
        "task": "chat.tasks.record_interrupted_answers",
        "schedule": crontab(minute="*"),
        "options": {"queue": "housekeeping"},
    },
    "deprovision-directory-accounts": {
        "task": "accounts.tasks.deprovision_directory_accounts",
        # Offered every minute; the task itself runs once per POLICYDESK_LDAP_DEPROVISION_MINUTES
        # (settings are not read while this module is imported) and not at all while LDAP is off.
        "schedule": 60.0,
        "options": {"queue": "housekeeping"},
    },
    "purge-expired-policy-versions": {
        "task": "rag.tasks.purge_expired_versions",
        "schedule": crontab(hour=3, minute=53),
        "options": {"queue": "housekeeping"},
    },
    "write-signed-audit-head": {
        "task": "audit.tasks.write_signed_head",
        # Offered every 10 s; the task writes once POLICYDESK_AUDIT_HEAD_SECONDS (default 60)
        # have passed since the newest head and the log has moved on (audit/heads.py).
        "schedule": 10.0,
        "options": {"queue": "housekeeping", "expires": 10},
    },
    "purge-expired-audit-events": {
        "task": "audit.tasks.purge_expired_events",
        "schedule": crontab(hour=3, minute=41),
    },
}
