"""Conversation writes: feedback on an answer, renaming and deleting a conversation, and
recording questions whose answer never got recorded (`pending_answers_interrupt`).

The question pipeline is chat/pipeline.py; its events chat/events.py; rate limits chat/limits.py.
"""

from __future__ import annotations

import uuid
from datetime import timedelta

from django.contrib.auth.models import User
from django.db import transaction
from django.utils import timezone

from audit.models import AuditEvent
from audit.services import audit_event_append, pseudonym
from chat.events import AskError
from chat.models import Conversation, Message, PendingAnswer
from chat.pipeline import TITLE_CHARS
from privacy.services import text_redact, vault_for


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


def pending_answers_interrupt(*, older_than: timedelta) -> int:
    """Record, as `interrupted`, every question whose answer was not recorded within
    `older_than` (its process died, or the database stayed down past the writer's retries):
    a failed assistant message and one audit event each. Idempotent: a row is taken once."""
    cutoff = timezone.now() - older_than
    recorded = 0
    while True:
        with transaction.atomic():
            batch = list(
                PendingAnswer.objects.select_for_update(skip_locked=True)
                .filter(created_at__lt=cutoff)
                .order_by("created_at")[:100]
            )
            for pending in batch:
                _record_interrupted(pending)
            PendingAnswer.objects.filter(message_id__in=[p.message_id for p in batch]).delete()
        recorded += len(batch)
        if len(batch) < 100:
            return recorded


def _record_interrupted(pending: PendingAnswer) -> None:
    Message.objects.get_or_create(
        id=pending.message_id,
        defaults={
            "conversation_id": pending.conversation_id,
            "role": Message.Role.ASSISTANT,
            "text": "",
            "status": Message.Status.FAILED,
        },
    )
    audit_event_append(
        kind=AuditEvent.Kind.QUESTION,
        actor=pseudonym(user_id=pending.user_id),
        conversation_id=pending.conversation_id,
        message_id=pending.message_id,
        question=pending.question,
        language=pending.language,
        pii_counts=pending.pii_counts,
        retrieved=pending.retrieved,
        outcome="interrupted",
        detail={"reason": "the answer was not recorded in time", "asked_at": pending.created_at.isoformat()},
    )
