"""Which model's vectors the index holds, and moving it to another model without a gap in search.

The one `EmbeddingIndex` row is the truth: queries are embedded with its `model`, whatever a
process was configured with, so the swap at the end of `manage.py reembed` reaches every
running process within INDEX_STATE_TTL seconds, without a restart. POLICYDESK_EMBEDDER says
which model the index *should* hold: a process refuses to start when the index holds another
model and no re-embed towards the configured one is under way (`embedding_index_check`).

While a re-embed runs, `target_model` names the new model: it fills `next_embedding` and
`next_title_embedding` batch by batch (resumable: rows already done are skipped), ingestion
writes both vectors, and search keeps using `embedding` with the old model. The swap copies
the new vectors over in one transaction, so readers see the old index or the new, never a mix.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.db import connection, transaction
from django.db.models import F

from rag.embedding import MODEL_OF_CHOICE, Embedder, embedder_for_model, get_embedder
from rag.evidence import sentence_in_context, sentences_of
from rag.models import EMBEDDING_DIMENSIONS, Chunk, ChunkSentence, Document, EmbeddingIndex

INDEX_STATE_TTL = 5.0  # seconds a process trusts its last read of the index's model
REEMBED_BATCH = 32


# Stored sentence vectors are marked with their model and this format: bumped when sentence
# splitting or the context embedded with each sentence changes, so that `manage.py reembed`
# stores them again (2: each sentence embedded after its document title and heading path).
SENTENCE_FORMAT = 2


def sentence_mark(model: str) -> str:
    """What `Chunk.sentence_model` holds for vectors of `model` in the current format."""
    return f"{model}#s{SENTENCE_FORMAT}"


class StoredSentences(Protocol):
    @property
    def text(self) -> str: ...
    @property
    def title(self) -> str: ...
    @property
    def heading_path(self) -> str: ...
    @property
    def sentence_vectors(self) -> bytes | None: ...
    @property
    def sentence_model(self) -> str: ...


@dataclass(frozen=True)
class IndexModels:
    model: str
    target_model: str  # "" unless a re-embed is under way


_cached: tuple[float, IndexModels] | None = None


def index_models(*, fresh: bool = False) -> IndexModels:
    """The index's model (and target), read at most every INDEX_STATE_TTL seconds.

    An empty index has no row yet; it is then the configured model's (the first vectors
    written record it).
    """
    global _cached
    now = time.monotonic()
    if not fresh and _cached is not None and now - _cached[0] < INDEX_STATE_TTL:
        return _cached[1]
    models = _models_of(EmbeddingIndex.objects.order_by("pk").first())
    _cached = (now, models)
    return models


def _models_of(row: EmbeddingIndex | None) -> IndexModels:
    if row is None:
        return IndexModels(MODEL_OF_CHOICE[settings.EMBEDDER], "")
    return IndexModels(row.model, row.target_model)


def index_models_forget() -> None:
    """Read the index's model afresh next time (after a swap made by this process)."""
    global _cached
    _cached = None


def query_embedder() -> Embedder:
    """The embedder for questions: the model whose vectors the index holds now."""
    return embedder_for_model(index_models().model)


_sentence_vectors: OrderedDict[tuple[str, str], list[float]] = OrderedDict()
_sentence_lock = threading.Lock()
SENTENCE_CACHE_SIZE = 20_000  # ~31 MB of vectors: the sentences of the policies people ask about


def sentence_vectors(texts: list[str]) -> list[list[float]]:
    """Passage-side embeddings of sentences in their context (`sentence_in_context`: evidence
    selection), with the index's model. Cached: the same policy sentences answer many
    questions, and one costs ~4 ms."""
    embedder = query_embedder()
    model = getattr(embedder, "name", "")
    with _sentence_lock:
        cached = {t: _sentence_vectors.get((model, t)) for t in texts}
    missing = [t for t, vector in cached.items() if vector is None]
    if missing:
        for text, vector in zip(missing, embedder.embed_documents(missing), strict=True):
            cached[text] = vector
        with _sentence_lock:
            for text in missing:
                _sentence_vectors[(model, text)] = cached[text] or []
            while len(_sentence_vectors) > SENTENCE_CACHE_SIZE:
                _sentence_vectors.popitem(last=False)
    return [cached[t] or [] for t in texts]


def sentence_vectors_seed(*, passages: Sequence[StoredSentences]) -> int:
    """Put the sentence vectors ingestion stored for these passages into the cache (when they
    come from the model the index holds now); returns how many were added."""
    model = getattr(query_embedder(), "name", "")
    added = 0
    for passage in passages:
        if not passage.sentence_vectors or passage.sentence_model != sentence_mark(model):
            continue
        texts = [
            sentence_in_context(passage.title, passage.heading_path, s.text)
            for s in sentences_of(passage.text)
        ]
        vectors = np.frombuffer(passage.sentence_vectors, dtype=np.float16)
        if not texts or vectors.size % len(texts):
            continue  # not this text's sentences (split differently): embedded live instead
        rows = vectors.reshape(len(texts), -1).astype(np.float32)
        with _sentence_lock:
            for text, row in zip(texts, rows, strict=True):
                if (model, text) not in _sentence_vectors:
                    _sentence_vectors[(model, text)] = row.tolist()
                    added += 1
    return added


SENTENCE_FILL_BATCH = 32  # chunks per transaction


@dataclass(frozen=True)
class PassageText:
    text: str
    title: str
    heading_path: str


def sentence_vector_bytes(*, passages: Sequence[PassageText], embedder: Embedder) -> list[bytes]:
    """For each chunk, its sentences' vectors (rag.evidence.sentences_of, each embedded in its
    context: `sentence_in_context`) as float16 bytes."""
    per_chunk = [
        [sentence_in_context(p.title, p.heading_path, s.text) for s in sentences_of(p.text)] for p in passages
    ]
    flat = [sentence for sentences in per_chunk for sentence in sentences]
    vectors = [v for i in range(0, len(flat), 64) for v in embedder.embed_documents(flat[i : i + 64])]
    array = np.asarray(vectors, dtype=np.float16).reshape(len(flat), embedder.dimensions)
    out, at = [], 0
    for sentences in per_chunk:
        out.append(array[at : at + len(sentences)].tobytes())
        at += len(sentences)
    return out


def sentence_vectors_fill(
    *, embedder: Embedder, on_progress: Callable[[ReembedProgress], None] = lambda _: None
) -> int:
    """Store sentence vectors for every chunk that lacks them for `embedder`'s model (chunks
    ingested before they existed, or under another model). Resumable; returns how many."""
    mark = sentence_mark(embedder.name)
    stale = Chunk.objects.exclude(sentence_model=mark, sentence_vectors__isnull=False)
    total, done = stale.count(), 0
    while True:
        batch = list(
            stale.order_by("id").only("id", "document_id", "text", "heading_path", "document_title")[
                :SENTENCE_FILL_BATCH
            ]
        )
        if not batch:
            break
        stored = sentence_vector_bytes(
            passages=[PassageText(c.text, c.document_title, c.heading_path) for c in batch], embedder=embedder
        )
        with transaction.atomic():
            for chunk, data in zip(batch, stored, strict=True):
                chunk.sentence_vectors, chunk.sentence_model = data, mark
                Chunk.objects.filter(id=chunk.id).update(sentence_vectors=data, sentence_model=mark)
            sentence_rows_store(chunks=batch)
        done += len(batch)
        on_progress(ReembedProgress("sentences", done, total))
    return done + _sentence_rows_fill(mark)


def sentence_rows_store(*, chunks: Sequence[Chunk]) -> int:
    """The chunks' sentence rows (the sentence leg of retrieval), from their stored vectors;
    returns how many chunks got rows."""
    ChunkSentence.objects.filter(chunk__in=[c.pk for c in chunks]).delete()
    rows: list[ChunkSentence] = []
    for chunk in chunks:
        if not chunk.sentence_vectors:
            continue
        vectors = np.frombuffer(bytes(chunk.sentence_vectors), dtype=np.float16).reshape(
            -1, EMBEDDING_DIMENSIONS
        )
        rows.extend(
            ChunkSentence(chunk_id=chunk.pk, document_id=chunk.document_id, ordinal=i, embedding=vector)
            for i, vector in enumerate(vectors)
        )
    ChunkSentence.objects.bulk_create(rows, batch_size=1000)
    return len({row.chunk_id for row in rows})


def _sentence_rows_fill(mark: str) -> int:
    """Rows for chunks whose vectors are current but have none (the index moved model, or the
    rows came after the vectors); returns how many chunks."""
    missing = Chunk.objects.filter(
        sentence_model=mark, sentence_vectors__isnull=False, sentences__isnull=True
    )
    done, last = 0, 0
    # By id: a chunk without sentences gets no rows and would be found again and again.
    while batch := list(
        missing.filter(id__gt=last)
        .order_by("id")
        .only("id", "document_id", "sentence_vectors")[:SENTENCE_FILL_BATCH]
    ):
        with transaction.atomic():
            done += sentence_rows_store(chunks=batch)
        last = batch[-1].pk
    return done


def sentence_cache_clear() -> None:
    with _sentence_lock:
        _sentence_vectors.clear()


def vector_column_dimensions() -> int:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT atttypmod FROM pg_attribute WHERE attrelid = 'rag_chunk'::regclass AND attname = 'embedding'"
        )
        row = cursor.fetchone()
    return int(row[0]) if row else 0


def embedding_index_check() -> None:
    """Raise ImproperlyConfigured when the configured embedder cannot serve this index."""
    embedder = get_embedder()
    columns = vector_column_dimensions()
    if embedder.dimensions != columns:
        raise ImproperlyConfigured(
            f"POLICYDESK_EMBEDDER={settings.EMBEDDER} writes {embedder.dimensions}-dimension vectors, "
            f"but the index's vector columns hold {columns}."
        )
    state = index_models(fresh=True)
    if embedder.name in (state.model, state.target_model):
        return
    raise ImproperlyConfigured(
        f"The search index holds vectors of {state.model}, but POLICYDESK_EMBEDDER={settings.EMBEDDER} "
        f"embeds with {embedder.name}. Run `manage.py reembed` to re-embed every passage (search keeps "
        f"working meanwhile), or set POLICYDESK_EMBEDDER back to a {state.model} embedder."
    )


# --- writes ----------------------------------------------------------------------------------


def index_record_model(*, model: str, dimensions: int) -> None:
    """The first vectors written name their model (an empty index has no row yet)."""
    EmbeddingIndex.objects.get_or_create(pk=1, defaults={"model": model, "dimensions": dimensions})


def ingestion_embedders() -> tuple[Embedder, Embedder | None]:
    """The embedder whose vectors search reads now, and the one a running re-embed moves to."""
    state = index_models(fresh=True)
    target = embedder_for_model(state.target_model) if state.target_model else None
    return embedder_for_model(state.model), target


def index_models_locked() -> IndexModels:
    """The index's models, with the row locked against a swap until this transaction ends."""
    return _models_of(EmbeddingIndex.objects.select_for_update(of=("self",)).order_by("pk").first())


@dataclass(frozen=True)
class ReembedProgress:
    stage: str  # "passages", "titles" or "sentences"
    done: int
    total: int


def index_reembed(
    *, embedder: Embedder, on_progress: Callable[[ReembedProgress], None] = lambda _: None
) -> str:
    """Move the index to `embedder`'s model; returns what happened. Safe to stop and run again."""
    with transaction.atomic():
        index_record_model(model=embedder.name, dimensions=embedder.dimensions)
        row = EmbeddingIndex.objects.select_for_update().get(pk=1)
        if row.model == embedder.name and not row.target_model:
            return f"the index already holds {embedder.name} vectors"
        if row.target_model != embedder.name:
            # A run towards another model was left unfinished: its vectors are of no use now.
            Chunk.objects.exclude(next_embedding=None).update(next_embedding=None)
            Document.objects.exclude(next_title_embedding=None).update(next_title_embedding=None)
            row.target_model = embedder.name
            row.save(update_fields=["target_model", "updated_at"])
    _fill_next_vectors(embedder, on_progress)
    with transaction.atomic():
        row = EmbeddingIndex.objects.select_for_update().get(pk=1)
        # Passages stored between the last batch and this lock are embedded here, inside it.
        _fill_next_vectors(embedder, lambda _: None)
        Chunk.objects.update(embedding=F("next_embedding"), next_embedding=None)
        # The sentence leg holds the old model's vectors: gone until `sentence_vectors_fill`.
        ChunkSentence.objects.all().delete()
        Document.objects.exclude(next_title_embedding=None).update(
            title_embedding=F("next_title_embedding"), next_title_embedding=None
        )
        previous = row.model
        row.model, row.dimensions, row.target_model = embedder.name, embedder.dimensions, ""
        row.save(update_fields=["model", "dimensions", "target_model", "updated_at"])
    index_models_forget()
    return f"the index moved from {previous} to {embedder.name}"


def _fill_next_vectors(embedder: Embedder, on_progress: Callable[[ReembedProgress], None]) -> None:
    pending = Chunk.objects.filter(next_embedding=None)
    total, done = pending.count(), 0
    while batch := list(pending.select_related("document").order_by("pk")[:REEMBED_BATCH]):
        texts = [_embedding_text(chunk) for chunk in batch]
        for chunk, vector in zip(batch, embedder.embed_documents(texts), strict=True):
            chunk.next_embedding = vector
        Chunk.objects.bulk_update(batch, ["next_embedding"])
        done += len(batch)
        on_progress(ReembedProgress("passages", done, max(total, done)))
    titles = Document.objects.filter(next_title_embedding=None).exclude(title_embedding=None)
    total, done = titles.count(), 0
    while documents := list(titles.order_by("pk")[:REEMBED_BATCH]):
        for document in documents:
            document.next_title_embedding = embedder.embed_query(document.title)
        Document.objects.bulk_update(documents, ["next_title_embedding"])
        done += len(documents)
        on_progress(ReembedProgress("titles", done, max(total, done)))


def _embedding_text(chunk: Chunk) -> str:
    from rag.chunking import ChunkDraft

    draft = ChunkDraft(chunk.ordinal, chunk.text, chunk.heading_path, chunk.page, chunk.token_count)
    return draft.embedding_text(chunk.document.title)
