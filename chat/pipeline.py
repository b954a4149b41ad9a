"""The question pipeline, used by the WebSocket consumer and `manage.py ask` alike:

    redact → retrieve → select evidence → answer by the backend's mode → check claims
    → store the redacted exchange + one audit event

Answer modes (README, "Answer modes"; per backend in POLICYDESK_LLM_BACKENDS):
  - evidence: the policy sentences that answer the question are quoted at once, then the
    model writes at most a short summary of those sentences only;
  - generate: the model answers from the passages, then the quoted evidence follows.
A question the evidence does not answer is declined without asking any model. Whatever a
model wrote is claim-checked against what it was given; an unsupported sentence is marked
and the answer unverified.

`question_answer()` is an async generator of typed events (chat/events.py). Closing it
(stop button, socket closed) cancels the upstream LLM stream at once and stores what was
said so far. Only redacted text leaves the first step.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections.abc import AsyncGenerator, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, TypeVar

from asgiref.sync import sync_to_async
from django.conf import settings
from django.contrib.auth.models import User
from django.db import InterfaceError, OperationalError, connection, transaction
from django.urls import reverse

from audit.models import AuditEvent
from audit.services import audit_event_append, pseudonym
from chat.answers import (
    SUMMARY_TOKENS,
    Numbered,
    attribution,
    contact_in,
    decline_text,
    declined_in_words,
    evidence_text,
    frame,
    numbered_evidence,
    related_documents,
    summary_complete,
    summary_messages,
    summary_usable,
)
from chat.claims import ClaimReport, claims_check
from chat.events import AskError, CitationsOut, Done, Event, HandoverOut, Started, TokenOut
from chat.models import Conversation, Message, PendingAnswer
from chat.prompt import MARK_END, MARK_START, answer_render, citations_check, prompt_build
from config import metrics
from config.tracing import new_id, trace_id_var
from llm.gateway import GatewayBusy, GatewayError, GenerationResult, Handover, Token, get_gateway
from privacy.pool import pii_find_pooled
from privacy.services import Redaction, text_redact, vault_for
from rag.evidence import Evidence, evidence_answerable, evidence_select, question_topic
from rag.index import sentence_vectors, sentence_vectors_seed
from rag.selectors import RetrievedChunk, question_vector, retrieve_for_question
from rag.services import release_db_connection

TITLE_CHARS = 80
logger = logging.getLogger(__name__)
T = TypeVar("T")


def _threads_each() -> int:
    """Threads per stage: together they use the process's database pool, and no more."""
    return max(2, settings.DB_POOL_MAX_SIZE // 2) if settings.DB_POOL_MAX_SIZE else 4


# Two stages, two thread pools: preparing a question (on the time-to-first-token path) must
# never queue behind answers being redacted and stored, which take longer and come in waves.
_prepare_threads = ThreadPoolExecutor(max_workers=_threads_each(), thread_name_prefix="chat-prepare")
_finish_threads = ThreadPoolExecutor(max_workers=_threads_each(), thread_name_prefix="chat-finish")


# --- preparing: redact, retrieve, select evidence, store the question ----------------------


@dataclass
class Prepared:
    conversation_id: str
    message_id: str
    question: Redaction
    history: list[tuple[str, str]]
    passages: list[RetrievedChunk]
    evidence: Evidence
    answerable: bool
    placeholders: dict[str, str]
    timings: dict[str, float | None] = field(default_factory=dict)


def _ms(since: float) -> float:
    return round((time.perf_counter() - since) * 1000, 2)


def _prepare(*, user: User, question: str, conversation_id: str | None) -> Prepared:
    """Redact, retrieve, select evidence and store the question. Runs in a worker thread."""
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
        retrieval = retrieve_for_question(query=redaction.text, user=user, k=settings.RETRIEVAL_K)
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
        sentence_vectors_seed(passages=passages)  # stored at ingestion: nothing to embed here
        # Sentences are compared with what the question asks, without the personal data around it.
        topic = question_topic(redaction.text)
        vector = retrieval.question_vector
        if topic != redaction.text and topic:
            vector = question_vector(topic, retrieval.english_terms)
        evidence = evidence_select(
            question=topic or redaction.text,
            passages=passages,
            question_vector=vector,
            embed=sentence_vectors,
            extra_terms=retrieval.english_terms,
        )
        evidence_ms = _ms(started)
        history = [(m.role, m.text) for m in conversation.messages.order_by("-created_at")[:8]][::-1]
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
                retrieved=_retrieved(passages),
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
            timings={"redaction_ms": redaction_ms, "retrieval_ms": retrieval_ms, "evidence_ms": evidence_ms},
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


# --- planning: which passages the answer gives, under which numbers -------------------------


@dataclass
class Plan:
    mode: str  # evidence | generate
    given: list[RetrievedChunk]  # the passages the answer (and any model) is given, numbered from 1
    groups: list[Numbered]  # the evidence, by passage number
    messages: list[dict[str, str]] = field(default_factory=list)  # generate mode's prompt


def _document_url(document_id: int) -> str:
    return reverse("rag:view", args=[document_id])


def _passage_url(chunk: RetrievedChunk, evidence: list[tuple[int, int]]) -> str:
    """The document view at this passage, with its evidence sentences highlighted."""
    spans = ",".join(f"{start}-{end}" for start, end in evidence)
    query = f"?chunk={chunk.chunk_id}" + (f"&hl={spans}" if spans else "")
    return _document_url(chunk.document_id) + query + f"#chunk-{chunk.chunk_id}"


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


def _citation_items(plan: Plan, cited: list[int]) -> list[dict[str, Any]]:
    """Every passage the answer was given, numbered as in the answer; `cited` marks those it
    cites (the UI shows them first, the rest as "also consulted")."""
    spans = {g.n: [(s.start, s.end) for s in g.sentences] for g in plan.groups}
    items = [
        {
            "n": n,
            "document_id": chunk.document_id,
            "chunk_id": chunk.chunk_id,
            "title": chunk.title,
            "heading": chunk.heading_path,
            "page": chunk.page,
            "url": _passage_url(chunk, spans.get(n, [])),
            "source_path": chunk.source_path,
            "evidence": [list(span) for span in spans.get(n, [])],
            "cited": n in cited,
        }
        for n, chunk in enumerate(plan.given, start=1)
    ]
    return sorted(items, key=lambda item: (not item["cited"], item["n"]))


# --- the answer as it is written -----------------------------------------------------------


@dataclass
class Draft:
    """What the user has been shown, and which part of it a model wrote."""

    text: str = ""
    model_start: int | None = None  # where the model's text begins in `text`
    model_end: int | None = None
    declined: bool = False
    withheld: list[str] = field(default_factory=list)  # why the model's summary was not shown

    def add(self, piece: str) -> TokenOut:
        self.text += piece
        return TokenOut(piece)

    @property
    def model_text(self) -> str:
        if self.model_start is None:
            return ""
        return self.text[self.model_start : self.model_end]


@dataclass
class Outcome:
    status: str  # Message.Status
    audit_outcome: str  # answered | declined | fallback | stopped | busy | failed
    draft: Draft
    result: GenerationResult
    plan: Plan | None


def _support_texts(plan: Plan) -> list[str]:
    """What each passage number gave the model: the quotes (evidence mode) or the passage."""
    if plan.mode == "evidence":
        return [" ".join(s.text for s in g.sentences) for g in plan.groups]
    return [p.text for p in plan.given]


def _marked(draft: Draft, report: ClaimReport) -> str:
    """The answer with each flagged sentence of the model's text between markers."""
    text, offset = draft.text, draft.model_start or 0
    for sentence in sorted(report.flagged, key=lambda s: -s.start):
        start, end = offset + sentence.start, offset + sentence.end
        text = text[:start] + MARK_START + text[start:end] + MARK_END + text[end:]
    return text


def _finish(*, user: User, prepared: Prepared, outcome: Outcome, timings: dict[str, float | None]) -> Done:
    """Check citations and claims, redact and store the answer, append the audit event."""
    try:
        result, draft, plan = outcome.result, outcome.draft, outcome.plan
        given = plan.given if plan else []
        report = claims_check(text=draft.model_text, passages=_support_texts(plan)) if plan else None
        checked = citations_check(
            answer=_marked(draft, report) if report else draft.text, passage_count=len(given)
        )
        checks = report.reasons() if report else []
        if checked.removed:
            checks.append(f"removed {checked.removed} citation(s) to passages that were not supplied")
        supported = not (report and report.flagged)
        # A decline claims nothing; anything else must cite a passage and hold only what it gave.
        verified = supported and (draft.declined or bool(checked.cited))
        vault = vault_for(scope=prepared.conversation_id, stored=prepared.placeholders)
        # Policy text the answer quotes (a contact address, a form's name) stays readable.
        # (and the titles and headings the quotes are attributed to).
        documents = [p.text for p in prepared.passages] + [attribution(p) for p in prepared.passages]
        answer = (
            text_redact(text=checked.text, vault=vault, find=pii_find_pooled, documents=documents)
            if checked.text
            else None
        )
        marked_text = answer.text if answer else ""
        answer_text = marked_text.replace(MARK_START, "").replace(MARK_END, "")
        citations = _citation_items(plan, checked.cited) if plan else []
        html = answer_render(text=marked_text, citation_urls={c["n"]: c["url"] for c in citations})
        # A stopped or failed answer is still attributed to the backend that was streaming it.
        backend = result.backend or (result.attempts[-1].backend if result.attempts else "")
        mode = plan.mode if plan else ""

        def record() -> int | None:
            """The answer, its audit event and the end of the hand-off, in one transaction;
            None when the question was already recorded as interrupted."""
            with transaction.atomic():
                return write()

        def write() -> int | None:
            handed_off = PendingAnswer.objects.filter(message_id=prepared.message_id).delete()[0]
            if (
                not handed_off
                and AuditEvent.objects.filter(
                    kind=AuditEvent.Kind.QUESTION, message_id=prepared.message_id
                ).exists()
            ):
                return None
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
                verified=verified,
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
                retrieved=_retrieved(prepared.passages),
                cited_documents=sorted({c["document_id"] for c in citations if c["cited"]}),
                backend=backend,
                outcome=outcome.audit_outcome,
                attempts=result.attempts_as_dicts(),
                verified=verified,
                latencies=timings,
                prompt_tokens=result.prompt_tokens,
                completion_tokens=result.completion_tokens,
                detail={
                    "document_text_kept": answer.kept_as_document if answer else 0,
                    "mode": mode,
                    "declined": draft.declined,
                    "answerability": prepared.evidence.answerability,
                    "claims_checked": report.claims if report else 0,
                    "checks": checks,
                    "summary_withheld": draft.withheld,
                },
            )
            return event.seq

        seq = retrying_while_the_database_is_down(record, what="answer record")
        logger.info(
            "answer stored" if seq is not None else "answer already recorded as interrupted",
            extra={
                "outcome": outcome.audit_outcome,
                "backend": backend,
                "audit_seq": seq,
                "verified": verified,
                "mode": mode,
                "checks": len(checks),
            },
        )
        _observe(outcome, timings)
        return Done(
            message_id=prepared.message_id,
            conversation_id=prepared.conversation_id,
            text=answer_text,
            html=html,
            backend=backend,
            verified=verified,
            fallback=result.fallback,
            handover=bool(result.handovers),
            citations=citations,
            attempts=result.attempts_as_dicts(),
            timings=timings,
            mode=mode,
            declined=draft.declined,
            checks=checks,
            answerability=prepared.evidence.answerability,
        )
    finally:
        release_db_connection()


def _retrieved(passages: list[RetrievedChunk]) -> list[dict[str, Any]]:
    return [{"chunk_id": p.chunk_id, "score": round(float(p.score), 6)} for p in passages]


def retrying_while_the_database_is_down(action: Callable[[], T], *, what: str) -> T:
    """Run `action`, retrying with backoff for CHAT_RECORD_RETRY_SECONDS while the database is
    unreachable: an outage at the end of an answer delays its record instead of dropping it."""
    deadline = time.monotonic() + settings.CHAT_RECORD_RETRY_SECONDS
    delay = 0.25
    while True:
        try:
            return action()
        except (OperationalError, InterfaceError) as exc:
            if time.monotonic() + delay > deadline:
                raise
            logger.warning(
                "database unavailable, retrying",
                extra={"what": what, "retry_in_s": delay, "error": type(exc).__name__},
            )
            connection.close()  # a broken connection is not reused
            time.sleep(delay)
            delay = min(delay * 2, 5.0)


def _observe(outcome: Outcome, timings: dict[str, float | None]) -> None:
    if not metrics.enabled():
        return
    result = outcome.result
    metrics.QUESTIONS.labels(outcome.audit_outcome).inc()
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
    *, user: User, question: str, conversation_id: str | None
) -> AsyncGenerator[Event, None]:
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
            user=user, question=question, conversation_id=conversation_id
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
            restorations=prepared.question.restorations,
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
        urls = {p.document_id: _document_url(p.document_id) for p in passages}
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
        """The model's one sentence over the quotes, shown only once it has passed the claim
        check: the quotes already answer, and a small model's wrong figure beside them would
        read as the answer. A withheld summary is recorded (audit `detail.summary_withheld`)."""
        messages = summary_messages(question=self.prepared.question.text, groups=plan.groups)
        generation = get_gateway().generate(messages, extractive="", max_tokens=SUMMARY_TOKENS)
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
        if not summary_usable(summary):
            self.draft.withheld = ["summary withheld: it said nothing"]
            return ""
        report = claims_check(text=summary, passages=_support_texts(plan))
        if report.flagged:
            self.draft.withheld = [f"summary withheld: {reason}" for reason in report.reasons()]
            return ""
        return summary

    async def _generate(self, plan: Plan) -> AsyncGenerator[TokenOut | HandoverOut, None]:
        fallback = (
            frame(self.language, "unavailable") + "\n\n" + evidence_text(plan.groups)
            if plan.groups
            else frame(self.language, "unavailable_nothing")
        )
        generation = get_gateway().generate(plan.messages, extractive=fallback)
        self.result = generation.result
        async for event in self._relay(generation.events(), lead=""):
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
        self, events: AsyncGenerator[Token | Handover, None], *, lead: str
    ) -> AsyncGenerator[TokenOut | HandoverOut, None]:
        """Model tokens to the user; `lead` goes before the first one, and the span the model
        wrote is remembered for the claim check."""
        async for event in events:
            if isinstance(event, Handover):
                yield HandoverOut(event.from_backend, event.to_backend)
                continue
            if self.draft.model_start is None:
                if lead:
                    yield self._show(lead)
                self.draft.model_start = len(self.draft.text)
            yield self._show(event.text)
            self.draft.model_end = len(self.draft.text)


async def _store(
    user: User, prepared: Prepared, outcome: Outcome, timings: dict[str, float | None], received: float
) -> Done:
    """Store the exchange and its audit event, shielded: the caller may be going away."""
    timings["total_ms"] = _ms(received)
    return await asyncio.shield(
        sync_to_async(_finish, thread_sensitive=False, executor=_finish_threads)(
            user=user, prepared=prepared, outcome=outcome, timings=timings
        )
    )
