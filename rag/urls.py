from __future__ import annotations

from django.urls import path

from rag import views

app_name = "rag"
urlpatterns = [
    path("", views.documents, name="documents"),
]
