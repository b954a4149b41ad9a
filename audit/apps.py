from __future__ import annotations

import logging
from typing import Any

from django.apps import AppConfig
from django.db.models.signals import post_migrate

log = logging.getLogger(__name__)


def _sync_retention_window(using: str = "default", **_: Any) -> None:
    """`migrate` runs as the database owner: it copies POLICYDESK_AUDIT_RETENTION_DAYS into the
    table the purge function reads, which no other role can change (migration 0009)."""
    from django.conf import settings
    from django.db import DatabaseError, connections, transaction

    connection = connections[using]
    if "audit_retention" not in connection.introspection.table_names():
        return
    try:
        with transaction.atomic(using=using), connection.cursor() as cursor:
            cursor.execute(
                "INSERT INTO audit_retention (id, days) VALUES (1, %s) "
                "ON CONFLICT (id) DO UPDATE SET days = EXCLUDED.days",
                [settings.AUDIT_RETENTION_DAYS],
            )
    except DatabaseError:
        log.warning("audit retention window not updated: migrate is not running as the table's owner")


class AuditConfig(AppConfig):
    name = "audit"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        post_migrate.connect(_sync_retention_window, sender=self)
