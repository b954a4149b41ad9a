from __future__ import annotations

from django.contrib import admin
from django.urls import include, path

from api.urls import v1_urlpatterns
from core.health import healthz, readyz
from core.metrics import metrics_view

urlpatterns = [
    path("healthz", healthz, name="healthz"),
    path("readyz", readyz, name="readyz"),
    path("metrics", metrics_view, name="metrics"),
    path("admin/", admin.site.urls),
    path("accounts/", include("accounts.urls")),
    path("i18n/", include("django.conf.urls.i18n")),
    path("documents/", include("rag.urls")),
    path("audit/", include("audit.urls")),
    path("llm/", include("llm.urls")),
    path("api-keys/", include("api.urls")),
    path("v1/", include(v1_urlpatterns)),
    path("", include("chat.urls")),
]
