"""Ingestion progress: persisted on the document and pushed to admin pages over the channel layer."""

from __future__ import annotations

import logging
import time
from typing import TypedDict

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer

from rag.models import DocumentStatus, IngestionStage

DOCUMENTS_GROUP = "documents"
logger = logging.getLogger(__name__)


class DocumentProgressEvent(TypedDict):
    """Channel-layer event sent to DOCUMENTS_GROUP; `type` routes it to the consumer's handler."""

    type: str  # always "document.progress"
    document_id: int
    status: DocumentStatus
    stage: IngestionStage
    done: int
    total: int
    eta_seconds: float | None
    failure_reason: str


def progress_event(
    *, document_id: int, status: DocumentStatus, stage: IngestionStage, done: int = 0, total: int = 0,
    eta_seconds: float | None = None, failure_reason: str = "",
) -> DocumentProgressEvent:  # fmt: skip
    return DocumentProgressEvent(
        type="document.progress",
        document_id=document_id,
        status=status,
        stage=stage,
        done=done,
        total=total,
        eta_seconds=eta_seconds,
        failure_reason=failure_reason,
    )


def progress_publish(event: DocumentProgressEvent) -> None:
    layer = get_channel_layer()
    if layer is None:
        return
    try:
        async_to_sync(layer.group_send)(DOCUMENTS_GROUP, dict(event))
    except Exception:  # live progress is a convenience; ingestion must not fail for it
        logger.warning("could not publish progress for document %s", event["document_id"], exc_info=True)


class EtaClock:
    """Estimates the time left from the rate seen so far."""

    def __init__(self) -> None:
        self._start = time.monotonic()

    def eta(self, done: int, total: int) -> float | None:
        if done <= 0 or total <= done:
            return 0.0 if total and done >= total else None
        elapsed = time.monotonic() - self._start
        return round(elapsed / done * (total - done), 1)
