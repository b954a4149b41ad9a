from __future__ import annotations

from django.urls import path, re_path

from audit import views

app_name = "audit"
urlpatterns = [
    path("", views.event_list_view, name="list"),
    path("<int:seq>/", views.event_detail_view, name="detail"),
    re_path(r"^export\.(?P<fmt>csv|jsonl)$", views.event_export_view, name="export"),
]
