"""The chat socket: authenticate on connect, re-check permission on every message (from the
database at most every CHAT_PERMISSION_RECHECK_SECONDS, so a revoked role ends the socket).

Contract (docs/websocket-api.md): client sends ask / stop / feedback; server sends
started, token, handover, citations, done, error. One generation at a time per socket.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from typing import Any

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncWebsocketConsumer
from django.conf import settings

from chat.events import AskError, Started, TokenOut, event_as_json
from chat.limits import rate_limited
from chat.pipeline import question_answer
from chat.selectors import user_may_ask
from chat.services import message_feedback_record
from core import metrics
from core.consumers import PermissionRecheckMixin
from core.tracing import new_id, trace_id_var
from privacy.services import RestoringStream, placeholders_restore_html

logger = logging.getLogger(__name__)


class ChatConsumer(PermissionRecheckMixin, AsyncWebsocketConsumer):
    generation: asyncio.Task[None] | None = None
    # Tokens that arrived in one turn of the event loop, sent as one frame when it yields.
    pending_tokens: list[str]
    flush_task: asyncio.Task[None] | None = None
    # Conversation id → placeholder → what this user typed, for this socket's lifetime only:
    # the asker sees their own words where the model echoes a placeholder (never stored).
    restorations: dict[str, dict[str, str]]
    # The answer being streamed, with those words restored (privacy.services.RestoringStream).
    stream: RestoringStream

    async def connect(self) -> None:
        if not await self.permission_holds():
            await self.close(code=self.close_code_refused())
            return
        await self.accept()
        self.pending_tokens = []
        self.restorations = {}
        self.stream = RestoringStream(restorations={})
        self.counted = metrics.enabled()
        if self.counted:
            metrics.WEBSOCKETS.inc()

    async def disconnect(self, code: int) -> None:
        if getattr(self, "counted", False):
            metrics.WEBSOCKETS.dec()
            self.counted = False
        await self._cancel_generation()  # a closed tab must not keep a GPU busy

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
        if not await self.permission_holds():
            await self.send_error("forbidden", "You may no longer ask questions.")
            await self._cancel_generation()
            await self.close(code=self.close_code_refused())
            return
        await self.handle_message(message)

    async def handle_message(self, message: dict[str, Any]) -> None:
        kind = message["type"]
        if kind == "ask":
            await self.on_ask(message)
        elif kind == "stop":
            await self._cancel_generation()
        elif kind == "feedback":
            await self.on_feedback(message)
        else:
            await self.send_error("bad_request", f"Unknown message type {kind!r}.")

    async def on_ask(self, message: dict[str, Any]) -> None:
        question, conversation_id = message.get("question"), message.get("conversation_id")
        if not isinstance(question, str) or not (conversation_id is None or isinstance(conversation_id, str)):
            await self.send_error(
                "bad_request", "'ask' needs a question string and a conversation_id or null."
            )
            return
        if self.generation is not None and not self.generation.done():
            await self.send_error("busy", "An answer is still being written. Stop it or wait for it.")
            return
        user = self.scope["user"]
        if await rate_limited(user_id=user.pk, action="ask", per_minute=settings.CHAT_RATE_LIMIT_PER_MINUTE):
            await self.send_error("rate_limited", "Too many questions in a minute. Please wait a little.")
            return
        self.generation = asyncio.create_task(self._answer(question, conversation_id))

    async def _answer(self, question: str, conversation_id: str | None) -> None:
        trace_id_var.set(new_id())  # this task's own context: every log line of this question
        try:
            async for event in question_answer(
                user=self.scope["user"], question=question, conversation_id=conversation_id
            ):
                if isinstance(event, TokenOut):
                    self._queue_token(event.text)
                    continue
                await self._flush_tokens(final=True)  # frames keep the order of events
                if isinstance(event, Started):
                    mapping = self.restorations.setdefault(event.conversation_id, {})
                    mapping.update(event.restorations)
                    self.stream = RestoringStream(restorations=mapping)
                await self.send_json(self._restore(event_as_json(event)))
        except AskError as exc:
            await self.send_error(exc.code, exc.message)
        except asyncio.CancelledError:
            raise
        except Exception:
            logger.exception("answering failed")
            await self.send_error("unavailable", "Something went wrong while answering. Please try again.")

    def _queue_token(self, text: str) -> None:
        """Tokens the stream hands over without waiting (a burst read from the socket at once)
        share one frame: the flush runs as soon as this task waits for the network, so no token
        is held back for longer than it takes to read the ones beside it."""
        if not self.pending_tokens:  # the first of a burst: nothing is waiting to flush them yet
            self.flush_task = asyncio.get_running_loop().create_task(self._flush_tokens())
        self.pending_tokens.append(text)

    async def _flush_tokens(self, *, final: bool = False) -> None:
        text, self.pending_tokens = "".join(self.pending_tokens), []
        # "<PERS" may be completed by the next tokens: the stream holds it back until it is.
        text = self.stream.feed(text, final=final)
        if text:
            await self.send_json({"type": "token", "text": text})

    def _restore(self, content: dict[str, Any]) -> dict[str, Any]:
        if content.get("type") == "done" and content.get("html"):
            mapping = self.restorations.get(content.get("conversation_id", ""), {})
            content["html"] = placeholders_restore_html(html=content["html"], restorations=mapping)
        return content

    async def on_feedback(self, message: dict[str, Any]) -> None:
        value, message_id, comment = (
            message.get("value"),
            message.get("message_id"),
            message.get("comment", ""),
        )
        if not isinstance(message_id, str) or value not in (1, -1) or not isinstance(comment, str):
            await self.send_error(
                "bad_request", "'feedback' needs message_id, value 1 or -1, and an optional comment."
            )
            return
        user = self.scope["user"]
        # Every feedback is an audit event: a script must not be able to flood the log with them.
        limit = settings.CHAT_FEEDBACK_RATE_LIMIT_PER_MINUTE
        if await rate_limited(user_id=user.pk, action="feedback", per_minute=limit):
            await self.send_error("rate_limited", "Too much feedback in a minute. Please wait a little.")
            return
        try:
            await database_sync_to_async(message_feedback_record)(
                user=self.scope["user"], message_id=message_id, value=value, comment=comment
            )
        except AskError as exc:
            await self.send_error(exc.code, exc.message)
            return
        await self.send_json({"type": "feedback_saved", "message_id": message_id})

    async def _cancel_generation(self) -> None:
        task, self.generation = self.generation, None
        if task is not None and not task.done():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def send_json(self, content: dict[str, Any]) -> None:
        await self.send(text_data=json.dumps(content, ensure_ascii=False))

    async def send_error(self, code: str, text: str) -> None:
        await self.send_json({"type": "error", "code": code, "message": text})

    def permission_read(self, *, user_id: int, session_key: str | None) -> bool:
        return user_may_ask(user_id=user_id, session_key=session_key)
