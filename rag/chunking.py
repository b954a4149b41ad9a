"""Heading-aware chunking: sentences packed into chunks that fit the embedding window.

all-MiniLM-L6-v2 reads at most 256 word-pieces, and each chunk is embedded together with
its heading path, so a chunk's body gets what the window leaves after the headings (about
200-240 tokens). Chunks overlap by about 40 tokens of whole sentences.

A chunk keeps its text's blocks on their own lines: a paragraph (its hard-wrapped source lines
joined), a list item, a table row. Evidence selection quotes list items one by one from
those lines (rag/evidence/sentences.py); a chunk flattened to one line made a twelve-step
procedure one 160-word "sentence".
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

from rag.parsing import ParsedDocument, Section

WINDOW_TOKENS = 250  # leave a few of the model's 256 for [CLS]/[SEP]
OVERLAP_TOKENS = 40
SMALL_SECTION_TOKENS = 60
HEADING_SEPARATOR = " > "
SENTENCE_END = re.compile(r"(?<=[.!?…;:])\s+")
# A line that starts a block of its own rather than continuing the one before: a list item, a
# table row, a quote, or a line after a blank one.
BLOCK_START = re.compile(r"^\s*(?:[-*•+]\s|\d{1,2}[.)]\s|\||>)")


@dataclass
class ChunkDraft:
    ordinal: int
    text: str
    heading_path: str
    page: int | None
    token_count: int

    def embedding_text(self, title: str) -> str:
        """What gets embedded: the document title and heading path give the passage its topic."""
        context = HEADING_SEPARATOR.join(p for p in (title, self.heading_path) if p)
        return f"{context}\n{self.text}" if context else self.text


def split_sentences(text: str) -> list[str]:
    return [sentence for sentence, _ in _units(text)]


def text_blocks(text: str) -> list[str]:
    """Paragraphs, list items and table rows, each on one line: hard-wrapped lines joined."""
    blocks: list[str] = []
    after_blank = True
    for line in text.split("\n"):
        stripped = line.strip()
        if not stripped:
            after_blank = True
            continue
        if after_blank or not blocks or BLOCK_START.match(line):
            blocks.append(stripped)
        else:
            blocks[-1] = f"{blocks[-1]} {stripped}"
        after_blank = False
    return blocks


def _units(text: str) -> list[tuple[str, bool]]:
    """The text's sentences, each with whether it begins a block (a new line in the chunk)."""
    units: list[tuple[str, bool]] = []
    for block in text_blocks(text):
        pieces = [s for s in SENTENCE_END.split(block) if s.strip()]
        units.extend((piece, i == 0) for i, piece in enumerate(pieces))
    return units


def chunk_document(parsed: ParsedDocument, *, count_tokens: Callable[[str], int]) -> list[ChunkDraft]:
    drafts: list[ChunkDraft] = []
    title_tokens = count_tokens(parsed.title)
    for section in parsed.sections:
        heading_path = HEADING_SEPARATOR.join(section.headings)
        budget = max(120, WINDOW_TOKENS - title_tokens - count_tokens(heading_path) - 2)
        pieces = _pack(section, budget=budget, count_tokens=count_tokens)
        if len(pieces) == 1 and _merge_into_previous(drafts, section, pieces[0], budget, count_tokens):
            continue
        for text, tokens in pieces:
            drafts.append(ChunkDraft(len(drafts), text, heading_path, section.page, tokens))
    return drafts


def _merge_into_previous(
    drafts: list[ChunkDraft],
    section: Section,
    piece: tuple[str, int],
    budget: int,
    count_tokens: Callable[[str], int],
) -> bool:
    """Fold a short section into the chunk before it, so one-line sections are not chunks alone."""
    text, tokens = piece
    if not drafts or tokens >= SMALL_SECTION_TOKENS:
        return False
    previous = drafts[-1]
    label = section.headings[-1] if section.headings else ""
    addition = f"{label}: {text}" if label else text
    merged = f"{previous.text}\n{addition}"
    merged_tokens = count_tokens(merged)
    if previous.page != section.page or merged_tokens > budget:
        return False
    previous.text, previous.token_count = merged, merged_tokens
    return True


# A sentence and its token count, and whether it begins a line of its own in the chunk.
Unit = tuple[str, int, bool]


def _pack(section: Section, *, budget: int, count_tokens: Callable[[str], int]) -> list[tuple[str, int]]:
    units: list[Unit] = []
    for sentence, new_line in _units(section.text):
        parts = _split_long(sentence, budget, count_tokens)
        units.extend((text, tokens, new_line and i == 0) for i, (text, tokens) in enumerate(parts))
    pieces: list[tuple[str, int]] = []
    current: list[Unit] = []
    for unit in units:
        if current and _size([*current, unit]) > budget:
            pieces.append(_join(current))
            current = _overlap(current, budget - unit[1])
        current.append(unit)
    if current:
        pieces.append(_join(current))
    return [(text, count_tokens(text)) for text, _ in pieces]


def _split_long(sentence: str, budget: int, count_tokens: Callable[[str], int]) -> list[tuple[str, int]]:
    tokens = count_tokens(sentence)
    if tokens <= budget:
        return [(sentence, tokens)]
    # A "sentence" longer than the window (a table row, a run-on list): cut at word boundaries,
    # and a "word" longer than the window (a base64 blob, 300 kB of "{%") into slices that fit.
    words = [piece for word in sentence.split() for piece in _split_word(word, budget, count_tokens)]
    parts: list[str] = []
    current: list[str] = []
    for word in words:
        if current and count_tokens(" ".join([*current, word])) > budget:
            parts.append(" ".join(current))
            current = []
        current.append(word)
    if current:
        parts.append(" ".join(current))
    return [(part, count_tokens(part)) for part in parts]


def _split_word(word: str, budget: int, count_tokens: Callable[[str], int]) -> list[str]:
    if len(word) <= budget or count_tokens(word) <= budget:
        return [word]  # a token is at least a character, so a short word always fits
    size = budget * 4
    while size > 1 and count_tokens(word[:size]) > budget:
        size //= 2
    return [word[start : start + size] for start in range(0, len(word), size)]


def _overlap(units: list[Unit], room: int) -> list[Unit]:
    """The last whole sentences of a chunk, up to OVERLAP_TOKENS, to start the next one."""
    kept: list[Unit] = []
    for unit in reversed(units):
        if _size([unit, *kept]) > min(OVERLAP_TOKENS, room):
            break
        kept.insert(0, unit)
    return kept


def _size(units: list[Unit]) -> int:
    return sum(tokens for _, tokens, _ in units) + len(units)


def _join(units: list[Unit]) -> tuple[str, int]:
    text = "".join(
        ("\n" if new_line and i else " " if i else "") + body for i, (body, _, new_line) in enumerate(units)
    )
    return text, _size(units)
