"""How an answer is put together from evidence: the quoted policy sentences, the frame around
them in the question's language, the "not covered" reply, and the short prompt that asks a
small model to summarise the quotes and nothing else.

Pure functions over redacted text and evidence; the pipeline (chat/pipeline.py) calls them.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from rag.evidence import EMAIL, LIST_ITEM, Evidence, EvidenceSentence
from rag.selectors import RetrievedChunk

FRAMES: dict[str, dict[str, str]] = {
    "en": {
        "evidence": "What the policy says:",
        "evidence_after": "**What the policy says**",
        "summary": "**In short:**",
        "model_collapsed": "Model summary (not supported by the policy text)",
        "not_covered": "The policies I have do not cover this question.",
        "related": "Related documents you could check:",
        "contact": "For help, contact {contact}.",
        "unavailable": "The assistant is unavailable right now, so here is what the policy says:",
        "unavailable_nothing": (
            "The assistant is unavailable right now and no policy passage matched your question. "
            "Please try again later."
        ),
    },
    "vi": {
        "evidence": "Chính sách nêu rõ:",
        "evidence_after": "**Chính sách nêu rõ**",
        "summary": "**Tóm tắt:**",
        "model_collapsed": "Tóm tắt của mô hình (không được văn bản chính sách xác nhận)",
        "not_covered": "Các chính sách hiện có không đề cập đến câu hỏi này.",
        "related": "Tài liệu liên quan bạn có thể xem:",
        "contact": "Để được hỗ trợ, vui lòng liên hệ {contact}.",
        "unavailable": "Trợ lý hiện không khả dụng, vì vậy đây là nội dung chính sách liên quan:",
        "unavailable_nothing": (
            "Trợ lý hiện không khả dụng và không có đoạn chính sách nào phù hợp với câu hỏi của bạn. "
            "Vui lòng thử lại sau."
        ),
    },
}
CONTACT_PHRASE = re.compile(
    r"\b(?:contact|email|reach out to|ask)\s+((?:the\s+)?(?:[A-Z][\w&/-]*\s+){0,4}(?:team|office|desk|specialist|channel|division))\b"
)
RELATED_DOCUMENTS = 3
SUMMARY_TOKENS = 60

# Short, and without the usual "the text is untrusted" rule: SmolLM2-135M echoed such rules
# back as its answer. What it writes is one sentence, support-checked against the quotes.
SUMMARY_SYSTEM = (
    "Answer the employee's question in one short sentence, using only the policy text given. "
    "Copy numbers exactly."
)


def frame(language: str, key: str) -> str:
    return FRAMES.get(language, FRAMES["en"])[key]


@dataclass(frozen=True)
class Numbered:
    """Evidence sentences of one passage, and the number the answer cites it by."""

    n: int
    passage: RetrievedChunk
    sentences: list[EvidenceSentence]


def numbered_evidence(
    evidence: Evidence, numbering: dict[int, int], passages: Sequence[RetrievedChunk]
) -> list[Numbered]:
    groups: dict[int, list[EvidenceSentence]] = {}
    for sentence in evidence.sentences:
        if sentence.passage in numbering:
            groups.setdefault(sentence.passage, []).append(sentence)
    return [
        Numbered(n=numbering[p], passage=passages[p], sentences=sorted(groups[p], key=lambda s: s.start))
        for p in sorted(groups, key=lambda p: numbering[p])
    ]


def quote_block(group: Numbered) -> str:
    """One passage's evidence as a Markdown quote: sentences verbatim, list items on their own
    lines, a gap shown as "…", the citation marker, then the source."""
    text = group.passage.text
    lines: list[str] = []
    previous: EvidenceSentence | None = None
    for sentence in group.sentences:
        body = " ".join(sentence.text.split())
        if previous is None:
            lines.append(body)
        else:
            between = text[previous.end : sentence.start]
            if "\n" in between or LIST_ITEM.match(body):
                lines.append(body)
            elif between.strip():
                lines[-1] += " … " + body
            else:
                lines[-1] += " " + body
        previous = sentence
    lines[-1] += f" [{group.n}]"
    quoted = "\n>\n".join(f"> {line}" for line in lines)
    return f"{quoted}\n>\n> — *{attribution(group.passage)}*"


def attribution(passage: RetrievedChunk) -> str:
    """The source line under a quote: the title, then the section (Markdown-escaped)."""
    return _markdown_plain(" \u203a ".join(part for part in (passage.title, passage.heading_path) if part))


def _markdown_plain(text: str) -> str:
    return re.sub(r"([*_`\[\]])", r"\\\1", text)


def evidence_text(groups: Sequence[Numbered]) -> str:
    return "\n\n".join(quote_block(group) for group in groups)


def decline_text(*, language: str, related: Sequence[tuple[str, str]], contact: str | None) -> str:
    parts = [frame(language, "not_covered")]
    if related:
        links = "\n".join(f"- [{_markdown_plain(title)}]({url})" for title, url in related)
        parts.append(f"{frame(language, 'related')}\n\n{links}")
    if contact:
        parts.append(frame(language, "contact").format(contact=contact))
    return "\n\n".join(parts)


def contact_in(passages: Sequence[RetrievedChunk]) -> str | None:
    """A contact the passages name (an address first, then "contact the … team"), best first."""
    for passage in passages:
        email = EMAIL.search(passage.text)
        if email:
            return email.group(0).rstrip(".")
    for passage in passages:
        phrase = CONTACT_PHRASE.search(passage.text)
        if phrase:
            return " ".join(phrase.group(1).split())
    return None


def related_documents(passages: Sequence[RetrievedChunk], urls: dict[int, str]) -> list[tuple[str, str]]:
    """The nearest documents, once each, best first."""
    seen: set[int] = set()
    related = []
    for passage in passages:
        if passage.document_id in seen:
            continue
        seen.add(passage.document_id)
        related.append((passage.title, urls[passage.document_id]))
    return related[:RELATED_DOCUMENTS]


def summary_messages(*, question: str, groups: Sequence[Numbered]) -> list[dict[str, str]]:
    quotes = "\n".join(
        f"[{g.n}] " + " ".join(" ".join(s.text.split()) for s in g.sentences).replace("<", "\u2039")
        for g in groups
    )
    return [
        {"role": "system", "content": SUMMARY_SYSTEM},
        {"role": "user", "content": f"Policy text:\n{quotes}\n\nQuestion: {question}"},
    ]


def summary_complete(text: str) -> bool:
    """The summary has its one sentence: it ends a sentence or a line after a few words."""
    words = text.split()
    if len(words) < 6:
        return False
    # A sentence end, not a list number ("is: 1. A") or an abbreviation's dot.
    return bool(re.search(r"[^\d\s.][.!?](?:\s|$)|\n\s*\S", text.strip() + " "))
