"""Pages of a policy's life: the changes between two versions, the exact passage an answer
cited (auditors, even after the version was superseded or retired), and the review-by date.
The upload form's version fields are read here too (rag/views.py, upload)."""

from __future__ import annotations

from datetime import date

from django.contrib import messages
from django.contrib.auth.models import User
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.utils.translation import gettext as _
from django.views.decorators.http import require_POST

from accounts.decorators import role_required
from accounts.roles import ASK_QUESTIONS, MANAGE_DOCUMENTS, VIEW_AUDIT
from audit.models import AuditEvent
from audit.services import audit_event_append, pseudonym
from core.clock import company_today
from rag.changes import versions_changes
from rag.lifecycle import VersionDates, VersionError, document_set_review_by
from rag.models import Chunk, Document
from rag.selectors import document_visible_to
from rag.versions import passage_hash, version_history, version_info


def form_day(value: str | None, label: str) -> date | None:
    """A date field of a form: empty is None; anything else must be YYYY-MM-DD."""
    value = (value or "").strip()
    if not value:
        return None
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise VersionError(_("%(label)s is not a date (YYYY-MM-DD).") % {"label": label}) from None


def upload_version_options(request: HttpRequest) -> tuple[str | None, VersionDates]:
    """The upload form's choice of document to version ("" keeps the same-name rule) and dates."""
    post = request.POST
    dates = VersionDates(
        effective_from=form_day(post.get("effective_from"), _("Effective from")),
        effective_until=form_day(post.get("effective_until"), _("Effective until")),
        review_by=form_day(post.get("review_by"), _("Review by")),
    )
    dates.check()
    return post.get("version_of", "").strip() or None, dates


def _readable(request: HttpRequest, document_id: int) -> Document:
    """Admins see every version; others only those their groups may read."""
    if request.user.has_perm(MANAGE_DOCUMENTS):
        return get_object_or_404(Document, pk=document_id)
    document = document_visible_to(user=request.user, document_id=document_id)
    if document is None:
        raise Http404
    return document


@role_required(ASK_QUESTIONS)
def changes(request: HttpRequest, document_id: int) -> HttpResponse:
    """What changed from one version (?from=ID, default the previous one) to this one."""
    new = _readable(request, document_id)
    history = [d for d in version_history(source_path=new.source_path) if d.pk != new.pk]
    from_id = request.GET.get("from", "")
    old: Document | None
    if from_id.isdigit():
        old = _readable(request, int(from_id))
        if old.source_path != new.source_path:
            raise Http404
    else:
        old = next((d for d in history if d.version < new.version), None) or (history[0] if history else None)
    if old is None:
        messages.info(request, _("“%(title)s” has only one version.") % {"title": new.title})
        return redirect("rag:view", document_id=new.pk)
    today = company_today()
    return render(
        request,
        "rag/changes.html",
        {
            "old": old,
            "new": new,
            "old_label": version_info(old).label(today),
            "new_label": version_info(new).label(today),
            "changes": versions_changes(old=old, new=new),
            "history": history,
        },
    )


@role_required(VIEW_AUDIT)
def cited_passage(request: HttpRequest, chunk_id: int) -> HttpResponse:
    """The exact passage an answer cited (?document=ID&sha=HASH from the question's audit event),
    read-only, with the state of its version today: in effect, superseded on …, retired on …."""
    document_id = request.GET.get("document", "")
    expected = request.GET.get("sha", "")[:64]
    chunk = Chunk.objects.select_related("document").filter(pk=chunk_id).first()
    if chunk is None and document_id.isdigit():
        # Re-indexed since: the same text under a new id, found by its hash.
        chunk = next(
            (
                c
                for c in Chunk.objects.filter(document_id=int(document_id))
                if passage_hash(c.text) == expected
            ),
            None,
        )
    if chunk is None:
        raise Http404
    document = chunk.document
    assert isinstance(request.user, User)  # role_required let only a signed-in auditor through
    audit_event_append(
        kind=AuditEvent.Kind.AUDITOR_VIEW,
        actor=pseudonym(user_id=request.user.pk),
        detail={"view": "cited_passage", "chunk_id": chunk.pk, "document_id": document.pk},
    )
    today = company_today()
    info = version_info(document)
    return render(
        request,
        "rag/cited_passage.html",
        {
            "document": document,
            "chunk": chunk,
            "label": info.label(today),
            "superseded_on": info.superseded_on(today),
            "matches": not expected or passage_hash(chunk.text) == expected,
            "expected": expected,
        },
    )


@require_POST
@role_required(MANAGE_DOCUMENTS)
def review_by(request: HttpRequest, document_id: int) -> HttpResponse:
    document = get_object_or_404(Document, pk=document_id)
    assert isinstance(request.user, User)
    try:
        day = form_day(request.POST.get("review_by"), _("Review by"))
    except VersionError as exc:
        messages.error(request, str(exc))
        return redirect("rag:documents")
    if document_set_review_by(document=document, review_by=day, changed_by=request.user):
        messages.info(
            request,
            _("“%(title)s”: review by %(day)s.") % {"title": document.title, "day": day or _("no date")},
        )
    return redirect("rag:documents")
