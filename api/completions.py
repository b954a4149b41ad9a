"""One API answer: the pipeline's events (chat/pipeline.py, the same path as the chat socket)
turned into OpenAI's chat completion, streamed or whole.

The content is what the chat shows, as Markdown: the evidence quotes with their [n] markers and,
in generate mode, the model's checked text. The caller's own words come back where the answer
holds their placeholders (for this response only); links are made absolute; the content ends
with a plain "Sources:" list. The citations, the verdict and the checks ride in a `policydesk`
extension that clients may ignore: on the final chunk of a stream, on the message otherwise.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import AsyncGenerator, AsyncIterator
from dataclasses import dataclass, field
from typing import Any

from asgiref.sync import sync_to_async

from api.selectors import document_versions
from api.wire import DONE, ApiError, ChunkWriter, completion, completion_id, sse, usage
from chat.events import AskError, CitationsOut, Done, Event, HandoverOut, Started, TokenOut
from chat.prompt import MARK_END, MARK_START, UNSUPPORTED_TITLE
from core.db import release_db_connection
from privacy.services import RestoringStream, placeholders_restore

logger = logging.getLogger(__name__)

# The pipeline's refusals, as HTTP: a too-long question is 413, a busy model 503 with a retry.
ASK_ERRORS: dict[str, tuple[int, str]] = {
    "bad_request": (400, "invalid_request_error"),
    "too_long": (413, "invalid_request_error"),
    "busy": (503, "server_error"),
    "unavailable": (503, "server_error"),
}
BUSY_RETRY_AFTER_SECONDS = 5
RELATIVE_LINK = re.compile(r"\]\((/[^)\s]*)\)")
MARKDOWN_SPECIAL = re.compile(r"([\\`*_\[\]])")


def ask_error(exc: AskError) -> ApiError:
    status, kind = ASK_ERRORS.get(exc.code, (500, "server_error"))
    retry = BUSY_RETRY_AFTER_SECONDS if exc.code == "busy" else None
    return ApiError(status, exc.message, code=exc.code, type=kind, retry_after=retry)


def _escaped(text: str) -> str:
    return MARKDOWN_SPECIAL.sub(r"\\\1", text)


@dataclass
class AnswerRun:
    """Drives one question_answer() generator. `start()` runs it to the first content, so a
    refusal before any (too long, busy) is still an HTTP status; then `stream()` or `whole()`."""

    events: AsyncGenerator[Event, None]
    site: str  # scheme://host, for absolute links
    include_usage: bool = False
    created: int = field(default_factory=lambda: int(time.time()))
    restorer: RestoringStream = field(default_factory=lambda: RestoringStream(restorations={}))
    message_id: str = ""
    first: str = ""
    done: Done | None = None
    pieces: AsyncIterator[str] | None = None

    async def start(self) -> None:
        """Until the first content or the end; AskError as the pipeline raised it."""
        self.pieces = self._events()
        try:
            async for piece in self.pieces:
                self.first = piece
                return
        except BaseException:
            await self.events.aclose()
            raise

    async def _rest(self) -> AsyncIterator[str]:
        if self.pieces is None:
            raise RuntimeError("start() first")
        async for piece in self.pieces:
            yield piece

    async def _events(self) -> AsyncIterator[str]:
        """The pipeline's events as the caller's content pieces; Started and Done are kept."""
        async for event in self.events:
            if isinstance(event, TokenOut):
                text = self._shown(self.restorer.feed(event.text))
                if text:
                    yield text
            elif isinstance(event, Started):
                self.message_id = event.message_id
                self.restorer = RestoringStream(restorations=dict(event.restorations))
            elif isinstance(event, Done):
                self.done = event
            elif not isinstance(event, CitationsOut | HandoverOut):  # both are in Done as well
                raise TypeError(f"unexpected event {event!r}")
        tail = self._shown(self.restorer.feed("", final=True))
        if tail:
            yield tail

    def _shown(self, text: str) -> str:
        """Document links as a client outside the browser can follow them."""
        return RELATIVE_LINK.sub(lambda m: f"]({self.site}{m.group(1)})", text)

    async def stream(self) -> AsyncIterator[bytes]:
        """Server-sent chat.completion.chunk events, then [DONE]. Closing it (the client went
        away) closes the pipeline, which stops the model and records the answer as stopped."""
        writer = ChunkWriter(
            id=completion_id(self.message_id), created=self.created, include_usage=self.include_usage
        )
        try:
            yield writer.delta({"role": "assistant", "content": self.first})
            async for piece in self._rest():
                yield writer.delta({"content": piece})
            done = self._done()
            extension = await self._extension(done)
            ending = self._notes(done, flagged=_flagged(done.marked)) + self._sources(extension["citations"])
            if ending:
                yield writer.delta({"content": ending})
            yield writer.delta({}, finish_reason=_finish_reason(done), policydesk=extension)
            if self.include_usage:
                yield writer.usage(usage(done.prompt_tokens, done.completion_tokens))
        except AskError as exc:
            yield _error_event(ask_error(exc))
        except ApiError as exc:
            yield _error_event(exc)
        except Exception:  # the headers are sent: the SDK raises on an error event
            logger.exception("the streamed answer failed")
            yield _error_event(
                ApiError(
                    500, "Something went wrong while answering.", code="internal_error", type="server_error"
                )
            )
        finally:
            await self.events.aclose()
        yield DONE

    async def whole(self) -> dict[str, Any]:
        """The chat.completion: the checked answer as stored, with flagged sentences marked."""
        try:
            async for _ in self._rest():
                pass
        finally:
            await self.events.aclose()
        done = self._done()
        extension = await self._extension(done)
        marked = done.marked or done.text
        text = marked.replace(MARK_START, "⚠ *").replace(MARK_END, "*")
        restored = self._shown(placeholders_restore(text=text, restorations=self.restorer.restorations))
        content = restored + self._notes(done, flagged=[]) + self._sources(extension["citations"])
        return completion(
            id=completion_id(done.message_id),
            created=self.created,
            content=content,
            finish_reason=_finish_reason(done),
            extension=extension,
            usage=usage(done.prompt_tokens, done.completion_tokens),
        )

    def _done(self) -> Done:
        if self.done is None:
            raise ApiError(
                500, "The answer ended without being recorded.", code="internal_error", type="server_error"
            )
        return self.done

    async def _extension(self, done: Done) -> dict[str, Any]:
        ids = {c["document_id"] for c in done.citations}
        versions = await sync_to_async(_versions, thread_sensitive=False)(ids) if ids else {}
        return {
            "citations": [
                {
                    "n": c["n"],
                    "document": c["title"],
                    "document_id": c["document_id"],
                    "version": versions.get(c["document_id"]),
                    "section": c["heading"] or None,
                    "page": c["page"],
                    "url": self.site + c["url"],
                    "quote": c.get("quote", ""),
                    "cited": c["cited"],
                }
                for c in sorted(done.citations, key=lambda c: c["n"])
            ],
            "verified": done.verified,
            "declined": done.declined,
            "checks": done.checks,
            "mode": done.mode,
            "fallback": done.fallback,
            "message_id": done.message_id,
        }

    def _notes(self, done: Done, *, flagged: list[str]) -> str:
        """What the chat marks after the answer is checked, said in words at the end: a stream
        cannot mark text it has already sent."""
        lines = [
            f"⚠ {UNSUPPORTED_TITLE}: “{placeholders_restore(text=s, restorations=self.restorer.restorations)}”"
            for s in flagged
        ]
        if not done.verified and not done.declined:
            lines.append(
                "⚠ Unverified: " + ("; ".join(done.checks) or "the answer cites no policy passage") + "."
            )
        return "".join("\n\n" + line for line in lines)

    @staticmethod
    def _sources(citations: list[dict[str, Any]]) -> str:
        cited = [c for c in citations if c["cited"]]
        if not cited:
            return ""
        lines = []
        for c in cited:
            name = " \u203a ".join(part for part in (c["document"], c["section"]) if part)
            version = f" (version {c['version']})" if c["version"] is not None else ""
            lines.append(f"- [{c['n']}] {_escaped(name)}{version}: {c['url']}")
        return "\n\nSources:\n" + "\n".join(lines)


def _versions(document_ids: set[int]) -> dict[int, int]:
    try:
        return document_versions(document_ids=document_ids)
    finally:
        release_db_connection()


def _flagged(marked: str) -> list[str]:
    return re.findall(f"{MARK_START}(.*?){MARK_END}", marked, flags=re.S)


def _finish_reason(done: Done) -> str:
    return "length" if done.finish_reason == "length" and done.mode == "generate" else "stop"


def _error_event(error: ApiError) -> bytes:
    return sse(error.body())
