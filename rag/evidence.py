"""Evidence selection: the few sentences of the retrieved passages that answer a question.

Pure: no database, no model. The caller passes the question's vector and a function that
embeds sentences (the pipeline passes the index's embedder; tests pass their own), so this
module is tested on hand-made passages.

Each sentence is scored by
  - how near its embedding is to the question's (the semantic signal; Vietnamese questions
    over English passages depend on it),
  - how much of the question's vocabulary it holds, weighted by rarity among the candidates,
    with the passage's title and heading counting a little (its topic),
  - whether it holds what the question asks for: a number for "how many", an address for
    "whom do I contact", a date for "when",
  - the rank of its passage (retrieval already read the whole passage).
Only the best few by the cheap signals are embedded: a sentence costs ~4 ms on this machine.

The pick is the best sentence, the ones nearly as good, and the neighbours they lean on (a
list's lead-in, the sentence "This" refers to), within about 80 words, or 160 when the
question asks for a list or a procedure. Each carries its passage number and offsets.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from privacy.language import detect_language, fold

WORD = re.compile(r"[^\W_]+(?:[-\u2019'][^\W_]+)*", re.UNICODE)
NUMBER = re.compile(r"\d[\d,]*(?:\.\d+)?")
EMAIL = re.compile(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+")
LIST_ITEM = re.compile(r"^\s*(?:[-*•]|\d{1,2}[.)])\s+")
BARE_MARKER = re.compile(r"(?:[-*•]|\d{1,2}[.)])")
# Continuation sentences an item may have before the next item ("1. The form. Your supervisor
# can route it for you. 2. …"), and after the last one.
ITEM_TAIL = 2
# A sentence ends at . ! ? … followed by space; a bullet flattened into a paragraph ("… for:
# * Doctor appointments * Mental health care") starts one too.
SENTENCE_BREAK = re.compile(r"(?<=[.!?…])\s+(?=[\"“(\[]?[A-ZÀ-Ỹ0-9])|\s+(?=[*•]\s+[A-Z0-9])")
ABBREVIATIONS = ("e.g.", "i.e.", "etc.", "U.S.", "No.", "Mr.", "Ms.", "Dr.", "vs.", "approx.", "Jan.", "Feb.")
ANAPHORA = re.compile(
    r"^(?:this|these|that|those|it|they|such|there|however|otherwise|if so|in that case)\b", re.I
)

# Answerability: how near the best sentence is to the question (e5 cosine, rescaled so 0.80 → 0
# and 0.90 → 1) plus how much of the question's vocabulary its passage holds (0..1). Below
# ANSWERABLE the policies are taken not to cover the question, and no model is asked to guess.
# Calibrated on the dev part of bench/golden/answers.jsonl (58 questions, 8 unanswerable):
# unanswerable ones scored 0.49-0.87 but one at 1.39; answerable ones whose page retrieval
# found scored 0.94 and up, two whose page it missed 0.74 and 0.87. 0.9 declines 7 of 8
# unanswerable and wrongly declines 2 of 50 (both retrieval misses). Hold-out scored apart.
ANSWERABILITY_COSINE_FLOOR, ANSWERABILITY_COSINE_SPAN = 0.80, 0.10
ANSWERABLE = 0.9
ANSWER_WORDS = 80
LIST_ANSWER_WORDS = 160
MAX_SENTENCES = 4
# Sentences embedded per question: the best by the cheap signals (words, kind, passage rank).
EMBEDDED_CANDIDATES = 10
# A second sentence joins the first when it scores at least this share of it.
RUNNER_UP_SHARE = 0.82
# e5's cosine between a question and a sentence lies in ~0.70 (unrelated) .. ~0.92 (answers).
COSINE_FLOOR, COSINE_SPAN = 0.72, 0.2
WEIGHTS = {"semantic": 0.45, "lexical": 0.35, "kind": 0.12, "rank": 0.08}

STOPWORDS = frozenset(
    [
        "a",
        "an",
        "the",
        "and",
        "or",
        "but",
        "if",
        "of",
        "to",
        "in",
        "on",
        "at",
        "by",
        "for",
        "with",
        "from",
        "as",
        "is",
        "are",
        "was",
        "were",
        "be",
        "been",
        "being",
        "do",
        "does",
        "did",
        "done",
        "have",
        "has",
        "had",
        "having",
        "i",
        "me",
        "my",
        "we",
        "our",
        "you",
        "your",
        "he",
        "she",
        "it",
        "its",
        "they",
        "them",
        "their",
        "this",
        "that",
        "these",
        "those",
        "there",
        "here",
        "what",
        "which",
        "who",
        "whom",
        "whose",
        "when",
        "where",
        "why",
        "how",
        "can",
        "could",
        "may",
        "might",
        "must",
        "shall",
        "should",
        "will",
        "would",
        "am",
        "not",
        "no",
        "yes",
        "so",
        "than",
        "then",
        "too",
        "very",
        "just",
        "also",
        "any",
        "all",
        "each",
        "every",
        "some",
        "such",
        "about",
        "into",
        "over",
        "under",
        "after",
        "before",
        "during",
        "up",
        "down",
        "out",
        "off",
        "more",
        "most",
        "other",
        "only",
        "own",
        "same",
        "both",
        "few",
        "again",
        "further",
        "once",
        "get",
        "got",
        "need",
        "needs",
        "want",
        "let",
        "per",
        "via",
        "policy",
        "policies",
        "company",
        "employee",
        "employees",
        "someone",
        "something",
        "anything",
        "tell",
        "know",
        "please",
        "much",
        "many",
        "long",
        "often",
        "soon",
        "quickly",
        "happens",
        "happen",
        "ask",
        "am",
    ]
)
PLACEHOLDER = re.compile(r"<[A-Z][A-Z_]*_\d+>")
ACRONYM = re.compile(r"\b[A-Z][A-Z0-9]{1,7}s?\b")
PARENTHESISED = re.compile(r"\(([A-Za-z][A-Za-z '-]{1,40})\)")

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


class Passage(Protocol):
    """What evidence needs of a retrieved passage (rag.selectors.RetrievedChunk has it)."""

    @property
    def chunk_id(self) -> int: ...
    @property
    def document_id(self) -> int: ...
    @property
    def title(self) -> str: ...
    @property
    def heading_path(self) -> str: ...
    @property
    def text(self) -> str: ...


@dataclass(frozen=True)
class Sentence:
    passage: int  # 0-based position in the passages given
    index: int  # position among its passage's sentences
    start: int  # character offsets into the passage text
    end: int
    text: str
    is_list_item: bool
    line: int  # which line of the passage: a paragraph is one line

    @property
    def words(self) -> int:
        return len(self.text.split())


@dataclass(frozen=True)
class EvidenceSentence:
    passage: int  # 0-based position in the passages given
    chunk_id: int
    document_id: int
    title: str
    heading: str
    start: int
    end: int
    text: str
    score: float


@dataclass(frozen=True)
class Evidence:
    sentences: list[EvidenceSentence]  # grouped by passage (in rank order), in text order
    best_score: float  # the best sentence's score: the answerability signal
    best_cosine: float
    best_coverage: float  # share of the question's vocabulary the best sentence's passage holds
    wants_list: bool

    @property
    def answerability(self) -> float:
        cosine = (self.best_cosine - ANSWERABILITY_COSINE_FLOOR) / ANSWERABILITY_COSINE_SPAN
        return round(cosine + self.best_coverage, 4)

    @property
    def passages(self) -> list[int]:
        """The passages the evidence comes from, in rank order."""
        return sorted({s.passage for s in self.sentences})


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


# A placeholder and the few words that introduce it ("my name is <PERSON_1>", "phone
# <PHONE_NUMBER_1>"): the asker's own data, not what the question is about.
INTRO_WORDS = (
    r"my|name|is|am|i'm|i|me|phone|mobile|cell|email|e-mail|number|no\.?|address|ssn|id|call|reach|"
    r"tôi|là|tên|số|điện|thoại|sđt|email|cccd|cmnd|của|mình"
)
PERSONAL_INTRO = re.compile(rf"(?:\b(?:{INTRO_WORDS})[ \t]+){{0,3}}<[A-Z][A-Z_]*_\d+>[,;:.]?", re.I)


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


def content_words(text: str) -> set[str]:
    return {
        stem(w)
        for w in WORD.findall(fold(text.lower()))
        if w not in STOPWORDS and (len(w) > 1 or w.isdigit())
    }


def sentences_of(text: str, passage: int = 0) -> list[Sentence]:
    """The passage's sentences with offsets: each line is split at sentence ends; list items
    and lines stay apart (a list item is its own sentence)."""
    sentences: list[Sentence] = []
    offset = 0
    for line_number, line in enumerate(text.split("\n")):
        line_start = offset
        offset += len(line) + 1
        if not line.strip():
            continue
        pieces = _split_line(line)
        for piece_start, piece_end in pieces:
            start = line_start + piece_start
            end = line_start + piece_end
            body = text[start:end]
            sentences.append(
                Sentence(
                    passage=passage,
                    index=len(sentences),
                    start=start,
                    end=end,
                    text=body,
                    is_list_item=bool(LIST_ITEM.match(body)),
                    line=line_number,
                )
            )
    return sentences


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip())


def _split_line(line: str) -> list[tuple[int, int]]:
    spans: list[tuple[int, int]] = []
    start = _indent(line)
    marker = LIST_ITEM.match(line)
    for match in SENTENCE_BREAK.finditer(line, marker.end() if marker else start):
        before = line[start : match.start()]
        if before.endswith(ABBREVIATIONS) or BARE_MARKER.fullmatch(before.strip()):
            continue  # "e.g. Some", or "1. Advanced …" (lists flattened into a paragraph)
        spans.append((start, match.start()))
        start = match.end()
    end = len(line.rstrip())
    if start < end:
        spans.append((start, end))
    return spans


def evidence_select(
    *,
    question: str,
    passages: Sequence[Passage],
    question_vector: Sequence[float] | None = None,
    embed: Callable[[list[str]], Sequence[Sequence[float]]] | None = None,
    extra_terms: str = "",
) -> Evidence:
    """The sentences that answer `question`. `extra_terms` are words to match besides the
    question's own (the English glossary words of a Vietnamese question)."""
    intent = question_intent(question)
    by_passage = {n: sentences_of(p.text, n) for n, p in enumerate(passages)}
    pool = _pool(by_passage)
    if not pool:
        return Evidence([], 0.0, 0.0, 0.0, intent.wants_list)
    query = question_words(question, extra_terms)
    words = {id(s): content_words(s.text) for s in pool}
    idf = _idf(query, list(words.values()))
    contexts = [content_words(f"{p.title} {p.heading_path}") for p in passages]
    cheap = {
        id(s): (
            WEIGHTS["lexical"] * _coverage(query, words[id(s)], contexts[s.passage], idf)
            + WEIGHTS["kind"] * _kind_match(intent, s.text)
            + WEIGHTS["rank"] * _rank_prior(s.passage)
        )
        for s in pool
    }
    semantic = _semantic(pool, cheap, question_vector, embed)
    scored = sorted(
        ((cheap[id(s)] + WEIGHTS["semantic"] * _cosine_score(semantic.get(id(s))), s) for s in pool),
        key=lambda pair: (-pair[0], pair[1].passage, pair[1].index),
    )
    best_score, best = scored[0]
    chosen = _choose(scored, by_passage, [p.document_id for p in passages], intent)
    by_sentence = {id(s): score for score, s in scored}
    picked = [
        EvidenceSentence(
            passage=s.passage,
            chunk_id=passages[s.passage].chunk_id,
            document_id=passages[s.passage].document_id,
            title=passages[s.passage].title,
            heading=passages[s.passage].heading_path,
            start=s.start,
            end=s.end,
            text=s.text,
            score=round(by_sentence.get(id(s), 0.0), 4),
        )
        for s in sorted(chosen, key=lambda s: (s.passage, s.start))
    ]
    return Evidence(
        sentences=picked,
        best_score=round(best_score, 4),
        best_cosine=round(semantic.get(id(best), 0.0), 4),
        best_coverage=round(_coverage(query, _passage_words(passages[best.passage]), set(), idf), 4),
        wants_list=intent.wants_list,
    )


def _passage_words(passage: Passage) -> set[str]:
    return content_words(f"{passage.text} {passage.title} {passage.heading_path}")


def _pool(by_passage: dict[int, list[Sentence]]) -> list[Sentence]:
    """Every sentence once: neighbouring chunks overlap, so a sentence may come twice."""
    seen: set[str] = set()
    pool: list[Sentence] = []
    for sentences in by_passage.values():
        for sentence in sentences:
            key = " ".join(sentence.text.lower().split())
            if key in seen or not WORD.search(sentence.text):
                continue
            seen.add(key)
            pool.append(sentence)
    return pool


def _idf(query: set[str], documents: list[set[str]]) -> dict[str, float]:
    total = len(documents)
    return {w: math.log(1 + total / (1 + sum(1 for d in documents if w in d))) for w in query}


def _coverage(query: set[str], words: set[str], context: set[str], idf: dict[str, float]) -> float:
    """Share of the question's vocabulary (by rarity) in the sentence; its heading counts a third."""
    total = sum(idf.values())
    if not total:
        return 0.0
    held = sum(weight if w in words else weight / 3 if w in context else 0.0 for w, weight in idf.items())
    return held / total


def _kind_match(intent: Intent, text: str) -> float:
    if intent.numeric and (_DURATION.search(text) or NUMBER.search(text)):
        return 1.0
    if intent.when and (_DATE.search(text) or _DURATION.search(text)):
        return 1.0
    if intent.contact and (EMAIL.search(text) or re.search(r"\b(contact|team|office|desk)\b", text, re.I)):
        return 1.0
    return 0.0


def _rank_prior(passage: int) -> float:
    return 1.0 / (1.0 + 0.5 * passage)


def _semantic(
    pool: list[Sentence],
    cheap: dict[int, float],
    question_vector: Sequence[float] | None,
    embed: Callable[[list[str]], Sequence[Sequence[float]]] | None,
) -> dict[int, float]:
    if question_vector is None or embed is None:
        return {}
    candidates = sorted(pool, key=lambda s: -cheap[id(s)])[:EMBEDDED_CANDIDATES]
    vectors = np.asarray(embed([s.text for s in candidates]), dtype=np.float32)
    query = np.asarray(question_vector, dtype=np.float32)
    norms = np.linalg.norm(vectors, axis=1) * max(float(np.linalg.norm(query)), 1e-12)
    cosines = vectors @ query / np.maximum(norms, 1e-12)
    return {id(s): float(c) for s, c in zip(candidates, cosines, strict=True)}


def _cosine_score(cosine: float | None) -> float:
    if cosine is None:
        return 0.0
    return min(1.0, max(0.0, (cosine - COSINE_FLOOR) / COSINE_SPAN))


def _choose(
    scored: list[tuple[float, Sentence]],
    by_passage: dict[int, list[Sentence]],
    documents: list[int],
    intent: Intent,
) -> list[Sentence]:
    budget = LIST_ANSWER_WORDS if intent.wants_list else ANSWER_WORDS
    best_score = scored[0][0]
    chosen: list[Sentence] = []
    words = 0
    for score, sentence in scored:
        if chosen and (score < RUNNER_UP_SHARE * best_score or len(chosen) >= MAX_SENTENCES):
            break
        group = _with_neighbours(sentence, by_passage[sentence.passage], intent.wants_list)
        if group == [sentence] and _announces(sentence):
            group = _list_elsewhere(sentence, by_passage, documents) or group
        new = [s for s in group if not _holds(chosen, s)]
        cost = sum(s.words for s in new)
        if chosen and words + cost > budget:
            continue
        chosen.extend(new)
        words += cost
    return _trim(chosen, scored[0][1], budget)


def _list_elsewhere(
    sentence: Sentence, by_passage: dict[int, list[Sentence]], documents: list[int]
) -> list[Sentence]:
    """A lead-in that ends its chunk: the next chunk of the same document (chunks overlap, so
    it repeats the lead-in) holds the list, when retrieval brought it too."""
    key = " ".join(sentence.text.split())
    for n, siblings in by_passage.items():
        if n == sentence.passage or documents[n] != documents[sentence.passage]:
            continue
        for i, sibling in enumerate(siblings):
            if " ".join(sibling.text.split()) == key and _introduces_list(siblings, i):
                return [sibling, *_list_after(siblings, i)]
    return []


def _holds(chosen: list[Sentence], sentence: Sentence) -> bool:
    return any(c.passage == sentence.passage and c.start == sentence.start for c in chosen)


def _with_neighbours(sentence: Sentence, siblings: list[Sentence], wants_list: bool) -> list[Sentence]:
    """The sentence and what it leans on: a list item its lead-in, a lead-in (or, for a list
    question, any item) its list, "This …" the sentence before."""
    index = sentence.index  # siblings are the passage's sentences the pool was made from
    group = [sentence]
    if sentence.is_list_item:
        lead = _lead_in(siblings, index)
        if lead is not None:
            group.insert(0, siblings[lead])
            if wants_list:
                group = [siblings[lead], *_list_after(siblings, lead)]
    elif _introduces_list(siblings, index):
        group.extend(_list_after(siblings, index))
    elif index > 0 and ANAPHORA.match(sentence.text):
        group.insert(0, siblings[index - 1])
    return group


def _lead_in(siblings: list[Sentence], index: int) -> int | None:
    """The sentence that introduces the list holding siblings[index]: just before the list's
    first item, the one ending with ":" or saying "following", else the one right before."""
    first = _list_start(siblings, index)
    if first == 0:
        return None
    for i in range(first - 1, max(-1, first - 4), -1):
        if _announces(siblings[i]):
            return i
    return first - 1


def _list_start(siblings: list[Sentence], index: int) -> int:
    first = index
    i = index - 1
    while i >= 0 and index - i <= 40:
        if siblings[i].is_list_item:
            first = i
        elif first - i > ITEM_TAIL:
            break
        i -= 1
    return first


def _announces(sentence: Sentence) -> bool:
    return sentence.text.rstrip().endswith(":") or bool(re.search(r"\bfollowing\b", sentence.text, re.I))


def _introduces_list(siblings: list[Sentence], index: int) -> bool:
    """Whether this sentence announces a list that starts within the next few sentences."""
    following = siblings[index + 1 : index + 2 + ITEM_TAIL]
    return _announces(siblings[index]) and any(s.is_list_item for s in following)


def _list_after(siblings: list[Sentence], index: int) -> list[Sentence]:
    """The list after siblings[index]: its items, with up to ITEM_TAIL sentences each."""
    start = next(
        (i for i in range(index + 1, min(len(siblings), index + 2 + ITEM_TAIL)) if siblings[i].is_list_item),
        None,
    )
    if start is None:
        return []
    end, last_item, since_item = start, start, 0
    for i in range(start, len(siblings)):
        if siblings[i].is_list_item:
            end, last_item, since_item = i, i, 0
            continue
        since_item += 1
        # An item's own further sentences share its line (or the flattened paragraph).
        if since_item > ITEM_TAIL or siblings[i].line != siblings[last_item].line:
            break
        end = i
    return siblings[start : end + 1]


def _trim(chosen: list[Sentence], best: Sentence, budget: int) -> list[Sentence]:
    """Hard cap at 1.5 times the budget: a long list keeps its lead-in and first items."""
    kept: list[Sentence] = []
    words = 0
    for sentence in sorted(chosen, key=lambda s: (s is not best, s.passage, s.start)):
        if kept and words + sentence.words > budget * 1.5:
            continue
        kept.append(sentence)
        words += sentence.words
    return kept


def evidence_answerable(evidence: Evidence) -> bool:
    return bool(evidence.sentences) and evidence.answerability >= ANSWERABLE
