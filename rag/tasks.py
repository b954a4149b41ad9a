from __future__ import annotations

import logging
import time

from celery import shared_task
from celery.exceptions import SoftTimeLimitExceeded

from core import metrics
from rag.lifecycle import versions_purge_expired
from rag.models import Document, DocumentStatus
from rag.services import document_ingest, document_mark_failed, documents_recover_stuck

logger = logging.getLogger(__name__)


@shared_task(acks_late=True, soft_time_limit=600, time_limit=660)
def ingest_document(document_id: int) -> str:
    """Ingest one document by id. Idempotent: chunks are replaced, never appended."""
    document = Document.objects.filter(pk=document_id).first()
    if document is None:
        return "missing"
    started = time.perf_counter()
    state: str = DocumentStatus.FAILED
    try:
        state = document_ingest(document_id=document_id).status
        return state
    except SoftTimeLimitExceeded:
        return document_mark_failed(
            document, "Ingestion took longer than the time limit; try a smaller file."
        ).status
    except Exception:
        # The worker must survive any one bad document; the admin sees a reason, the log the trace.
        logger.exception("ingestion crashed", extra={"document_id": document_id})
        return document_mark_failed(
            document, "Ingestion failed with an internal error; see the worker log."
        ).status
    finally:
        if metrics.enabled():
            metrics.INGESTION_JOBS.labels(state).inc()
            metrics.INGESTION_SECONDS.observe(time.perf_counter() - started)


@shared_task(soft_time_limit=60, time_limit=90, queue="housekeeping")
def recover_stuck_documents() -> dict[str, int]:
    """Re-queue or fail documents whose ingestion job was lost (Celery beat, every 30 seconds)."""
    return documents_recover_stuck()


@shared_task(soft_time_limit=300, time_limit=360, queue="housekeeping")
def purge_expired_versions() -> int:
    """Delete superseded versions past POLICYDESK_VERSION_RETENTION_DAYS (none while it is 0)."""
    return versions_purge_expired()
