from __future__ import annotations

from django.contrib import admin
from django.urls import include, path

urlpatterns = [
    path("admin/", admin.site.urls),
    path("accounts/", include("accounts.urls")),
    path("i18n/", include("django.conf.urls.i18n")),
    path("documents/", include("rag.urls")),
    path("audit/", include("audit.urls")),
    path("", include("chat.urls")),
]
