"""The API keys page (mounted at /api-keys/) and the OpenAI-compatible API (at /v1/)."""

from __future__ import annotations

from django.urls import path, re_path

from api import views

app_name = "api_keys"

urlpatterns = [
    path("", views.keys_page, name="page"),
    path("create/", views.key_create, name="create"),
    path("<int:key_id>/revoke/", views.key_revoke, name="revoke"),
    path("roles/", views.role_access, name="roles"),
]

v1_urlpatterns = [
    path("chat/completions", views.chat_completions, name="api-chat-completions"),
    path("models", views.models, name="api-models"),
    path("models/<str:model_id>", views.model_detail, name="api-model"),
    path("openapi.json", views.openapi, name="api-openapi"),
    # Anything else under /v1/ is OpenAI's JSON 404, not an HTML page.
    re_path(r"^(?P<rest>.*)$", views.not_found),
]
