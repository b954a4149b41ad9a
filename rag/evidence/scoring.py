"""How well each sentence answers a question, from four signals:

  - semantic: how near its embedding (in its passage's context) is to the question's; the
    Vietnamese questions over English passages depend on it;
  - lexical: how much of the question's vocabulary it holds, weighted by rarity among the
    candidates, with its passage's title and heading counting a third (its topic);
  - kind: whether it holds what the question asks for: a number for "how many", an address
    for "whom do I contact", a date for "when";
  - rank: the rank of its passage (retrieval already read the whole passage).

A question of several parts ("How many hours …, and where do I send …?") is also scored part
by part, so that each part can bring its own best sentence (selection.py).
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from privacy.language import detect_language, fold
from rag.evidence.sentences import Sentence
from rag.evidence.words import EMAIL, NUMBER, content_words, question_words
from rag.glossary import english_terms

# Re-weighed on the tune split of bench/golden/answers-dev.jsonl (bench/evidence_tuning.py).
WEIGHTS = {"semantic": 0.6, "lexical": 0.35, "kind": 0.12, "rank": 0.08}
# e5's cosine between a question and a sentence lies in ~0.70 (unrelated) .. ~0.92 (answers).
COSINE_FLOOR, COSINE_SPAN = 0.72, 0.2
# A passage's title and heading words count this share of a word in the sentence itself.
CONTEXT_SHARE = 1 / 3
# Table rows and run-on lines quote badly and answer rarely: their score is cut by this share.
SHAPE_PENALTY = 0.3
LONG_SENTENCE_WORDS = 70

_NUMERIC = re.compile(
    r"\b(how (?:many|much|long|often|soon)|what (?:percent|percentage|amount)|maximum|minimum|limit|up to|deadline|within)\b"
)
_NUMERIC_VI = re.compile(r"\b(bao nhieu|bao lau|may ngay|may gio|toi da|toi thieu|gioi han|han chot)\b")
_WHEN = re.compile(r"\b(when|what date|what day|deadline)\b")
_WHEN_VI = re.compile(r"\b(khi nao|bao gio|luc nao|ngay nao|han chot)\b")
_CONTACT = re.compile(r"\b(who|whom|contact|email|e-mail|reach|ask for help|help desk)\b")
_CONTACT_VI = re.compile(r"\b(ai|lien he|email|hoi ai|ho tro)\b")
_LIST = re.compile(
    r"\b(list|steps?|procedure|process|how (?:do|can|should) i|what (?:are|documents|forms|paperwork)|which)\b"
)
_LIST_VI = re.compile(r"\b(cac buoc|quy trinh|thu tuc|lam the nao|lam sao|nhung gi|giay to|ho so|cach)\b")
_MONTHS = r"(?:jan|feb|mar|apr|may|jun|jul|aug|sep|oct|nov|dec)[a-z]*"
_DATE = re.compile(
    rf"\b(?:{_MONTHS}\s+\d{{1,2}}|\d{{1,2}}\s+{_MONTHS}|\d{{4}}-\d{{2}}-\d{{2}}|\d{{1,2}}/\d{{1,2}})\b", re.I
)
_DURATION = re.compile(
    r"\b\d[\d,.]*\s*(?:%|percent|hours?|days?|weeks?|months?|years?|minutes?|pay periods?|dollars?)\b|\$\s?\d",
    re.I,
)
_CONTACT_WORDS = re.compile(r"\b(contact|team|office|desk|channel)\b|#[a-z][\w-]+", re.I)

# Where a question of several parts is cut: after a question mark or full stop that more text
# follows, and before "and"/"và" that opens a new question ("…, and where do I send …").
_PART_BREAK = re.compile(r"(?<=[?.!])\s+(?=\S)")
_AND_QUESTION = re.compile(
    r",?\s+(?:and|also)\s+(?=(?:what|where|who|whom|how|when|which|why|do|does|is|are|can|should|will)\b)"
    r"|,?\s+và\s+(?=(?:\S+\s+){0,6}?(?:không|nào|gì|ai|đâu|bao nhiêu|bao lâu|mấy)\b)",
    re.I,
)
# A part needs this many content words of its own; shorter ones stay with the part before.
PART_MIN_WORDS = 2
MAX_PARTS = 3


@dataclass(frozen=True)
class Intent:
    numeric: bool
    when: bool
    contact: bool
    wants_list: bool


def question_intent(question: str) -> Intent:
    folded = fold(question.lower())
    return Intent(
        numeric=bool(_NUMERIC.search(folded) or _NUMERIC_VI.search(folded)),
        when=bool(_WHEN.search(folded) or _WHEN_VI.search(folded)),
        contact=bool(_CONTACT.search(folded) or _CONTACT_VI.search(folded)),
        wants_list=bool(_LIST.search(folded) or _LIST_VI.search(folded)),
    )


def question_parts(question: str) -> list[str]:
    """The questions a question asks, when it asks several (else the question alone)."""
    pieces = [p for chunk in _PART_BREAK.split(question) for p in _AND_QUESTION.split(chunk)]
    parts: list[str] = []
    for piece in (p.strip() for p in pieces):
        if not piece:
            continue
        if parts and len(content_words(piece)) < PART_MIN_WORDS:
            parts[-1] = f"{parts[-1]} {piece}"
        else:
            parts.append(piece)
    if len(parts) > 1 and len(content_words(parts[0])) < PART_MIN_WORDS:
        parts[:2] = [f"{parts[0]} {parts[1]}"]
    # Context before the question proper ("My baby was just born.") is no part of its own.
    parts = [p for p in parts if not p.rstrip().endswith((".", "!")) or p is parts[-1]]
    return parts[:MAX_PARTS] if len(parts) > 1 else [question]


@dataclass(frozen=True)
class Query:
    """What a sentence is scored against: a question, or one part of it."""

    words: set[str]
    vector: np.ndarray | None
    intent: Intent


def query_of(text: str, extra_terms: str, vector: Sequence[float] | None) -> Query:
    return Query(
        words=question_words(text, extra_terms),
        vector=None if vector is None else np.asarray(vector, dtype=np.float32),
        intent=question_intent(text),
    )


def part_queries(
    parts: list[str], embed_questions: Callable[[list[str]], Sequence[Sequence[float]]] | None
) -> list[Query]:
    """One query per part, each with its own glossary words (a Vietnamese part's English ones)."""
    vectors: Sequence[Sequence[float] | None] = (
        embed_questions(parts) if embed_questions else [None] * len(parts)
    )
    return [
        query_of(part, english_terms(part) if detect_language(part) == "vi" else "", vector)
        for part, vector in zip(parts, vectors, strict=True)
    ]


def scores(
    query: Query,
    pool: list[Sentence],
    words: dict[int, set[str]],
    contexts: list[set[str]],
    vectors: dict[int, np.ndarray],
) -> dict[int, float]:
    """Each pool sentence's score for the query (keys: id() of the sentence)."""
    idf = _idf(query.words, list(words.values()))
    cosines = _cosines(query.vector, pool, vectors)
    result = {}
    for s in pool:
        score = (
            WEIGHTS["lexical"] * coverage(query.words, words[id(s)], contexts[s.passage], idf)
            + WEIGHTS["kind"] * _kind_match(query.intent, s.text)
            + WEIGHTS["rank"] * _rank_prior(s.passage)
            + WEIGHTS["semantic"] * _cosine_score(cosines.get(id(s)))
        )
        result[id(s)] = score * (1 - SHAPE_PENALTY) if _badly_shaped(s) else score
    return result


def cosines_of(query: Query, pool: list[Sentence], vectors: dict[int, np.ndarray]) -> dict[int, float]:
    return _cosines(query.vector, pool, vectors)


def _cosines(
    query: np.ndarray | None, pool: list[Sentence], vectors: dict[int, np.ndarray]
) -> dict[int, float]:
    if query is None or not vectors:
        return {}
    held = [s for s in pool if id(s) in vectors]
    matrix = np.stack([vectors[id(s)] for s in held])
    norms = np.linalg.norm(matrix, axis=1) * max(float(np.linalg.norm(query)), 1e-12)
    values = matrix @ query / np.maximum(norms, 1e-12)
    return {id(s): float(v) for s, v in zip(held, values, strict=True)}


def idf_of(query: set[str], documents: list[set[str]]) -> dict[str, float]:
    return _idf(query, documents)


def _idf(query: set[str], documents: list[set[str]]) -> dict[str, float]:
    total = len(documents)
    return {w: math.log(1 + total / (1 + sum(1 for d in documents if w in d))) for w in query}


def coverage(query: set[str], words: set[str], context: set[str], idf: dict[str, float]) -> float:
    """Share of the question's vocabulary (by rarity) in the sentence; its heading counts a third."""
    total = sum(idf.values())
    if not total:
        return 0.0
    held = sum(
        weight if w in words else weight * CONTEXT_SHARE if w in context else 0.0 for w, weight in idf.items()
    )
    return held / total


def _kind_match(intent: Intent, text: str) -> float:
    if intent.numeric and (_DURATION.search(text) or NUMBER.search(text)):
        return 1.0
    if intent.when and (_DATE.search(text) or _DURATION.search(text)):
        return 1.0
    if intent.contact and (EMAIL.search(text) or _CONTACT_WORDS.search(text)):
        return 1.0
    return 0.0


def _rank_prior(passage: int) -> float:
    return 1.0 / (1.0 + 0.5 * passage)


def _cosine_score(cosine: float | None) -> float:
    if cosine is None:
        return 0.0
    return min(1.0, max(0.0, (cosine - COSINE_FLOOR) / COSINE_SPAN))


def _badly_shaped(sentence: Sentence) -> bool:
    return sentence.text.count("|") >= 4 or sentence.words > LONG_SENTENCE_WORDS
