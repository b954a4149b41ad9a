"""Live ingestion progress for the documents page (policy admins only)."""

from __future__ import annotations

import json

from channels.generic.websocket import AsyncWebsocketConsumer

from accounts.roles import MANAGE_DOCUMENTS
from accounts.selectors import user_has_permission
from core.consumers import PermissionRecheckMixin
from rag.progress import DOCUMENTS_GROUP, DocumentProgressEvent


class DocumentProgressConsumer(PermissionRecheckMixin, AsyncWebsocketConsumer):
    async def connect(self) -> None:
        if not await self.permission_holds():
            await self.close(code=self.close_code_refused())
            return
        await self.channel_layer.group_add(DOCUMENTS_GROUP, self.channel_name)
        await self.accept()

    async def disconnect(self, code: int) -> None:
        await self.channel_layer.group_discard(DOCUMENTS_GROUP, self.channel_name)

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        pass  # a one-way feed: the page only listens

    async def document_progress(self, event: DocumentProgressEvent) -> None:
        # Permission can be withdrawn while the page is open.
        if not await self.permission_holds():
            await self.close(code=self.close_code_refused())
            return
        await self.send(text_data=json.dumps({k: v for k, v in event.items() if k != "type"}))

    def permission_read(self, *, user_id: int, session_key: str | None) -> bool:
        return user_has_permission(user_id=user_id, permission=MANAGE_DOCUMENTS, session_key=session_key)
