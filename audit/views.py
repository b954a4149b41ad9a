"""Auditor pages: read-only, and every look at the log is itself logged."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator
from datetime import date
from typing import Any

from django.core.paginator import Paginator
from django.http import HttpRequest, HttpResponse, StreamingHttpResponse
from django.shortcuts import get_object_or_404, render

from accounts.decorators import role_required
from accounts.roles import VIEW_AUDIT
from audit.models import AuditEvent
from audit.selectors import EventFilters, event_choices, event_list
from audit.services import audit_chain_status_quick, audit_event_append, pseudonym

EXPORT_FIELDS = (
    "seq", "created_at", "kind", "actor", "conversation_id", "message_id", "language", "question", "answer",
    "pii_counts", "retrieved", "cited_documents", "backend", "outcome", "attempts", "verified", "latencies",
    "prompt_tokens", "completion_tokens", "feedback", "prev_hash", "hash",
)  # fmt: skip


# Dates outside these years filter nothing real and overflow time-zone arithmetic (9999-12-31
# plus a day): they are ignored like any unreadable date.
FIRST_YEAR, LAST_YEAR = 1970, 9000


def _date(value: str | None) -> date | None:
    try:
        day = date.fromisoformat(value) if value else None
    except ValueError:
        return None
    return day if day is not None and FIRST_YEAR <= day.year <= LAST_YEAR else None


def _text(value: str | None, limit: int) -> str:
    """A filter value as PostgreSQL can take it: NUL bytes are never part of one."""
    return (value or "").replace("\x00", "").strip()[:limit]


# Spreadsheets run a cell that starts with one of these as a formula (CSV injection).
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def _csv_cell(value: Any) -> Any:
    if isinstance(value, str) and value.startswith(FORMULA_STARTS):
        return "'" + value
    return value


def _filters(request: HttpRequest) -> EventFilters:
    get = request.GET
    return EventFilters(
        date_from=_date(get.get("from")),
        date_to=_date(get.get("to")),
        actor=_text(get.get("actor"), 32),
        backend=_text(get.get("backend"), 64),
        outcome=_text(get.get("outcome"), 20),
        pii=get.get("pii", "") if get.get("pii") in ("yes", "no") else "",
        feedback=get.get("feedback", "") if get.get("feedback") in ("up", "down", "none") else "",
        # Questions by default; sign-in syncs, deprovisioning, document access... on request.
        kind=get.get("kind", "") if get.get("kind") in AuditEvent.Kind.values else AuditEvent.Kind.QUESTION,
    )


def _log_access(request: HttpRequest, kind: str, detail: dict[str, Any]) -> None:
    assert request.user.pk is not None  # role_required let only signed-in auditors through
    audit_event_append(kind=kind, actor=pseudonym(user_id=request.user.pk), detail=detail)


@role_required(VIEW_AUDIT)
def event_list_view(request: HttpRequest) -> HttpResponse:
    filters = _filters(request)
    page = Paginator(event_list(filters=filters), 50).get_page(request.GET.get("page"))
    _log_access(request, AuditEvent.Kind.AUDITOR_VIEW, {"view": "list", "filters": filters.as_dict()})
    query = request.GET.copy()
    query.pop("page", None)
    return render(
        request,
        "audit/list.html",
        {
            "page": page,
            "filters": filters,
            "choices": event_choices(),
            "kinds": AuditEvent.Kind.choices,
            "chain": audit_chain_status_quick(),
            "query": query.urlencode(),
        },
    )


@role_required(VIEW_AUDIT)
def event_detail_view(request: HttpRequest, seq: int) -> HttpResponse:
    event = get_object_or_404(AuditEvent, seq=seq)
    feedback = AuditEvent.objects.filter(kind=AuditEvent.Kind.FEEDBACK, message_id=event.message_id).order_by(
        "seq"
    )
    _log_access(request, AuditEvent.Kind.AUDITOR_VIEW, {"view": "detail", "seq": seq})
    return render(
        request,
        "audit/detail.html",
        {
            "event": event,
            "feedback": feedback if event.message_id else [],
            "pretty": {
                name: json.dumps(getattr(event, name), indent=2, ensure_ascii=False)
                for name in ("attempts", "retrieved", "cited_documents", "latencies", "pii_counts", "detail")
            },
        },
    )


def _row(event: AuditEvent) -> dict[str, Any]:
    row = {name: getattr(event, name) for name in EXPORT_FIELDS}
    row["created_at"] = event.created_at.isoformat()
    row["conversation_id"] = str(event.conversation_id or "")
    row["message_id"] = str(event.message_id or "")
    row["feedback"] = getattr(event, "user_feedback", None)
    return row


def _csv_lines(events: Iterator[AuditEvent]) -> Iterator[str]:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=EXPORT_FIELDS)
    writer.writeheader()
    for event in events:
        row = {
            k: _csv_cell(json.dumps(v, ensure_ascii=False) if isinstance(v, dict | list) else v)
            for k, v in _row(event).items()
        }
        writer.writerow(row)
        yield buffer.getvalue()
        buffer.seek(0)
        buffer.truncate()
    yield buffer.getvalue()


def _jsonl_lines(events: Iterator[AuditEvent]) -> Iterator[str]:
    for event in events:
        yield json.dumps(_row(event), ensure_ascii=False, default=str) + "\n"


@role_required(VIEW_AUDIT)
def event_export_view(request: HttpRequest, fmt: str) -> StreamingHttpResponse:
    filters = _filters(request)
    events = event_list(filters=filters)
    _log_access(
        request,
        AuditEvent.Kind.AUDITOR_EXPORT,
        {"format": fmt, "filters": filters.as_dict(), "rows": events.count()},
    )
    rows = events.iterator(chunk_size=500)
    if fmt == "csv":
        response = StreamingHttpResponse(_csv_lines(rows), content_type="text/csv; charset=utf-8")
    else:
        response = StreamingHttpResponse(
            _jsonl_lines(rows), content_type="application/x-ndjson; charset=utf-8"
        )
    stamp = date.today().isoformat()
    response["Content-Disposition"] = f'attachment; filename="policydesk-audit-{stamp}.{fmt}"'
    return response
