"""Recognizers that read context and word lists, for personal data written the way people type:
names in lowercase or capitals, Vietnamese names with or without diacritics, "Last, First",
health conditions about a person, employee ids in any format next to the words that name them,
and Vietnamese home addresses.

The statistical NER (spaCy for English, underthesea's CRF for Vietnamese) finds capitalised
names in ordinary sentences; what it misses on unseen messages is what these add. The health
terms and Vietnamese names match on the folded text (privacy.language.fold: lowercase, no
diacritics, same offsets), so one pattern serves "Nguyễn Thị Lan", "nguyen thi lan" and
"NGUYỄN THỊ LAN". Employee ids and addresses are regexes for privacy.recognizers.RegexRecognizer.
"""

from __future__ import annotations

import re
from functools import cache
from importlib import resources

from presidio_analyzer import EntityRecognizer, RecognizerResult
from presidio_analyzer.nlp_engine import NlpArtifacts

from privacy.language import fold
from privacy.terms import (
    AMBIGUOUS_FIRST_NAMES,
    MEDICAL_MODIFIERS,
    MEDICAL_TERMS_EN,
    MEDICAL_TERMS_VI,
    NAME_STOPWORDS,
    PERSON_CUES_EN,
    PERSON_CUES_UNACCENTED,
    PERSON_CUES_VI,
    VIETNAMESE_FAMILY_NAMES,
    VIETNAMESE_FAMILY_NAMES_AMBIGUOUS,
    VIETNAMESE_GIVEN_SYLLABLES,
    VIETNAMESE_MIDDLE_NAMES,
    VIETNAMESE_NAME_INTRODUCERS,
    VIETNAMESE_PLACES,
)

MEDICAL_CONDITION = "MEDICAL_CONDITION"
_SENTENCE_END = re.compile(r"[.!?;\n]+")


class _SpanRecognizer(EntityRecognizer):
    """One entity, any language; subclasses return its spans (those that match without
    diacritics fold the text themselves: not every one needs it)."""

    def __init__(self, *, entity: str, language: str, name: str) -> None:
        super().__init__(supported_entities=[entity], supported_language=language, name=f"{name}_{language}")

    def load(self) -> None:
        pass

    def analyze(
        self, text: str, entities: list[str], nlp_artifacts: NlpArtifacts | None = None
    ) -> list[RecognizerResult]:
        return [
            RecognizerResult(self.supported_entities[0], start, end, 0.85) for start, end in self.spans(text)
        ]

    def spans(self, text: str) -> list[tuple[int, int]]:
        raise NotImplementedError


# --- health ----------------------------------------------------------------------------------


def _alternation(terms: str) -> str:
    words = sorted(
        {fold(t.strip()) for t in terms.replace("\n", "").split(";") if t.strip()}, key=len, reverse=True
    )
    return "|".join(re.escape(w) for w in words)


@cache
def _medical_pattern() -> re.Pattern[str]:
    terms = _alternation(MEDICAL_TERMS_EN + ";" + MEDICAL_TERMS_VI)
    modifiers = fold(MEDICAL_MODIFIERS)
    return re.compile(rf"(?<!\w)(?:(?:{modifiers})\s+)?(?:{terms})(?:\s+(?:{modifiers}))?(?!\w)")


class MedicalConditionRecognizer(_SpanRecognizer):
    """Every health term; `about_a_person` then keeps those said of somebody (privacy.analysis)."""

    def __init__(self, *, language: str) -> None:
        super().__init__(entity=MEDICAL_CONDITION, language=language, name="medical_terms")

    def spans(self, text: str) -> list[tuple[int, int]]:
        return [m.span() for m in _medical_pattern().finditer(fold(text))]


_CUES = re.compile(rf"(?<!\w)(?:{PERSON_CUES_EN}|{PERSON_CUES_VI})(?!\w)", re.IGNORECASE)
_UNACCENTED_CUES = re.compile(rf"(?<!\w)(?:{PERSON_CUES_UNACCENTED})(?!\w)")


def about_a_person(text: str, start: int, end: int, person_spans: list[tuple[int, int]]) -> bool:
    """Whether the sentence around [start, end) is about somebody: a pronoun or a relative
    ("my", "tôi", "vợ tôi"), or a name found in it. "Does sick leave cover cancer treatment?"
    is a policy question; "my wife has cancer" is health data."""
    sentence_start = max((m.end() for m in _SENTENCE_END.finditer(text, 0, start)), default=0)
    following = _SENTENCE_END.search(text, end)
    sentence_end = following.start() if following else len(text)
    sentence = text[sentence_start:sentence_end]
    if _CUES.search(sentence) or _UNACCENTED_CUES.search(fold(sentence)):
        return True
    return any(s < sentence_end and e > sentence_start for s, e in person_spans)


# --- names -----------------------------------------------------------------------------------


@cache
def first_names() -> frozenset[str]:
    """US census given names (the PyPI package `names`), less those that are everyday words."""
    found: set[str] = set()
    for file in ("dist.male.first", "dist.female.first"):
        for line in resources.files("names").joinpath(file).read_text().splitlines():
            if line.strip():
                found.add(line.split()[0].lower())
    return frozenset(found - AMBIGUOUS_FIRST_NAMES)


_WORD = re.compile(r"[^\W\d_](?:[^\W\d_]|['\u2019-](?=[^\W\d_]))*")


def _shape(word: str) -> str:
    return (
        "lower" if word.islower() else "upper" if word.isupper() else "title" if word.istitle() else "mixed"
    )


def _adjacent(text: str, left: tuple[int, int], right: tuple[int, int]) -> bool:
    """Only spaces between two words: a comma or a full stop ends a name."""
    gap = text[left[1] : right[0]]
    return bool(gap) and not gap.strip(" \t")


# A role just before a capitalised name introduces a person whatever the name's origin:
# "(Manager: Haruto Sato)", "my colleague Ines Duarte".
_ROLE_BEFORE = re.compile(
    r"\b(?:manager|colleague|co-?worker|boss|supervisor|lead|director|assistant|approver|contact|"
    r"mr|mrs|ms|miss|dr|prof)\.?\s*(?:is|was|:|,)?\s*$",
    re.IGNORECASE,
)


class CasedNameRecognizer(_SpanRecognizer):
    """English-style names the NER misses: "margaret thornbury", "JONATHAN PIERCE",
    "Lars-Erik Nyström", "(Manager: Haruto Sato)". A known given name (census list, everyday
    words removed; a hyphenated one by its first part), or any capitalised word after a role
    ("manager", "Dr."), followed by one or two words of the same case that are not function
    words."""

    def __init__(self, *, language: str) -> None:
        super().__init__(entity="PERSON", language=language, name="cased_names")

    def spans(self, text: str) -> list[tuple[int, int]]:
        words = [m.span() for m in _WORD.finditer(text)]
        found: list[tuple[int, int]] = []
        i = 0
        while i < len(words) - 1:
            last = self._name_end(text, words, i)
            if last > i:
                found.append((words[i][0], words[last][1]))
            i = last + 1
        return found

    @staticmethod
    def _name_end(text: str, words: list[tuple[int, int]], i: int) -> int:
        """The index of a name's last word when a name starts at words[i], else i."""
        first = text[slice(*words[i])]
        shape = _shape(first)
        lowered = first.lower()
        known = lowered not in NAME_STOPWORDS and (
            lowered in first_names() or any(part in first_names() for part in lowered.split("-"))
        )
        after_role = shape == "title" and bool(_ROLE_BEFORE.search(text[: words[i][0]]))
        if shape == "mixed" or not (known or after_role):
            return i
        last = i
        while last + 1 < len(words) and last - i < 2 and _adjacent(text, words[last], words[last + 1]):
            word = text[slice(*words[last + 1])]
            if _shape(word) != shape or word.lower() in NAME_STOPWORDS or len(word) < 2:
                break
            last += 1
        return last


_LAST_FIRST = re.compile(
    r"(?:\b(?:by|from|to|with|cc|for|ask|contact|signed|approved|manager|colleague)\s+)"
    r"(?P<value>[A-Z][a-z'\u2019-]+,\s*[A-Z][a-z'\u2019-]+)(?![\w-])"
)


class LastFirstNameRecognizer(_SpanRecognizer):
    """ "Okafor, Chinedu" after a word that introduces a person ("signed by", "from", "cc")."""

    def __init__(self, *, language: str) -> None:
        super().__init__(entity="PERSON", language=language, name="last_first_names")

    def spans(self, text: str) -> list[tuple[int, int]]:
        return [m.span("value") for m in _LAST_FIRST.finditer(text)]


_SYLLABLE = re.compile(r"[a-z]{1,7}")
# An address or place word, or a house number, just before: "đường Trần Hưng Đạo", "88 Lê Lợi".
_PLACE_BEFORE = re.compile(
    r"(?:\b(?:thanh pho|tp|tinh|quan|huyen|phuong|xa|duong|pho|ngo|hem|so|van phong|q|p)\.?|\d[\w/]*)\s*$"
)


_FAMILY = {fold(name): name for name in VIETNAMESE_FAMILY_NAMES | VIETNAMESE_FAMILY_NAMES_AMBIGUOUS}


class VietnameseNameRecognizer(_SpanRecognizer):
    """Vietnamese names by their family name: "Nguyễn Thị Lan", "PHẠM MINH TUẤN", "nguyen thi
    lan". Capitalised: a family name and 1-3 capitalised given-name syllables (two for a family
    name that doubles as a word, "Lê", "Hồ", "Mai"). Lowercase, where sentences are lowercase
    too: the family name spelt exactly or without diacritics, two given-name syllables, and
    either Văn/Thị in the middle or a word that introduces a person before it ("tôi là", "chị").
    Places written like names ("Hồ Chí Minh", "Hà Nội") and names after an address word or a
    house number (streets) are left to the address recognizers."""

    def __init__(self, *, language: str) -> None:
        super().__init__(entity="PERSON", language=language, name="vietnamese_names")

    def spans(self, text: str) -> list[tuple[int, int]]:
        folded = fold(text)
        words = [m.span() for m in re.finditer(r"[a-z]+", folded)]
        found: list[tuple[int, int]] = []
        i = 0
        while i < len(words) - 1:
            given = self._given_after(text, folded, words, i)
            if given and not self._is_place(folded, words[i][0], words[i + given][1]):
                found.append((words[i][0], words[i + given][1]))
                i += given + 1
            else:
                i += 1
        return found

    @staticmethod
    def _given_after(text: str, folded: str, words: list[tuple[int, int]], i: int) -> int:
        """How many given-name syllables follow a family name at words[i] (0: not a name)."""
        written = text[slice(*words[i])]
        family = _FAMILY.get(folded[slice(*words[i])])
        shape = _shape(written)
        if family is None or shape == "mixed":
            return 0
        if shape == "lower" and written not in (family, fold(family)):
            return 0  # "nguyên nhân" is not Nguyễn
        count = 0
        for j in range(i + 1, min(i + 4, len(words))):
            syllable = folded[slice(*words[j])]
            if not (
                _adjacent(text, words[j - 1], words[j])
                and _SYLLABLE.fullmatch(syllable)
                and syllable in VIETNAMESE_GIVEN_SYLLABLES
                and _shape(text[slice(*words[j])]) == shape
            ):
                break
            count += 1
        needed = 2 if family in VIETNAMESE_FAMILY_NAMES_AMBIGUOUS or shape == "lower" else 1
        if count < needed:
            return 0
        if shape == "lower":
            middle = folded[slice(*words[i + 1])]
            before = folded[words[i - 1][0] : words[i - 1][1]] if i > 0 else ""
            if middle not in VIETNAMESE_MIDDLE_NAMES and before not in VIETNAMESE_NAME_INTRODUCERS:
                return 0
        return count

    @staticmethod
    def _is_place(folded: str, start: int, end: int) -> bool:
        return " ".join(folded[start:end].split()) in VIETNAMESE_PLACES or bool(
            _PLACE_BEFORE.search(folded[max(0, start - 12) : start])
        )


# --- identifiers and addresses ----------------------------------------------------------------

# An id-shaped token (letters, digits, dashes, at least four digits) after the words that name
# an employee id, whatever the company's own format (POLICYDESK_EMPLOYEE_ID_PATTERN stays the
# sure match).
EMPLOYEE_ID_CONTEXT = (
    r"(?:\b(?:employee|staff|badge|personnel|payroll)(?:\s+(?:id|no\.?|number|num|code|#))?"
    r"|\bm[ãa]\s+(?:s[ốo]\s+)?nh[âa]n\s+vi[êe]n|\bm[ãa]\s+nv|\bmsnv|\bs[ốo]\s+hi[ệe]u(?:\s+nh[âa]n\s+vi[êe]n)?)"
    r"(?:\s*(?:of mine|is|was|are|:|#|-|là|la|của\s+(?:tôi|em|anh|chị|mình)|cua\s+(?:toi|em|anh|chi|minh)))*\s*"
    r"(?P<value>(?=(?:[A-Za-z-]*\d){4})[A-Za-z0-9][A-Za-z0-9-]{3,19})(?![\w-])"
)

_ADMIN = (
    r"(?:phường|p\.|quận|q\.|huyện|xã|thôn|ấp|tổ|khu phố|kp\.|thị trấn|tt\.|thị xã|tx\.)"
    r"\s*(?:\d{1,3}|(?:[A-ZĐÀ-Ỹ][\wÀ-ỹ]*)(?:\s+[A-ZĐÀ-Ỹ][\wÀ-ỹ]*){0,3})"
)
_HOUSE = (
    r"(?:số\s+)?\d{1,5}[A-Za-z]?(?:/\d{1,4}[A-Za-z]?)*"
    r"(?:\s+(?:ngõ|ngách|hẻm|kiệt)\s+\d{1,4}(?:/\d{1,4})*)*"
    r"\s+(?:(?:đường|phố|ngõ|hẻm)\s+)?[A-ZĐÀ-Ỹ][\wÀ-ỹ]*(?:\s+[A-ZĐÀ-Ỹ][\wÀ-ỹ]*){0,3}"
)
# A house number and street followed by a ward or district, or two administrative units
# ("thôn Đông, xã Tân Lập, huyện Đan Phượng"): a home address, not "văn phòng quận 1".
VIETNAMESE_ADDRESS = rf"(?<![\w/])(?P<value>{_HOUSE}(?:,?\s+{_ADMIN}){{1,4}}|{_ADMIN}(?:,\s*{_ADMIN}){{1,4}})"
EUROPEAN_ADDRESS = (
    r"\b(?P<value>\d{1,5}[a-z]?,? (?:Rue|Avenue|Boulevard|Via|Calle|Avenida|Rua|Chemin|Allée|Viale|Corso)"
    r"(?: (?:de|du|des|la|le|del|della|di|da|dos|das|l')){0,2} [A-Z][\w'-]+(?: [A-Z][\w'-]+){0,2})"
)
