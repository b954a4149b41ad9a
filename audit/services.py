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
import logging
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from django.conf import settings
from django.db import DatabaseError, connection, transaction
from django.utils import timezone

from audit import keys
from audit.models import AuditChainAnchor, AuditCheckpoint, AuditEvent, AuditVerifiedHead

log = logging.getLogger(__name__)
GENESIS = "0" * 64
SYSTEM_ACTOR = "system"
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
    questions without learning who they are. Keyed with the oldest key of the keyring, so a
    rotation of the chain's key leaves every pseudonym as it was."""
    key = settings.AUDIT_HMAC_KEY.encode()
    return hmac.new(key, f"user|{user_id}".encode(), hashlib.sha256).hexdigest()[:32]


def _canonical(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    if hasattr(value, "hex") and not isinstance(value, str | bytes | int | float):
        return str(value)  # UUID
    return value


def _chain_key(key_id: str = "") -> bytes:
    """A key for the chain alone, derived from an audit key (environment only, never stored)."""
    return keys.derived(key_id, b"audit-chain")


def event_hash(event: AuditEvent, *, keyed: bool = True) -> str:
    """HMAC-SHA256 of the event's fields under the chain key of the event's key id; plain
    SHA-256 for events written before the keyed chain began (see AuditChainAnchor). The key id is
    hashed too, except the original key's "" (so events from before key ids keep their hash)."""
    payload = {name: _canonical(getattr(event, name)) for name in HASHED_FIELDS}
    if event.key_id:
        payload["key_id"] = event.key_id
    blob = json.dumps(payload, sort_keys=True, ensure_ascii=False, separators=(",", ":"), default=str)
    if keyed:
        return hmac.new(_chain_key(event.key_id), blob.encode(), hashlib.sha256).hexdigest()
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


def _insert(
    *, seq: int, prev_hash: str, first_event: bool, kind: str, actor: str, key_id: str, **values: Any
) -> AuditEvent:
    # Microseconds survive the database round trip; the hash covers this exact value.
    event = AuditEvent(
        seq=seq,
        created_at=timezone.now(),
        kind=kind,
        actor=actor,
        prev_hash=prev_hash,
        key_id=key_id,
        **values,
    )
    keyed_from = _keyed_from(seq=seq, prev_hash=prev_hash, first_event=first_event)
    event.hash = event_hash(event, keyed=seq >= keyed_from)
    event.save(force_insert=True)
    return event


def audit_event_append(*, kind: str, actor: str, **fields: Any) -> AuditEvent:
    json_fields = {"pii_counts", "retrieved", "cited_documents", "attempts", "latencies", "detail"}
    values = {k: (_normalise_json(v) if k in json_fields else v) for k, v in fields.items()}
    with transaction.atomic():
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_xact_lock(%s)", [_APPEND_LOCK])
        last = AuditEvent.objects.order_by("-seq").only("seq", "hash", "key_id").first()
        if last is not None:
            seq, prev_hash = last.seq + 1, last.hash
        else:
            checkpoint = AuditCheckpoint.objects.first()
            seq = checkpoint.through_seq + 1 if checkpoint else 1
            prev_hash = checkpoint.through_hash if checkpoint else GENESIS
        key_id = _signing_key(last)
        if last is not None and last.key_id != key_id:
            # The keyring has a new current key: a re-anchor under it, naming the key it follows
            # and the hash it continues from, before anything else is signed with it.
            rotation = _insert(
                seq=seq, prev_hash=prev_hash, first_event=False, kind=AuditEvent.Kind.KEY_ROTATION,
                actor=SYSTEM_ACTOR, key_id=key_id,
                detail={"from": last.key_id, "to": key_id, "previous_hash": prev_hash},
            )  # fmt: skip
            seq, prev_hash = rotation.seq + 1, rotation.hash
        event = _insert(
            seq=seq, prev_hash=prev_hash, first_event=last is None, kind=kind, actor=actor, key_id=key_id,
            **values,
        )  # fmt: skip
        every = settings.AUDIT_HEAD_EVENTS
        if every and event.seq % every == 0:
            transaction.on_commit(_write_head_now, robust=True)
        return event


def _signing_key(last: AuditEvent | None) -> str:
    """The current key, or the chain's own key where another process has already rotated to a
    newer one this process also holds: during a rolling rotation the chain never steps back."""
    current = keys.current_key_id()
    if last is None or last.key_id == current or not keys.known(last.key_id):
        return current
    if last.key_id in settings.AUDIT_HMAC_KEYS and keys.position(last.key_id) > keys.position(current):
        return last.key_id
    return current


def _write_head_now() -> None:
    """Every AUDIT_HEAD_EVENTS events, once the event is committed. A head that cannot be
    written (a read-only disk) must not fail the answer: it is logged, and the periodic task
    tries again."""
    from audit.heads import audit_head_write

    try:
        audit_head_write(min_interval=0.0)
    except OSError as exc:
        log.error("audit signed head not written: %s", exc.strerror or type(exc).__name__)


@dataclass(frozen=True)
class ChainStatus:
    valid: bool
    checked: int
    first_broken_seq: int | None = None
    first_broken_id: int | None = None
    problem: str = ""
    checkpoint_seq: int | None = None
    # Rows read this time: all of them for a full verification, only the new ones for the
    # auditors' page (audit_chain_verify_incremental).
    walked: int = 0

    def as_dict(self) -> dict[str, Any]:
        return {
            "valid": self.valid,
            "checked": self.checked,
            "first_broken_seq": self.first_broken_seq,
            "first_broken_id": self.first_broken_id,
            "problem": self.problem,
            "checkpoint_seq": self.checkpoint_seq,
        }


def _checkpoint_signature(through_seq: int, through_hash: str, key_id: str = "") -> str:
    """Signed with the key itself (not a derived one), as before key ids existed."""
    message = f"checkpoint|{through_seq}|{through_hash}".encode()
    return hmac.new(keys.secret(key_id), message, hashlib.sha256).hexdigest()


def _verified_head_signature(*, through_seq: int, through_hash: str, key_id: str) -> str:
    return keys.sign(key_id, b"audit-verified", f"verified|{through_seq}|{through_hash}")


@dataclass
class _Walk:
    """Where a walk along the chain stands: the next seq and prev_hash expected, and the key the
    chain is signed with so far (None before the first event)."""

    anchor: AuditChainAnchor
    seq: int
    prev: str
    key_id: str | None
    checked: int = 0

    def problem(self, event: AuditEvent) -> str:
        if event.seq != self.seq:
            return f"expected event #{self.seq}, found #{event.seq} (a row is missing)"
        if event.prev_hash != self.prev:
            return "prev_hash does not match the previous event"
        if event.seq == self.anchor.keyed_from_seq and event.prev_hash != self.anchor.previous_hash:
            return "the first keyed event does not follow the anchored unkeyed history"
        if not keys.known(event.key_id):
            return f"the event names key id {event.key_id!r}, which is not in the keyring"
        if self.key_id is not None and event.key_id != self.key_id:
            moved = self._key_change_problem(event)
            if moved:
                return moved
        if event.hash != event_hash(event, keyed=event.seq >= self.anchor.keyed_from_seq):
            return "the event's content does not match its hash (it was altered)"
        return ""

    def _key_change_problem(self, event: AuditEvent) -> str:
        detail = event.detail if isinstance(event.detail, dict) else {}
        if event.kind != AuditEvent.Kind.KEY_ROTATION or detail != {
            "from": self.key_id,
            "to": event.key_id,
            "previous_hash": event.prev_hash,
        }:
            return f"the signing key changes from {self.key_id!r} to {event.key_id!r} without a re-anchor"
        assert self.key_id is not None
        if not keys.known(self.key_id) or keys.position(event.key_id) <= keys.position(self.key_id):
            return f"the re-anchor goes from key {self.key_id!r} back to the older key {event.key_id!r}"
        return ""

    def advance(self, event: AuditEvent) -> None:
        self.checked += 1
        self.seq, self.prev, self.key_id = event.seq + 1, event.hash, event.key_id


def _anchor_and_checkpoint() -> tuple[AuditChainAnchor | None, AuditCheckpoint | None, str]:
    """The signed anchor and purge checkpoint, or the problem with them."""
    anchor = AuditChainAnchor.objects.first()
    checkpoint = AuditCheckpoint.objects.first()
    if anchor is None:
        return None, checkpoint, "the keyed-chain anchor is missing"
    signature = anchor_signature(keyed_from_seq=anchor.keyed_from_seq, previous_hash=anchor.previous_hash)
    if not hmac.compare_digest(anchor.signature, signature):
        return anchor, checkpoint, "the keyed-chain anchor's signature does not match"
    if checkpoint is not None and (
        not keys.known(checkpoint.key_id)
        or not hmac.compare_digest(
            checkpoint.signature,
            _checkpoint_signature(checkpoint.through_seq, checkpoint.through_hash, checkpoint.key_id),
        )
    ):
        return anchor, checkpoint, "the purge checkpoint's signature does not match"
    return anchor, checkpoint, ""


def _walk_from(walk: _Walk, events: Any, checkpoint: AuditCheckpoint | None) -> ChainStatus:
    through = checkpoint.through_seq if checkpoint else None
    base = walk.checked
    for event in events:
        problem = walk.problem(event)
        if problem:
            return ChainStatus(
                False, walk.checked, event.seq, event.id, problem, through, walk.checked - base
            )
        walk.advance(event)
    return ChainStatus(True, walk.checked, checkpoint_seq=through, walked=walk.checked - base)


def audit_chain_verify() -> ChainStatus:
    """Walk the whole chain from the purge checkpoint (or the genesis) to its last event."""
    anchor, checkpoint, problem = _anchor_and_checkpoint()
    if anchor is None and not AuditEvent.objects.exists():
        return ChainStatus(True, 0)
    if problem or anchor is None:
        return ChainStatus(False, 0, problem=problem)
    walk = _Walk(
        anchor=anchor,
        seq=checkpoint.through_seq + 1 if checkpoint else 1,
        prev=checkpoint.through_hash if checkpoint else GENESIS,
        key_id=None,
    )
    return _walk_from(walk, AuditEvent.objects.order_by("seq").iterator(chunk_size=2000), checkpoint)


def audit_chain_verify_incremental() -> ChainStatus:
    """What the auditors' page shows: the chain verified from where the last view left off.

    The signed verified head says "the chain up to #N, ending in hash H, was valid"; if event #N
    still has hash H, only the events after it are walked, and the head moves on. Anything else
    (no head, a head whose signature or event does not match, a new purge checkpoint past it)
    falls back to the full walk. An edit to an event before the head, made by someone who can
    switch the trigger off, is found by `manage.py audit_verify`, not here."""
    anchor, checkpoint, problem = _anchor_and_checkpoint()
    if anchor is None and not AuditEvent.objects.exists():
        return ChainStatus(True, 0)
    if problem or anchor is None:
        return ChainStatus(False, 0, problem=problem)
    head = AuditVerifiedHead.objects.order_by("-id").first()
    start = _resumable(head, checkpoint)
    if start is None:
        status = audit_chain_verify()
    else:
        first_seq = checkpoint.through_seq + 1 if checkpoint else 1
        walk = _Walk(anchor=anchor, seq=start.seq + 1, prev=start.hash, key_id=start.key_id,
                     checked=start.seq - first_seq + 1)  # fmt: skip
        events = AuditEvent.objects.filter(seq__gt=start.seq).order_by("seq").iterator(chunk_size=2000)
        status = _walk_from(walk, events, checkpoint)
    if status.valid:
        _remember_verified_head(head)
    return status


def _resumable(head: AuditVerifiedHead | None, checkpoint: AuditCheckpoint | None) -> AuditEvent | None:
    if head is None or not keys.known(head.key_id):
        return None
    signature = _verified_head_signature(
        through_seq=head.through_seq, through_hash=head.through_hash, key_id=head.key_id
    )
    if not hmac.compare_digest(head.signature, signature):
        return None
    if checkpoint is not None and checkpoint.through_seq >= head.through_seq:
        return None
    event = AuditEvent.objects.filter(seq=head.through_seq).only("seq", "hash", "key_id").first()
    if event is None or not hmac.compare_digest(event.hash, head.through_hash):
        return None
    return event


def _remember_verified_head(head: AuditVerifiedHead | None) -> None:
    last = AuditEvent.objects.order_by("-seq").only("seq", "hash").first()
    if last is None or (head is not None and head.through_seq == last.seq):
        return
    key_id = keys.current_key_id()
    values = {
        "through_seq": last.seq,
        "through_hash": last.hash,
        "verified_at": timezone.now(),
        "key_id": key_id,
        "signature": _verified_head_signature(through_seq=last.seq, through_hash=last.hash, key_id=key_id),
    }
    if head is None:
        AuditVerifiedHead.objects.create(**values)
    else:
        AuditVerifiedHead.objects.filter(id=head.id).update(**values)


class PurgeRefusedError(Exception):
    """The database refused the purge (its cutoff is inside the retention window)."""


def audit_purge_expired(*, older_than_days: int | None = None) -> int:
    """Delete events past retention, oldest first, leaving a signed checkpoint of the last one.

    The deletion itself is `audit_purge_expired_events`, a function owned by the table's owner
    (migration 0009): it removes only a prefix of the chain, only rows older than
    `older_than_days` by the database's clock, and refuses a number of days shorter than the
    retention window the owner set. So what remains still verifies from the checkpoint onward, and
    no role but the owner can delete any other row.
    """
    days = older_than_days if older_than_days is not None else settings.AUDIT_RETENTION_DAYS
    with transaction.atomic():
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_xact_lock(%s)", [_APPEND_LOCK])
            try:
                with transaction.atomic():
                    cursor.execute(
                        "SELECT through_seq, through_hash, purged FROM audit_purge_expired_events(%s)",
                        [days],
                    )
            except DatabaseError as exc:
                if "purge refused" in str(exc):
                    raise PurgeRefusedError(str(exc).splitlines()[0]) from None
                raise
            row = cursor.fetchone()
        if row is None:
            return 0
        through_seq, through_hash, purged = int(row[0]), str(row[1]), int(row[2])
        key_id = keys.current_key_id()
        AuditCheckpoint.objects.create(
            through_seq=through_seq,
            through_hash=through_hash,
            purged=purged,
            key_id=key_id,
            signature=_checkpoint_signature(through_seq, through_hash, key_id),
        )
        return purged


def audit_chain_status_quick() -> ChainStatus:
    """The auditors' page: the chain verified incrementally, and its end against the newest
    signed head (a truncated tail or a reused sequence number shows as a broken chain)."""
    from audit.heads import audit_heads_verify

    chain = audit_chain_verify_incremental()
    if not chain.valid:
        return chain
    heads = audit_heads_verify(newest_only=True)
    if heads.valid:
        return chain
    first = heads.truncated[0] if heads.truncated else (heads.reused[0] if heads.reused else None)
    return replace(chain, valid=False, first_broken_seq=first, problem=heads.problem)
