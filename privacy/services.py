"""Redaction: every question, answer and history turn passes here before it goes anywhere.

`text_redact(text=..., vault=...)` returns the text with each PII value replaced by a
placeholder like `<PERSON_1>`. A `PlaceholderVault` keeps placeholders stable within a
conversation ("my manager <PERSON_1>" stays <PERSON_1> next turn) while holding only keyed
digests of the values, so it can be stored with the conversation without storing PII.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import time
import unicodedata
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from html import escape
from typing import Any

from django.conf import settings

from privacy.analysis import PLACEHOLDER, SpanFinder, pii_find
from privacy.language import detect_language


@dataclass
class PlaceholderVault:
    """Value digest → placeholder for one conversation. Safe to persist: HMAC digests only."""

    scope: str
    mapping: dict[str, str] = field(default_factory=dict)

    def knows(self, entity: str, value: str) -> bool:
        """Whether `value` was redacted earlier in this conversation (by the user, say)."""
        return self._digest(entity, value) in self.mapping

    def placeholder(self, entity: str, value: str) -> str:
        digest = self._digest(entity, value)
        existing = self.mapping.get(digest)
        if existing:
            return existing
        number = 1 + sum(1 for p in self.mapping.values() if p.startswith(f"<{entity}_"))
        created = f"<{entity}_{number}>"
        self.mapping[digest] = created
        return created

    def _digest(self, entity: str, value: str) -> str:
        key = settings.AUDIT_HMAC_KEY.encode()
        message = f"pii|{self.scope}|{entity}|{_normalise(entity, value)}".encode()
        return hmac.new(key, message, hashlib.sha256).hexdigest()[:32]

    def as_json(self) -> dict[str, str]:
        return dict(self.mapping)


def _normalise(entity: str, value: str) -> str:
    if entity in {"PHONE_NUMBER", "US_SSN", "VN_CCCD", "VN_CMND", "VN_TAX_CODE", "CREDIT_CARD"}:
        digits = re.sub(r"\D", "", value)
        return digits[-9:] if entity == "PHONE_NUMBER" else digits  # +84 90… == 090…
    folded = unicodedata.normalize("NFC", value).casefold()
    return " ".join(folded.split())


@dataclass(frozen=True)
class Redaction:
    text: str
    language: str
    counts: dict[str, int]
    latency_ms: float
    # Where the replaced values were in the original text and what each was (start, end,
    # entity): positions and types only, never the values.
    spans: tuple[tuple[int, int, str], ...] = ()
    # Values found in the text but left as they are: document content (see text_redact).
    kept_as_document: int = 0
    # Placeholder → the value it replaced, for showing the asker their own words on their own
    # socket (chat/consumers.py). Process memory only: never stored, logged or sent on.
    restorations: dict[str, str] = field(default_factory=dict, repr=False, compare=False)

    @property
    def found(self) -> int:
        return sum(self.counts.values())


def text_redact(
    *,
    text: str,
    vault: PlaceholderVault | None = None,
    language: str | None = None,
    find: SpanFinder = pii_find,
    documents: Sequence[str] = (),
) -> Redaction:
    """The text with each PII value replaced by its conversation placeholder.

    `documents`: the passages an answer was written from. A value found in the answer that
    stands verbatim in one of them is document content (a help-desk address, a form's name the
    NER reads as a person) and is kept, unless the conversation redacted that same value before
    (the user typed it as theirs). Values the model made up appear in no passage: redacted.
    `find`: privacy.pool's `pii_find_pooled` analyses in a redaction process when this
    process runs a pool; for long texts off the time-to-first-token path, such as answers.
    """
    started = time.perf_counter()
    language = language or detect_language(text)
    vault = vault or PlaceholderVault(scope="one-off")
    if not text.strip():
        return Redaction(text=text, language=language, counts={}, latency_ms=0.0)
    counts: Counter[str] = Counter()
    restorations: dict[str, str] = {}
    pieces, cursor, replaced, kept = [], 0, [], 0
    for span in find(text=text, language=language):
        value = text[span.start : span.end]
        if documents and not vault.knows(span.entity_type, value) and any(value in d for d in documents):
            kept += 1
            continue
        pieces.append(text[cursor : span.start])
        placeholder = vault.placeholder(span.entity_type, value)
        restorations.setdefault(placeholder, value)
        pieces.append(placeholder)
        counts[span.entity_type] += 1
        replaced.append((span.start, span.end, span.entity_type))
        cursor = span.end
    pieces.append(text[cursor:])
    return Redaction(
        text="".join(pieces),
        language=language,
        counts=dict(counts),
        latency_ms=round((time.perf_counter() - started) * 1000, 2),
        spans=tuple(replaced),
        kept_as_document=kept,
        restorations=restorations,
    )


_PLACEHOLDER_IN_HTML = re.compile(r"&lt;([A-Z_]+_\d+)(?:>|&gt;)")


def placeholders_restore(*, text: str, restorations: dict[str, str]) -> str:
    """Placeholders back to the values they replaced, where `restorations` knows them."""
    return PLACEHOLDER.sub(lambda m: restorations.get(m.group(0), m.group(0)), text)


def placeholders_restore_html(*, html: str, restorations: dict[str, str]) -> str:
    """The same in rendered HTML, where a placeholder is escaped text; values are escaped too."""

    def value(match: re.Match[str]) -> str:
        restored = restorations.get(f"<{match.group(1)}>")
        return escape(restored) if restored is not None else match.group(0)

    return _PLACEHOLDER_IN_HTML.sub(value, html)


MAX_PLACEHOLDER = 40  # "<EMPLOYEE_ID_123>" and the longest entity names fit


@dataclass
class RestoringStream:
    """A streamed answer with the asker's own placeholders restored, piece by piece, for their
    own connection only. A tail that may be the start of a placeholder ("<PERS") is held back
    until a later piece completes it, or the stream ends (`final`)."""

    restorations: dict[str, str]
    held_back: str = ""

    def feed(self, text: str, *, final: bool = False) -> str:
        text, self.held_back = self.held_back + text, ""
        if not final:
            start = text.rfind("<")
            if start != -1 and ">" not in text[start:] and len(text) - start <= MAX_PLACEHOLDER:
                text, self.held_back = text[:start], text[start:]
        return placeholders_restore(text=text, restorations=self.restorations) if text else ""


def vault_for(*, scope: str, stored: dict[str, Any] | None) -> PlaceholderVault:
    return PlaceholderVault(scope=scope, mapping={str(k): str(v) for k, v in (stored or {}).items()})
