from __future__ import annotations

import io
import zipfile

import pytest
from pypdf import PdfWriter

from rag.chunking import WINDOW_TOKENS, chunk_document, split_sentences
from rag.embedding import get_embedder
from rag.parsing import ParseError, detect_type, parse_document
from tests.conftest import SHARED_DIR

FILES = SHARED_DIR / "corpus" / "files"
HANDBOOK = SHARED_DIR / "corpus" / "tts-handbook"


def test_it_reads_a_real_pdf_and_keeps_page_numbers() -> None:
    parsed = parse_document((FILES / "EFT_Enrollment_Form.pdf").read_bytes(), "EFT_Enrollment_Form.pdf")
    assert parsed.detected_type == "pdf"
    pages = [s.page or 0 for s in parsed.sections]
    assert pages == sorted(pages) and pages[0] == 1
    assert any("account" in s.text.lower() for s in parsed.sections)


def test_it_reads_a_real_docx_and_keeps_its_headings() -> None:
    parsed = parse_document((FILES / "TEMPLATE_Team_charter.docx").read_bytes(), "TEMPLATE_Team_charter.docx")
    assert parsed.detected_type == "docx"
    assert any(section.headings for section in parsed.sections)
    assert sum(len(s.text) for s in parsed.sections) > 500


def test_it_reads_markdown_front_matter_and_drops_template_tags() -> None:
    source = (
        b"---\ntitle: Leave\neffective_date: 2026-01-01\n---\n\n# Leave\n\n## Annual leave\n\n"
        b'You get 20 days. See [the portal]({% page "/tools/hr/" %}).\n'
        b'{% alert "Note" %}Plan early.{% endalert %}\n'
    )
    parsed = parse_document(source, "leave.md")
    assert parsed.title == "Leave"
    assert str(parsed.effective_date) == "2026-01-01"
    section = parsed.sections[0]
    assert section.headings == ["Annual leave"]
    assert "{%" not in section.text and "the portal" in section.text and "Plan early." in section.text


def test_a_real_handbook_page_parses_with_its_title() -> None:
    page = HANDBOOK / "travel-and-leave" / "paid-parental-leave.md"
    parsed = parse_document(page.read_bytes(), page.name)
    assert "parental" in parsed.title.lower()
    assert all("{%" not in s.text for s in parsed.sections)


def test_html_keeps_text_and_drops_scripts_and_styles() -> None:
    html = (
        b"<html><head><title>Travel</title><style>p{color:red}</style></head><body>"
        b"<h2>Hotels</h2><p>Up to 160 EUR.</p><script>alert('x')</script></body></html>"
    )
    parsed = parse_document(html, "travel.html")
    assert parsed.detected_type == "html" and parsed.title == "Travel"
    assert parsed.sections[0].headings == ["Hotels"]
    text = " ".join(s.text for s in parsed.sections)
    assert "160 EUR" in text and "alert" not in text and "color" not in text


def test_the_type_comes_from_the_content_not_the_name() -> None:
    pdf = (FILES / "my-form.pdf").read_bytes()
    assert detect_type(pdf, "notes.txt") == "pdf"
    assert detect_type(b"<!DOCTYPE html><p>x</p>", "policy.txt") == "html"
    assert detect_type(b"just words", "x.txt") == "text"


def _encrypted_pdf() -> bytes:
    writer = PdfWriter()
    writer.add_blank_page(width=200, height=200)
    writer.encrypt(user_password="secret", owner_password="owner")
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


def _zip_bomb_docx() -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("[Content_Types].xml", "<Types/>")
        archive.writestr("word/document.xml", b"\0" * (80 * 1024 * 1024))
    return out.getvalue()


@pytest.mark.parametrize(
    ("data", "name", "reason"),
    [
        (b"", "empty.pdf", "The file is empty."),
        (b"   \n", "blank.txt", "The file is empty."),
        (b"%PDF-1.7\n" + b"\x93garbage" * 50, "broken.pdf", "corrupt"),
        (_encrypted_pdf(), "locked.pdf", "password-protected"),
        (_zip_bomb_docx(), "bomb.docx", "zip bomb"),
        (b"PK\x03\x04 not really a zip", "fake.docx", "corrupt"),
        (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", "picture.png", "Unsupported binary file type"),
    ],
)
def test_unusable_files_raise_a_clear_reason(data: bytes, name: str, reason: str) -> None:
    with pytest.raises(ParseError, match=reason):
        parse_document(data, name)


def test_sentences_are_split_at_their_ends() -> None:
    assert split_sentences("First one. Second one? Third!\n- a list item") == [
        "First one.",
        "Second one?",
        "Third!",
        "- a list item",
    ]


def test_chunks_fit_the_window_carry_heading_paths_and_overlap() -> None:
    body = " ".join(f"Rule {i} says employees must file form {i} before the deadline." for i in range(120))
    source = (
        f"# Handbook\n\n## Leave types\n\n### Annual leave\n\n{body}\n\n## Travel\n\nBook early.".encode()
    )
    parsed = parse_document(source, "handbook.md")
    embedder = get_embedder()
    drafts = chunk_document(parsed, count_tokens=embedder.count_tokens)
    annual = [d for d in drafts if d.heading_path == "Leave types > Annual leave"]
    assert len(annual) >= 4
    for draft in drafts:
        assert embedder.count_tokens(draft.embedding_text(parsed.title)) <= WINDOW_TOKENS + 8
        assert draft.text.rstrip().endswith((".", "!", "?")), "a chunk ends at a sentence end"
    first_sentences = set(split_sentences(annual[0].text))
    assert first_sentences & set(split_sentences(annual[1].text)), "consecutive chunks overlap"
    assert [d.ordinal for d in drafts] == list(range(len(drafts)))
