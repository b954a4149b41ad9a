"""Live ingestion progress for the documents page (policy admins only)."""

from __future__ import annotations

import asyncio
import json

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncWebsocketConsumer
from django.conf import settings

from accounts.roles import MANAGE_DOCUMENTS
from accounts.selectors import user_has_permission
from rag.progress import DOCUMENTS_GROUP, DocumentProgressEvent


class DocumentProgressConsumer(AsyncWebsocketConsumer):
    # The last permission answer from the database, and when it was read (loop time).
    permitted: bool = False
    permission_read_at: float | None = None

    async def connect(self) -> None:
        if not await self._may_manage():
            await self.close(code=4403)
            return
        await self.channel_layer.group_add(DOCUMENTS_GROUP, self.channel_name)
        await self.accept()

    async def disconnect(self, code: int) -> None:
        await self.channel_layer.group_discard(DOCUMENTS_GROUP, self.channel_name)

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        pass  # a one-way feed: the page only listens

    async def document_progress(self, event: DocumentProgressEvent) -> None:
        # Permission can be withdrawn while the page is open.
        if not await self._may_manage():
            await self.close(code=4403)
            return
        await self.send(text_data=json.dumps({k: v for k, v in event.items() if k != "type"}))

    async def _may_manage(self) -> bool:
        """Read from the database (a removed role or a disabled account counts), at most once
        per CHAT_PERMISSION_RECHECK_SECONDS: progress events come many a second while embedding."""
        user = self.scope.get("user")
        if user is None or not user.is_authenticated:
            return False
        now = asyncio.get_running_loop().time()
        read_at = self.permission_read_at
        if read_at is None or now - read_at >= settings.CHAT_PERMISSION_RECHECK_SECONDS:
            session = self.scope.get("session")
            self.permitted = await database_sync_to_async(user_has_permission)(
                user_id=user.pk,
                permission=MANAGE_DOCUMENTS,
                session_key=getattr(session, "session_key", None),
            )
            self.permission_read_at = now
        return self.permitted
