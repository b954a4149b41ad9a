"""Writes for a policy's life: versions with effective dates, supersession, retirement, review
dates, and the retention of superseded versions. Each change is one `document_lifecycle` audit
event (detail.action says which). The rules are in docs/policy-versions.md.

A version is in effect from `effective_from` through `effective_until` (company days,
core/clock.py). A newer version, once ingested, closes every older version of the same document
the day before its own `effective_from`: the older text stays stored and answers questions
about the time it was in effect, and auditors can still open it.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

from django.conf import settings
from django.contrib.auth.models import Group, User
from django.db import transaction
from django.db.models import Q

from audit.models import AuditEvent
from audit.services import audit_event_append, pseudonym
from core.clock import company_today
from rag.models import Document, DocumentStatus

logger = logging.getLogger(__name__)
SYSTEM_ACTOR = "system"  # lifecycle changes made by ingestion itself or a command-line upload


class VersionError(ValueError):
    """A version request that cannot be honoured; the message says why, for the admin."""


@dataclass(frozen=True)
class VersionDates:
    """What an admin says about a new version; None: the default (from today, open-ended,
    the predecessor's review date)."""

    effective_from: date | None = None
    effective_until: date | None = None
    review_by: date | None = None

    def check(self) -> None:
        if self.effective_from and self.effective_until and self.effective_until < self.effective_from:
            raise VersionError(
                f"“Effective until” ({self.effective_until}) is before “effective from” ({self.effective_from})."
            )


def version_predecessor(*, source_path: str) -> Document | None:
    """The latest version of a document that did not fail: the one a new upload follows."""
    return (
        Document.objects.filter(source_path=source_path)
        .exclude(status=DocumentStatus.FAILED)
        .order_by("-version")
        .first()
    )


def version_target(*, new_version_of: str) -> str:
    """The source path of the document an upload is a new version of; refused when unknown."""
    if not Document.objects.filter(source_path=new_version_of).exclude(status=DocumentStatus.FAILED).exists():
        raise VersionError(f"There is no document {new_version_of!r} to add a version to.")
    return new_version_of


def inherited_groups(predecessor: Document | None) -> list[Group]:
    """A new version's readers when the upload names none: its predecessor's (everyone for a
    first version)."""
    return list(predecessor.allowed_groups.all()) if predecessor is not None else []


def version_dates_apply(*, document: Document, dates: VersionDates, predecessor: Document | None) -> None:
    """Set a new version's dates (from today unless given; the review date carried over)."""
    dates.check()
    document.effective_from = dates.effective_from or company_today()
    document.effective_until = dates.effective_until
    document.review_by = dates.review_by or (predecessor.review_by if predecessor else None)
    document.save(update_fields=["effective_from", "effective_until", "review_by", "updated_at"])


def version_created_record(*, document: Document, predecessor: Document | None, actor: User | None) -> None:
    """Audit a new upload: `new_version` when it follows a predecessor (a first upload is not a
    lifecycle change), and `scheduled` when it takes effect later than today."""
    detail = {
        "predecessor_id": predecessor.pk if predecessor else None,
        "effective_from": _iso(document.effective_from),
        "effective_until": _iso(document.effective_until),
        "review_by": _iso(document.review_by),
        "content_hash": document.content_hash,
    }
    if predecessor is not None:
        lifecycle_record(document=document, action="new_version", actor=actor, **detail)
    if document.effective_from and document.effective_from > company_today():
        lifecycle_record(
            document=document, action="scheduled", actor=actor, effective_from=_iso(document.effective_from)
        )


def versions_supersede(*, document: Document) -> list[Document]:
    """Close the older versions of `document` the day before it takes effect (called once it is
    ingested, so a version that fails never ends its predecessor). Returns those it closed."""
    if document.effective_from is None:
        return []
    last_day = document.effective_from - timedelta(days=1)
    older = (
        Document.objects.select_for_update()
        .filter(source_path=document.source_path, version__lt=document.version)
        .exclude(status=DocumentStatus.FAILED)
        .filter(Q(effective_until__isnull=True) | Q(effective_until__gt=last_day))
    )
    closed = []
    for old in older:
        old.effective_until = last_day
        old.save(update_fields=["effective_until", "updated_at"])
        lifecycle_record(
            document=old,
            action="superseded",
            actor=None,
            superseded_by=document.pk,
            superseded_by_version=document.version,
            effective_until=_iso(last_day),
        )
        closed.append(old)
    return closed


def document_retire_record(*, document: Document, actor: User | None) -> None:
    lifecycle_record(document=document, action="retired", actor=actor)


@transaction.atomic
def document_set_review_by(*, document: Document, review_by: date | None, changed_by: User | None) -> bool:
    """The date by which the policy should be reviewed (None: no date). False when unchanged."""
    if document.review_by == review_by:
        return False
    before = document.review_by
    document.review_by = review_by
    document.save(update_fields=["review_by", "updated_at"])
    lifecycle_record(
        document=document, action="review_date", actor=changed_by, before=_iso(before), after=_iso(review_by)
    )
    return True


def lifecycle_record(*, document: Document, action: str, actor: User | None, **detail: Any) -> AuditEvent:
    return audit_event_append(
        kind=AuditEvent.Kind.DOCUMENT_LIFECYCLE,
        actor=pseudonym(user_id=actor.pk) if actor is not None else SYSTEM_ACTOR,
        detail={
            "action": action,
            "document_id": document.pk,
            "source_path": document.source_path,
            "version": document.version,
            **detail,
        },
    )


def versions_purge_expired(*, today: date | None = None) -> int:
    """Delete versions that went out of effect more than VERSION_RETENTION_DAYS ago and have a
    newer version (0 keeps them for ever). Their audit events stay; their text does not."""
    days = settings.VERSION_RETENTION_DAYS
    if not days:
        return 0
    from rag.services import document_delete

    cutoff = (today or company_today()) - timedelta(days=days)
    expired = Document.objects.filter(effective_until__lt=cutoff).exclude(status=DocumentStatus.FAILED)
    purged = 0
    for document in expired:
        if Document.objects.filter(source_path=document.source_path, version__gt=document.version).exists():
            lifecycle_record(
                document=document, action="purged", actor=None, effective_until=_iso(document.effective_until)
            )
            document_delete(document=document)
            purged += 1
    if purged:
        logger.info("purged superseded versions", extra={"purged": purged})
    return purged


def _iso(day: date | None) -> str | None:
    return day.isoformat() if day else None
