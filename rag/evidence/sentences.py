"""A passage cut into sentences with their offsets, and the structure evidence quotes by: list
items, the sentence that introduces a list, and the items that follow it.

Chunks keep each paragraph, list item and table row on a line of its own (rag/chunking.py):
a line is split at sentence ends, and a list item is a sentence of its own.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

LIST_ITEM = re.compile(r"^\s*(?:[-*•+]|\d{1,2}[.)])\s+")
BARE_MARKER = re.compile(r"(?:[-*•+]|\d{1,2}[.)])")
# Continuation sentences an item may have before the next item ("1. The form. Your supervisor
# can route it for you. 2. …"), and after the last one.
ITEM_TAIL = 2
# A sentence ends at . ! ? … followed by space; a bullet flattened into a paragraph ("… for:
# * Doctor appointments * Mental health care") starts one too.
SENTENCE_BREAK = re.compile(r"(?<=[.!?…])\s+(?=[\"“(\[]?[A-ZÀ-Ỹ0-9])|\s+(?=[*•]\s+[A-Z0-9])")
ABBREVIATIONS = ("e.g.", "i.e.", "etc.", "U.S.", "No.", "Mr.", "Ms.", "Dr.", "vs.", "approx.", "Jan.", "Feb.")
# How far back from a list's first item its lead-in may be.
LEAD_IN_REACH = 3


@dataclass(frozen=True)
class Sentence:
    passage: int  # 0-based position in the passages given
    index: int  # position among its passage's sentences
    start: int  # character offsets into the passage text
    end: int
    text: str
    is_list_item: bool
    line: int  # which line of the passage: a paragraph or a list item is one line

    @property
    def words(self) -> int:
        return len(self.text.split())


def sentence_in_context(title: str, heading_path: str, sentence: str) -> str:
    """What is embedded for a sentence: its document title and heading path give it its topic
    ("You can carry over 240 hours" says nothing of annual leave by itself). The same shape as
    a chunk's embedding text (rag.chunking.ChunkDraft.embedding_text)."""
    context = " > ".join(part for part in (title, heading_path) if part)
    return f"{context}\n{sentence}" if context else sentence


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
        for piece_start, piece_end in _split_line(line):
            start, end = line_start + piece_start, line_start + piece_end
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


def _split_line(line: str) -> list[tuple[int, int]]:
    spans: list[tuple[int, int]] = []
    start = len(line) - len(line.lstrip())
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


def announces(sentence: Sentence) -> bool:
    """Whether the sentence introduces what follows ("… the following:", "Follow these steps")."""
    text = sentence.text.rstrip()
    return text.endswith(":") or bool(re.search(r"\b(?:following|these steps|as follows)\b", text, re.I))


def introduces_list(siblings: list[Sentence], index: int) -> bool:
    """Whether this sentence announces a list that starts within the next few sentences."""
    following = siblings[index + 1 : index + 2 + ITEM_TAIL]
    return announces(siblings[index]) and any(s.is_list_item for s in following)


def list_start(siblings: list[Sentence], index: int) -> int:
    """The first item of the list holding siblings[index]."""
    first = index
    i = index - 1
    while i >= 0 and index - i <= 40:
        if siblings[i].is_list_item:
            first = i
        elif first - i > ITEM_TAIL:
            break
        i -= 1
    return first


def lead_in(siblings: list[Sentence], index: int) -> int | None:
    """The sentence that introduces the list holding siblings[index]: just before the list's
    first item, the one ending with ":" or saying "following", else the one right before."""
    first = list_start(siblings, index)
    if first == 0:
        return None
    for i in range(first - 1, max(-1, first - 1 - LEAD_IN_REACH), -1):
        if announces(siblings[i]):
            return i
    return first - 1


def list_after(siblings: list[Sentence], index: int) -> list[Sentence]:
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
        # An item's own further sentences share its line.
        if since_item > ITEM_TAIL or siblings[i].line != siblings[last_item].line:
            break
        end = i
    return siblings[start : end + 1]
