"""What one question carries through the pipeline: the prepared question, the plan of the
answer, the answer as the user saw it, and how it ended. Plain data (chat/pipeline.py builds
it, chat/recording.py stores it)."""

from __future__ import annotations

from dataclasses import dataclass, field

from chat.answers import Numbered, attribution
from chat.events import TokenOut
from chat.support import Source, SupportReport, passage_source
from llm.gateway import GenerationResult
from privacy.services import Redaction
from rag.evidence import Evidence
from rag.selectors import RetrievedChunk


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
