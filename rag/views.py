from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.models import User
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.utils.translation import gettext as _
from django.views.decorators.http import require_POST

from accounts.decorators import role_required
from accounts.roles import ASK_QUESTIONS, MANAGE_DOCUMENTS
from core.clock import company_today
from rag.lifecycle import VersionError
from rag.models import Document
from rag.selectors import (
    access_group_names,
    document_list,
    document_visible_to,
    evidence_spans,
    text_segments,
)
from rag.services import (
    access_groups_parse,
    document_create_from_upload,
    document_delete,
    document_reindex,
    document_retire,
    document_set_access,
)
from rag.version_views import upload_version_options
from rag.versions import documents_due_for_review, documents_with_lifecycle, version_info, version_targets

MAX_FILES_PER_UPLOAD = 50


@role_required(MANAGE_DOCUMENTS)
def documents(request: HttpRequest) -> HttpResponse:
    today = company_today()
    targets = version_targets()
    # ?version_of=PATH (a row's "new version" link): that document chosen in the upload form,
    # its readers ticked, so a restricted policy's next version stays restricted at a glance.
    version_of = request.GET.get("version_of", "")
    chosen = next((t for t in targets if t.source_path == version_of), None)
    return render(
        request,
        "rag/documents.html",
        {
            "documents": documents_with_lifecycle(document_list(), today=today),
            "access_groups": access_group_names(),
            "due_for_review": documents_due_for_review(today=today),
            "version_targets": targets,
            "version_of": chosen.source_path if chosen else "",
            "preset_readers": set(chosen.allowed_groups.values_list("name", flat=True)) if chosen else set(),
            "today": today,
        },
    )


def _group_names(request: HttpRequest) -> list[str]:
    """Ticked groups plus any typed in "new groups" (comma-separated)."""
    typed = request.POST.get("new_groups", "").split(",")
    return [*request.POST.getlist("groups"), *typed]


@require_POST
@role_required(MANAGE_DOCUMENTS)
def upload(request: HttpRequest) -> HttpResponse:
    files = request.FILES.getlist("files")
    if not files:
        messages.error(request, _("Choose at least one file to upload."))
        return redirect("rag:documents")
    if len(files) > MAX_FILES_PER_UPLOAD:
        messages.error(request, _("Upload at most %(n)d files at a time.") % {"n": MAX_FILES_PER_UPLOAD})
        return redirect("rag:documents")
    try:
        groups = access_groups_parse(names=_group_names(request))
        new_version_of, dates = upload_version_options(request)
        if new_version_of and len(files) > 1:
            raise VersionError(_("Upload one file at a time as a new version of a document."))
    except ValueError as exc:
        messages.error(request, str(exc))
        return redirect("rag:documents")
    for upload_file in files:
        try:
            result = document_create_from_upload(
                stream=upload_file,
                file_name=upload_file.name or "upload",
                uploaded_by=request.user,
                # Nothing ticked: a new version keeps its predecessor's readers (rag/lifecycle.py).
                allowed_groups=groups or None,
                new_version_of=new_version_of,
                dates=dates,
            )
        except VersionError as exc:
            messages.error(request, str(exc))
            return redirect("rag:documents")
        if not result.created:
            messages.info(
                request,
                _("%(name)s has the same content as “%(title)s”; nothing new was added.")
                % {"name": upload_file.name, "title": result.document.title},
            )
    return redirect("rag:documents")


@require_POST
@role_required(MANAGE_DOCUMENTS)
def reindex(request: HttpRequest, document_id: int) -> HttpResponse:
    document = get_object_or_404(Document, pk=document_id)
    try:
        document_reindex(document=document)
    except ValueError as exc:
        messages.error(request, str(exc))
    return redirect("rag:documents")


@require_POST
@role_required(MANAGE_DOCUMENTS)
def access(request: HttpRequest, document_id: int) -> HttpResponse:
    """Who may read a document: the ticked groups, or everyone when none is ticked."""
    document = get_object_or_404(Document, pk=document_id)
    assert isinstance(request.user, User)  # role_required let only a signed-in user through
    try:
        groups = access_groups_parse(names=_group_names(request))
    except ValueError as exc:
        messages.error(request, str(exc))
        return redirect("rag:documents")
    if document_set_access(document=document, groups=groups, changed_by=request.user):
        who = ", ".join(g.name for g in groups) or _("everyone")
        messages.info(
            request, _("“%(title)s” can now be read by: %(who)s.") % {"title": document.title, "who": who}
        )
    return redirect("rag:documents")


@require_POST
@role_required(MANAGE_DOCUMENTS)
def retire(request: HttpRequest, document_id: int) -> HttpResponse:
    user = request.user if isinstance(request.user, User) else None
    document_retire(document=get_object_or_404(Document, pk=document_id), retired_by=user)
    return redirect("rag:documents")


@require_POST
@role_required(MANAGE_DOCUMENTS)
def delete(request: HttpRequest, document_id: int) -> HttpResponse:
    document_delete(document=get_object_or_404(Document, pk=document_id))
    return redirect("rag:documents")


@role_required(ASK_QUESTIONS)
def view(request: HttpRequest, document_id: int) -> HttpResponse:
    """A document's passages: the cited one (?chunk=ID) highlighted, and in it the evidence
    sentences the answer quoted (&hl=START-END,…, character offsets). Same access rule as retrieval."""
    document = document_visible_to(user=request.user, document_id=document_id)
    if document is None:
        raise Http404
    highlighted = request.GET.get("chunk", "")
    spans = evidence_spans(request.GET.get("hl", ""))
    passages = [
        {"chunk": chunk, "segments": text_segments(chunk.text, spans if str(chunk.pk) == highlighted else [])}
        for chunk in document.chunks.all()
    ]
    today = company_today()
    info = version_info(document, today=today)
    return render(
        request,
        "rag/view.html",
        {
            "document": document,
            "passages": passages,
            "highlighted": highlighted,
            "version_label": info.label(today),
            "superseded_on": info.superseded_on(today),
            "scheduled": info.scheduled(today),
        },
    )
