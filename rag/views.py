from __future__ import annotations

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from accounts.decorators import role_required
from accounts.roles import MANAGE_DOCUMENTS


@role_required(MANAGE_DOCUMENTS)
def documents(request: HttpRequest) -> HttpResponse:
    return render(request, "rag/documents.html")
