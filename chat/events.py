"""The events of one answer, as the pipeline yields them, and their one JSON serialisation
(the WebSocket contract in docs/websocket-api.md; `manage.py ask --json` prints the same `done`)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


class AskError(Exception):
    """A refusal the client is told about with an error code from the socket contract."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


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
    mode: str = "evidence"  # evidence | generate (llm.config.ANSWER_MODES)
    declined: bool = False  # "the policies do not cover this"
    checks: list[str] = field(default_factory=list)  # why the answer is unverified, if it is
    answerability: float = 0.0
    # The stored (redacted) text with each sentence the claim check flagged between
    # chat.prompt.MARK_START and MARK_END: the API marks them in Markdown.
    marked: str = ""
    prompt_tokens: int | None = None  # what the model was sent and wrote, as it reported
    completion_tokens: int = 0
    finish_reason: str | None = None  # the model's: "length" when it ran out of tokens
    as_of: str = ""  # the day the answer was given for (ISO), today unless the question named one
    scheduled: str | None = None  # a cited policy's next version's effective date, if the asker may see it
    # The support check of the model's sentences (chat/recording.py, support_summary): status,
    # reasons, and how many were written, supported, shown, marked, collapsed, withheld.
    support: dict[str, Any] = field(default_factory=dict)


Event = Started | TokenOut | HandoverOut | CitationsOut | Done

CITATION_FIELDS = ("n", "document_id", "title", "heading", "page", "url", "cited")
# Added with policy versions (docs/policy-versions.md); absent from citations stored before.
VERSION_FIELDS = ("version", "effective_from", "effective_until", "superseded", "version_label")


def event_as_json(event: Event) -> dict[str, Any]:
    if isinstance(event, Started):
        return {"type": "started", "conversation_id": event.conversation_id, "message_id": event.message_id}
    if isinstance(event, TokenOut):
        return {"type": "token", "text": event.text}
    if isinstance(event, HandoverOut):
        return {"type": "handover", "from": event.from_backend, "to": event.to_backend}
    if isinstance(event, CitationsOut):
        return {"type": "citations", "items": [citation_as_json(c) for c in event.items]}
    return {
        "type": "done",
        "message_id": event.message_id,
        "conversation_id": event.conversation_id,
        "html": event.html,
        "backend": event.backend,
        "verified": event.verified,
        "fallback": event.fallback,
        "handover": event.handover,
        "mode": event.mode,
        "declined": event.declined,
        "checks": event.checks,
        "timings": event.timings,
        "support": event.support,
        "as_of": event.as_of,
        **({"scheduled": event.scheduled} if event.scheduled else {}),
    }


def citation_as_json(citation: dict[str, Any]) -> dict[str, Any]:
    return {
        **{k: citation[k] for k in CITATION_FIELDS},
        **{k: citation[k] for k in VERSION_FIELDS if k in citation},
    }
