from __future__ import annotations

from django.urls import path

from rag import version_views, views

app_name = "rag"
urlpatterns = [
    path("", views.documents, name="documents"),
    path("upload/", views.upload, name="upload"),
    path("<int:document_id>/", views.view, name="view"),
    path("<int:document_id>/reindex/", views.reindex, name="reindex"),
    path("<int:document_id>/access/", views.access, name="access"),
    path("<int:document_id>/retire/", views.retire, name="retire"),
    path("<int:document_id>/delete/", views.delete, name="delete"),
    path("<int:document_id>/changes/", version_views.changes, name="changes"),
    path("<int:document_id>/review-by/", version_views.review_by, name="review_by"),
    path("passages/<int:chunk_id>/", version_views.cited_passage, name="cited_passage"),
]
