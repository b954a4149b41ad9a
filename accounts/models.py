from __future__ import annotations

from django.db import models


class NoRows(models.Manager["RolePermission"]):
    """A manager for a model without a table: every query is empty and never reaches the database
    (so `manage.py dumpdata` backs up the rest instead of failing on it)."""

    def get_queryset(self) -> models.QuerySet[RolePermission]:
        return super().get_queryset().none()


class RolePermission(models.Model):
    """Carrier for PolicyDesk's role permissions; it has no table of its own.

    Django keeps permissions on models, and these permissions guard features
    (asking, managing documents, auditing) rather than rows of one model.
    """

    objects = NoRows()

    class Meta:
        managed = False
        default_permissions = ()
        permissions = [
            ("ask_questions", "Can ask policy questions"),
            ("manage_documents", "Can upload, re-index and retire policy documents"),
            ("view_audit", "Can read and export the audit log"),
        ]

    def __str__(self) -> str:
        return "PolicyDesk role permissions"
