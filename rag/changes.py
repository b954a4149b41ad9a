"""What changed between two versions of a policy, sentence by sentence: added, removed and
changed sentences, and in a changed one the figures that moved ("59 → 64 USD").

Sentences are compared in order (difflib over the sentence lists); within a replaced run, a
removed and an added sentence that are mostly the same words are one changed sentence.
"""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass, field
from typing import Literal

from rag.chunking import split_sentences
from rag.models import Document
from rag.parsing import ParseError, parse_document

SAME_SENTENCE = 0.5  # word-level similarity above which two sentences are one, changed
TOKEN = re.compile(r"\S+")
DIGIT = re.compile(r"\d")
UNIT = re.compile(r"^[A-Za-z%]{1,12}[.,;:]?$")
Kind = Literal["added", "removed", "changed"]


@dataclass(frozen=True)
class Piece:
    text: str
    changed: bool


@dataclass(frozen=True)
class Change:
    kind: Kind
    old: list[Piece] = field(default_factory=list)  # the old sentence, its changed words marked
    new: list[Piece] = field(default_factory=list)
    figures: list[str] = field(default_factory=list)  # "59 → 64 USD"


def document_sentences(document: Document) -> list[str]:
    """The document's sentences in reading order, headings included, from its stored file."""
    try:
        data = document.file.read() if document.file else b""
        document.file.close()
    except OSError:
        return []
    try:
        parsed = parse_document(data, document.source_path or document.file.name or "")
    except ParseError:
        return []
    sentences: list[str] = []
    for section in parsed.sections:
        if section.headings:
            sentences.append(section.headings[-1])
        sentences.extend(" ".join(s.split()) for s in split_sentences(section.text))
    return sentences


def sentences_diff(old: list[str], new: list[str]) -> list[Change]:
    changes: list[Change] = []
    matcher = difflib.SequenceMatcher(None, old, new, autojunk=False)
    for op, i1, i2, j1, j2 in matcher.get_opcodes():
        if op == "equal":
            continue
        if op == "delete":
            changes.extend(Change("removed", old=[Piece(s, True)]) for s in old[i1:i2])
        elif op == "insert":
            changes.extend(Change("added", new=[Piece(s, True)]) for s in new[j1:j2])
        else:
            changes.extend(_replaced(old[i1:i2], new[j1:j2]))
    return changes


def _replaced(old: list[str], new: list[str]) -> list[Change]:
    """Pair each removed sentence with the most similar added one after the last pair."""
    changes: list[Change] = []
    next_new = 0
    for sentence in old:
        scores = [(_similarity(sentence, candidate), j) for j, candidate in enumerate(new) if j >= next_new]
        best = max(scores, default=(0.0, -1))
        if best[0] < SAME_SENTENCE:
            changes.append(Change("removed", old=[Piece(sentence, True)]))
            continue
        changes.extend(Change("added", new=[Piece(s, True)]) for s in new[next_new : best[1]])
        changes.append(sentence_change(sentence, new[best[1]]))
        next_new = best[1] + 1
    changes.extend(Change("added", new=[Piece(s, True)]) for s in new[next_new:])
    return changes


def _similarity(a: str, b: str) -> float:
    return difflib.SequenceMatcher(None, a.lower().split(), b.lower().split(), autojunk=False).ratio()


def sentence_change(old: str, new: str) -> Change:
    """One changed sentence: its words marked on each side, and the figures that moved."""
    a, b = TOKEN.findall(old), TOKEN.findall(new)
    old_pieces: list[Piece] = []
    new_pieces: list[Piece] = []
    figures: list[str] = []
    for op, i1, i2, j1, j2 in difflib.SequenceMatcher(None, a, b, autojunk=False).get_opcodes():
        old_pieces.append(Piece(" ".join(a[i1:i2]), op != "equal"))
        new_pieces.append(Piece(" ".join(b[j1:j2]), op != "equal"))
        before, after = " ".join(a[i1:i2]), " ".join(b[j1:j2])
        if op == "replace" and DIGIT.search(before) and DIGIT.search(after):
            before, after = _figure(a[i1:i2]), _figure(b[j1:j2])
            unit = a[i2] if i2 < len(a) and j2 < len(b) and a[i2] == b[j2] and UNIT.match(a[i2]) else ""
            figures.append(
                f"{before or '—'} \u2192 {after or '—'}" + (f" {unit.rstrip('.,;:')}" if unit else "")
            )
    return Change(
        "changed",
        old=[p for p in old_pieces if p.text],
        new=[p for p in new_pieces if p.text],
        figures=figures,
    )


def _figure(tokens: list[str]) -> str:
    """A replaced run as a figure: whole when short, else only its tokens with digits."""
    if len(tokens) > 4:
        tokens = [t for t in tokens if DIGIT.search(t)]
    return " ".join(tokens).rstrip(".,;:")


def versions_changes(*, old: Document, new: Document) -> list[Change]:
    return sentences_diff(document_sentences(old), document_sentences(new))
