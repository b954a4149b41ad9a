from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.contrib.auth.models import User
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_POST

from accounts.decorators import role_required
from accounts.roles import ASK_QUESTIONS, MANAGE_DOCUMENTS, VIEW_AUDIT
from chat.selectors import conversation_get, conversation_list, conversation_messages
from chat.services import conversation_delete, conversation_rename


def _user(request: HttpRequest) -> User:
    assert isinstance(request.user, User)  # role_required let only signed-in users through
    return request.user


@login_required
def home(request: HttpRequest) -> HttpResponse:
    """Send each role to its own start page."""
    user = request.user
    if user.has_perm(ASK_QUESTIONS):
        return redirect("chat")
    if user.has_perm(VIEW_AUDIT):
        return redirect("audit:list")
    if user.has_perm(MANAGE_DOCUMENTS):
        return redirect("rag:documents")
    return render(request, "no_role.html", status=403)


@role_required(ASK_QUESTIONS)
def chat(request: HttpRequest) -> HttpResponse:
    current = None
    requested = request.GET.get("c")
    if requested:
        current = conversation_get(user=_user(request), conversation_id=requested)
        if current is None:
            raise Http404("No such conversation")
    return render(
        request,
        "chat/chat.html",
        {
            "conversations": conversation_list(user=_user(request))[:100],
            "current": current,
            "messages_list": conversation_messages(conversation=current) if current else [],
        },
    )


@require_POST
@role_required(ASK_QUESTIONS)
def rename(request: HttpRequest, conversation_id: str) -> HttpResponse:
    if conversation_get(user=_user(request), conversation_id=str(conversation_id)) is None:
        raise Http404("No such conversation")
    title = request.POST.get("title", "")
    if title.strip():
        conversation_rename(user=_user(request), conversation_id=conversation_id, title=title)
    return redirect(reverse("chat") + f"?c={conversation_id}")


@require_POST
@role_required(ASK_QUESTIONS)
def delete(request: HttpRequest, conversation_id: str) -> HttpResponse:
    conversation_delete(user=_user(request), conversation_id=conversation_id)
    return redirect("chat")
