"""Sockets no route serves."""

from __future__ import annotations

from channels.generic.websocket import AsyncWebsocketConsumer

CLOSE_NOT_FOUND = 4404


class NotFoundConsumer(AsyncWebsocketConsumer):
    """An unknown /ws/ path: refused with 4404 (Channels' router would raise, a 500)."""

    async def connect(self) -> None:
        await self.close(code=CLOSE_NOT_FOUND)
