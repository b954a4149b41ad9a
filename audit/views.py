from __future__ import annotations

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from accounts.decorators import role_required
from accounts.roles import VIEW_AUDIT


@role_required(VIEW_AUDIT)
def event_list(request: HttpRequest) -> HttpResponse:
    return render(request, "audit/list.html")
