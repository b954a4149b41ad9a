"""What an answer says about policy versions (docs/policy-versions.md): the "as of" line at the
top of an answer about another day, and below an answer about the current rule, one line when
a cited policy has a version scheduled that the asker may read, and (when configured) one when
it is past its review date. Each citation carries its version and dates; the audit event, the
exact version of every cited passage. Pure functions over the prepared question."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.urls import reverse

from chat.asof import (
    REVIEW_LINES,
    SCHEDULED_LINES,
    as_of_header,
    localised,
    spoken_day,
)
from chat.state import Plan, Prepared
from rag.selectors import RetrievedChunk
from rag.versions import Scheduled, passage_hash


def answer_header(prepared: Prepared, language: str) -> str:
    """The first line of an answer given for a day other than today ("" for today's)."""
    if prepared.as_of is None or prepared.as_of.is_today:
        return ""
    return as_of_header(prepared.as_of, language)


def _cited_paths(plan: Plan | None) -> list[str]:
    return [g.passage.source_path for g in plan.groups] if plan else []


def scheduled_next(prepared: Prepared, plan: Plan | None) -> Scheduled | None:
    """The soonest scheduled version of a policy the answer quotes (only for a question about
    today; prepared.scheduled holds only versions the asker may read)."""
    paths = set(_cited_paths(plan))
    return next((s for s in prepared.scheduled if s.source_path in paths), None)


def answer_footer(prepared: Prepared, plan: Plan | None, language: str) -> str:
    """Lines after an answer: a scheduled version, and an overdue review when configured."""
    lines = []
    upcoming = scheduled_next(prepared, plan)
    if upcoming is not None:
        lines.append(
            localised(SCHEDULED_LINES, language).format(
                day=spoken_day(upcoming.effective_from, language),
                title=upcoming.title,
                version=upcoming.version,
                url=reverse("rag:view", args=[upcoming.document_id]),
            )
        )
    if settings.REVIEW_NOTICE_IN_ANSWERS and prepared.as_of is not None and prepared.as_of.is_today:
        for path in dict.fromkeys(_cited_paths(plan)):
            info = next((v for v in prepared.versions.values() if v.source_path == path), None)
            if info and info.review_by and info.review_by < prepared.as_of.today:
                lines.append(
                    localised(REVIEW_LINES, language).format(day=spoken_day(info.review_by, language))
                )
    return "\n\n".join(lines)


def citation_version(prepared: Prepared, chunk: RetrievedChunk, language: str) -> dict[str, Any]:
    """A citation's version keys: `version`, `effective_from`, `effective_until`, `superseded`
    and a `version_label` ("v3, in effect since 2026-07-01")."""
    info = prepared.versions.get(chunk.document_id)
    if info is None:
        return {"version": None, "effective_from": None, "effective_until": None, "superseded": False}
    today = prepared.as_of.today if prepared.as_of else None
    superseded = bool(today and info.superseded_on(today))
    return {
        "version": info.version,
        "effective_from": info.effective_from.isoformat() if info.effective_from else None,
        "effective_until": info.effective_until.isoformat() if info.effective_until else None,
        "superseded": superseded,
        "version_label": info.label(today, language) if today else f"v{info.version}",
    }


def cited_versions(prepared: Prepared, plan: Plan | None, cited: list[int]) -> list[dict[str, Any]]:
    """For the audit event: the exact version of every passage the answer cites."""
    if plan is None:
        return []
    records = []
    for n, chunk in enumerate(plan.given, start=1):
        if n not in cited:
            continue
        info = prepared.versions.get(chunk.document_id)
        records.append(
            {
                "n": n,
                "document_id": chunk.document_id,
                "version": info.version if info else None,
                "content_hash": info.content_hash if info else None,
                "chunk_id": chunk.chunk_id,
                "passage_sha256": passage_hash(chunk.text),
            }
        )
    return records


def as_of_detail(prepared: Prepared, plan: Plan | None) -> dict[str, Any]:
    """The audit event's version keys: the day answered for, how the question put it, what was
    announced as scheduled."""
    if prepared.as_of is None:
        return {}
    upcoming = scheduled_next(prepared, plan)
    return {
        "as_of": prepared.as_of.day.isoformat(),
        "as_of_expression": prepared.as_of.expression,
        "scheduled": upcoming.effective_from.isoformat() if upcoming else None,
    }


def done_version_fields(prepared: Prepared, plan: Plan | None) -> dict[str, Any]:
    """`as_of` (the day answered for) and `scheduled` (the next version's date, or None)."""
    upcoming = scheduled_next(prepared, plan)
    return {
        "as_of": prepared.as_of.day.isoformat() if prepared.as_of else "",
        "scheduled": upcoming.effective_from.isoformat() if upcoming else None,
    }
