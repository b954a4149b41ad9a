from __future__ import annotations

import uuid

from django.conf import settings
from django.db import models


class Conversation(models.Model):
    """One thread of questions. Every text column holds redacted text only."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="conversations")
    title = models.CharField(max_length=200, blank=True)
    # Placeholder vault: HMAC digests of PII values → "<PERSON_1>". No value is stored.
    placeholders = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-updated_at"]
        indexes = [models.Index(fields=["user", "-updated_at"])]

    def __str__(self) -> str:
        return self.title or str(self.id)


class Message(models.Model):
    class Role(models.TextChoices):
        USER = "user"
        ASSISTANT = "assistant"

    class Status(models.TextChoices):
        COMPLETE = "complete"
        STOPPED = "stopped"
        FAILED = "failed"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    conversation = models.ForeignKey(Conversation, on_delete=models.CASCADE, related_name="messages")
    role = models.CharField(max_length=10, choices=Role.choices)
    text = models.TextField()
    html = models.TextField(blank=True)
    citations = models.JSONField(default=list, blank=True)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.COMPLETE)
    backend = models.CharField(max_length=64, blank=True)
    verified = models.BooleanField(null=True)
    fallback = models.BooleanField(default=False)
    handover = models.BooleanField(default=False)
    feedback = models.SmallIntegerField(null=True)
    feedback_comment = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["created_at"]

    def __str__(self) -> str:
        return f"{self.role} {self.id}"


class PendingAnswer(models.Model):
    """The durable hand-off of one question: written with the question, removed in the same
    transaction as its answer and audit event. A row that stays (the process died, or the
    database was down for longer than the answer's writer kept retrying) is recorded later as an
    `interrupted` audit event by a periodic task, so every stored question ends in exactly one
    question event. Holds redacted text only, like the rest of the app."""

    message_id = models.UUIDField(primary_key=True)  # the assistant message this becomes
    conversation = models.ForeignKey(Conversation, on_delete=models.CASCADE, related_name="+")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    question = models.TextField()
    language = models.CharField(max_length=8, blank=True)
    pii_counts = models.JSONField(default=dict, blank=True)
    retrieved = models.JSONField(default=list, blank=True)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    def __str__(self) -> str:
        return f"pending answer {self.message_id}"
