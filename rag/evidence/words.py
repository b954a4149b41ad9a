"""The vocabulary of a text, as evidence selection compares it: content words, lightly stemmed,
without stopwords; a question's words without the personal data the asker wrapped it in."""

from __future__ import annotations

import re

from privacy.language import detect_language, fold

WORD = re.compile(r"[^\W_]+(?:[-\u2019'][^\W_]+)*", re.UNICODE)
NUMBER = re.compile(r"\d[\d,]*(?:\.\d+)?")
EMAIL = re.compile(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+")
PLACEHOLDER = re.compile(r"<[A-Z][A-Z_]*_\d+>")
ACRONYM = re.compile(r"\b[A-Z][A-Z0-9]{1,7}s?\b")
PARENTHESISED = re.compile(r"\(([A-Za-z][A-Za-z '-]{1,40})\)")

# Function words, and words every policy question uses ("policy", "employee", "how long").
STOPWORDS = frozenset(
    """
    a an the and or but if of to in on at by for with from as is are was were be been being do does
    did done have has had having i me my we our you your he she it its they them their this that
    these those there here what which who whom whose when where why how can could may might must
    shall should will would am not no yes so than then too very just also any all each every some
    such about into over under after before during up down out off more most other only own same
    both few again further once get got need needs want let per via policy policies company
    employee employees someone something anything tell know please much many long often soon
    quickly happens happen ask
    """.split()  # noqa: SIM905  (one word list, not 140 lines of quoted words)
)

# A placeholder and the few words that introduce it ("my name is <PERSON_1>", "phone
# <PHONE_NUMBER_1>"): the asker's own data, not what the question is about.
INTRO_WORDS = (
    r"my|name|is|am|i'm|i|me|phone|mobile|cell|email|e-mail|number|no\.?|address|ssn|id|call|reach|"
    r"tôi|là|tên|số|điện|thoại|sđt|email|cccd|cmnd|của|mình"
)
PERSONAL_INTRO = re.compile(rf"(?:\b(?:{INTRO_WORDS})[ \t]+){{0,3}}<[A-Z][A-Z_]*_\d+>[,;:.]?", re.I)


def stem(word: str) -> str:
    """A light English stem: enough that "requests" meets "request" and "approved" "approval"."""
    word = word.lower().replace("\u2019", "'")
    if word.endswith("'s"):
        word = word[:-2]
    for suffix, keep in (
        ("ies", "y"),
        ("ied", "y"),
        ("ying", "y"),
        ("ing", ""),
        ("ed", ""),
        ("es", ""),
        ("s", ""),
        ("al", ""),
    ):
        if word.endswith(suffix) and len(word) - len(suffix) >= 4:
            return word[: -len(suffix)] + keep
    return word


def content_words(text: str) -> set[str]:
    return {
        stem(w)
        for w in WORD.findall(fold(text.lower()))
        if w not in STOPWORDS and (len(w) > 1 or w.isdigit())
    }


def question_topic(question: str) -> str:
    """The question without the personal data the asker wrapped it in."""
    return " ".join(PERSONAL_INTRO.sub(" ", question).split())


def question_words(question: str, extra_terms: str) -> set[str]:
    """The words a passage should share with the question. A Vietnamese question brings its
    glossary English words, its acronyms (PIV, FMLA) and English written in parentheses
    ("(comp time)"): its own syllables match nothing in an English policy."""
    question = question_topic(question)
    if detect_language(question) != "vi":
        return content_words(question) | content_words(extra_terms)
    latin = " ".join(ACRONYM.findall(question) + PARENTHESISED.findall(question))
    return content_words(extra_terms) | content_words(latin)
