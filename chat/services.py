"""Conversation writes: feedback on an answer, renaming and deleting a conversation.

The question pipeline is chat/pipeline.py; its events chat/events.py; rate limits chat/limits.py.
"""

from __future__ import annotations

import uuid

from django.contrib.auth.models import User
from django.db import transaction

from audit.models import AuditEvent
from audit.services import audit_event_append, pseudonym
from chat.events import AskError
from chat.models import Conversation, Message
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
