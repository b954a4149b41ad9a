from __future__ import annotations

from django.contrib import admin
from django.urls import include, path

from config.views import healthz

urlpatterns = [
    path("healthz", healthz, name="healthz"),
    path("admin/", admin.site.urls),
    path("accounts/", include("accounts.urls")),
    path("i18n/", include("django.conf.urls.i18n")),
    path("documents/", include("rag.urls")),
    path("audit/", include("audit.urls")),
    path("llm/", include("llm.urls")),
    path("", include("chat.urls")),
]
