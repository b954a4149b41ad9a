"""The question pipeline, used by the WebSocket consumer and `manage.py ask` alike:

    redact → retrieve → build prompt → stream from the gateway → check citations
    → store the redacted exchange + one audit event

`question_answer()` is an async generator of typed events. Closing it (stop button,
socket closed) cancels the upstream LLM stream at once and stores what was said so far.
Only redacted text leaves the first step.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
import weakref
from collections.abc import AsyncGenerator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import redis.asyncio as aioredis
from asgiref.sync import sync_to_async
from django.conf import settings
from django.contrib.auth.models import User
from django.db import transaction
from django.urls import reverse

from audit.models import AuditEvent
from audit.services import audit_event_append, pseudonym
from chat.models import Conversation, Message
from chat.prompt import answer_render, citations_check, extractive_answer, prompt_build
from config import metrics
from config.tracing import new_id, trace_id_var
from llm.gateway import GatewayBusy, GatewayError, GenerationResult, Handover, Token, get_gateway
from privacy.pool import pii_find_pooled
from privacy.services import Redaction, text_redact, vault_for
from rag.selectors import RetrievedChunk, retrieve
from rag.services import release_db_connection

TITLE_CHARS = 80
logger = logging.getLogger(__name__)


def _threads_each() -> int:
    """Threads per stage: together they use the process's database pool, and no more."""
    return max(2, settings.DB_POOL_MAX_SIZE // 2) if settings.DB_POOL_MAX_SIZE else 4


# Two stages, two thread pools: preparing a question (on the time-to-first-token path) must
# never queue behind answers being redacted and stored, which take longer and come in waves.
_prepare_threads = ThreadPoolExecutor(max_workers=_threads_each(), thread_name_prefix="chat-prepare")
_finish_threads = ThreadPoolExecutor(max_workers=_threads_each(), thread_name_prefix="chat-finish")


class AskError(Exception):
    """A refusal the client is told about with an error code from the socket contract."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


# --- events (what the consumer serialises) -------------------------------------------


@dataclass(frozen=True)
class Started:
    conversation_id: str
    message_id: str
    # The question's placeholders → what the user typed: for their own socket only, never sent.
    restorations: dict[str, str] = field(default_factory=dict, repr=False, compare=False)


@dataclass(frozen=True)
class TokenOut:
    text: str


@dataclass(frozen=True)
class HandoverOut:
    from_backend: str
    to_backend: str


@dataclass(frozen=True)
class CitationsOut:
    items: list[dict[str, Any]]


@dataclass(frozen=True)
class Done:
    message_id: str
    conversation_id: str
    text: str
    html: str
    backend: str
    verified: bool
    fallback: bool
    handover: bool
    citations: list[dict[str, Any]]
    attempts: list[dict[str, Any]]
    timings: dict[str, float | None]


Event = Started | TokenOut | HandoverOut | CitationsOut | Done


# --- the pipeline -------------------------------------------------------------------------


@dataclass
class Prepared:
    conversation_id: str
    message_id: str
    question: Redaction
    history: list[tuple[str, str]]
    passages: list[RetrievedChunk]
    placeholders: dict[str, str]
    timings: dict[str, float | None] = field(default_factory=dict)


def _ms(since: float) -> float:
    return round((time.perf_counter() - since) * 1000, 2)


def _prepare(*, user: User, question: str, conversation_id: str | None) -> Prepared:
    """Redact, retrieve and store the question. Runs in a worker thread (CPU + database)."""
    try:
        conversation = _conversation_for(user=user, conversation_id=conversation_id)
        vault = vault_for(scope=str(conversation.id), stored=conversation.placeholders)
        started = time.perf_counter()
        redaction = text_redact(text=question, vault=vault)
        redaction_ms = _ms(started)
        logger.info(
            "question redacted",
            extra={"language": redaction.language, "pii_counts": redaction.counts, "ms": redaction_ms},
        )
        started = time.perf_counter()
        passages = retrieve(query=redaction.text, user=user, k=settings.RETRIEVAL_K)
        retrieval_ms = _ms(started)
        logger.info(
            "passages retrieved",
            extra={
                "passages": len(passages),
                "chunk_ids": [p.chunk_id for p in passages],
                "ms": retrieval_ms,
            },
        )
        history = [(m.role, m.text) for m in conversation.messages.order_by("-created_at")[:8]][::-1]
        with transaction.atomic():
            Message.objects.create(conversation=conversation, role=Message.Role.USER, text=redaction.text)
            conversation.placeholders = vault.as_json()
            if not conversation.title:
                conversation.title = redaction.text[:TITLE_CHARS]
            conversation.save(update_fields=["placeholders", "title", "updated_at"])
        return Prepared(
            conversation_id=str(conversation.id),
            message_id=str(uuid.uuid4()),
            question=redaction,
            history=history,
            passages=passages,
            placeholders=vault.as_json(),
            timings={"redaction_ms": redaction_ms, "retrieval_ms": retrieval_ms},
        )
    finally:
        release_db_connection()  # nothing holds a connection while the LLM streams


def _loggable_id(value: str | None) -> str | None:
    """A client-supplied id as it may appear in a log: a UUID, or "invalid", never the text."""
    if value is None:
        return None
    try:
        return str(uuid.UUID(str(value)))
    except ValueError:
        return "invalid"


def _conversation_for(*, user: User, conversation_id: str | None) -> Conversation:
    if not conversation_id:
        return Conversation.objects.create(user=user)
    try:
        return Conversation.objects.get(id=uuid.UUID(str(conversation_id)), user=user)
    except (ValueError, Conversation.DoesNotExist):
        raise AskError("bad_request", "There is no such conversation.") from None


def _citation_items(passages: list[RetrievedChunk], cited: list[int]) -> list[dict[str, Any]]:
    """Every passage the model was given, numbered as in the prompt; `cited` marks the ones
    the answer actually cites (the UI shows those first, the rest as "also consulted")."""
    items = []
    for n, chunk in enumerate(passages, start=1):
        url = (
            reverse("rag:view", args=[chunk.document_id]) + f"?chunk={chunk.chunk_id}#chunk-{chunk.chunk_id}"
        )
        items.append(
            {
                "n": n,
                "document_id": chunk.document_id,
                "chunk_id": chunk.chunk_id,
                "title": chunk.title,
                "heading": chunk.heading_path,
                "page": chunk.page,
                "url": url,
                "source_path": chunk.source_path,
                "cited": n in cited,
            }
        )
    return sorted(items, key=lambda item: (not item["cited"], item["n"]))


@dataclass
class Outcome:
    status: str  # Message.Status
    outcome: str  # audit outcome: answered | fallback | stopped | busy | failed
    text: str
    result: GenerationResult
    passages: list[RetrievedChunk]


def _finish(*, user: User, prepared: Prepared, outcome: Outcome, timings: dict[str, float | None]) -> Done:
    """Check citations, redact and store the answer, append the audit event."""
    try:
        result = outcome.result
        checked = citations_check(answer=outcome.text, passage_count=len(outcome.passages))
        vault = vault_for(scope=prepared.conversation_id, stored=prepared.placeholders)
        # Policy text the answer quotes (a contact address, a form's name) stays readable.
        passages = [p.text for p in outcome.passages]
        answer = (
            text_redact(text=checked.text, vault=vault, find=pii_find_pooled, documents=passages)
            if checked.text
            else None
        )
        answer_text = answer.text if answer else ""
        citations = _citation_items(outcome.passages, checked.cited)
        html = answer_render(text=answer_text, citation_urls={c["n"]: c["url"] for c in citations})
        # A stopped or failed answer is still attributed to the backend that was streaming it.
        backend = result.backend or (result.attempts[-1].backend if result.attempts else "")
        with transaction.atomic():
            conversation = Conversation.objects.select_for_update().get(id=prepared.conversation_id)
            Message.objects.create(
                id=prepared.message_id,
                conversation=conversation,
                role=Message.Role.ASSISTANT,
                text=answer_text,
                html=html,
                citations=citations,
                status=outcome.status,
                backend=backend,
                verified=checked.verified,
                fallback=result.fallback,
                handover=bool(result.handovers),
            )
            conversation.placeholders = vault.as_json()
            conversation.save(update_fields=["placeholders", "updated_at"])
            pii = dict(prepared.question.counts)
            for kind, count in (answer.counts if answer else {}).items():
                pii[kind] = pii.get(kind, 0) + count
            event = audit_event_append(
                kind=AuditEvent.Kind.QUESTION,
                actor=pseudonym(user_id=user.pk),
                conversation_id=prepared.conversation_id,
                message_id=prepared.message_id,
                question=prepared.question.text,
                answer=answer_text,
                language=prepared.question.language,
                pii_counts=pii,
                retrieved=[{"chunk_id": p.chunk_id, "score": round(p.score, 6)} for p in prepared.passages],
                cited_documents=sorted({c["document_id"] for c in citations if c["cited"]}),
                backend=backend,
                outcome=outcome.outcome,
                attempts=result.attempts_as_dicts(),
                verified=checked.verified,
                latencies=timings,
                prompt_tokens=result.prompt_tokens,
                completion_tokens=result.completion_tokens,
                detail={"document_text_kept": answer.kept_as_document if answer else 0},
            )
        logger.info(
            "answer stored",
            extra={
                "outcome": outcome.outcome,
                "backend": backend,
                "audit_seq": event.seq,
                "verified": checked.verified,
            },
        )
        _observe(outcome, timings)
        return Done(
            message_id=prepared.message_id,
            conversation_id=prepared.conversation_id,
            text=answer_text,
            html=html,
            backend=backend,
            verified=checked.verified,
            fallback=result.fallback,
            handover=bool(result.handovers),
            citations=citations,
            attempts=result.attempts_as_dicts(),
            timings=timings,
        )
    finally:
        release_db_connection()


def _observe(outcome: Outcome, timings: dict[str, float | None]) -> None:
    if not metrics.enabled():
        return
    result = outcome.result
    metrics.QUESTIONS.labels(outcome.outcome).inc()
    for stage in ("redaction", "retrieval", "prompt"):
        value = timings.get(f"{stage}_ms")
        if value is not None:
            metrics.STAGE_SECONDS.labels(stage).observe(value / 1000)
    if timings.get("first_token_ms") is not None:
        metrics.TIME_TO_FIRST_TOKEN.observe((timings["first_token_ms"] or 0) / 1000)
    if timings.get("total_ms") is not None:
        metrics.ANSWER_SECONDS.observe((timings["total_ms"] or 0) / 1000)
    metrics.TOKENS_STREAMED.inc(result.completion_tokens)
    for attempt in result.attempts:
        metrics.LLM_ATTEMPTS.labels(attempt.backend, attempt.outcome).inc()
    if result.fallback or len([a for a in result.attempts if a.outcome != "skipped"]) > 1:
        metrics.LLM_FALLBACKS.inc()
    if result.handovers:
        metrics.LLM_HANDOVERS.inc()


def _context_tokens() -> int:
    return min(b.context_tokens for b in settings.LLM_BACKENDS)


def _max_tokens() -> int:
    return max(b.max_tokens for b in settings.LLM_BACKENDS)


async def question_answer(
    *, user: User, question: str, conversation_id: str | None
) -> AsyncGenerator[Event, None]:
    received = time.perf_counter()
    if not trace_id_var.get():
        trace_id_var.set(new_id())  # `manage.py ask`; the consumer sets one per question
    # The conversation id comes from the client: logged only when it is one.
    logger.info(
        "question received", extra={"chars": len(question), "conversation_id": _loggable_id(conversation_id)}
    )
    question = question.strip()
    if not question:
        raise AskError("bad_request", "The question is empty.")
    if "\x00" in question:  # PostgreSQL text cannot hold it; refused before anything is stored
        raise AskError("bad_request", "The question contains a NUL character.")
    if len(question) > settings.CHAT_MAX_QUESTION_CHARS:
        raise AskError("too_long", f"Questions are limited to {settings.CHAT_MAX_QUESTION_CHARS} characters.")
    preparing = asyncio.ensure_future(
        sync_to_async(_prepare, thread_sensitive=False, executor=_prepare_threads)(
            user=user, question=question, conversation_id=conversation_id
        )
    )
    try:
        prepared = await asyncio.shield(preparing)
    except asyncio.CancelledError:
        # Stopped while the question was being stored: the thread stores it anyway, so it gets
        # its audit event too (every stored question has exactly one).
        with contextlib.suppress(Exception):
            await _store_stopped(user, await preparing, GenerationResult(), [], {}, received)
        raise

    timings = dict(prepared.timings)
    generation = None
    passages: list[RetrievedChunk] = []
    status, audit_outcome = Message.Status.COMPLETE, "answered"
    try:
        yield Started(
            conversation_id=prepared.conversation_id,
            message_id=prepared.message_id,
            restorations=prepared.question.restorations,
        )
        started = time.perf_counter()
        prompt = prompt_build(
            question=prepared.question.text,
            language=prepared.question.language,
            passages=prepared.passages,
            history=prepared.history,
            context_tokens=_context_tokens(),
            max_answer_tokens=_max_tokens(),
        )
        passages = prompt.passages
        timings["prompt_ms"] = _ms(started)
        timings["overhead_ms"] = _ms(received)
        generation = get_gateway().generate(
            prompt.messages,
            extractive=extractive_answer(passages=prompt.passages, language=prepared.question.language),
        )
        async for event in generation.events():
            if isinstance(event, Token):
                if timings.get("first_token_ms") is None:
                    timings["first_token_ms"] = _ms(received)
                yield TokenOut(event.text)
            elif isinstance(event, Handover):
                yield HandoverOut(event.from_backend, event.to_backend)
        if generation.result.fallback:
            audit_outcome = "fallback"
    except GatewayBusy:
        status, audit_outcome = Message.Status.FAILED, "busy"
    except GatewayError:
        status, audit_outcome = Message.Status.FAILED, "failed"
    except (asyncio.CancelledError, GeneratorExit):
        # Stopped, or the socket closed, at any point after the question was stored.
        result = generation.result if generation is not None else GenerationResult()
        await _store_stopped(user, prepared, result, passages, timings, received)
        raise
    result = generation.result if generation is not None else GenerationResult()
    timings["total_ms"] = _ms(received)
    outcome = Outcome(status, audit_outcome, result.text, result, passages)
    done = await sync_to_async(_finish, thread_sensitive=False, executor=_finish_threads)(
        user=user, prepared=prepared, outcome=outcome, timings=timings
    )
    if audit_outcome == "busy":
        raise AskError("busy", "Every answering service is busy. Please try again in a moment.")
    if audit_outcome == "failed":
        raise AskError("unavailable", "The assistant is unavailable. Please try again later.")
    yield CitationsOut(done.citations)
    yield done


async def _store_stopped(
    user: User,
    prepared: Prepared,
    result: GenerationResult,
    passages: list[RetrievedChunk],
    timings: dict[str, float | None],
    received: float,
) -> None:
    """Store a stopped exchange and its audit event, shielded: the caller is going away."""
    timings["total_ms"] = _ms(received)
    stopped = Outcome(Message.Status.STOPPED, "stopped", result.text, result, passages)
    await asyncio.shield(
        sync_to_async(_finish, thread_sensitive=False, executor=_finish_threads)(
            user=user, prepared=prepared, outcome=stopped, timings=timings
        )
    )


# --- rate limit, feedback, conversations -------------------------------------------------


_redis_clients: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, aioredis.Redis] = (
    weakref.WeakKeyDictionary()
)


def _redis() -> aioredis.Redis:
    """One asyncio client per event loop (a client's connections belong to its loop)."""
    loop = asyncio.get_running_loop()
    client = _redis_clients.get(loop)
    if client is None:
        client = _redis_clients[loop] = aioredis.Redis.from_url(settings.REDIS_URL)
    return client


async def rate_limited(*, user_id: int, action: str, per_minute: int) -> bool:
    """Fixed one-minute window per user and action ("ask", "feedback"), shared by every process
    through Redis.

    Async on purpose: on the event loop it costs one Redis round trip, where a sync call
    would queue behind every other socket's database calls on Channels' one sync thread.
    """
    window = int(time.time() // 60)
    key = f"policydesk:chat:rate:{action}:{user_id}:{window}"
    async with _redis().pipeline(transaction=True) as pipe:
        pipe.incr(key)
        pipe.expire(key, 70)
        count, _ = await pipe.execute()
    return int(count) > per_minute


def message_feedback_record(*, user: User, message_id: str, value: int, comment: str = "") -> Message:
    if value not in (1, -1):
        raise AskError("bad_request", "Feedback is 1 or -1.")
    try:
        message = Message.objects.select_related("conversation").get(
            id=uuid.UUID(str(message_id)), conversation__user=user, role=Message.Role.ASSISTANT
        )
    except (ValueError, Message.DoesNotExist):
        raise AskError("bad_request", "There is no such answer.") from None
    conversation = message.conversation
    vault = vault_for(scope=str(conversation.id), stored=conversation.placeholders)
    redacted = text_redact(text=comment[:1000], vault=vault).text if comment.strip() else ""
    with transaction.atomic():
        message.feedback, message.feedback_comment = value, redacted
        message.save(update_fields=["feedback", "feedback_comment"])
        conversation.placeholders = vault.as_json()
        conversation.save(update_fields=["placeholders"])
        audit_event_append(
            kind=AuditEvent.Kind.FEEDBACK,
            actor=pseudonym(user_id=user.pk),
            conversation_id=conversation.id,
            message_id=message.id,
            feedback=value,
            answer=redacted,
        )
    return message


def conversation_rename(*, user: User, conversation_id: str, title: str) -> Conversation:
    conversation = Conversation.objects.get(id=conversation_id, user=user)
    vault = vault_for(scope=str(conversation.id), stored=conversation.placeholders)
    conversation.title = text_redact(text=title.strip()[:TITLE_CHARS], vault=vault).text or conversation.title
    conversation.placeholders = vault.as_json()
    conversation.save(update_fields=["title", "placeholders", "updated_at"])
    return conversation


def conversation_delete(*, user: User, conversation_id: str) -> None:
    """The conversation and its messages go; the audit log keeps its own redacted record."""
    Conversation.objects.filter(id=conversation_id, user=user).delete()
