from __future__ import annotations

from django.urls import path

from chat import views

urlpatterns = [
    path("", views.home, name="home"),
    path("chat/", views.chat, name="chat"),
    path("chat/<uuid:conversation_id>/rename/", views.rename, name="chat-rename"),
    path("chat/<uuid:conversation_id>/delete/", views.delete, name="chat-delete"),
]
