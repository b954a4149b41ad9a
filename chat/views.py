from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render

from accounts.decorators import role_required
from accounts.roles import ASK_QUESTIONS, MANAGE_DOCUMENTS, VIEW_AUDIT


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
    return render(request, "chat/chat.html")
