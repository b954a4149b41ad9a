from __future__ import annotations

from django.urls import path

from chat.consumers import ChatConsumer
from rag.consumers import DocumentProgressConsumer

websocket_urlpatterns = [
    path("ws/chat/", ChatConsumer.as_asgi()),
    path("ws/documents/", DocumentProgressConsumer.as_asgi()),
]
