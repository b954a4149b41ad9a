"""Recording an answer: check its citations and the support of what the model wrote, shape
what is shown by that check, redact it, and store it with its audit event, ending the
question's hand-off in the same transaction; retried while the database is unreachable
(docs/operations.md, "No lost records")."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any, TypeVar

from django.conf import settings
from django.contrib.auth.models import User
from django.db import InterfaceError, OperationalError, connection, transaction
from django.urls import reverse
from presidio_analyzer import RecognizerResult

from audit.models import AuditEvent
from audit.services import audit_event_append, pseudonym
from chat.answers import attribution, evidence_text, frame
from chat.claims import claims_in
from chat.events import Done
from chat.models import Conversation, Message, PendingAnswer
from chat.prompt import COLLAPSE_END, COLLAPSE_START, MARK_END, MARK_START, answer_render, citations_check
from chat.state import Outcome, Plan, Prepared
from chat.support import SupportReport, support_check, support_unavailable
from chat.versioning import as_of_detail, citation_version, cited_versions, done_version_fields
from core import metrics
from core.db import release_db_connection
from privacy.pool import pii_find_pooled
from privacy.services import text_redact, vault_for
from rag.index import query_embedder, sentence_vectors
from rag.selectors import RetrievedChunk

logger = logging.getLogger("chat.pipeline")  # one logger name for a question's whole story
T = TypeVar("T")


def document_url(document_id: int) -> str:
    return reverse("rag:view", args=[document_id])


def _passage_url(chunk: RetrievedChunk, evidence: list[tuple[int, int]]) -> str:
    """The document view at this passage, with its evidence sentences highlighted."""
    spans = ",".join(f"{start}-{end}" for start, end in evidence)
    query = f"?chunk={chunk.chunk_id}" + (f"&hl={spans}" if spans else "")
    return document_url(chunk.document_id) + query + f"#chunk-{chunk.chunk_id}"


def _citation_items(plan: Plan, cited: list[int], prepared: Prepared) -> list[dict[str, Any]]:
    """Every passage the answer was given, numbered as in the answer; `cited` marks those it
    cites (the UI shows them first, the rest as "also consulted"). Each says which version of
    its document it comes from, and when that version is in effect."""
    language = prepared.question.language
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
            **citation_version(prepared, chunk, language),
        }
        for n, chunk in enumerate(plan.given, start=1)
    ]
    return sorted(items, key=lambda item: (not item["cited"], item["n"]))


# When more than this share of the model's words fail the support check, the answer leads with
# the evidence and the model's text is collapsed behind a "not supported" summary line.
COLLAPSE_SHARE = 0.5


def answer_support(
    *, plan: Plan, question: str, language: str, text: str, complete: bool = True
) -> SupportReport:
    """The support check of a model's text against what it was given (chat/support.py), with
    e5 vectors: the policy sentences' from the cache ingestion filled, the model's embedded in
    one batch. CPU work: callers run it in a worker thread, never on the event loop. Should
    the check itself fail, every sentence counts as unsupported: the answer is still stored,
    and nothing unchecked is shown as verified."""
    try:
        return support_check(
            text=text,
            question=question,
            language=language,
            sources=plan.sources(),
            embed=sentence_vectors,
            embed_new=lambda texts: query_embedder().embed_documents(texts),
            complete=complete,
        )
    except Exception:
        logger.exception("support check failed")
        return support_unavailable(text)


QUOTE_EXCERPT_CHARS = 300


def _quotes(plan: Plan) -> dict[int, str]:
    """What each numbered passage says for the answer: its evidence sentences, or, for a passage
    given without any, the start of its text. Sent to the asker, never stored (document text)."""
    evidence = {g.n: " ".join(" ".join(s.text.split()) for s in g.sentences) for g in plan.groups}
    quotes = {}
    for n, chunk in enumerate(plan.given, start=1):
        text = evidence.get(n) or " ".join(chunk.text.split())
        quotes[n] = text if len(text) <= QUOTE_EXCERPT_CHARS else text[: QUOTE_EXCERPT_CHARS - 1] + "…"
    return quotes


SENTINELS = (MARK_START, MARK_END, COLLAPSE_START, COLLAPSE_END)


def _pii_around_marks(*, text: str, language: str) -> list[RecognizerResult]:
    """PII in an answer that holds the support check's marks: a mark is a private-use character
    glued to its sentence ("\ue000You also get..."), which the NER took for a name. Analysed with
    each mark as a space: the same offsets, the sentence as it reads."""
    for sentinel in SENTINELS:
        text = text.replace(sentinel, " ")
    return pii_find_pooled(text=text, language=language)


def _marked(text: str, report: SupportReport) -> str:
    """The model's text with each flagged sentence between markers."""
    for sentence in sorted(report.flagged, key=lambda s: -s.start):
        start, end = sentence.start, sentence.end
        text = text[:start] + MARK_START + text[start:end] + MARK_END + text[end:]
    return text


def _collapses(outcome: Outcome, report: SupportReport | None) -> bool:
    plan = outcome.plan
    return bool(
        plan
        and plan.mode == "generate"
        and outcome.status == Message.Status.COMPLETE
        and report
        and report.checked
        and report.unsupported_share > COLLAPSE_SHARE
    )


def _shown(outcome: Outcome, report: SupportReport | None, language: str) -> str:
    """The answer as it is shown: flagged model sentences marked; when most of the model's
    text is unsupported, the evidence first and the model's text collapsed after it."""
    draft, plan = outcome.draft, outcome.plan
    if report is None or draft.model_start is None:
        return draft.text
    before, after = draft.text[: draft.model_start], draft.text[draft.model_end or len(draft.text) :]
    model = _marked(draft.model_text, report)
    if not _collapses(outcome, report) or plan is None:
        return before + model + after
    lead = frame(language, "evidence") + "\n\n" + evidence_text(plan.groups) + "\n\n" if plan.groups else ""
    collapsed = f"{COLLAPSE_START}{frame(language, 'model_collapsed')}\n\n{model.strip()}\n\n{COLLAPSE_END}"
    return before + lead + collapsed


def support_summary(outcome: Outcome, report: SupportReport | None, shown_text: str) -> dict[str, Any]:
    """What the audit event and `done` say about the model's sentences: the check's status and
    reasons, and how many sentences were written, supported, shown as the answer, marked,
    collapsed or withheld. `shown_unsupported` counts sentences shown as the answer although
    the check failed them: 0 by construction."""
    draft = outcome.draft
    shown = report if draft.model_start is not None else None
    checked = shown.checked if shown else []
    flagged = shown.flagged if shown else []
    collapsed = _collapses(outcome, shown)
    withheld = draft.withheld_support.checked if draft.withheld_support else []
    about = shown or draft.withheld_support  # the model's text: shown, or kept from view
    return {
        "status": about.status if about else "verified",
        "reasons": about.reasons() if about else [],
        "model_sentences": {
            "written": len(checked) + len(withheld),
            "supported": len(checked) - len(flagged) + sum(1 for s in withheld if s.supported),
            "shown": 0 if collapsed else len(checked) - len(flagged),
            "marked": 0 if collapsed else len(flagged),
            "collapsed": len(checked) if collapsed else 0,
            "withheld": len(withheld),
            "shown_unsupported": _shown_unsupported(shown_text, shown),
        },
    }


def _shown_unsupported(shown_text: str, report: SupportReport | None) -> int:
    """Flagged sentences of the model's text that the shown answer holds unmarked (counted on
    the composed answer, not assumed)."""
    if report is None:
        return 0
    return sum(1 for s in report.flagged if MARK_START + s.text + MARK_END not in shown_text)


def answer_record(
    *, user: User, prepared: Prepared, outcome: Outcome, timings: dict[str, float | None]
) -> Done:
    """Check citations and claims, redact and store the answer, append the audit event."""
    try:
        result, draft, plan = outcome.result, outcome.draft, outcome.plan
        given = plan.given if plan else []
        language = prepared.question.language if prepared.question.language in ("en", "vi") else "en"
        report = draft.support
        if report is None and plan and draft.model_text.strip():
            started = time.perf_counter()
            report = answer_support(
                plan=plan,
                question=prepared.question.text,
                language=language,
                text=draft.model_text,
                complete=result.finish_reason != "length",
            )
            timings["support_ms"] = round((time.perf_counter() - started) * 1000, 2)
        shown_text = _shown(outcome, report, language)
        checked = citations_check(answer=shown_text, passage_count=len(given))
        checks = report.reasons() if report else []
        if checked.removed:
            checks.append(f"removed {checked.removed} citation(s) to passages that were not supplied")
        supported = not (report and report.flagged)
        # A decline claims nothing; anything else must cite a passage and hold only what it gave.
        verified = supported and (draft.declined or bool(checked.cited))
        support = support_summary(outcome, report, shown_text)
        vault = vault_for(scope=prepared.conversation_id, stored=prepared.placeholders)
        # Policy text the answer quotes (a contact address, a form's name) stays readable.
        # (and the titles and headings the quotes are attributed to).
        documents = [p.text for p in prepared.passages] + [attribution(p) for p in prepared.passages]
        # And PolicyDesk's own words around them ("Tóm tắt của mô hình" is no person's name).
        documents.append(frame(language, "model_collapsed"))
        answer = (
            text_redact(text=checked.text, vault=vault, find=_pii_around_marks, documents=documents)
            if checked.text
            else None
        )
        marked_text = answer.text if answer else ""
        answer_text = marked_text
        for sentinel in SENTINELS:
            answer_text = answer_text.replace(sentinel, "")
        citations = _citation_items(plan, checked.cited, prepared) if plan else []
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
                retrieved=retrieved_scores(prepared.passages),
                cited_documents=sorted({c["document_id"] for c in citations if c["cited"]}),
                backend=backend,
                outcome=outcome.audit_outcome,
                attempts=result.attempts_as_dicts(),
                verified=verified,
                latencies=timings,
                prompt_tokens=result.prompt_tokens,
                completion_tokens=result.completion_tokens,
                detail={
                    **_channel(prepared),
                    "document_text_kept": answer.kept_as_document if answer else 0,
                    "mode": mode,
                    "declined": draft.declined,
                    "answerability": prepared.evidence.answerability,
                    "claims_checked": sum(len(claims_in(s.text)) for s in report.checked) if report else 0,
                    "checks": checks,
                    "summary_withheld": draft.withheld,
                    "support": support["status"],
                    "support_reasons": support["reasons"],
                    "model_sentences": support["model_sentences"],
                    # Which text each cited passage is: document, version, content hash.
                    "cited_versions": cited_versions(prepared, plan, checked.cited),
                    **as_of_detail(prepared, plan),
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
        quotes = _quotes(plan) if plan else {}
        return Done(
            message_id=prepared.message_id,
            conversation_id=prepared.conversation_id,
            text=answer_text,
            html=html,
            backend=backend,
            verified=verified,
            fallback=result.fallback,
            handover=bool(result.handovers),
            citations=[{**c, "quote": quotes.get(c["n"], "")} for c in citations],
            attempts=result.attempts_as_dicts(),
            timings=timings,
            mode=mode,
            declined=draft.declined,
            checks=checks,
            answerability=prepared.evidence.answerability,
            support=support,
            marked=marked_text,
            prompt_tokens=result.prompt_tokens,
            completion_tokens=result.completion_tokens,
            finish_reason=result.finish_reason,
            **done_version_fields(prepared, plan),
        )
    finally:
        release_db_connection()


def _channel(prepared: Prepared) -> dict[str, Any]:
    """Where the question came from, for the audit event: the API key's id, never the key."""
    asking = prepared.asking
    if asking.api_key_id is None:
        return {"channel": asking.channel}
    return {"channel": asking.channel, "api_key_id": asking.api_key_id}


def retrieved_scores(passages: list[RetrievedChunk]) -> list[dict[str, Any]]:
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
