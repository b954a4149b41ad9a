"""The question pipeline, used by the WebSocket consumer and `manage.py ask` alike:

    redact → retrieve → select evidence → answer by the backend's mode → check each model
    sentence's support → store the redacted exchange + one audit event

Answer modes (docs/answers-and-retrieval.md, "Answer modes"; per backend in POLICYDESK_LLM_BACKENDS):
  - evidence: the policy sentences that answer the question are quoted at once, then the
    model writes at most a short summary of those sentences only;
  - generate: the model answers from the passages, then the quoted evidence follows.
A question the evidence does not answer is declined without asking any model. Every sentence
a model wrote is support-checked against what it was given (chat/support.py): evidence mode
shows the summary only when it is supported; generate mode marks an unsupported sentence and
the answer is unverified, and a mostly unsupported text is collapsed after the evidence.

`question_answer()` is an async generator of typed events (chat/events.py). Closing it
(stop button, socket closed) cancels the upstream LLM stream at once and stores what was
said so far. Only redacted text leaves the first step. What a question carries between the
stages is in chat/state.py; storing the answer and its audit event in chat/recording.py.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections.abc import AsyncGenerator
from concurrent.futures import ThreadPoolExecutor

from asgiref.sync import sync_to_async
from django.conf import settings
from django.contrib.auth.models import User
from django.db import transaction

from chat.answers import (
    SUMMARY_TOKENS,
    contact_in,
    decline_text,
    evidence_text,
    frame,
    numbered_evidence,
    related_documents,
    summary_complete,
    summary_messages,
)
from chat.asof import question_as_of
from chat.events import AskError, CitationsOut, Done, Event, HandoverOut, Started, TokenOut
from chat.models import Conversation, Message, PendingAnswer
from chat.prompt import HISTORY_TURNS, prompt_build
from chat.recording import answer_record, answer_support, document_url, retrieved_scores
from chat.state import Asking, Draft, Outcome, Plan, Prepared
from chat.support import declined_in_words
from chat.versioning import answer_footer, answer_header
from core.db import release_db_connection
from core.tracing import new_id, trace_id_var
from llm.config import llm_backends
from llm.gateway import GatewayBusy, GatewayError, GenerationResult, Handover, Token, get_gateway
from privacy.services import PlaceholderVault, text_redact, vault_for
from rag.evidence import evidence_answerable
from rag.selectors import question_evidence, retrieve_for_question
from rag.versions import scheduled_versions, versions_of

TITLE_CHARS = 80
logger = logging.getLogger(__name__)


def _threads_each() -> int:
    """Threads per stage: together they use the process's database pool, and no more."""
    return max(2, settings.DB_POOL_MAX_SIZE // 2) if settings.DB_POOL_MAX_SIZE else 4


# Two stages, two thread pools: preparing a question (on the time-to-first-token path) must
# never queue behind answers being redacted and stored, which take longer and come in waves.
_prepare_threads = ThreadPoolExecutor(max_workers=_threads_each(), thread_name_prefix="chat-prepare")
_finish_threads = ThreadPoolExecutor(max_workers=_threads_each(), thread_name_prefix="chat-finish")


# --- preparing: redact, retrieve, select evidence, store the question ----------------------


def _ms(since: float) -> float:
    return round((time.perf_counter() - since) * 1000, 2)


def _prepare(*, user: User, question: str, conversation_id: str | None, asking: Asking) -> Prepared:
    """Redact, retrieve, select evidence and store the question. Runs in a worker thread."""
    try:
        conversation = _conversation_for(user=user, conversation_id=conversation_id)
        vault = vault_for(scope=str(conversation.id), stored=conversation.placeholders)
        started = time.perf_counter()
        # Earlier turns first: a name they gave keeps its placeholder in the question.
        history, history_restorations = _history(conversation=conversation, vault=vault, turns=asking.history)
        history_ms = _ms(started)
        started = time.perf_counter()
        redaction = text_redact(text=question, vault=vault)
        redaction_ms = _ms(started)
        logger.info(
            "question redacted",
            extra={"language": redaction.language, "pii_counts": redaction.counts, "ms": redaction_ms},
        )
        # The day the question asks about picks the policy versions; its words are not searched.
        as_of = question_as_of(redaction.text, language=redaction.language)
        asked = as_of.question_without_date(redaction.text)
        started = time.perf_counter()
        retrieval = retrieve_for_question(query=asked, user=user, k=settings.RETRIEVAL_K, as_of=as_of.day)
        retrieval_ms = _ms(started)
        passages = retrieval.passages
        logger.info(
            "passages retrieved",
            extra={
                "passages": len(passages),
                "chunk_ids": [p.chunk_id for p in passages],
                "ms": retrieval_ms,
            },
        )
        started = time.perf_counter()
        evidence = question_evidence(question=asked, retrieval=retrieval)
        evidence_ms = _ms(started)
        message_id = uuid.uuid4()
        with transaction.atomic():
            Message.objects.create(conversation=conversation, role=Message.Role.USER, text=redaction.text)
            # The hand-off: whatever happens to this process, the question gets its audit event.
            PendingAnswer.objects.create(
                message_id=message_id,
                conversation=conversation,
                user=user,
                question=redaction.text,
                language=redaction.language,
                pii_counts=redaction.counts,
                retrieved=retrieved_scores(passages),
            )
            conversation.placeholders = vault.as_json()
            if not conversation.title:
                conversation.title = redaction.text[:TITLE_CHARS]
            conversation.save(update_fields=["placeholders", "title", "updated_at"])
        return Prepared(
            conversation_id=str(conversation.id),
            message_id=str(message_id),
            question=redaction,
            history=history,
            passages=passages,
            evidence=evidence,
            answerable=evidence_answerable(evidence),
            placeholders=vault.as_json(),
            timings={
                "history_ms": history_ms,
                "redaction_ms": redaction_ms,
                "retrieval_ms": retrieval_ms,
                "evidence_ms": evidence_ms,
            },
            asking=asking,
            history_restorations=history_restorations,
            as_of=as_of,
            versions=versions_of(p.document_id for p in passages),
            scheduled=scheduled_versions(source_paths=[p.source_path for p in passages], user=user)
            if as_of.is_today
            else [],
        )
    finally:
        release_db_connection()  # nothing holds a connection while the LLM streams


def _history(
    *, conversation: Conversation, vault: PlaceholderVault, turns: tuple[tuple[str, str], ...] | None
) -> tuple[list[tuple[str, str]], dict[str, str]]:
    """The turns before the question: the conversation's stored ones (redacted when stored), or
    the ones an API caller sent, redacted now with the conversation's vault (as many as a
    prompt keeps). Also the caller's placeholders → values, for their own response only."""
    if turns is None:
        stored = conversation.messages.order_by("-created_at")[:HISTORY_TURNS]
        return [(m.role, m.text) for m in stored][::-1], {}
    history, restorations = [], {}
    for role, text in turns[-HISTORY_TURNS:]:
        redacted = text_redact(text=text, vault=vault)
        history.append((role, redacted.text))
        restorations.update(redacted.restorations)
    return history, restorations


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


# --- planning: which passages the answer gives, under which numbers -------------------------


def _plan(prepared: Prepared, mode: str) -> Plan:
    passages, evidence = prepared.passages, prepared.evidence
    if mode == "generate":
        prompt = prompt_build(
            question=prepared.question.text,
            language=prepared.question.language,
            passages=passages,
            history=prepared.history,
            context_tokens=_context_tokens(),
            max_answer_tokens=_max_tokens(),
        )
        # The prompt keeps a prefix of the ranking; the evidence shown comes from it alone.
        numbering = {i: i + 1 for i in range(len(prompt.passages))}
        groups = numbered_evidence(evidence, numbering, passages)
        return Plan(mode=mode, given=prompt.passages, groups=groups, messages=prompt.messages)
    # Evidence mode gives the model sentences, not chunks, so every evidence passage fits.
    numbering = {p: n for n, p in enumerate(evidence.passages, start=1)}
    groups = numbered_evidence(evidence, numbering, passages)
    return Plan(mode=mode, given=[g.passage for g in groups], groups=groups)


def _context_tokens() -> int:
    return min(b.context_tokens for b in llm_backends())


def _max_tokens() -> int:
    return max(b.max_tokens for b in llm_backends())


def _validated(question: str) -> str:
    question = question.strip()
    if not question:
        raise AskError("bad_request", "The question is empty.")
    if "\x00" in question:  # PostgreSQL text cannot hold it; refused before anything is stored
        raise AskError("bad_request", "The question contains a NUL character.")
    if len(question) > settings.CHAT_MAX_QUESTION_CHARS:
        raise AskError("too_long", f"Questions are limited to {settings.CHAT_MAX_QUESTION_CHARS} characters.")
    return question


def _answer_mode() -> str:
    """The mode of the backend that will be tried first; with none available, evidence."""
    backend = get_gateway().likely_backend()
    return backend.answer_mode if backend else "evidence"


async def question_answer(
    *, user: User, question: str, conversation_id: str | None, asking: Asking | None = None
) -> AsyncGenerator[Event, None]:
    """One question's events: Started, tokens (and handovers), CitationsOut, Done. `asking`:
    the channel it came by and the API caller's history and options (default: the socket's)."""
    asking = asking or Asking()
    received = time.perf_counter()
    if not trace_id_var.get():
        trace_id_var.set(new_id())  # `manage.py ask`; the consumer sets one per question
    # The conversation id comes from the client: logged only when it is one.
    logger.info(
        "question received", extra={"chars": len(question), "conversation_id": _loggable_id(conversation_id)}
    )
    question = _validated(question)
    preparing = asyncio.ensure_future(
        sync_to_async(_prepare, thread_sensitive=False, executor=_prepare_threads)(
            user=user, question=question, conversation_id=conversation_id, asking=asking
        )
    )
    try:
        prepared = await asyncio.shield(preparing)
    except asyncio.CancelledError:
        # Stopped while the question was being stored: the thread stores it anyway, so it gets
        # its audit event too (every stored question has exactly one).
        with contextlib.suppress(Exception):
            stopped = Outcome(Message.Status.STOPPED, "stopped", Draft(), GenerationResult(), None)
            await _store(user, await preparing, stopped, {}, received)
        raise

    timings = dict(prepared.timings)
    draft = Draft()
    answering = Answering(prepared=prepared, draft=draft, timings=timings, received=received)
    status, audit_outcome = Message.Status.COMPLETE, "answered"
    try:
        yield Started(
            conversation_id=prepared.conversation_id,
            message_id=prepared.message_id,
            restorations={**prepared.history_restorations, **prepared.question.restorations},
        )
        async for event in answering.events():
            yield event
        audit_outcome = answering.outcome
    except GatewayBusy:
        status, audit_outcome = Message.Status.FAILED, "busy"
    except GatewayError:
        status, audit_outcome = Message.Status.FAILED, "failed"
    except (asyncio.CancelledError, GeneratorExit):
        # Stopped, or the socket closed, at any point after the question was stored.
        stopped = Outcome(Message.Status.STOPPED, "stopped", draft, answering.result, answering.plan)
        await _store(user, prepared, stopped, timings, received)
        raise
    outcome = Outcome(status, audit_outcome, draft, answering.result, answering.plan)
    done = await _store(user, prepared, outcome, timings, received)
    if audit_outcome == "busy":
        raise AskError("busy", "Every answering service is busy. Please try again in a moment.")
    if audit_outcome == "failed":
        raise AskError("unavailable", "The assistant is unavailable. Please try again later.")
    yield CitationsOut(done.citations)
    yield done


class Answering:
    """One answer's composition: decline, evidence mode or generate mode."""

    def __init__(
        self, *, prepared: Prepared, draft: Draft, timings: dict[str, float | None], received: float
    ) -> None:
        self.prepared, self.draft, self.timings, self.received = prepared, draft, timings, received
        self.language = prepared.question.language if prepared.question.language in ("en", "vi") else "en"
        self.result = GenerationResult()
        self.plan: Plan | None = None
        self.outcome = "answered"

    def _show(self, piece: str) -> TokenOut:
        if self.timings.get("first_token_ms") is None:
            self.timings["first_token_ms"] = _ms(self.received)
        return self.draft.add(piece)

    async def events(self) -> AsyncGenerator[TokenOut | HandoverOut, None]:
        """The answer, under its "as of" line and above its version notices (chat/versioning.py)."""
        header = answer_header(self.prepared, self.language)
        if header:
            yield self._show(header + "\n\n")
        async for event in self._answer():
            yield event
        footer = answer_footer(self.prepared, self.plan, self.language)
        if footer:
            yield self._show("\n\n" + footer)

    async def _answer(self) -> AsyncGenerator[TokenOut | HandoverOut, None]:
        started = time.perf_counter()
        if not self.prepared.answerable:
            self.timings["prompt_ms"], self.timings["overhead_ms"] = _ms(started), _ms(self.received)
            yield self._decline()
            return
        self.plan = _plan(self.prepared, _answer_mode())
        self.timings["prompt_ms"], self.timings["overhead_ms"] = _ms(started), _ms(self.received)
        if self.plan.mode == "evidence":
            async for event in self._evidence_first(self.plan):
                yield event
        else:
            async for event in self._generate(self.plan):
                yield event

    def _decline(self) -> TokenOut:
        """Not covered: said plainly, with the nearest documents and a contact; no model asked."""
        self.draft.declined, self.outcome = True, "declined"
        passages = self.prepared.passages
        urls = {p.document_id: document_url(p.document_id) for p in passages}
        text = decline_text(
            language=self.language, related=related_documents(passages, urls), contact=contact_in(passages)
        )
        return self._show(text)

    async def _evidence_first(self, plan: Plan) -> AsyncGenerator[TokenOut | HandoverOut, None]:
        yield self._show(frame(self.language, "evidence") + "\n\n" + evidence_text(plan.groups))
        if self.language != "en":
            # The small model cannot write Vietnamese: the quotes and their frame are the answer.
            self.outcome = "answered"
            return
        summary = await self._summary(plan)
        if summary:
            yield self._show("\n\n" + frame(self.language, "summary") + " ")
            self.draft.model_start = len(self.draft.text)
            yield self._show(summary)
            self.draft.model_end = len(self.draft.text)

    async def _summary(self, plan: Plan) -> str:
        """The model's one sentence over the quotes, shown only once every sentence of it has
        passed the support check: the quotes already answer, and a small model's wrong figure or
        negation beside them would read as the answer. A withheld summary is recorded (audit
        `detail.summary_withheld`, `detail.support`)."""
        messages = summary_messages(question=self.prepared.question.text, groups=plan.groups)
        asking = self.prepared.asking
        generation = get_gateway().generate(
            messages,
            extractive="",
            max_tokens=min(SUMMARY_TOKENS, asking.max_tokens or SUMMARY_TOKENS),
            temperature=asking.temperature,
        )
        self.result = generation.result
        written = ""
        try:
            async with contextlib.aclosing(generation.events()) as events:
                async for event in events:
                    if isinstance(event, Token):
                        written += event.text
                        if summary_complete(written):
                            generation.enough()
                            break  # one sentence: a small model's second one drifts from the quotes
        except GatewayBusy:
            pass  # the quotes stand alone; nothing is lost but the summary
        if self.result.fallback or not written.strip():
            self.outcome = "fallback"
            return ""
        summary = " ".join(written.split())
        started = time.perf_counter()
        report = await sync_to_async(answer_support, thread_sensitive=False, executor=_finish_threads)(
            plan=plan,
            question=self.prepared.question.text,
            language=self.language,
            text=summary,
            complete=summary_complete(written),
        )
        self.timings["support_ms"] = _ms(started)
        if report.flagged:
            self.draft.withheld = [f"summary withheld: {reason}" for reason in report.reasons()]
            self.draft.withheld_support = report
            return ""
        self.draft.support = report
        return summary

    async def _generate(self, plan: Plan) -> AsyncGenerator[TokenOut | HandoverOut, None]:
        fallback = (
            frame(self.language, "unavailable") + "\n\n" + evidence_text(plan.groups)
            if plan.groups
            else frame(self.language, "unavailable_nothing")
        )
        asking = self.prepared.asking
        generation = get_gateway().generate(
            plan.messages, extractive=fallback, max_tokens=asking.max_tokens, temperature=asking.temperature
        )
        self.result = generation.result
        async for event in self._relay(generation.events()):
            yield event
        if self.result.fallback:
            self.outcome = "fallback"
            if self.result.attempts and any(a.tokens for a in self.result.attempts):
                return
            self.draft.model_start = self.draft.model_end = None
            return
        self.draft.declined = declined_in_words(self.draft.model_text)
        if plan.groups:
            yield self._show(
                "\n\n" + frame(self.language, "evidence_after") + "\n\n" + evidence_text(plan.groups)
            )

    async def _relay(
        self, events: AsyncGenerator[Token | Handover, None]
    ) -> AsyncGenerator[TokenOut | HandoverOut, None]:
        """Model tokens to the user; the span the model wrote is remembered for the claim check."""
        async for event in events:
            if isinstance(event, Handover):
                yield HandoverOut(event.from_backend, event.to_backend)
                continue
            if self.draft.model_start is None:
                self.draft.model_start = len(self.draft.text)
            yield self._show(event.text)
            self.draft.model_end = len(self.draft.text)


async def _store(
    user: User, prepared: Prepared, outcome: Outcome, timings: dict[str, float | None], received: float
) -> Done:
    """Store the exchange and its audit event, shielded: the caller may be going away."""
    timings["total_ms"] = _ms(received)
    return await asyncio.shield(
        sync_to_async(answer_record, thread_sensitive=False, executor=_finish_threads)(
            user=user, prepared=prepared, outcome=outcome, timings=timings
        )
    )
