"""What every socket shares: the permission re-check, and the consumer for paths no route serves."""

from __future__ import annotations

import asyncio
from typing import Any

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncWebsocketConsumer
from django.conf import settings

from accounts.selectors import session_recheck_due

CLOSE_UNAUTHENTICATED = 4401
CLOSE_FORBIDDEN = 4403
CLOSE_NOT_FOUND = 4404


class NotFoundConsumer(AsyncWebsocketConsumer):
    """An unknown /ws/ path: refused with 4404 (Channels' router would raise, a 500)."""

    async def connect(self) -> None:
        await self.close(code=CLOSE_NOT_FOUND)


class PermissionRecheckMixin:
    """A socket's permission, checked in connect() and again before every event.

    The answer is read from the database (a removed role, a disabled account, a logout or a
    password change count) at most every CHAT_PERMISSION_RECHECK_SECONDS, not on every event:
    database calls from every socket share Channels' one sync thread, and a question would
    wait behind the others' checks. Subclasses say what the permission is in
    `permission_read`, a selector call run in that thread.
    """

    scope: dict[str, Any]
    # The last answer from the database, and when it was read (event loop time).
    permitted: bool = False
    permission_read_at: float | None = None
    # Refused because the OIDC session's re-check at the provider is due: "signed out" (4401),
    # so the page reloads and a page load re-checks silently (accounts/sessions.py).
    recheck_due: bool = False

    def permission_read(self, *, user_id: int, session_key: str | None) -> bool:
        raise NotImplementedError

    async def permission_holds(self) -> bool:
        user = self.scope.get("user")
        if user is None or not user.is_authenticated:
            return False
        now = asyncio.get_running_loop().time()
        read_at = self.permission_read_at
        if read_at is None or now - read_at >= settings.CHAT_PERMISSION_RECHECK_SECONDS:
            session = self.scope.get("session")
            session_key = getattr(session, "session_key", None)
            self.permitted = await database_sync_to_async(self.permission_read)(
                user_id=user.pk, session_key=session_key
            )
            self.permission_read_at = now
            if not self.permitted and session_key:
                self.recheck_due = await database_sync_to_async(session_recheck_due)(session_key=session_key)
        return self.permitted

    def close_code_refused(self) -> int:
        """4401 for a socket without a signed-in user (or an OIDC session whose re-check is due),
        4403 for one whose user may not."""
        user = self.scope.get("user")
        if self.recheck_due or user is None or not user.is_authenticated:
            return CLOSE_UNAUTHENTICATED
        return CLOSE_FORBIDDEN
