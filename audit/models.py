from __future__ import annotations

from django.db import models


class AuditEvent(models.Model):
    """One append-only, hash-chained record. Text fields hold redacted text only.

    The database rejects UPDATE, DELETE and TRUNCATE (migrations 0002 and 0009); the only
    deletion is the retention purge, a function owned by the table's owner that removes expired
    rows only and after which the app writes a signed `AuditCheckpoint`, so the chain stays
    verifiable.
    """

    class Kind(models.TextChoices):
        QUESTION = "question"
        FEEDBACK = "feedback"
        AUDITOR_VIEW = "auditor_view"
        AUDITOR_EXPORT = "auditor_export"
        LOGIN_LOCKOUT = "login_lockout"
        DOCUMENT_ACCESS = "document_access"
        ACCOUNT_SYNC = "account_sync"
        ACCOUNT_DISABLED = "account_disabled"
        API_KEY = "api_key"
        # A policy version's life: new version, scheduled, superseded, retired, review date.
        DOCUMENT_LIFECYCLE = "document_lifecycle"
        # The chain's signing key changed: a re-anchor signed under the new key (audit.keys).
        KEY_ROTATION = "key_rotation"

    seq = models.BigIntegerField(unique=True)
    created_at = models.DateTimeField(db_index=True)
    kind = models.CharField(max_length=20, choices=Kind.choices, db_index=True)
    actor = models.CharField(max_length=32, db_index=True, help_text="keyed HMAC of the user id")
    conversation_id = models.UUIDField(null=True, blank=True)
    message_id = models.UUIDField(null=True, blank=True, db_index=True)
    question = models.TextField(blank=True)
    answer = models.TextField(blank=True)
    language = models.CharField(max_length=8, blank=True)
    pii_counts = models.JSONField(default=dict, blank=True)
    retrieved = models.JSONField(default=list, blank=True)
    cited_documents = models.JSONField(default=list, blank=True)
    backend = models.CharField(max_length=64, blank=True, db_index=True)
    outcome = models.CharField(max_length=20, blank=True, db_index=True)
    attempts = models.JSONField(default=list, blank=True)
    verified = models.BooleanField(null=True)
    latencies = models.JSONField(default=dict, blank=True)
    prompt_tokens = models.IntegerField(null=True)
    completion_tokens = models.IntegerField(null=True)
    feedback = models.SmallIntegerField(null=True)
    detail = models.JSONField(default=dict, blank=True)
    prev_hash = models.CharField(max_length=64)
    hash = models.CharField(max_length=64, unique=True)
    # Which key of the keyring hashed this event; "" for the original single key.
    key_id = models.CharField(max_length=16, blank=True, default="")

    class Meta:
        ordering = ["-seq"]

    def __str__(self) -> str:
        return f"{self.kind} #{self.seq}"


class AuditCheckpoint(models.Model):
    """Written by the retention purge: the last purged link, signed with the audit key."""

    created_at = models.DateTimeField(auto_now_add=True)
    through_seq = models.BigIntegerField()
    through_hash = models.CharField(max_length=64)
    purged = models.IntegerField()
    signature = models.CharField(max_length=64)
    key_id = models.CharField(max_length=16, blank=True, default="")

    class Meta:
        ordering = ["-through_seq"]

    def __str__(self) -> str:
        return f"checkpoint through #{self.through_seq}"


class AuditChainAnchor(models.Model):
    """Where the keyed chain begins: events from `keyed_from_seq` on are hashed with HMAC under
    a key that lives only in the environment, so someone who controls the database but not the
    key cannot rewrite an event and recompute the chain. Events before it (written before keyed
    hashing existed) keep plain SHA-256; the signed `previous_hash` pins where they end, so they
    cannot be rewritten either without breaking the first keyed link. One row, written once."""

    created_at = models.DateTimeField(auto_now_add=True)
    keyed_from_seq = models.BigIntegerField()
    previous_hash = models.CharField(max_length=64)
    signature = models.CharField(max_length=64)

    def __str__(self) -> str:
        return f"keyed chain from #{self.keyed_from_seq}"


class AuditVerifiedHead(models.Model):
    """How far the auditors' page has verified the chain, so that each view walks only the
    events written since (`manage.py audit_verify` still walks all of it). Signed, so that
    someone with the database but not the key cannot move it past an edited event."""

    through_seq = models.BigIntegerField()
    through_hash = models.CharField(max_length=64)
    verified_at = models.DateTimeField()
    key_id = models.CharField(max_length=16, blank=True, default="")
    signature = models.CharField(max_length=64)

    def __str__(self) -> str:
        return f"verified through #{self.through_seq}"
