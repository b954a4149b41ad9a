from __future__ import annotations

from django.contrib.admin.views.decorators import staff_member_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from llm.services import backends_status


@staff_member_required
def status(request: HttpRequest) -> HttpResponse:
    return render(request, "llm/status.html", {"backends": backends_status()})
