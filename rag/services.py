"""Writes for documents: upload, ingestion, versioning, retire, delete."""

from __future__ import annotations

import hashlib
import logging
import threading
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import PurePosixPath
from typing import IO, Any

from django.conf import settings
from django.contrib.auth.models import AnonymousUser, Group, User
from django.core.files.base import ContentFile
from django.db import connection, transaction
from django.utils import timezone

from accounts.roles import ROLE_NAMES
from audit.models import AuditEvent
from audit.services import audit_event_append, pseudonym
from core.db import release_db_connection
from rag.chunking import ChunkDraft, chunk_document
from rag.embedding import Embedder
from rag.index import (
    IndexModels,
    PassageText,
    index_models_locked,
    index_record_model,
    ingestion_embedders,
    sentence_mark,
    sentence_rows_store,
    sentence_vector_bytes,
)
from rag.lifecycle import (
    VersionDates,
    document_retire_record,
    inherited_groups,
    version_created_record,
    version_dates_apply,
    version_predecessor,
    version_target,
    versions_supersede,
)
from rag.models import Chunk, Document, DocumentStatus, IngestionStage
from rag.parsing import ParsedDocument, ParseError, parse_document
from rag.progress import EtaClock, progress_event, progress_publish

logger = logging.getLogger(__name__)
EMBED_BATCH = 64
DEFAULT_DATES = VersionDates()  # from today, open-ended


@dataclass(frozen=True)
class UploadResult:
    document: Document
    created: bool


def _read_limited(stream: IO[bytes], limit: int) -> bytes | None:
    """The stream's bytes, or None once it exceeds `limit` (the rest is never read into memory)."""
    parts, size = [], 0
    while block := stream.read(1 << 20):
        size += len(block)
        if size > limit:
            return None
        parts.append(block)
    return b"".join(parts)


@transaction.atomic
def document_create_from_upload(
    *,
    stream: IO[bytes],
    file_name: str,
    source_path: str | None = None,
    uploaded_by: User | AnonymousUser | None = None,
    allowed_groups: Iterable[Group] | None = None,
    enqueue: bool = True,
    new_version_of: str | None = None,
    dates: VersionDates = DEFAULT_DATES,
) -> UploadResult:
    """Store an upload and queue its ingestion. The same content twice gives the same document.

    It is a new version of `new_version_of` (a document's source path) when given, else of the
    document with the same source path, if any. `dates` say when it takes effect (default: today);
    readers are `allowed_groups`, or the predecessor's when None (rag/lifecycle.py).
    """
    dates.check()
    source_path = (
        version_target(new_version_of=new_version_of)
        if new_version_of
        else _clean_source_path(source_path or file_name)
    )
    data = _read_limited(stream, settings.MAX_UPLOAD_BYTES)
    if data is None:
        return UploadResult(_failed_upload(file_name, source_path, uploaded_by, _too_large_reason()), True)
    if not data.strip():
        # Said at upload, not later by the worker; and two different empty files are not
        # "duplicates" of each other (their content hash is the same).
        reason = "The file is empty." if not data else "The file holds only whitespace."
        return UploadResult(_failed_upload(file_name, source_path, uploaded_by, reason), True)
    content_hash = hashlib.sha256(data).hexdigest()
    existing = Document.objects.filter(content_hash=content_hash).first()
    if existing is not None:
        return UploadResult(existing, False)
    previous = version_predecessor(source_path=source_path)
    document = Document.objects.create(
        title=PurePosixPath(file_name).stem,
        source_path=source_path,
        content_hash=content_hash,
        size_bytes=len(data),
        version=(previous.version + 1) if previous else 1,
        uploaded_by=_real_user(uploaded_by),
        progress={"stage": IngestionStage.QUEUED, "done": 0, "total": 0, "eta_seconds": None},
    )
    document.file.save(
        f"{content_hash}{PurePosixPath(file_name).suffix.lower()[:10]}", ContentFile(data), save=True
    )
    inherited = inherited_groups(previous)
    groups = list(allowed_groups) if allowed_groups is not None else inherited
    document.allowed_groups.set(groups)
    uploader = _real_user(uploaded_by)
    # Readers are compared with the predecessor's (nobody's, for a first version): a change is a
    # `document_access` event from theirs to these, whoever uploads (a command: no actor).
    before = sorted({g.name for g in inherited})
    after = sorted({g.name for g in groups})
    if before != after:
        _access_recorded(document, before=before, after=after, changed_by=uploader)
    version_dates_apply(document=document, dates=dates, predecessor=previous)
    version_created_record(document=document, predecessor=previous, actor=uploader)
    if enqueue:
        _enqueue_ingestion(document.pk)
    return UploadResult(document, True)


def _real_user(user: User | AnonymousUser | None) -> User | None:
    return user if isinstance(user, User) else None


def _clean_source_path(path: str) -> str:
    parts = [p for p in PurePosixPath(path.replace("\\", "/")).parts if p not in ("/", "..", ".")]
    return "/".join(parts)[:500] or "untitled"


def _too_large_reason() -> str:
    limit_mib = settings.MAX_UPLOAD_BYTES / (1024 * 1024)
    return f"The file is larger than the upload limit of {limit_mib:.0f} MiB."


def _failed_upload(
    file_name: str, source_path: str, uploaded_by: User | AnonymousUser | None, reason: str
) -> Document:
    # Keyed by a hash of the name and reason: the bytes were never read in full, and a
    # repeated oversized upload should not pile up failed rows.
    marker = hashlib.sha256(f"rejected:{source_path}:{reason}".encode()).hexdigest()
    document, _ = Document.objects.get_or_create(
        content_hash=marker,
        defaults={
            "title": PurePosixPath(file_name).stem,
            "source_path": source_path,
            "size_bytes": 0,
            "status": DocumentStatus.FAILED,
            "failure_reason": reason,
            "uploaded_by": _real_user(uploaded_by),
        },
    )
    return document


def _enqueue_ingestion(document_id: int) -> None:
    from rag.tasks import ingest_document

    # Only after commit: a worker must never look for a document that is not there yet.
    transaction.on_commit(lambda: ingest_document.delay(document_id))


def document_reindex(*, document: Document) -> None:
    if document.status == DocumentStatus.RETIRED:
        raise ValueError("a retired document is not re-indexed; upload it again instead")
    Document.objects.filter(pk=document.pk).update(
        status=DocumentStatus.QUEUED,
        failure_reason="",
        progress={"stage": IngestionStage.QUEUED, "done": 0, "total": 0},
    )
    with transaction.atomic():
        _enqueue_ingestion(document.pk)


@transaction.atomic
def document_retire(*, document: Document, retired_by: User | None = None) -> None:
    """Out of every answer from now on, "as of" ones too; auditors can still open its text."""
    Document.objects.filter(pk=document.pk).update(status=DocumentStatus.RETIRED, retired_at=timezone.now())
    document_retire_record(document=document, actor=retired_by)
    progress_publish(
        progress_event(document_id=document.pk, status=DocumentStatus.RETIRED, stage=IngestionStage.RETIRED)
    )


def access_groups_parse(*, names: Iterable[str]) -> list[Group]:
    """Document-access groups by name, created when new; role groups are not access groups."""
    wanted = sorted({" ".join(n.split())[:150] for n in names if n.strip()})
    refused = [n for n in wanted if n in ROLE_NAMES]
    if refused:
        raise ValueError(f"{refused[0]} is a role, not a document group.")
    return [Group.objects.get_or_create(name=name)[0] for name in wanted]


@transaction.atomic
def document_set_access(*, document: Document, groups: Iterable[Group], changed_by: User) -> bool:
    """Who may read the document: members of `groups`, or everyone when empty. Retrieval reads
    it in SQL, so the change holds from the next question. Recorded in the audit log (who,
    when, from what to what). False when nothing changed."""
    before = sorted(document.allowed_groups.values_list("name", flat=True))
    after = sorted({g.name for g in groups})
    if before == after:
        return False
    document.allowed_groups.set(list(groups))
    _access_recorded(document, before=before, after=after, changed_by=changed_by)
    return True


def _access_recorded(
    document: Document, *, before: list[str], after: list[str], changed_by: User | None
) -> None:
    audit_event_append(
        kind=AuditEvent.Kind.DOCUMENT_ACCESS,
        actor=pseudonym(user_id=changed_by.pk) if changed_by is not None else "",
        detail={
            "document_id": document.pk,
            "source_path": document.source_path,
            "from": before,
            "to": sorted(after),
        },
    )


def document_delete(*, document: Document) -> None:
    file = document.file
    document.delete()
    if file and file.name:
        file.storage.delete(file.name)


# --- ingestion -------------------------------------------------------------------------------


# While a document is being ingested its row is touched this often, so one whose worker died is
# found after STUCK_AFTER[PROCESSING] even when parsing or sentence embedding writes no progress.
HEARTBEAT_SECONDS = 20.0


@contextmanager
def ingestion_heartbeat(*, document_id: int, every: float = HEARTBEAT_SECONDS) -> Iterator[None]:
    """Touch the document's `updated_at` every `every` seconds from a thread until the block ends."""
    stop = threading.Event()

    def beat() -> None:
        try:
            while not stop.wait(every):
                Document.objects.filter(pk=document_id, status=DocumentStatus.PROCESSING).update(
                    updated_at=timezone.now()
                )
        except Exception:  # a missed heartbeat only makes the document look stuck sooner
            logger.warning("ingestion heartbeat failed", extra={"document_id": document_id})
        finally:
            connection.close()  # this thread's own connection

    thread = threading.Thread(target=beat, name=f"ingest-heartbeat-{document_id}", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join(timeout=5)


def document_ingest(*, document_id: int) -> Document:
    """Parse, chunk, embed, and swap in the document's chunks in one transaction (idempotent)."""
    document = Document.objects.get(pk=document_id)
    if document.status == DocumentStatus.RETIRED:
        return document
    with ingestion_heartbeat(document_id=document_id):
        return _ingest(document)


def _ingest(document: Document) -> Document:
    _set_progress(document, status=DocumentStatus.PROCESSING, stage=IngestionStage.PARSING)
    try:
        data = document.file.read() if document.file else b""
        document.file.close()
        parsed = parse_document(
            data, document.source_path or document.file.name or "", time_limit=settings.INGEST_PARSE_SECONDS
        )
    except ParseError as exc:
        return document_mark_failed(document, str(exc))
    except OSError:
        return document_mark_failed(document, "The stored file could not be read; upload it again.")

    _apply_metadata(document, parsed)
    # A re-embed may swap the index's model while this document embeds; then embed again.
    for _attempt in range(3):
        embedder, target = ingestion_embedders()
        drafts = chunk_document(parsed, count_tokens=embedder.count_tokens)
        _set_progress(
            document, status=DocumentStatus.PROCESSING, stage=IngestionStage.EMBEDDING, total=len(drafts)
        )
        # Embedding takes seconds to minutes: give the connection back meanwhile.
        release_db_connection()
        vectors = _embed(document, drafts, parsed.title, embedder)
        sentences = sentence_vector_bytes(
            passages=[PassageText(d.text, parsed.title[:300], d.heading_path[:1000]) for d in drafts],
            embedder=embedder,
        )
        next_vectors = _embed(document, drafts, parsed.title, target) if target else None
        embedded = _Embedded(
            models=IndexModels(embedder.name, target.name if target else ""),
            dimensions=embedder.dimensions,
            vectors=vectors,
            title_vector=embedder.embed_query(parsed.title),
            next_vectors=next_vectors,
            next_title_vector=target.embed_query(parsed.title) if target else None,
            sentence_vectors=sentences,
        )
        if _store_chunks(document, drafts, embedded):
            break
    document.refresh_from_db()
    return document


def _apply_metadata(document: Document, parsed: ParsedDocument) -> None:
    document.title = parsed.title[:300]
    document.detected_type = parsed.detected_type
    document.metadata = parsed.metadata
    document.effective_date = parsed.effective_date
    lang = parsed.metadata.get("lang")
    document.lang = lang[:8] if isinstance(lang, str) else ""
    document.save(
        update_fields=["title", "detected_type", "metadata", "effective_date", "lang", "updated_at"]
    )


def _embed(document: Document, drafts: list[ChunkDraft], title: str, embedder: Embedder) -> list[list[float]]:
    clock = EtaClock()
    vectors: list[list[float]] = []
    for start in range(0, len(drafts), EMBED_BATCH):
        batch = drafts[start : start + EMBED_BATCH]
        vectors.extend(embedder.embed_documents([d.embedding_text(title) for d in batch]))
        done = len(vectors)
        eta = clock.eta(done, len(drafts))
        progress = _keeping_requeues(
            document,
            {"stage": IngestionStage.EMBEDDING, "done": done, "total": len(drafts), "eta_seconds": eta},
        )
        # updated_at too (update() skips auto_now): a document making progress is not stuck.
        Document.objects.filter(pk=document.pk).update(progress=progress, updated_at=timezone.now())
        release_db_connection()
        progress_publish(
            progress_event(
                document_id=document.pk,
                status=DocumentStatus.PROCESSING,
                stage=IngestionStage.EMBEDDING,
                done=done,
                total=len(drafts),
                eta_seconds=eta,
            )
        )
    return vectors


@dataclass(frozen=True)
class _Embedded:
    models: IndexModels  # the index's model (and re-embed target) the vectors were made for
    dimensions: int
    vectors: list[list[float]]
    title_vector: list[float]
    next_vectors: list[list[float]] | None
    next_title_vector: list[float] | None
    sentence_vectors: list[bytes]  # per chunk, with models.model


@transaction.atomic
def _store_chunks(document: Document, drafts: list[ChunkDraft], embedded: _Embedded) -> bool:
    """Swap in the chunks; False when the index changed model meanwhile (nothing is stored)."""
    index_record_model(model=embedded.models.model, dimensions=embedded.dimensions)
    if index_models_locked() != embedded.models:
        return False
    locked = Document.objects.select_for_update().get(pk=document.pk)
    if locked.status == DocumentStatus.RETIRED:
        return True  # retired while we were embedding: leave it out of retrieval
    Chunk.objects.filter(document=locked).delete()
    next_vectors: list[list[float] | None] = [None] * len(drafts)
    if embedded.next_vectors is not None:
        next_vectors = list(embedded.next_vectors)
    created = Chunk.objects.bulk_create(
        Chunk(
            document=locked,
            ordinal=d.ordinal,
            text=d.text,
            heading_path=d.heading_path[:1000],
            document_title=locked.title[:300],
            lang=locked.lang,
            page=d.page,
            token_count=d.token_count,
            embedding=vector,
            next_embedding=next_vector,
            sentence_vectors=sentences,
            sentence_model=sentence_mark(embedded.models.model),
        )
        for d, vector, next_vector, sentences in zip(
            drafts, embedded.vectors, next_vectors, embedded.sentence_vectors, strict=True
        )
    )
    sentence_rows_store(chunks=created)
    total = len(drafts)
    locked.status = DocumentStatus.READY
    locked.failure_reason = ""
    locked.title_embedding = embedded.title_vector
    locked.next_title_embedding = embedded.next_title_vector
    locked.progress = {"stage": IngestionStage.READY, "done": total, "total": total, "eta_seconds": 0}
    locked.save(
        update_fields=[
            "status", "failure_reason", "title_embedding", "next_title_embedding", "progress", "updated_at"
        ]
    )  # fmt: skip
    versions_supersede(document=locked)
    transaction.on_commit(
        lambda: progress_publish(
            progress_event(
                document_id=locked.pk,
                status=DocumentStatus.READY,
                stage=IngestionStage.READY,
                done=total,
                total=total,
            )
        )
    )
    return True


def _set_progress(
    document: Document, *, status: DocumentStatus, stage: IngestionStage, total: int = 0
) -> None:
    document.status = status
    document.progress = _keeping_requeues(
        document, {"stage": stage, "done": 0, "total": total, "eta_seconds": None}
    )
    document.save(update_fields=["status", "progress", "updated_at"])
    progress_publish(progress_event(document_id=document.pk, status=status, stage=stage, total=total))


def _keeping_requeues(document: Document, progress: dict[str, Any]) -> dict[str, Any]:
    """New progress that still counts how often the document was re-queued: the count must
    survive the re-queued job's own progress, or a file that kills the worker loops forever."""
    requeues = (document.progress or {}).get("requeues")
    return {**progress, "requeues": requeues} if requeues else progress


# A document whose status has not moved for this long has lost its job: a queued task vanished
# with a Redis restart (the embedded Redis keeps nothing on disk), or a worker was killed mid-way
# (a live job updates the document at least every embedding batch, and is killed by the Celery
# time limit, 11 minutes, before this).
# Processing: three missed heartbeats. Queued: a document may wait behind others that long.
STUCK_AFTER = {DocumentStatus.QUEUED: timedelta(minutes=10), DocumentStatus.PROCESSING: timedelta(seconds=60)}
MAX_REQUEUES = 2


def documents_recover_stuck(*, now: datetime | None = None) -> dict[str, int]:
    """Re-queue documents whose ingestion job is gone, or fail them after MAX_REQUEUES tries;
    the documents page shows why. Run by Celery beat every few minutes (idempotent)."""
    now = now or timezone.now()
    counts = {"requeued": 0, "failed": 0}
    for status, after in STUCK_AFTER.items():
        for document in Document.objects.filter(status=status, updated_at__lt=now - after):
            requeues = int((document.progress or {}).get("requeues", 0))
            if requeues >= MAX_REQUEUES:
                document_mark_failed(
                    document,
                    f"Ingestion stopped {requeues + 1} times without finishing (the worker was restarted or "
                    "killed). Re-index it, or upload a smaller file.",
                )
                counts["failed"] += 1
                continue
            with transaction.atomic():
                # Compare-and-set: a job that moved the document meanwhile is alive; leave it be.
                moved = Document.objects.filter(
                    pk=document.pk, status=status, updated_at=document.updated_at
                ).update(
                    status=DocumentStatus.QUEUED,
                    failure_reason=f"Re-queued at {now:%H:%M} UTC: the previous ingestion stopped without finishing.",
                    progress={
                        "stage": IngestionStage.QUEUED,
                        "done": 0,
                        "total": 0,
                        "requeues": requeues + 1,
                    },
                    updated_at=now,
                )
                if moved:
                    _enqueue_ingestion(document.pk)
                    counts["requeued"] += 1
    if any(counts.values()):
        logger.warning("recovered stuck documents", extra=counts)
    return counts


def document_mark_failed(document: Document, reason: str) -> Document:
    document.status = DocumentStatus.FAILED
    document.failure_reason = reason
    document.progress = {"stage": IngestionStage.FAILED, "done": 0, "total": 0, "eta_seconds": None}
    document.save(update_fields=["status", "failure_reason", "progress", "updated_at"])
    logger.info("document %s failed ingestion", document.pk)
    progress_publish(
        progress_event(
            document_id=document.pk,
            status=DocumentStatus.FAILED,
            stage=IngestionStage.FAILED,
            failure_reason=reason,
        )
    )
    return document
