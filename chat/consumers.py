"""The chat socket: authenticate on connect, re-check permission on every message."""

from __future__ import annotations

import json
from typing import Any

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncWebsocketConsumer
from django.conf import settings

from accounts.roles import ASK_QUESTIONS

CLOSE_UNAUTHENTICATED = 4401
CLOSE_FORBIDDEN = 4403


class ChatConsumer(AsyncWebsocketConsumer):
    async def connect(self) -> None:
        if not await self._may_ask():
            user = self.scope.get("user")
            code = CLOSE_FORBIDDEN if user is not None and user.is_authenticated else CLOSE_UNAUTHENTICATED
            await self.close(code=code)
            return
        await self.accept()

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        if bytes_data is not None or text_data is None:
            await self.send_error("bad_request", "Send JSON text frames.")
            return
        if len(text_data.encode()) > settings.WS_MAX_MESSAGE_BYTES:
            await self.send_error("too_long", "The message is too large.")
            return
        try:
            message = json.loads(text_data)
        except json.JSONDecodeError:
            await self.send_error("bad_request", "The message is not valid JSON.")
            return
        if not isinstance(message, dict) or not isinstance(message.get("type"), str):
            await self.send_error("bad_request", "A message is a JSON object with a 'type'.")
            return
        if not await self._may_ask():
            await self.send_error("forbidden", "You may no longer ask questions.")
            await self.close(code=CLOSE_FORBIDDEN)
            return
        await self.handle_message(message)

    async def handle_message(self, message: dict[str, Any]) -> None:
        await self.send_error("bad_request", f"Unknown message type {message['type']!r}.")

    async def send_error(self, code: str, text: str) -> None:
        await self.send(text_data=json.dumps({"type": "error", "code": code, "message": text}))

    async def _may_ask(self) -> bool:
        user = self.scope.get("user")
        if user is None or not user.is_authenticated:
            return False
        return bool(await database_sync_to_async(user.has_perm)(ASK_QUESTIONS))
