from __future__ import annotations

from django.urls import path, re_path

from chat.consumers import ChatConsumer
from core.consumers import NotFoundConsumer
from rag.consumers import DocumentProgressConsumer

websocket_urlpatterns = [
    path("ws/chat/", ChatConsumer.as_asgi()),
    path("ws/documents/", DocumentProgressConsumer.as_asgi()),
    # Any other socket path is closed with a code, not answered with a server error.
    re_path(r"", NotFoundConsumer.as_asgi()),
]
