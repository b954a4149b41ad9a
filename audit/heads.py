"""The signed head: the chain's end, kept outside the database.

The hash chain shows that no event was changed, removed from the middle or reordered, but not
that the log still ends where it did: whoever can delete rows at the end (the database owner)
leaves a shorter chain that still verifies, and new events then reuse the deleted sequence
numbers. So every AUDIT_HEAD_EVENTS events and at least every AUDIT_HEAD_SECONDS while the log
grows, the latest seq and hash, HMAC-signed with the current audit key, are appended to a file
(fsync'd) and optionally sent to syslog. `manage.py audit_verify` compares the database with
these heads: a database that ends before the newest head is reported `truncated: events N+1..M
missing`; an event whose hash is not the one a head recorded for its seq is a reused sequence
number. A head holds a sequence number, a hash, a time and a key id: nothing about any person.
"""

from __future__ import annotations

import fcntl
import json
import logging
import logging.handlers
import os
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import IO, Any

from django.conf import settings
from django.utils import timezone

from audit import keys
from audit.models import AuditCheckpoint, AuditEvent

log = logging.getLogger(__name__)
PURPOSE = b"audit-head"
TAIL_BYTES = 8192  # more than one head line


@dataclass(frozen=True)
class SignedHead:
    seq: int
    hash: str
    at: str
    key_id: str
    signature: str

    @staticmethod
    def sign(*, seq: int, hash: str, at: str, key_id: str) -> SignedHead:
        return SignedHead(seq, hash, at, key_id, keys.sign(key_id, PURPOSE, _message(seq, hash, at)))

    def valid(self) -> bool:
        return keys.matches(self.signature, self.key_id, PURPOSE, _message(self.seq, self.hash, self.at))

    def line(self) -> str:
        fields = {
            "seq": self.seq,
            "hash": self.hash,
            "at": self.at,
            "kid": self.key_id,
            "sig": self.signature,
        }
        return json.dumps(fields, sort_keys=True, separators=(",", ":")) + "\n"

    @staticmethod
    def parse(line: str) -> SignedHead | None:
        try:
            raw = json.loads(line)
            return SignedHead(
                int(raw["seq"]), str(raw["hash"]), str(raw["at"]), str(raw["kid"]), str(raw["sig"])
            )
        except (ValueError, KeyError, TypeError):
            return None


def _message(seq: int, hash: str, at: str) -> str:
    return f"head|{seq}|{hash}|{at}"


def _last_line(handle: IO[bytes]) -> str:
    handle.seek(0, os.SEEK_END)
    size = handle.tell()
    handle.seek(max(0, size - TAIL_BYTES))
    lines = handle.read().decode("utf-8", "replace").splitlines()
    return lines[-1] if lines else ""


def _chain_end() -> tuple[int, str] | None:
    last = AuditEvent.objects.order_by("-seq").values_list("seq", "hash").first()
    if last is not None:
        return int(last[0]), str(last[1])
    checkpoint = AuditCheckpoint.objects.first()
    return (checkpoint.through_seq, checkpoint.through_hash) if checkpoint else None


def audit_head_write(*, min_interval: float | None = None) -> SignedHead | None:
    """Append the chain's end, signed, to the head file if it moved on and the newest head is at
    least `min_interval` seconds old (AUDIT_HEAD_SECONDS by default). Never writes a head behind
    the newest one: a database that ends before it has been shortened, which is logged and left
    for `audit_verify` to report."""
    interval = settings.AUDIT_HEAD_SECONDS if min_interval is None else min_interval
    path = Path(settings.AUDIT_HEAD_FILE)
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    created = not path.exists()
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_APPEND, 0o600)
    with os.fdopen(fd, "r+b") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)  # writers in several processes take turns
        end = _chain_end()
        if end is None:
            return None
        newest = SignedHead.parse(_last_line(handle))
        now = timezone.now()
        if newest is not None:
            if newest.seq > end[0]:
                log.error(
                    "audit log ends at #%d, before its signed head #%d: not writing a head",
                    end[0],
                    newest.seq,
                )
                return None
            if newest.seq == end[0] and newest.hash == end[1]:
                return None
            age = (now - datetime.fromisoformat(newest.at)).total_seconds()
            if age < interval:
                return None
        head = SignedHead.sign(seq=end[0], hash=end[1], at=now.isoformat(), key_id=keys.current_key_id())
        handle.write(head.line().encode())
        handle.flush()
        os.fsync(handle.fileno())
    if created:
        _fsync_directory(path.parent)
    _to_syslog(head)
    return head


def _fsync_directory(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


_syslog: dict[str, logging.Logger] = {}


def _to_syslog(head: SignedHead) -> None:
    address = settings.AUDIT_HEAD_SYSLOG
    if not address:
        return
    logger = _syslog.get(address)
    if logger is None:
        logger = logging.getLogger(f"policydesk.audit.head.{len(_syslog)}")
        logger.propagate = False
        logger.setLevel(logging.INFO)
        host, sep, port = address.rpartition(":")
        target: Any = (host, int(port)) if sep and port.isdigit() else address
        handler = logging.handlers.SysLogHandler(address=target)
        handler.setFormatter(logging.Formatter("policydesk-audit-head: %(message)s"))
        logger.addHandler(handler)
        _syslog[address] = logger
    logger.info(head.line().strip())


@dataclass(frozen=True)
class HeadStatus:
    valid: bool
    heads: int  # signed heads read
    head_seq: int | None = None  # the newest head's seq
    problem: str = ""
    truncated: tuple[int, int] | None = None  # first and last missing seq
    reused: tuple[int, ...] = ()  # sequence numbers whose event is not the one a head recorded

    def as_dict(self) -> dict[str, Any]:
        return {
            "head_file": str(settings.AUDIT_HEAD_FILE),
            "heads": self.heads,
            "head_seq": self.head_seq,
            "head_problem": self.problem,
        }


def _read_heads(path: Path, *, newest_only: bool) -> Iterable[tuple[int, str]]:
    with path.open("rb") as handle:
        if newest_only:
            line = _last_line(handle)
            yield 1, line
            return
        for number, raw in enumerate(handle, start=1):
            yield number, raw.decode("utf-8", "replace")


def audit_heads_verify(*, newest_only: bool = False) -> HeadStatus:
    """Compare the database with the signed heads in the head file (all of them, or only the
    newest for the auditors' page). No file, or an empty one, is no evidence either way."""
    path = Path(settings.AUDIT_HEAD_FILE)
    if not path.exists():
        return HeadStatus(True, 0)
    heads: list[SignedHead] = []
    for number, line in _read_heads(path, newest_only=newest_only):
        if not line.strip():
            continue
        head = SignedHead.parse(line)
        if head is None or not head.valid():
            return HeadStatus(
                False, len(heads), problem=f"head file line {number}: its signature does not match"
            )
        if heads and head.seq < heads[-1].seq:
            return HeadStatus(
                False, len(heads), heads[-1].seq,
                problem=f"head file line {number}: goes back from #{heads[-1].seq} to #{head.seq}",
            )  # fmt: skip
        heads.append(head)
    if not heads:
        return HeadStatus(True, 0)
    newest = heads[-1]
    checkpoint = AuditCheckpoint.objects.first()
    purged_through = checkpoint.through_seq if checkpoint else 0
    end = _chain_end()
    last_seq = end[0] if end else 0
    problems: list[str] = []
    truncated = None
    if newest.seq > last_seq:
        truncated = (last_seq + 1, newest.seq)
        problems.append(
            f"truncated: events {last_seq + 1}..{newest.seq} missing "
            f"(the signed head of {newest.at} ends at #{newest.seq})"
        )
    reused = _reused(heads, checkpoint, purged_through)
    if reused:
        shown = ", ".join(f"#{seq}" for seq in reused[:10]) + (", ..." if len(reused) > 10 else "")
        problems.append(f"reused sequence numbers: {shown} (not the events the signed heads recorded)")
    return HeadStatus(not problems, len(heads), newest.seq, "; ".join(problems), truncated, tuple(reused))


def _reused(heads: list[SignedHead], checkpoint: AuditCheckpoint | None, purged_through: int) -> list[int]:
    recorded: dict[int, str] = {}
    for head in heads:
        recorded.setdefault(head.seq, head.hash)
        if recorded[head.seq] != head.hash:
            recorded[head.seq] = ""  # two heads disagree: the seq was reused between them
    reused = {seq for seq, hash in recorded.items() if not hash}
    if (
        checkpoint is not None
        and recorded.get(purged_through, checkpoint.through_hash) != checkpoint.through_hash
    ):
        reused.add(purged_through)
    live = sorted(seq for seq in recorded if seq > purged_through)
    for start in range(0, len(live), 5000):
        chunk = live[start : start + 5000]
        for seq, hash in AuditEvent.objects.filter(seq__in=chunk).values_list("seq", "hash"):
            if hash != recorded[seq]:
                reused.add(seq)
    return sorted(reused)
