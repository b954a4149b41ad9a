from __future__ import annotations

from django.contrib.auth.models import User
from django.db.models import QuerySet

from accounts.roles import ASK_QUESTIONS
from accounts.selectors import user_has_permission
from chat.models import Conversation, Message


def user_may_ask(*, user_id: int, session_key: str | None = None) -> bool:
    return user_has_permission(user_id=user_id, permission=ASK_QUESTIONS, session_key=session_key)


def conversation_list(*, user: User) -> QuerySet[Conversation]:
    return Conversation.objects.filter(user=user).order_by("-updated_at")


def conversation_get(*, user: User, conversation_id: str) -> Conversation | None:
    try:
        return Conversation.objects.filter(user=user, id=conversation_id).first()
    except Exception:  # not a UUID
        return None


def conversation_messages(*, conversation: Conversation) -> QuerySet[Message]:
    return conversation.messages.order_by("created_at")
