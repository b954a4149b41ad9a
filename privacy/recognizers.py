"""Recognizers for the redaction engine: Presidio's where they fit, ours where they do not.

Ours are regexes with a named group `value` (only that part is redacted, so "born on
12/03/1985" keeps "born on") and an optional validator. They run for English and for
Vietnamese; NER differs per language (spaCy for English, underthesea's CRF for Vietnamese).
"""

from __future__ import annotations

import importlib.util
import re
import sys
import types
from collections.abc import Callable
from functools import cache
from typing import Any

from presidio_analyzer import EntityRecognizer, RecognizerResult
from presidio_analyzer.nlp_engine import NlpArtifacts
from presidio_analyzer.predefined_recognizers import (
    CreditCardRecognizer,
    EmailRecognizer,
    IbanRecognizer,
    IpRecognizer,
    PhoneRecognizer,
    SpacyRecognizer,
)

from privacy.context import (
    EMPLOYEE_ID_CONTEXT,
    EUROPEAN_ADDRESS,
    VIETNAMESE_ADDRESS,
    CasedNameRecognizer,
    LastFirstNameRecognizer,
    MedicalConditionRecognizer,
    VietnameseNameRecognizer,
)

LANGUAGES = ("en", "vi")
DIGIT_SEP = r"[ .\-]?"


class RegexRecognizer(EntityRecognizer):
    """One entity from one regex; the `value` group (or the whole match) is the span."""

    def __init__(
        self,
        *,
        entity: str,
        pattern: str,
        language: str,
        score: float = 0.85,
        flags: int = re.IGNORECASE,
        validate: Callable[[str], bool] | None = None,
        name: str | None = None,
    ) -> None:
        self.regex = re.compile(pattern, flags)
        self.score = score
        self.validate = validate
        super().__init__(
            supported_entities=[entity],
            supported_language=language,
            name=name or f"{entity}_{language}_regex",
        )

    def load(self) -> None:
        pass

    def analyze(
        self, text: str, entities: list[str], nlp_artifacts: NlpArtifacts | None = None
    ) -> list[RecognizerResult]:
        results = []
        for match in self.regex.finditer(text):
            group = "value" if "value" in self.regex.groupindex else 0
            start, end = match.span(group)
            if start < 0 or (self.validate and not self.validate(match.group(group))):
                continue
            results.append(RecognizerResult(self.supported_entities[0], start, end, self.score))
        return results


def _digits(value: str) -> str:
    return re.sub(r"\D", "", value)


def _not_repeated(value: str) -> bool:
    digits = _digits(value)
    return len(set(digits)) > 1


def pattern_recognizers(language: str, *, employee_id_pattern: str) -> list[EntityRecognizer]:
    date = (
        r"\d{1,2}[/.\-]\d{1,2}[/.\-]\d{2,4}|\d{4}-\d{2}-\d{2}|\d{1,2}(?:st|nd|rd|th)? \w+,? \d{4}|\w+ \d{1,2},? \d{4}"
        r"|(?:ngày )?\d{1,2} tháng \d{1,2},? (?:năm )?\d{4}"
    )
    street = (
        r"(?:Street|St\.?|Avenue|Ave\.?|Road|Rd\.?|Boulevard|Blvd\.?|Lane|Ln\.?|Drive|Dr\.?|Court|Ct\.?"
        r"|Way|Place|Pl\.?|Terrace|Parkway|Highway)"
    )
    return [
        # Any SSN-shaped number: in a company chat 123-45-6789 is still somebody's data.
        RegexRecognizer(
            entity="US_SSN", pattern=r"\b(?<![\d-])\d{3}-\d{2}-\d{4}(?![\d-])\b", language=language
        ),
        RegexRecognizer(
            entity="US_SSN",
            pattern=r"\b(?:SSN|social security(?: number| no\.?)?)\s*(?:is|:|#)?\s*(?P<value>\d{3}[ ]?\d{2}[ ]?\d{4})\b",
            language=language,
        ),
        RegexRecognizer(
            entity="US_PASSPORT",
            pattern=r"\bpassport(?: number| no\.?| #)?\s*(?:is|:|#)?\s*(?P<value>[A-Z]?\d{8,9})\b",
            language=language,
        ),
        RegexRecognizer(
            entity="US_DRIVER_LICENSE",
            pattern=r"\b(?:driver'?s? licen[cs]e|DL|driving licen[cs]e)(?: number| no\.?| #)?\s*(?:is|:|#)?\s*"
            r"(?P<value>(?=[A-Z0-9-]*\d)[A-Z0-9][A-Z0-9-]{4,14})\b",
            language=language,
        ),
        RegexRecognizer(
            entity="DATE_OF_BIRTH",
            pattern=r"\b(?:born(?: on| in)?|date of birth|d\.?o\.?b\.?|birthday(?: is)?|birth date|ngày sinh|sinh ngày"
            r"|sinh năm)\s*(?:is|:|là)?\s*(?P<value>" + date + ")",
            language=language,
        ),
        # A year alone is a birth date only after the words that say so.
        RegexRecognizer(
            entity="DATE_OF_BIRTH",
            pattern=r"\b(?:born in|year of birth|sinh năm|năm sinh)\s*(?::|là)?\s*(?P<value>(?:19|20)\d{2})\b",
            language=language,
        ),
        RegexRecognizer(
            entity="LOCATION",
            pattern=r"\b(?P<value>\d{1,6}[A-Z]?(?: [A-Z][a-z]+\.?){1,4} "
            + street
            + r"(?:,? (?:Apt|Suite|Unit|Flat|Floor) ?\w+)?)",
            language=language,
            flags=0,
        ),
        RegexRecognizer(
            entity="LOCATION",
            pattern=r"\b(?P<value>(?:số )?\d{1,5}[A-Z]?(?:/\d{1,4})?,? (?:đường|phố|ngõ|hẻm) [\wÀ-ỹ ]{2,40}?)"
            r"(?=,|\.|$| quận| phường| ở| tại)",
            language=language,
        ),
        RegexRecognizer(entity="LOCATION", pattern=VIETNAMESE_ADDRESS, language=language),
        RegexRecognizer(entity="LOCATION", pattern=EUROPEAN_ADDRESS, language=language, flags=0),
        RegexRecognizer(
            entity="EMPLOYEE_ID", pattern=employee_id_pattern, language=language, flags=0, score=0.9
        ),
        RegexRecognizer(
            entity="EMPLOYEE_ID",
            pattern=EMPLOYEE_ID_CONTEXT,
            language=language,
            name=f"EMPLOYEE_ID_{language}_context",
        ),
        MedicalConditionRecognizer(language=language),
        LastFirstNameRecognizer(language=language),
        VietnameseNameRecognizer(language=language),
        # Vietnamese numbers. Mobile: 0 + 9 digits (or +84 + 9), grouped any way people type them.
        RegexRecognizer(
            entity="PHONE_NUMBER",
            pattern=r"(?<![\w+])(?:\+84|0084|0)" + DIGIT_SEP + r"[35789]\d(?:" + DIGIT_SEP + r"\d){7}(?!\d)",
            language=language,
            score=0.9,
        ),
        # North American numbers written (415) 555-0132 or 415.555.0132.
        RegexRecognizer(
            entity="PHONE_NUMBER",
            pattern=r"(?<![\w+])\(?\d{3}\)?[ .\-]\d{3}[ .\-]\d{4}(?!\d)",
            language=language,
            score=0.6,
        ),
        # International numbers phonenumbers rejects as unallocated (fictional 07700 900xxx).
        RegexRecognizer(
            entity="PHONE_NUMBER",
            pattern=r"(?<![\w+])\+\d{1,3}[ .\-]?\(?\d{2,4}\)?(?:[ .\-]?\d{2,4}){2,3}(?!\d)",
            language=language,
            score=0.7,
        ),
        RegexRecognizer(
            entity="VN_CCCD",
            pattern=r"(?<![\d-])(?P<value>0\d{2}" + DIGIT_SEP + r"\d{3}" + DIGIT_SEP + r"\d{6})(?![\d-])",
            language=language,
            validate=_not_repeated,
        ),
        RegexRecognizer(
            entity="VN_CMND",
            pattern=r"\b(?:CMND|CMTND|chứng minh(?: nhân dân| thư)?|ID card|ID number)(?: số| number| no\.?)?\s*"
            r"(?:là|is|:)?\s*(?P<value>\d{9})\b",
            language=language,
        ),
        RegexRecognizer(
            entity="VN_TAX_CODE",
            pattern=r"\b(?:MST|mã số thuế|tax code|tax id)(?: cá nhân| number)?\s*(?:là|is|:)?\s*"
            r"(?P<value>\d{10}(?:-\d{3})?)\b",
            language=language,
        ),
    ]


def scrub_patterns(*, employee_id_pattern: str) -> list[tuple[str, re.Pattern[str]]]:
    """The recognizers' regexes, for the logging filter (privacy/logging.py): what a log line
    could carry by mistake is found by the same patterns as in messages, without validators and
    without NER (too slow for every log line)."""
    ours = [
        (r.supported_entities[0], r.regex)
        for r in pattern_recognizers("en", employee_id_pattern=employee_id_pattern)
        if isinstance(r, RegexRecognizer)
    ]
    presidio = [
        (entity, re.compile(pattern.regex, re.IGNORECASE))
        for entity, recognizer in (
            ("EMAIL_ADDRESS", EmailRecognizer),
            ("CREDIT_CARD", CreditCardRecognizer),
            ("IBAN_CODE", IbanRecognizer),
            ("IP_ADDRESS", IpRecognizer),
        )
        for pattern in recognizer.PATTERNS
    ]
    return presidio + ours


class OfflineEmailRecognizer(EmailRecognizer):
    """Presidio's email recognizer validates the TLD with tldextract, whose default instance
    fetches the public-suffix list over the network. Use the snapshot bundled in the wheel."""

    def validate_result(self, pattern_text: str) -> bool:
        # Internal domains (.internal, .corp, .example) are not public suffixes but are
        # still somebody's address: accept them when the public list does not know them.
        result = _tld_extractor()(pattern_text)
        return bool(result.fqdn) or "." in pattern_text.rpartition("@")[2]


@cache
def _tld_extractor() -> Any:
    import tldextract

    return tldextract.TLDExtract(suffix_list_urls=(), cache_dir=None, fallback_to_snapshot=True)


def presidio_recognizers(language: str) -> list[EntityRecognizer]:
    regions = ("US", "GB", "VN", "CA", "AU", "SG", "DE", "FR", "IN")
    return [
        OfflineEmailRecognizer(supported_language=language),
        PhoneRecognizer(supported_language=language, supported_regions=regions),
        CreditCardRecognizer(supported_language=language),
        IbanRecognizer(supported_language=language),
        IpRecognizer(supported_language=language),
    ]


def english_names() -> list[EntityRecognizer]:
    """English NER plus names in the case NER misses (Vietnamese syllables are not census names)."""
    return [english_ner(), CasedNameRecognizer(language="en")]


def english_ner() -> EntityRecognizer:
    # Only PERSON from the statistical model: its GPE/LOC/ORG tags would redact the cities
    # and departments that policy questions are about. Street addresses come from regexes.
    return SpacyRecognizer(supported_language="en", supported_entities=["PERSON"])


# --- Vietnamese NER (underthesea's CRF model) -------------------------------------------


@cache
def _underthesea_ner() -> Callable[[str], list[tuple[str, str, str, str]]]:
    """Import only the CRF pipeline: the package's __init__ also imports its optional
    deep-learning modules (transformers and friends), seconds of start-up we do not need."""
    if "underthesea" not in sys.modules:
        spec = importlib.util.find_spec("underthesea")
        if spec is None or not spec.submodule_search_locations:
            raise ImportError("underthesea is not installed")
        shim = types.ModuleType("underthesea")
        shim.__path__ = list(spec.submodule_search_locations)
        shim.__spec__ = spec
        sys.modules["underthesea"] = shim
        # The package's own import order; later modules import earlier ones from the top level.
        from underthesea.pipeline.chunking import chunk
        from underthesea.pipeline.ner import ner
        from underthesea.pipeline.pos_tag import pos_tag
        from underthesea.pipeline.text_normalize import text_normalize  # noqa: F401 (import order)
        from underthesea.pipeline.word_tokenize import word_tokenize

        for name, function in (
            ("chunk", chunk),
            ("ner", ner),
            ("pos_tag", pos_tag),
            ("word_tokenize", word_tokenize),
        ):
            setattr(shim, name, function)
    from underthesea.pipeline.ner import ner as vietnamese_ner

    return vietnamese_ner


# Honorifics the CRF sometimes folds into a name; they are not part of it.
_TITLES = {"anh", "chị", "ông", "bà", "em", "cô", "chú", "bác", "bạn", "sếp", "thầy"}
# Holidays the CRF model reads as names.
_NOT_NAMES = {"tết", "tết nguyên đán", "trung thu", "quốc khánh", "mã"}


_ADDRESS_WORDS = re.compile(r"(?:đường|phố|ngõ|hẻm|số nhà|địa chỉ|phường|quận|xã|huyện)\s*$", re.IGNORECASE)


def _is_acronym(word: str) -> bool:
    """CMND, MST, HR: the CRF tags capitalised abbreviations as names."""
    return word.isupper() and len(word) <= 6


_ADDRESS_START = re.compile(r"(?:[Qq]uận|[Pp]hường|[Hh]uyện|[Xx]ã|[Đđ]ường|[Pp]hố)\s+(?:\d|[A-ZĐÀ-Ỹ])")
_HOUSE_NUMBER = re.compile(r"(?:số\s+)?\d{1,5}[A-Z]?(?:/\d{1,4})?,?\s+[A-ZĐÀ-Ỹ]")


class VietnameseNerRecognizer(EntityRecognizer):
    """Names from the CRF model; its LOC spans only when they are addresses (a house number
    or an address word before them), so "văn phòng Hà Nội" in a policy question survives."""

    def __init__(self) -> None:
        super().__init__(
            supported_entities=["PERSON", "LOCATION"], supported_language="vi", name="underthesea_crf"
        )

    def load(self) -> None:
        _underthesea_ner()

    def analyze(
        self, text: str, entities: list[str], nlp_artifacts: NlpArtifacts | None = None
    ) -> list[RecognizerResult]:
        spans: list[list[Any]] = []  # [entity, start, end]
        cursor = 0
        for word, _pos, _chunk, tag in _underthesea_ner()(text):
            start = text.find(word, cursor)
            if start < 0:
                continue
            end = cursor = start + len(word)
            entity = "PERSON" if tag.endswith("PER") else "LOCATION" if tag.endswith("LOC") else None
            if entity is None or (
                entity == "PERSON" and (word.lower() in _TITLES | _NOT_NAMES or _is_acronym(word))
            ):
                continue
            if tag.startswith("I-") and spans and spans[-1][0] == entity and spans[-1][2] >= start - 2:
                spans[-1][2] = end
            else:
                spans.append([entity, start, end])
        return [
            RecognizerResult(entity, start, end, 0.85)
            for entity, start, end in spans
            if entity == "PERSON" or self._is_address(text, start, end)
        ]

    @staticmethod
    def _is_address(text: str, start: int, end: int) -> bool:
        """An address word before it ("ở phường …"), a house number then a capitalised name, or
        two administrative units ("phường 7, quận 10"); one alone ("văn phòng ở quận 1") is where
        an office is, not somebody's home."""
        span = text[start:end]
        return bool(
            _ADDRESS_WORDS.search(text[:start])
            or _HOUSE_NUMBER.match(span)
            or (_ADDRESS_START.match(span) and "," in span)
        )
