"""Evidence: the sentences of the retrieved passages that answer a question, and whether they
answer it at all. Pure (no database, no model); split by what each part does:

  - words.py: a text's vocabulary (content words, stems), a question's topic and words;
  - sentences.py: passages cut into sentences with offsets, and list structure;
  - scoring.py: how well each sentence answers the question, or each part of it;
  - selection.py: which sentences are quoted;
  - answerability.py: whether the policies cover the question.
"""

from __future__ import annotations

from rag.evidence.answerability import ANSWERABLE, Signals, answerability_score
from rag.evidence.scoring import WEIGHTS, Intent, question_intent, question_parts
from rag.evidence.selection import (
    ANSWER_WORDS,
    LIST_ANSWER_WORDS,
    Evidence,
    EvidenceSentence,
    Passage,
    evidence_answerable,
    evidence_select,
)
from rag.evidence.sentences import LIST_ITEM, Sentence, sentence_in_context, sentences_of
from rag.evidence.words import (
    EMAIL,
    NUMBER,
    PLACEHOLDER,
    STOPWORDS,
    WORD,
    content_words,
    question_topic,
    question_words,
    stem,
)

__all__ = [
    "ANSWERABLE",
    "ANSWER_WORDS",
    "EMAIL",
    "LIST_ANSWER_WORDS",
    "LIST_ITEM",
    "NUMBER",
    "PLACEHOLDER",
    "STOPWORDS",
    "WEIGHTS",
    "WORD",
    "Evidence",
    "EvidenceSentence",
    "Intent",
    "Passage",
    "Sentence",
    "Signals",
    "answerability_score",
    "content_words",
    "evidence_answerable",
    "evidence_select",
    "question_intent",
    "question_parts",
    "question_topic",
    "question_words",
    "sentence_in_context",
    "sentences_of",
    "stem",
]
