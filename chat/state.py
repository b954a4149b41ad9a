"""What one question carries through the pipeline: how it was asked, the prepared question, the
plan of the answer, the answer as the user saw it, and how it ended. Plain data
(chat/pipeline.py builds it, chat/recording.py stores it)."""

from __future__ import annotations

from dataclasses import dataclass, field

from chat.answers import Numbered, attribution
from chat.asof import AsOf
from chat.events import TokenOut
from chat.support import Source, SupportReport, passage_source
from llm.gateway import GenerationResult
from privacy.services import Redaction
from rag.evidence import Evidence
from rag.selectors import RetrievedChunk
from rag.versions import Scheduled, VersionInfo

CHANNELS = ("socket", "api", "cli", "evaluation")


@dataclass(frozen=True)
class Asking:
    """How a question arrived, and what its caller may choose (the OpenAI-compatible API's
    request options). The defaults are the chat socket's."""

    channel: str = "socket"  # one of CHANNELS; recorded in the question's audit event
    api_key_id: int | None = None  # the API key that asked (its id, never the key)
    # The caller's earlier turns, as they sent them (role, text), oldest first: redacted here
    # like the question. None: the conversation's own stored (already redacted) messages.
    history: tuple[tuple[str, str], ...] | None = None
    max_tokens: int | None = None  # for what a model writes; never above a backend's own limit
    temperature: float | None = None  # None: each backend's configured temperature


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
    asking: Asking = field(default_factory=Asking)
    # Placeholder → value for the caller's earlier turns (API history): for their response only.
    history_restorations: dict[str, str] = field(default_factory=dict, repr=False)
    as_of: AsOf | None = None  # the day answered for (None: today, as before versions)
    versions: dict[int, VersionInfo] = field(default_factory=dict)  # by passage document id
    scheduled: list[Scheduled] = field(default_factory=list)  # versions the asker will see next


@dataclass
class Plan:
    mode: str  # evidence | generate
    given: list[RetrievedChunk]  # the passages the answer (and any model) is given, numbered from 1
    groups: list[Numbered]  # the evidence, by passage number
    messages: list[dict[str, str]] = field(default_factory=list)  # generate mode's prompt

    def sources(self) -> list[Source]:
        """What each passage number gave the model, for the support check: the quotes (evidence
        mode), or the whole passage with its quotes (generate mode)."""
        quoted = {g.n: [s.text for s in g.sentences] for g in self.groups}
        if self.mode == "evidence":
            given = [(g.n, g.passage) for g in self.groups]
        else:
            given = list(enumerate(self.given, start=1))
        return [
            passage_source(
                n=n,
                text=passage.text,
                quoted=quoted.get(n, []),
                context=attribution(passage),
                whole=self.mode == "generate",
            )
            for n, passage in given
        ]


@dataclass
class Draft:
    """What the user has been shown, and which part of it a model wrote."""

    text: str = ""
    model_start: int | None = None  # where the model's text begins in `text`
    model_end: int | None = None
    declined: bool = False
    withheld: list[str] = field(default_factory=list)  # why the model's summary was not shown
    support: SupportReport | None = None  # the support check of the model's shown text, once run
    withheld_support: SupportReport | None = None  # that of a summary the check kept from view

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
