from __future__ import annotations

from django.http import HttpRequest

from accounts.roles import ASK_QUESTIONS, MANAGE_DOCUMENTS, VIEW_AUDIT


def roles(request: HttpRequest) -> dict[str, bool]:
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated:
        return {"can_ask": False, "can_manage_documents": False, "can_view_audit": False}
    return {
        "can_ask": user.has_perm(ASK_QUESTIONS),
        "can_manage_documents": user.has_perm(MANAGE_DOCUMENTS),
        "can_view_audit": user.has_perm(VIEW_AUDIT),
    }
