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


class DirectoryAccount(models.Model):
    """Links a user to the identity provider or directory that signs them in. The subject is the
    provider's stable id (OIDC `sub`, or Entra ID's `oid`; the LDAP entry's entryUUID or
    objectGUID), so a renamed e-mail or display name keeps the same account, and its audit
    pseudonym, and a re-used login name does not. `name:<login>`: an LDAP account from before
    ids were kept, until its next sign-in (migration 0004)."""

    class Source(models.TextChoices):
        OIDC = "oidc", "OpenID Connect"
        LDAP = "ldap", "LDAP"

    user = models.OneToOneField("auth.User", on_delete=models.CASCADE, related_name="directory_account")
    source = models.CharField(max_length=8, choices=Source.choices)
    issuer = models.CharField(max_length=255, blank=True, help_text="OIDC issuer; empty for LDAP")
    subject = models.CharField(max_length=255)
    synced_at = models.DateTimeField(help_text="last sign-in that re-read the groups")
    deprovisioned_at = models.DateTimeField(
        null=True, blank=True, help_text="set when the directory sync deactivated the account"
    )

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["source", "issuer", "subject"], name="directory_account_subject_unique"
            )
        ]

    def __str__(self) -> str:
        return f"{self.source} account of user {self.user_id}"
