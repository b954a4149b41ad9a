"""Reads about policy versions: a cited passage's version and dates, scheduled versions a reader
may see, a document's history, and documents due for review. The lifecycle's writes are in
rag/lifecycle.py; the rule retrieval applies is rag.selectors.IN_EFFECT."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime, timedelta

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser, AnonymousUser
from django.db import connection
from django.db.models import OuterRef, QuerySet, Subquery

from core.clock import company_today
from rag.models import Document, DocumentStatus
from rag.selectors import VISIBLE_DOCUMENTS


@dataclass(frozen=True)
class VersionInfo:
    document_id: int
    source_path: str
    title: str
    version: int
    content_hash: str
    effective_from: date | None
    effective_until: date | None
    status: str
    retired_at: datetime | None
    successor_from: date | None  # when the next version takes effect, if there is one
    review_by: date | None = None

    def superseded_on(self, today: date) -> date | None:
        """The day a newer version replaced this one, when that day has come."""
        if self.successor_from is None or self.effective_until is None or self.effective_until >= today:
            return None
        return self.effective_until + timedelta(days=1)

    def scheduled(self, today: date) -> bool:
        return self.effective_from is not None and self.effective_from > today

    def label(self, today: date, language: str = "en") -> str:
        """ "v3, in effect since 2026-07-01" and its variants (scheduled, superseded, a period)."""
        words = LABELS.get(language, LABELS["en"])
        head = words["version"].format(n=self.version)
        start, end = self.effective_from, self.effective_until
        superseded = self.superseded_on(today)
        if self.status == DocumentStatus.RETIRED and self.retired_at is not None:
            return f"{head}, " + words["retired"].format(day=self.retired_at.date().isoformat())
        if self.scheduled(today):
            return f"{head}, " + words["scheduled"].format(start=_iso(start))
        if superseded is not None:
            return f"{head}, " + words["superseded"].format(start=_iso(start), end=_iso(end), day=superseded)
        if start and end:
            return f"{head}, " + words["period"].format(start=start, end=end)
        if start:
            return f"{head}, " + words["since"].format(start=start)
        return head


LABELS = {
    "en": {
        "version": "v{n}",
        "since": "in effect since {start}",
        "period": "in effect {start} \u2013 {end}",
        "scheduled": "takes effect on {start}",
        "superseded": "in effect {start} \u2013 {end}, superseded on {day}",
        "retired": "retired on {day}",
    },
    "vi": {
        "version": "phiên bản {n}",
        "since": "có hiệu lực từ {start}",
        "period": "có hiệu lực {start} \u2013 {end}",
        "scheduled": "có hiệu lực từ {start} (đã lên lịch)",
        "superseded": "có hiệu lực {start} \u2013 {end}, được thay thế ngày {day}",
        "retired": "ngừng áp dụng ngày {day}",
    },
}


def _iso(day: date | None) -> str:
    return day.isoformat() if day else "—"


def _with_successor(documents: QuerySet[Document]) -> QuerySet[Document]:
    successor = (
        Document.objects.filter(source_path=OuterRef("source_path"), version__gt=OuterRef("version"))
        .exclude(status=DocumentStatus.FAILED)
        .order_by("version")
        .values("effective_from")[:1]
    )
    return documents.annotate(successor_from=Subquery(successor))


def versions_of(document_ids: Iterable[int]) -> dict[int, VersionInfo]:
    """Each document's version and dates, in one query."""
    rows = _with_successor(Document.objects.filter(pk__in=set(document_ids)))
    return {d.pk: version_info(d) for d in rows}


def version_info(document: Document, *, today: date | None = None) -> VersionInfo:
    """A document's version facts; its successor's start is read unless already annotated."""
    if not hasattr(document, "successor_from"):
        document = _with_successor(Document.objects.filter(pk=document.pk)).get()
    return VersionInfo(
        document_id=document.pk,
        source_path=document.source_path,
        title=document.title,
        version=document.version,
        content_hash=document.content_hash,
        effective_from=document.effective_from,
        effective_until=document.effective_until,
        status=document.status,
        retired_at=document.retired_at,
        successor_from=getattr(document, "successor_from", None),
        review_by=document.review_by,
    )


@dataclass(frozen=True)
class Scheduled:
    document_id: int
    source_path: str
    title: str
    version: int
    effective_from: date


# Scheduled versions of the given documents that the user may read (the reader-group rule of
# retrieval), soonest first.
SCHEDULED_SQL = f"""
SELECT d.id, d.source_path, d.title, d.version, d.effective_from
FROM rag_document d
WHERE d.id IN ({VISIBLE_DOCUMENTS})
  AND d.source_path = ANY(%(paths)s) AND d.effective_from > %(today)s::date
  AND (d.effective_until IS NULL OR d.effective_until >= d.effective_from)
ORDER BY d.effective_from, d.id
"""  # noqa: S608 (module constants only; every value is a bound parameter)


def scheduled_versions(
    *, source_paths: Iterable[str], user: AbstractBaseUser | AnonymousUser | None, today: date | None = None
) -> list[Scheduled]:
    paths = sorted(set(source_paths))
    if not paths:
        return []
    user_id = user.pk if user is not None and user.is_authenticated else None
    with connection.cursor() as cursor:
        cursor.execute(SCHEDULED_SQL, {"paths": paths, "today": today or company_today(), "user_id": user_id})
        return [Scheduled(*row) for row in cursor.fetchall()]


def version_history(*, source_path: str) -> list[Document]:
    """Every stored version of a document, newest first (failed uploads left out)."""
    return list(
        _with_successor(
            Document.objects.filter(source_path=source_path).exclude(status=DocumentStatus.FAILED)
        ).order_by("-version")
    )


@dataclass(frozen=True)
class DueReview:
    document_id: int
    title: str
    source_path: str
    version: int
    review_by: date
    overdue: bool

    def as_dict(self) -> dict[str, object]:
        return {**self.__dict__, "review_by": self.review_by.isoformat()}


def documents_due_for_review(*, today: date | None = None) -> list[DueReview]:
    """Each document's current version whose review-by date is past or within REVIEW_DUE_DAYS,
    most overdue first. Current: the latest version that has taken effect and is not retired."""
    today = today or company_today()
    horizon = today + timedelta(days=settings.REVIEW_DUE_DAYS)
    due = []
    for document in current_versions(today=today):
        if document.review_by is not None and document.review_by <= horizon:
            due.append(
                DueReview(
                    document_id=document.pk,
                    title=document.title,
                    source_path=document.source_path,
                    version=document.version,
                    review_by=document.review_by,
                    overdue=document.review_by < today,
                )
            )
    return sorted(due, key=lambda d: (d.review_by, d.source_path))


def current_versions(*, today: date) -> list[Document]:
    """Per source path, the newest ready version in effect on `today` or before (not scheduled)."""
    documents = (
        Document.objects.filter(status=DocumentStatus.READY)
        .exclude(effective_from__gt=today)
        .order_by("source_path", "-version")
        .distinct("source_path")
    )
    return list(documents)


def documents_with_lifecycle(documents: QuerySet[Document], *, today: date) -> list[Document]:
    """The documents, each with `lifecycle` (its version label today) and `superseded_on`."""
    listed = list(_with_successor(documents))
    for document in listed:
        info = version_info(document)
        document.lifecycle = info.label(today)  # type: ignore[attr-defined]
        document.superseded_on = info.superseded_on(today)  # type: ignore[attr-defined]
        document.scheduled = info.scheduled(today)  # type: ignore[attr-defined]
    return listed


def version_targets() -> list[Document]:
    """Per document, its latest version: what the upload form offers to add a version to."""
    return list(
        Document.objects.exclude(status=DocumentStatus.FAILED)
        .order_by("source_path", "-version")
        .distinct("source_path")
    )


def passage_hash(text: str) -> str:
    """A cited passage's fingerprint, in the question's audit event; the auditor's view of the
    passage (rag/version_views.py) checks the stored text against it."""
    return hashlib.sha256(text.encode()).hexdigest()
