"""Turn uploaded bytes into titled sections of plain text, keeping headings and page numbers.

The type is detected from the content (magic bytes, structure), the file name only breaks ties.
Every way a file can be unusable raises ParseError with a message meant for the admin.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import io
import re
import signal
import threading
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import PurePath
from typing import Any

import yaml

MAX_DOCX_UNCOMPRESSED = 50 * 1024 * 1024
MAX_DOCX_RATIO = 100  # deflate rarely beats 20:1 on real documents; bombs reach 1000:1


class ParseError(Exception):
    """The file cannot be ingested; the message is shown to the admin."""


@dataclass
class Section:
    headings: list[str]
    text: str
    page: int | None = None


@dataclass
class ParsedDocument:
    detected_type: str
    title: str
    sections: list[Section]
    metadata: dict[str, Any] = field(default_factory=dict)
    effective_date: dt.date | None = None


# --- detection ----------------------------------------------------------------------------

MARKDOWN_SUFFIXES = {".md", ".markdown", ".mdown"}
HTML_SUFFIXES = {".html", ".htm"}
HTML_SNIFF = re.compile(rb"^\s*(<!doctype html|<html|<head|<body)", re.IGNORECASE)


def detect_type(data: bytes, file_name: str) -> str:
    suffix = PurePath(file_name).suffix.lower()
    if data.startswith(b"%PDF-"):
        return "pdf"
    if data.startswith(b"PK\x03\x04"):
        try:
            with zipfile.ZipFile(io.BytesIO(data)) as archive:
                names = set(archive.namelist())
        except zipfile.BadZipFile:
            raise ParseError("The file looks like a ZIP/DOCX archive but is corrupt.") from None
        if "word/document.xml" in names:
            return "docx"
        raise ParseError("ZIP archives other than DOCX documents are not supported.")
    if b"\x00" in data[:4096]:
        raise ParseError("Unsupported binary file type: upload PDF, DOCX, Markdown, HTML or text.")
    if HTML_SNIFF.match(data[:1024]) or suffix in HTML_SUFFIXES:
        return "html"
    if (
        suffix in MARKDOWN_SUFFIXES
        or data.startswith(b"---\n")
        or re.search(rb"(?m)^#{1,6} \S", data[:65536])
    ):
        return "markdown"
    return "text"


def parse_document(data: bytes, file_name: str, *, time_limit: float | None = None) -> ParsedDocument:
    """The document's text in sections. `time_limit` (seconds, where the process can set a timer:
    the main thread of a Celery worker or a command) fails this document alone if reading it
    takes longer, whatever a hostile file was built to make a parser do."""
    if not data.strip():
        raise ParseError("The file is empty.")
    with _time_limit(time_limit):
        return _parse(data, file_name)


@contextlib.contextmanager
def _time_limit(seconds: float | None) -> Iterator[None]:
    if not seconds or threading.current_thread() is not threading.main_thread():
        yield  # a timer signal can only interrupt the main thread
        return

    def expired(signum: int, frame: Any) -> None:
        raise ParseError(f"Reading the file took longer than {seconds:g} s; it was stopped.")

    previous = signal.signal(signal.SIGALRM, expired)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def _parse(data: bytes, file_name: str) -> ParsedDocument:
    kind = detect_type(data, file_name)
    fallback_title = _title_from_file_name(file_name)
    parsed = {
        "pdf": _parse_pdf,
        "docx": _parse_docx,
        "markdown": _parse_markdown,
        "html": _parse_html,
        "text": _parse_text,
    }[kind](data, fallback_title)
    parsed.sections = [s for s in parsed.sections if s.text.strip()]
    if not parsed.sections:
        raise ParseError(f"No text could be extracted from this {kind.upper()} file.")
    return parsed


# Titles that authoring tools put in a file's metadata by default: they name the tool, not
# the document, so the document's own heading or its file name is used instead.
_PLACEHOLDER_TITLES = re.compile(
    r"^(?:untitled(?: document)?|document\d*|word document|microsoft word( - .*)?|pdf|title|slide \d+|presentation\d*)$",
    re.IGNORECASE,
)


def _meaningful_title(title: str) -> str:
    return "" if _PLACEHOLDER_TITLES.match(title.strip()) else title.strip()


def _title_from_file_name(file_name: str) -> str:
    stem = PurePath(file_name).stem
    return re.sub(r"[-_]+", " ", stem).strip().capitalize() or "Untitled"


def _decode(data: bytes) -> str:
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        try:
            return data.decode("cp1252")
        except UnicodeDecodeError:
            raise ParseError("The text is neither UTF-8 nor Windows-1252 encoded.") from None


# --- PDF -------------------------------------------------------------------------------------


def _parse_pdf(data: bytes, fallback_title: str) -> ParsedDocument:
    from pypdf import PdfReader
    from pypdf.errors import LimitReachedError, PdfReadError

    try:
        reader = PdfReader(io.BytesIO(data), strict=False)
        if reader.is_encrypted:
            raise ParseError("The PDF is encrypted or password-protected; upload an unprotected copy.")
        pages = [(number, _page_text(page)) for number, page in enumerate(reader.pages, start=1)]
        info = reader.metadata
        title = _meaningful_title(str(info.title)) if info and info.title else ""
    except ParseError:
        raise
    except LimitReachedError:
        raise ParseError(
            "The PDF's compressed content expands past pypdf's decompression limit (75 MB): "
            "refused as a possible decompression bomb."
        ) from None
    except (PdfReadError, ValueError, KeyError, TypeError, OSError, RecursionError) as exc:
        raise ParseError(f"The PDF is corrupt and cannot be read ({type(exc).__name__}).") from None
    if not any(text.strip() for _, text in pages):
        raise ParseError("The PDF has no extractable text (is it a scan without OCR?).")
    sections = [Section(headings=[], text=_tidy(text), page=number) for number, text in pages]
    return ParsedDocument("pdf", title or fallback_title, sections)


def _page_text(page: Any) -> str:
    # Decoded first on purpose: extract_text swallows pypdf's decompression limit and returns
    # "", so a bomb would read as "no extractable text". The decoded stream is cached.
    contents = page.get_contents()
    if contents is not None:
        contents.get_data()
    return page.extract_text() or ""


# --- DOCX ------------------------------------------------------------------------------------


def _check_zip_bomb(data: bytes) -> None:
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        infos = archive.infolist()
        total = sum(info.file_size for info in infos)
        packed = sum(info.compress_size for info in infos) or 1
    if total > MAX_DOCX_UNCOMPRESSED or total / packed > MAX_DOCX_RATIO:
        raise ParseError(
            f"The DOCX expands to {total // (1024 * 1024)} MiB ({total / packed:.0f}x its size): "
            "refused as a possible zip bomb."
        )


def _parse_docx(data: bytes, fallback_title: str) -> ParsedDocument:
    _check_zip_bomb(data)
    import docx
    from docx.opc.exceptions import PackageNotFoundError

    try:
        document = docx.Document(io.BytesIO(data))
    except (PackageNotFoundError, KeyError, ValueError, zipfile.BadZipFile) as exc:
        raise ParseError(f"The DOCX is corrupt and cannot be read ({type(exc).__name__}).") from None
    builder = _SectionBuilder()
    title = _meaningful_title(document.core_properties.title or "")
    for block in _docx_blocks(document):
        if isinstance(block, tuple):
            level, text = block
            if level == 0 and not title:
                title = text
            else:
                builder.heading(max(level, 1), text)
        else:
            builder.text(block)
    return ParsedDocument("docx", title or fallback_title, builder.sections())


def _docx_blocks(document: Any) -> list[tuple[int, str] | str]:
    """Paragraphs and tables in body order; headings as (level, text), Title style as level 0."""
    from docx.table import Table
    from docx.text.paragraph import Paragraph

    blocks: list[tuple[int, str] | str] = []
    for item in document.iter_inner_content():
        if isinstance(item, Paragraph):
            text = item.text.strip()
            if not text:
                continue
            style = (item.style.name if item.style is not None else "") or ""
            match = re.match(r"Heading (\d)", style)
            if match:
                blocks.append((int(match.group(1)), text))
            elif style == "Title":
                blocks.append((0, text))
            else:
                blocks.append(text)
        elif isinstance(item, Table):
            for row in item.rows:
                cells = [cell.text.strip() for cell in row.cells]
                line = " | ".join(dict.fromkeys(c for c in cells if c))
                if line:
                    blocks.append(line)
    return blocks


# --- Markdown --------------------------------------------------------------------------------

FRONT_MATTER = re.compile(r"\A---\s*\n(.*?)\n---\s*\n", re.DOTALL)
MAX_FRONT_MATTER_CHARS = 64 * 1024
# What a document's metadata may hold once parsed: it is stored and shown on every page load.
MAX_METADATA_VALUE_CHARS = 1000
MAX_METADATA_LIST_ITEMS = 50
MAX_METADATA_KEYS = 50
MD_LINK = re.compile(r"!?\[([^\]]*)\]\([^)]*\)")
# Links whose text wraps onto the next source line, and reference links ("[the form][form]"):
# reduced to their text before the text is read line by line.
MD_WRAPPED_LINK = re.compile(r"!?\[([^\]\n]*\n[^\]\n]*)\]\([^)\n]*\)")
MD_REFERENCE_LINK = re.compile(r"\[([^\]\n]+)\]\[[^\]\n]*\]")
MD_HEADING = re.compile(r"^(#{1,6})\s+(.*?)\s*#*\s*$")
HTML_TAG = re.compile(r"</?[a-zA-Z][^>]*>")


def _parse_markdown(data: bytes, fallback_title: str) -> ParsedDocument:
    text = _decode(data)
    metadata: dict[str, Any] = {}
    match = FRONT_MATTER.match(text)
    if match:
        header = match.group(1)
        try:
            loaded = _load_front_matter(header)
        except yaml.YAMLError:
            loaded = None  # a broken header is not worth losing the document over
        if isinstance(loaded, dict):
            metadata = loaded
        text = text[match.end() :]
    text = strip_template_tags(text)
    text = MD_REFERENCE_LINK.sub(r"\1", MD_WRAPPED_LINK.sub(r"\1", text))
    builder = _SectionBuilder()
    title = str(metadata.get("title") or "").strip()
    in_code = False
    for line in text.splitlines():
        if line.lstrip().startswith("```"):
            in_code = not in_code
            continue
        heading = None if in_code else MD_HEADING.match(line)
        if heading:
            level, heading_text = len(heading.group(1)), _inline_markdown(heading.group(2))
            if level == 1 and not title:
                title = heading_text
            if level == 1 and heading_text == title:
                continue  # the H1 repeats the title; it is not a section of its own
            builder.heading(level, heading_text)
        else:
            builder.text(_inline_markdown(line) if not in_code else line)
    effective = _as_date(metadata.get("effective_date"))
    return ParsedDocument(
        "markdown", title or fallback_title, builder.sections(), _bounded(metadata), effective
    )


def _load_front_matter(header: str) -> Any:
    if len(header) > MAX_FRONT_MATTER_CHARS:
        return None
    return yaml.load(header, Loader=_FrontMatterLoader)  # noqa: S506 (SafeLoader, aliases refused)


class _FrontMatterLoader(yaml.SafeLoader):
    """Safe YAML without aliases: 406 bytes of nested aliases expanded to 8 MB of metadata."""

    def compose_node(self, parent: Any, index: Any) -> Any:
        if self.check_event(yaml.AliasEvent):
            raise yaml.YAMLError("front matter may not use YAML aliases")
        return super().compose_node(parent, index)


def _bounded(metadata: dict[str, Any]) -> dict[str, Any]:
    """Scalars and short lists of scalars, each short, and not too many of them."""
    bounded: dict[str, Any] = {}
    for key, value in list(metadata.items())[:MAX_METADATA_KEYS]:
        if isinstance(value, str | int | float | bool):
            bounded[str(key)[:100]] = value[:MAX_METADATA_VALUE_CHARS] if isinstance(value, str) else value
        elif isinstance(value, list):
            items = [v for v in value[:MAX_METADATA_LIST_ITEMS] if isinstance(v, str | int | float | bool)]
            bounded[str(key)[:100]] = [v[:200] if isinstance(v, str) else v for v in items]
    return bounded


def strip_template_tags(text: str) -> str:
    """Remove `{% … %}` and `{{ … }}` template tags in one pass.

    The regex this replaces rescanned to the end of the file from every unclosed `{%`: 300 kB
    of them held the only worker for 114 s. An unclosed tag is kept as text, as it was.
    """
    pieces, cursor = [], 0
    next_at = {opener: text.find(opener) for opener in ("{%", "{{")}
    while True:
        found = [(at, opener) for opener, at in next_at.items() if at >= 0]
        if not found:
            break
        start, opener = min(found)
        end = text.find("%}" if opener == "{%" else "}}", start + 2)
        if end < 0:
            next_at[opener] = -1  # no closer after this one, so none after any later one either
            continue
        pieces.append(text[cursor:start])
        cursor = end + 2
        for other, at in next_at.items():
            if 0 <= at < cursor:
                next_at[other] = text.find(other, cursor)
    pieces.append(text[cursor:])
    return "".join(pieces)


def _inline_markdown(line: str) -> str:
    line = MD_LINK.sub(r"\1", line)
    line = HTML_TAG.sub("", line)
    return re.sub(r"(\*\*|__|`)", "", line)


def _as_date(value: Any) -> dt.date | None:
    if isinstance(value, dt.date):
        return value
    if isinstance(value, str):
        try:
            return dt.date.fromisoformat(value.strip())
        except ValueError:
            return None
    return None


# --- HTML -------------------------------------------------------------------------------------


class _HTMLText(HTMLParser):
    SKIP = {"script", "style", "noscript", "template", "svg", "head"}
    BLOCK = {"p", "div", "li", "br", "tr", "section", "article", "table", "ul", "ol", "blockquote"}

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.builder = _SectionBuilder()
        self.title = ""
        self._skip = 0
        self._in_title = False
        self._heading: int | None = None
        self._buffer: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "title":
            self._in_title = True
        elif tag in self.SKIP:
            self._skip += 1
        elif re.fullmatch(r"h[1-6]", tag):
            self._flush()
            self._heading = int(tag[1])
        elif tag in self.BLOCK:
            self._flush()

    def handle_endtag(self, tag: str) -> None:
        if tag == "title":
            self._in_title = False
        elif tag in self.SKIP:
            self._skip = max(0, self._skip - 1)
        elif re.fullmatch(r"h[1-6]", tag) and self._heading is not None:
            text = " ".join("".join(self._buffer).split())
            self._buffer = []
            if text:
                if self._heading == 1 and not self.title:
                    self.title = text
                else:
                    self.builder.heading(self._heading, text)
            self._heading = None
        elif tag in self.BLOCK:
            self._flush()

    def handle_data(self, data: str) -> None:
        if self._in_title:
            self.title += data.strip()
        elif not self._skip:
            self._buffer.append(data)

    def _flush(self) -> None:
        if self._heading is not None:
            return
        text = " ".join("".join(self._buffer).split())
        self._buffer = []
        if text:
            self.builder.text(text)

    def close(self) -> None:
        super().close()
        self._flush()


def _parse_html(data: bytes, fallback_title: str) -> ParsedDocument:
    parser = _HTMLText()
    parser.feed(_decode(data))
    parser.close()
    return ParsedDocument("html", parser.title or fallback_title, parser.builder.sections())


def _parse_text(data: bytes, fallback_title: str) -> ParsedDocument:
    return ParsedDocument("text", fallback_title, [Section(headings=[], text=_tidy(_decode(data)))])


# --- shared -------------------------------------------------------------------------------------


class _SectionBuilder:
    def __init__(self) -> None:
        self._stack: list[tuple[int, str]] = []
        self._sections: list[Section] = [Section(headings=[], text="")]

    def heading(self, level: int, text: str) -> None:
        while self._stack and self._stack[-1][0] >= level:
            self._stack.pop()
        self._stack.append((level, text))
        self._sections.append(Section(headings=[t for _, t in self._stack], text=""))

    def text(self, line: str) -> None:
        current = self._sections[-1]
        current.text = f"{current.text}\n{line}" if current.text else line

    def sections(self) -> list[Section]:
        return [Section(s.headings, _tidy(s.text), s.page) for s in self._sections if s.text.strip()]


def _tidy(text: str) -> str:
    text = text.replace("\r\n", "\n").replace("\xa0", " ")
    text = re.sub(r"[ \t]+", " ", text)
    return re.sub(r"\n{3,}", "\n\n", text).strip()
