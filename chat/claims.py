"""Claim checks: every checkable fact a model wrote must appear in a passage it was given.

Pure functions. A "claim" is what a reader would act on and a small model gets wrong: a
number with its unit ("80 hours", "$75", "15%"), a date, an e-mail address, a URL, a form's
name ("SF-182", "the Advanced Sick Leave Request form"). Numbers are compared after number
words become digits, so "eighty hours" in an answer is "80 hours" in the policy.

A sentence with citation markers is checked against the passages it cites; a claim found
only in another supplied passage is a misattributed citation. A sentence without markers
is checked against every supplied passage.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field

from rag.evidence import EMAIL, PLACEHOLDER

CITATION = re.compile(r"\[(\d{1,3})\]")
SENTENCE_END = re.compile(r"(?<=[.!?])\s+|\n+")

_SMALL = {
    "zero": 0, "one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7,
    "eight": 8, "nine": 9, "ten": 10, "eleven": 11, "twelve": 12, "thirteen": 13,
    "fourteen": 14, "fifteen": 15, "sixteen": 16, "seventeen": 17, "eighteen": 18,
    "nineteen": 19,
}  # fmt: skip
_TENS = {
    "twenty": 20, "thirty": 30, "forty": 40, "fifty": 50, "sixty": 60, "seventy": 70,
    "eighty": 80, "ninety": 90,
}  # fmt: skip
_NUMBER_WORDS = "|".join([*_SMALL, *_TENS, "hundred", "thousand"])
# A run of number words: "eighty", "twenty-four", "two hundred and forty".
_NUMBER_RUN = re.compile(rf"\b(?:{_NUMBER_WORDS})(?:(?:[- ]|\s+and\s+)(?:{_NUMBER_WORDS}))*\b", re.I)
UNITS = {
    "hour": "hour", "hours": "hour", "hr": "hour", "hrs": "hour",
    "day": "day", "days": "day", "week": "week", "weeks": "week",
    "month": "month", "months": "month", "year": "year", "years": "year",
    "minute": "minute", "minutes": "minute", "percent": "%", "%": "%",
    "dollar": "$", "dollars": "$", "period": "pay period", "periods": "pay period",
    # Vietnamese: "20 ngày" is "20 days" ("năm" is also the word five: after a number, a year)
    "ngày": "day", "giờ": "hour", "tuần": "week", "tháng": "month", "năm": "year", "phút": "minute",
    "lương": "pay period",  # "kỳ lương"
}  # fmt: skip
_NUMBER = re.compile(
    # "240 annual leave hours": up to two words may stand between a number and its unit.
    r"(\$\s?)?(\d[\d,]*(?:\.\d+)?)(?:(?:\s+[a-z]+){0,2}?\s*(%|percent\b|(?:business |calendar |work |working )?"
    r"(?:hours?|hrs?|days?|weeks?|months?|years?|minutes?)\b|(?:pay )?periods?\b|dollars?\b|"
    r"(?:ngày|giờ|tuần|tháng|năm|phút|kỳ lương)(?!\w)))?",
    re.I,
)
_URL = re.compile(r"\b(?:https?://|www\.)[^\s<>()\[\]]+", re.I)
_FORM_CODE = re.compile(r"\b(?:SF|OF|GSA|DD|FS|OPM|CA|TSP)[- ]?\d{1,4}[A-Z]?\b|\bForm\s+[A-Z]*-?\d+[A-Z]?\b")
_FORM_NAME = re.compile(r"\b((?:[A-Z][\w\u2019'-]*\s+){1,6})[Ff]orm\b")
_MONTH = r"(January|February|March|April|May|June|July|August|September|October|November|December)"
_DATE = re.compile(rf"\b{_MONTH}\s+(\d{{1,2}})\b|\b(\d{{1,2}})\s+{_MONTH}\b|\b(\d{{4}}-\d{{2}}-\d{{2}})\b")
_LIST_MARKER = re.compile(r"^\s*(?:\d{1,2}[.)]|[-*•])\s+", re.M)


WORD_NUMBER = "\u2060"  # marks a number that was written in words (an invisible word joiner)


def words_to_digits(text: str, *, mark: bool = False) -> str:
    """ "eighty hours" → "80 hours", "twenty-four" → "24", "two hundred and forty" → "240".
    With `mark`, each converted number starts with WORD_NUMBER."""

    def replace(match: re.Match[str]) -> str:
        total, current = 0, 0
        for word in re.split(r"[- ]+", match.group(0).lower()):
            if word in _SMALL:
                current += _SMALL[word]
            elif word in _TENS:
                current += _TENS[word]
            elif word == "hundred":
                current = max(current, 1) * 100
            elif word == "thousand":
                total, current = total + max(current, 1) * 1000, 0
        return (WORD_NUMBER if mark else "") + str(total + current)

    return _NUMBER_RUN.sub(replace, text)


@dataclass(frozen=True)
class Claim:
    kind: str  # number | date | email | url | form
    text: str  # as written
    key: str  # normalised


def _number_key(value: str) -> str:
    number = value.replace(",", "")
    return number[:-2] if number.endswith(".0") else number


def _unit(raw: str | None, dollar: str | None) -> str:
    if dollar:
        return "$"
    if not raw:
        return ""
    last = raw.lower().split()[-1]
    return UNITS.get(last, last)


def claims_in(text: str) -> list[Claim]:
    """The checkable claims of a piece of generated text (citation markers and list numbers
    and the asker's placeholders such as <PERSON_1> are not claims)."""
    text = _LIST_MARKER.sub("", CITATION.sub("", PLACEHOLDER.sub(" ", text)))
    claims: list[Claim] = []
    for match in EMAIL.finditer(text):
        claims.append(Claim("email", match.group(0), match.group(0).lower()))
    without_addresses = EMAIL.sub(" ", text)
    for match in _URL.finditer(without_addresses):
        url = match.group(0).rstrip(".,;:!?'\"")
        claims.append(Claim("url", url, _url_key(url)))
    plain = _URL.sub(" ", without_addresses)
    for match in _FORM_CODE.finditer(plain):
        claims.append(Claim("form", match.group(0), _form_key(match.group(0))))
    for match in _FORM_NAME.finditer(plain):
        name = match.group(1).strip()
        if len(name.split()) >= 2 or name.isupper():
            claims.append(Claim("form", f"{name} form", " ".join(name.lower().split())))
    for match in _DATE.finditer(plain):
        claims.append(Claim("date", match.group(0), _date_key(match)))
    dates = _DATE.sub(" ", plain)
    codes = _FORM_CODE.sub(" ", dates)
    converted = words_to_digits(codes, mark=True)
    for match in _NUMBER.finditer(converted):
        dollar, number, unit = match.groups()
        in_words = match.start() > 0 and converted[match.start() - 1] == WORD_NUMBER
        if in_words and not unit and float(number.replace(",", "")) <= 10:
            continue  # "one of the forms", "no one": words, not figures; "2" or "two days" are
        claims.append(
            Claim("number", match.group(0).strip(), f"{_number_key(number)} {_unit(unit, dollar)}".strip())
        )
    return claims


def _url_key(url: str) -> str:
    return re.sub(r"^(?:https?://)?(?:www\.)?", "", url.lower()).rstrip("/")


def _form_key(code: str) -> str:
    return re.sub(r"[\s-]", "", code.upper()).removeprefix("FORM")


def _date_key(match: re.Match[str]) -> str:
    month_a, day_a, day_b, month_b, iso = match.groups()
    if iso:
        return iso
    return f"{(month_a or month_b).lower()} {int(day_a or day_b)}"


@dataclass(frozen=True)
class SupportIndex:
    """What a passage states, normalised for lookups."""

    text: str  # lower-cased, whitespace-collapsed, number words as digits
    numbers: dict[str, set[str]]  # number → units seen with it ("" = none)
    keys: set[str]  # e-mail, URL, form and date keys


def support_index(passage: str) -> SupportIndex:
    numbers: dict[str, set[str]] = {}
    keys: set[str] = set()
    for claim in claims_in(passage):
        if claim.kind == "number":
            number, _, unit = claim.key.partition(" ")
            numbers.setdefault(number, set()).add(unit)
        else:
            keys.add(claim.key)
    # Links in documents lose their address when parsed: a URL's host may stand as words.
    text = " ".join(words_to_digits(passage).lower().split())
    return SupportIndex(text=text, numbers=numbers, keys=keys)


def claim_supported(claim: Claim, index: SupportIndex) -> bool:
    if claim.kind == "number":
        number, _, unit = claim.key.partition(" ")
        units = index.numbers.get(number)
        if units is None:
            return False
        # A bare number in the policy supports any unit the answer gives it only when the
        # policy never gives that number another unit ("80 hours" does not back "80 days").
        return not unit or unit in units or units == {""}
    if claim.kind in ("email", "date") or (claim.kind == "form" and " " not in claim.key):
        return claim.key in index.keys or claim.key in index.text.replace("-", "").replace(" ", "")
    if claim.kind == "url":
        return claim.key in index.keys or claim.key in index.text
    return claim.key in index.text  # a form's name, as words


@dataclass
class SentenceCheck:
    text: str
    start: int
    end: int
    cited: list[int]
    unsupported: list[str] = field(default_factory=list)  # claims found in no supplied passage
    misattributed: list[str] = field(default_factory=list)  # found, but not in the cited passage

    @property
    def supported(self) -> bool:
        return not self.unsupported and not self.misattributed


@dataclass
class ClaimReport:
    sentences: list[SentenceCheck]
    claims: int

    @property
    def flagged(self) -> list[SentenceCheck]:
        return [s for s in self.sentences if not s.supported]

    def reasons(self) -> list[str]:
        reasons = []
        for sentence in self.flagged:
            if sentence.unsupported:
                reasons.append("unsupported claim: " + ", ".join(sentence.unsupported))
            if sentence.misattributed:
                reasons.append("claim not in the cited passage: " + ", ".join(sentence.misattributed))
        return reasons


def claims_check(*, text: str, passages: Sequence[str]) -> ClaimReport:
    """Check every sentence of generated `text` against `passages` (numbered from 1)."""
    indexes = [support_index(p) for p in passages]
    checks: list[SentenceCheck] = []
    total = 0
    for start, end in _sentence_spans(text):
        sentence = text[start:end]
        cited = [int(n) for n in CITATION.findall(sentence) if 1 <= int(n) <= len(passages)]
        check = SentenceCheck(text=sentence, start=start, end=end, cited=cited)
        for claim in claims_in(sentence):
            total += 1
            anywhere = [i for i, index in enumerate(indexes, start=1) if claim_supported(claim, index)]
            if not anywhere:
                check.unsupported.append(claim.text)
            elif cited and not set(anywhere) & set(cited):
                check.misattributed.append(claim.text)
        checks.append(check)
    return ClaimReport(sentences=checks, claims=total)


def _sentence_spans(text: str) -> list[tuple[int, int]]:
    spans = []
    start = 0
    for match in SENTENCE_END.finditer(text):
        if text[start : match.start()].strip():
            spans.append((start, match.start()))
        start = match.end()
    if text[start:].strip():
        spans.append((start, len(text.rstrip())))
    return spans
