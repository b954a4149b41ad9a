"""Evidence selection: the few sentences of the retrieved passages that answer a question.

Pure: no database, no model. The caller passes the question's vector and functions that embed
sentences (the pipeline passes the index's cached, stored vectors; tests pass a model's own),
so this module is tested on hand-made passages.

The pick, in order of priority within a word budget:
  1. the best sentence for the whole question (scoring.py);
  2. for a question of several parts, each part's best sentence;
  3. runner-ups that score nearly as well as the best;
each with the neighbours it leans on: a list item its lead-in, a lead-in (or, for a list or
procedure question, any item) its whole list, "This …" the sentence before. The budget is
about 80 words, 200 when the question asks for a list or a procedure, 40 more per extra part.
Each sentence carries its passage number and offsets.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from privacy.language import detect_language
from rag.evidence.answerability import Signals, answerability_score, answerable
from rag.evidence.scoring import (
    Query,
    coverage,
    idf_of,
    part_queries,
    query_of,
    question_parts,
    scores,
)
from rag.evidence.sentences import (
    Sentence,
    announces,
    introduces_list,
    lead_in,
    list_after,
    sentence_in_context,
    sentences_of,
)
from rag.evidence.words import WORD, content_words

ANSWER_WORDS = 80
LIST_ANSWER_WORDS = 200
PART_WORDS = 40
MAX_SENTENCES = 6
# Sentences embedded per question, the best by the cheap signals (words, kind, passage rank):
# stored vectors make most free, but one not stored costs ~4 ms.
EMBEDDED_CANDIDATES = 24
# A sentence joins the best when it scores at least this share of it.
RUNNER_UP_SHARE = 0.7
# The best sentence brings this many sentences after it in its paragraph: an answer often
# goes on in the next sentence ("Award leave expires one year after it is issued. It is not
# paid out when you leave.").
FOLLOWING = 1
# The hard cap, as a multiple of the budget: a long list keeps its lead-in and first items.
HARD_CAP = 1.25
ANAPHORA = re.compile(
    r"^(?:this|these|that|those|it|they|such|there|however|otherwise|if so|in that case)\b", re.I
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
    best_score: float  # the best sentence's score
    best_cosine: float
    best_coverage: float  # share of the question's vocabulary the best sentence's passage holds
    wants_list: bool
    evidence_coverage: float = 0.0  # share the chosen sentences and their headings hold
    lang: str = "en"

    @property
    def signals(self) -> Signals:
        return Signals(self.best_cosine, self.best_coverage, self.evidence_coverage, self.lang)

    @property
    def answerability(self) -> float:
        return answerability_score(self.signals)

    @property
    def passages(self) -> list[int]:
        """The passages the evidence comes from, in rank order."""
        return sorted({s.passage for s in self.sentences})


def evidence_answerable(evidence: Evidence) -> bool:
    return bool(evidence.sentences) and answerable(evidence.signals)


Embed = Callable[[list[str]], Sequence[Sequence[float]]]


def evidence_select(
    *,
    question: str,
    passages: Sequence[Passage],
    question_vector: Sequence[float] | None = None,
    embed: Embed | None = None,
    extra_terms: str = "",
    embed_questions: Embed | None = None,
) -> Evidence:
    """The sentences that answer `question`. `embed` embeds sentences in their context
    (`sentence_in_context`), `embed_questions` the parts of a question of several;
    `extra_terms` are words to match besides the question's own (the English glossary words
    of a Vietnamese question)."""
    whole = query_of(question, extra_terms, question_vector)
    lang = "vi" if detect_language(question) == "vi" else "en"
    by_passage = {n: sentences_of(p.text, n) for n, p in enumerate(passages)}
    pool = _pool(by_passage)
    if not pool:
        return Evidence([], 0.0, 0.0, 0.0, whole.intent.wants_list, 0.0, lang)
    words = {id(s): content_words(s.text) for s in pool}
    contexts = [content_words(f"{p.title} {p.heading_path}") for p in passages]
    parts = question_parts(question)
    queries = [whole, *(part_queries(parts, embed_questions) if len(parts) > 1 else [])]
    cheap = [scores(q, pool, words, contexts, {}) for q in queries]
    candidates = sorted(pool, key=lambda s: -max(c[id(s)] for c in cheap))[:EMBEDDED_CANDIDATES]
    vectors = _vectors(candidates, passages, embed) if question_vector is not None else {}
    scored = [scores(q, pool, words, contexts, vectors) for q in queries]
    overall = scored[0]
    ranked = sorted(pool, key=lambda s: (-overall[id(s)], s.passage, s.index))
    best = ranked[0]
    picks = [best, *(_best_for(part, pool) for part in scored[1:])]
    picks += [s for s in ranked[1:] if overall[id(s)] >= RUNNER_UP_SHARE * overall[id(best)]]
    budget = (LIST_ANSWER_WORDS if whole.intent.wants_list else ANSWER_WORDS) + PART_WORDS * (
        len(queries) - 1
    )
    chosen = _choose(picks, by_passage, [p.document_id for p in passages], whole.intent.wants_list, budget)
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
            score=round(overall.get(id(s), 0.0), 4),
        )
        for s in sorted(chosen, key=lambda s: (s.passage, s.start))
    ]
    idf = idf_of(whole.words, list(words.values()))
    cosine = _cosine(whole, vectors.get(id(best)))
    return Evidence(
        sentences=picked,
        best_score=round(overall[id(best)], 4),
        best_cosine=round(cosine, 4),
        best_coverage=round(coverage(whole.words, _passage_words(passages[best.passage]), set(), idf), 4),
        wants_list=whole.intent.wants_list,
        evidence_coverage=round(_evidence_coverage(whole, chosen, words, contexts, idf), 4),
        lang=lang,
    )


def _best_for(part: dict[int, float], pool: list[Sentence]) -> Sentence:
    return max(pool, key=lambda s: part[id(s)])


def _vectors(
    candidates: list[Sentence], passages: Sequence[Passage], embed: Embed | None
) -> dict[int, np.ndarray]:
    if embed is None or not candidates:
        return {}
    texts = [
        sentence_in_context(passages[s.passage].title, passages[s.passage].heading_path, s.text)
        for s in candidates
    ]
    rows = np.asarray(embed(texts), dtype=np.float32)
    return {id(s): row for s, row in zip(candidates, rows, strict=True)}


def _cosine(query: Query, vector: np.ndarray | None) -> float:
    if query.vector is None or vector is None:
        return 0.0
    norms = float(np.linalg.norm(query.vector)) * float(np.linalg.norm(vector))
    return float(query.vector @ vector) / max(norms, 1e-12)


def _evidence_coverage(
    query: Query,
    chosen: list[Sentence],
    words: dict[int, set[str]],
    contexts: list[set[str]],
    idf: dict[str, float],
) -> float:
    held: set[str] = set()
    context: set[str] = set()
    for s in chosen:
        held |= words.get(id(s), set()) or content_words(s.text)
        context |= contexts[s.passage]
    return coverage(query.words, held, context, idf)


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


def _choose(
    picks: list[Sentence],
    by_passage: dict[int, list[Sentence]],
    documents: list[int],
    wants_list: bool,
    budget: int,
) -> list[Sentence]:
    """The picks, in priority order, each with its neighbours, while they fit the budget."""
    chosen: list[Sentence] = []
    words = 0
    anchors = 0
    for sentence in picks:
        if _holds(chosen, sentence):
            continue
        if anchors >= MAX_SENTENCES:
            break
        siblings = by_passage[sentence.passage]
        group = _with_neighbours(sentence, siblings, wants_list)
        if group == [sentence] and announces(sentence):
            group = _list_elsewhere(sentence, by_passage, documents) or group
        if not chosen and group[-1] is sentence:
            group += _following(sentence, siblings)
        if not chosen and any(s.is_list_item for s in group):
            budget = max(budget, LIST_ANSWER_WORDS)  # the best sentence opens a list: room for it
        new = [s for s in group if not _holds(chosen, s)]
        cost = sum(s.words for s in new)
        if chosen and words + cost > budget:
            if words + sentence.words > budget:
                continue
            new = [sentence]  # its neighbours do not fit, the sentence itself does
            cost = sentence.words
        chosen.extend(new)
        words += cost
        anchors += 1
    return _trim(chosen, budget)


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
            if " ".join(sibling.text.split()) == key and introduces_list(siblings, i):
                return [sibling, *list_after(siblings, i)]
    return []


def _following(sentence: Sentence, siblings: list[Sentence]) -> list[Sentence]:
    after = siblings[sentence.index + 1 : sentence.index + 1 + FOLLOWING]
    return [s for s in after if s.line == sentence.line and not s.is_list_item]


def _holds(chosen: list[Sentence], sentence: Sentence) -> bool:
    return any(c.passage == sentence.passage and c.start == sentence.start for c in chosen)


def _with_neighbours(sentence: Sentence, siblings: list[Sentence], wants_list: bool) -> list[Sentence]:
    """The sentence and what it leans on: a list item its lead-in, a lead-in (or, for a list
    question, any item) its list, "This …" the sentence before."""
    index = sentence.index  # siblings are the passage's sentences the pool was made from
    group = [sentence]
    if sentence.is_list_item:
        lead = lead_in(siblings, index)
        if lead is not None:
            group.insert(0, siblings[lead])
            if wants_list:
                group = [siblings[lead], *list_after(siblings, lead)]
    elif introduces_list(siblings, index):
        group.extend(list_after(siblings, index))
    elif index > 0 and ANAPHORA.match(sentence.text):
        group.insert(0, siblings[index - 1])
    return group


def _trim(chosen: list[Sentence], budget: int) -> list[Sentence]:
    """The hard cap: sentences in the order they were chosen (the best and its list first)
    while they fit HARD_CAP times the budget."""
    kept: list[Sentence] = []
    words = 0
    for sentence in chosen:
        if kept and words + sentence.words > budget * HARD_CAP:
            continue
        kept.append(sentence)
        words += sentence.words
    return kept
