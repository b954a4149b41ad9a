from __future__ import annotations

import io
from pathlib import Path
from typing import Any

from rag.models import Document
from rag.services import document_create_from_upload, document_ingest

DEMO_CORPUS = Path(__file__).resolve().parent.parent / "demo_corpus"


def ingest_bytes(data: bytes, file_name: str, **kwargs: Any) -> Document:
    result = document_create_from_upload(
        stream=io.BytesIO(data), file_name=file_name, enqueue=False, **kwargs
    )
    if result.document.status == Document.Status.QUEUED:
        return document_ingest(document_id=result.document.pk)
    return result.document


def ingest_demo_corpus() -> list[Document]:
    return [ingest_bytes(path.read_bytes(), path.name) for path in sorted(DEMO_CORPUS.glob("*.md"))]
