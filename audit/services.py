"""Writing, verifying and purging the audit chain.

Each event's hash covers its own fields and the previous event's hash, so changing,
removing or reordering any row breaks every later link. The hash is an HMAC under a key from
the environment: whoever controls the database but not the key cannot recompute it. Appends are serialised with a
transaction-level advisory lock so two answers finishing together cannot fork the chain.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone

from audit.models import AuditChainAnchor, AuditCheckpoint, AuditEvent

GENESIS = "0" * 64
_APPEND_LOCK = 0x5EC_A0D17  # any constant shared by every writer of the chain
HASHED_FIELDS = (
    "seq",
    "created_at",
    "kind",
    "actor",
    "conversation_id",
    "message_id",
    "question",
    "answer",
    "language",
    "pii_counts",
    "retrieved",
    "cited_documents",
    "backend",
    "outcome",
    "attempts",
    "verified",
    "latencies",
    "prompt_tokens",
    "completion_tokens",
    "feedback",
    "detail",
    "prev_hash",
)


def pseudonym(*, user_id: int) -> str:
    """Stable per user, meaningless without the audit key: auditors can follow one person's
    questions without learning who they are."""
    key = settings.AUDIT_HMAC_KEY.encode()
    return hmac.new(key, f"user|{user_id}".encode(), hashlib.sha256).hexdigest()[:32]


def _canonical(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    if hasattr(value, "hex") and not isinstance(value, str | bytes | int | float):
        return str(value)  # UUID
    return value


def _chain_key() -> bytes:
    """A key for the chain alone, derived from the audit key (environment only, never stored)."""
    return hmac.new(settings.AUDIT_HMAC_KEY.encode(), b"audit-chain", hashlib.sha256).digest()


def event_hash(event: AuditEvent, *, keyed: bool = True) -> str:
    """HMAC-SHA256 of the event's fields under the chain key; plain SHA-256 for events written
    before the keyed chain began (see AuditChainAnchor)."""
    payload = {name: _canonical(getattr(event, name)) for name in HASHED_FIELDS}
    blob = json.dumps(payload, sort_keys=True, ensure_ascii=False, separators=(",", ":"), default=str)
    if keyed:
        return hmac.new(_chain_key(), blob.encode(), hashlib.sha256).hexdigest()
    return hashlib.sha256(blob.encode()).hexdigest()


def anchor_signature(*, keyed_from_seq: int, previous_hash: str) -> str:
    return hmac.new(
        _chain_key(), f"anchor|{keyed_from_seq}|{previous_hash}".encode(), hashlib.sha256
    ).hexdigest()


def _keyed_from(*, seq: int, prev_hash: str, first_event: bool) -> int:
    """The first keyed event's seq. A chain that starts now (an empty log, e.g. after a flush)
    anchors itself here; a removed anchor in front of existing events is left missing, for
    verification to report."""
    anchor = AuditChainAnchor.objects.first()
    if anchor is not None:
        return anchor.keyed_from_seq
    if first_event:
        AuditChainAnchor.objects.create(
            keyed_from_seq=seq,
            previous_hash=prev_hash,
            signature=anchor_signature(keyed_from_seq=seq, previous_hash=prev_hash),
        )
    return 1


def _normalise_json(value: Any) -> Any:
    """What the JSON column will give back, so the hash computed now matches the one read later."""
    return json.loads(json.dumps(value, default=str))


def audit_event_append(*, kind: str, actor: str, **fields: Any) -> AuditEvent:
    json_fields = {"pii_counts", "retrieved", "cited_documents", "attempts", "latencies", "detail"}
    values = {k: (_normalise_json(v) if k in json_fields else v) for k, v in fields.items()}
    with transaction.atomic():
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_xact_lock(%s)", [_APPEND_LOCK])
        last = AuditEvent.objects.order_by("-seq").only("seq", "hash").first()
        if last is not None:
            seq, prev_hash = last.seq + 1, last.hash
        else:
            checkpoint = AuditCheckpoint.objects.first()
            seq = checkpoint.through_seq + 1 if checkpoint else 1
            prev_hash = checkpoint.through_hash if checkpoint else GENESIS
        # Microseconds survive the database round trip; the hash covers this exact value.
        event = AuditEvent(
            seq=seq, created_at=timezone.now(), kind=kind, actor=actor, prev_hash=prev_hash, **values
        )
        keyed_from = _keyed_from(seq=seq, prev_hash=prev_hash, first_event=last is None)
        event.hash = event_hash(event, keyed=seq >= keyed_from)
        event.save(force_insert=True)
        return event


@dataclass(frozen=True)
class ChainStatus:
    valid: bool
    checked: int
    first_broken_seq: int | None = None
    first_broken_id: int | None = None
    problem: str = ""
    checkpoint_seq: int | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "valid": self.valid,
            "checked": self.checked,
            "first_broken_seq": self.first_broken_seq,
            "first_broken_id": self.first_broken_id,
            "problem": self.problem,
            "checkpoint_seq": self.checkpoint_seq,
        }


def _checkpoint_signature(through_seq: int, through_hash: str) -> str:
    key = settings.AUDIT_HMAC_KEY.encode()
    return hmac.new(key, f"checkpoint|{through_seq}|{through_hash}".encode(), hashlib.sha256).hexdigest()


def audit_chain_verify() -> ChainStatus:
    anchor = AuditChainAnchor.objects.first()
    if anchor is None:
        if not AuditEvent.objects.exists():
            return ChainStatus(True, 0)
        return ChainStatus(False, 0, problem="the keyed-chain anchor is missing")
    signature = anchor_signature(keyed_from_seq=anchor.keyed_from_seq, previous_hash=anchor.previous_hash)
    if not hmac.compare_digest(anchor.signature, signature):
        return ChainStatus(False, 0, problem="the keyed-chain anchor's signature does not match")
    checkpoint = AuditCheckpoint.objects.first()
    expected_prev, expected_seq = GENESIS, 1
    if checkpoint is not None:
        if not hmac.compare_digest(
            checkpoint.signature, _checkpoint_signature(checkpoint.through_seq, checkpoint.through_hash)
        ):
            return ChainStatus(False, 0, problem="the purge checkpoint's signature does not match")
        expected_prev, expected_seq = checkpoint.through_hash, checkpoint.through_seq + 1
    checked = 0
    for event in AuditEvent.objects.order_by("seq").iterator(chunk_size=2000):
        problem = ""
        if event.seq != expected_seq:
            problem = f"expected event #{expected_seq}, found #{event.seq} (a row is missing)"
        elif event.prev_hash != expected_prev:
            problem = "prev_hash does not match the previous event"
        elif event.seq == anchor.keyed_from_seq and event.prev_hash != anchor.previous_hash:
            problem = "the first keyed event does not follow the anchored unkeyed history"
        elif event.hash != event_hash(event, keyed=event.seq >= anchor.keyed_from_seq):
            problem = "the event's content does not match its hash (it was altered)"
        if problem:
            through = checkpoint.through_seq if checkpoint else None
            return ChainStatus(False, checked, event.seq, event.id, problem, through)
        checked += 1
        expected_prev, expected_seq = event.hash, event.seq + 1
    return ChainStatus(True, checked, checkpoint_seq=checkpoint.through_seq if checkpoint else None)


def audit_purge_expired(*, older_than_days: int | None = None, now: datetime | None = None) -> int:
    """Delete events past retention, oldest first, leaving a signed checkpoint of the last one.

    Only a prefix of the chain is ever purged, so what remains still verifies from the
    checkpoint onward.
    """
    days = older_than_days if older_than_days is not None else settings.AUDIT_RETENTION_DAYS
    cutoff = (now or timezone.now()) - timedelta(days=days)
    with transaction.atomic():
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_xact_lock(%s)", [_APPEND_LOCK])
        # The first event younger than the cutoff ends the purgeable prefix.
        first_kept = (
            AuditEvent.objects.filter(created_at__gte=cutoff).order_by("seq").values_list("seq", flat=True)
        )
        boundary = first_kept.first()
        expired = (
            AuditEvent.objects.all() if boundary is None else AuditEvent.objects.filter(seq__lt=boundary)
        )
        last = expired.order_by("-seq").only("seq", "hash").first()
        if last is None:
            return 0
        count = expired.count()
        AuditCheckpoint.objects.create(
            through_seq=last.seq,
            through_hash=last.hash,
            purged=count,
            signature=_checkpoint_signature(last.seq, last.hash),
        )
        with connection.cursor() as cursor:
            cursor.execute("SET LOCAL policydesk.audit_purge = 'on'")
            cursor.execute("DELETE FROM audit_auditevent WHERE seq <= %s", [last.seq])
        return count
