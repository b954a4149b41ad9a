"""Reads for the auditor pages and exports."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, time, timedelta

from django.db.models import OuterRef, QuerySet, Subquery
from django.utils import timezone

from audit.models import AuditEvent


@dataclass(frozen=True)
class EventFilters:
    date_from: date | None = None
    date_to: date | None = None
    actor: str = ""
    backend: str = ""
    outcome: str = ""
    pii: str = ""  # "yes" | "no" | ""
    feedback: str = ""  # "up" | "down" | "none" | ""
    kind: str = AuditEvent.Kind.QUESTION

    def as_dict(self) -> dict[str, str]:
        return {k: str(v) for k, v in self.__dict__.items() if v not in ("", None)}


def _day_start(day: date) -> datetime:
    return timezone.make_aware(datetime.combine(day, time.min))


def event_list(*, filters: EventFilters) -> QuerySet[AuditEvent]:
    latest_feedback = (
        AuditEvent.objects.filter(kind=AuditEvent.Kind.FEEDBACK, message_id=OuterRef("message_id"))
        .order_by("-seq")
        .values("feedback")[:1]
    )
    events = AuditEvent.objects.annotate(user_feedback=Subquery(latest_feedback)).order_by("-seq")
    if filters.kind:
        events = events.filter(kind=filters.kind)
    if filters.date_from:
        events = events.filter(created_at__gte=_day_start(filters.date_from))
    if filters.date_to:
        events = events.filter(created_at__lt=_day_start(filters.date_to) + timedelta(days=1))
    if filters.actor:
        events = events.filter(actor=filters.actor)
    if filters.backend:
        events = events.filter(backend=filters.backend)
    if filters.outcome:
        events = events.filter(outcome=filters.outcome)
    if filters.pii == "yes":
        events = events.exclude(pii_counts={})
    elif filters.pii == "no":
        events = events.filter(pii_counts={})
    if filters.feedback == "up":
        events = events.filter(user_feedback=1)
    elif filters.feedback == "down":
        events = events.filter(user_feedback=-1)
    elif filters.feedback == "none":
        events = events.filter(user_feedback__isnull=True)
    return events


def event_choices() -> dict[str, list[str]]:
    questions = AuditEvent.objects.filter(kind=AuditEvent.Kind.QUESTION)
    return {
        "backends": sorted(b for b in questions.values_list("backend", flat=True).distinct() if b),
        "outcomes": sorted(o for o in questions.values_list("outcome", flat=True).distinct() if o),
    }
