from __future__ import annotations

from django.conf import settings
from django.contrib.auth.models import Group
from django.contrib.postgres.indexes import GinIndex
from django.contrib.postgres.search import SearchVector, SearchVectorField
from django.db import models
from django.db.models import Case, Q, When
from django.db.models.expressions import CombinedExpression
from django.utils.translation import gettext_lazy as _
from pgvector.django import HalfVectorField, HnswIndex, VectorField

from rag.vectors import EMBEDDING_DIMENSIONS

SEARCH_CONFIG = "english"
# Vietnamese has no stemmer; its words are matched without diacritics ("nghi phep" finds
# "nghỉ phép"): the `simple` parser with `unaccent` first (migration 0005 creates it).
VIETNAMESE_SEARCH_CONFIG = "policydesk_vi"


class DocumentStatus(models.TextChoices):
    """A document's state; also the `status` of its progress events on the documents socket."""

    QUEUED = "queued", _("Queued")
    PROCESSING = "processing", _("Processing")
    READY = "ready", _("Ready")
    FAILED = "failed", _("Failed")
    RETIRED = "retired", _("Retired")


class IngestionStage(models.TextChoices):
    """Where ingestion is: the `stage` of a document's progress and of its progress events."""

    QUEUED = "queued", _("Queued")
    PARSING = "parsing", _("Parsing")
    EMBEDDING = "embedding", _("Embedding")
    READY = "ready", _("Ready")
    FAILED = "failed", _("Failed")
    RETIRED = "retired", _("Retired")


class Document(models.Model):
    Status = DocumentStatus

    title = models.CharField(max_length=300)
    source_path = models.CharField(max_length=500, db_index=True)
    content_hash = models.CharField(max_length=64, unique=True)
    detected_type = models.CharField(max_length=20, blank=True)
    size_bytes = models.BigIntegerField()
    version = models.PositiveIntegerField(default=1)
    # The date the document's own text gives (front matter); not what retrieval reads.
    effective_date = models.DateField(null=True, blank=True)
    # The version's life, in the company's days (core/clock.py): in effect from `effective_from`
    # through `effective_until`, either open-ended when empty. Retrieval filters on both in SQL
    # (rag/selectors.py); a newer version closes its predecessors (rag/lifecycle.py).
    effective_from = models.DateField(null=True, blank=True)
    effective_until = models.DateField(null=True, blank=True)
    review_by = models.DateField(null=True, blank=True)
    retired_at = models.DateTimeField(null=True, blank=True)
    lang = models.CharField(max_length=8, blank=True)
    metadata = models.JSONField(default=dict, blank=True)
    status = models.CharField(max_length=12, choices=Status.choices, default=Status.QUEUED, db_index=True)
    failure_reason = models.TextField(blank=True)
    # {"stage": str, "done": int, "total": int, "eta_seconds": float | None}
    progress = models.JSONField(default=dict, blank=True)
    file = models.FileField(upload_to="documents/", blank=True)
    uploaded_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL
    )
    allowed_groups = models.ManyToManyField(Group, blank=True, related_name="+")
    # The title alone, embedded: retrieval ranks documents whose title matches the question
    # (a question about "the Chicago office" and a page titled "Chicago") as a third signal.
    title_embedding = VectorField(dimensions=EMBEDDING_DIMENSIONS, null=True, blank=True)
    # Written by `manage.py reembed` while the index moves to another model (rag/index.py).
    next_title_embedding = VectorField(dimensions=EMBEDDING_DIMENSIONS, null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["source_path", "-version"]

    def __str__(self) -> str:
        return f"{self.title} (v{self.version})"


def weighted_search_vector(config: str) -> CombinedExpression:
    return (
        SearchVector("document_title", weight="A", config=config)
        + SearchVector("heading_path", weight="A", config=config)
        + SearchVector("text", weight="B", config=config)
    )


class Chunk(models.Model):
    document = models.ForeignKey(Document, on_delete=models.CASCADE, related_name="chunks")
    ordinal = models.PositiveIntegerField()
    text = models.TextField()
    heading_path = models.CharField(max_length=1000, blank=True)
    # The document's title, copied so full-text search can weigh it with the headings
    # (a generated column cannot read another table).
    document_title = models.CharField(max_length=300, blank=True, default="")
    # The document's language, copied for the same reason: it picks the full-text configuration.
    lang = models.CharField(max_length=8, blank=True, default="")
    page = models.PositiveIntegerField(null=True, blank=True)
    token_count = models.PositiveIntegerField()
    embedding = VectorField(dimensions=EMBEDDING_DIMENSIONS)
    # Written by `manage.py reembed` while the index moves to another model (rag/index.py).
    next_embedding = VectorField(dimensions=EMBEDDING_DIMENSIONS, null=True, blank=True)
    # One float16 vector per sentence of `text` (rag.evidence.sentences_of), made at ingestion
    # with `sentence_model`, so answering does not embed sentences on the question's path.
    sentence_vectors = models.BinaryField(null=True, blank=True, editable=False)
    sentence_model = models.CharField(max_length=100, blank=True, default="")
    # The title and headings weigh more than body text in full-text ranking. English text is
    # stemmed; Vietnamese text is matched word for word without diacritics.
    search_vector = models.GeneratedField(
        expression=Case(
            When(lang="vi", then=weighted_search_vector(VIETNAMESE_SEARCH_CONFIG)),
            default=weighted_search_vector(SEARCH_CONFIG),
            output_field=SearchVectorField(),
        ),
        output_field=SearchVectorField(),
        db_persist=True,
    )

    class Meta:
        ordering = ["document_id", "ordinal"]
        constraints = [models.UniqueConstraint(fields=["document", "ordinal"], name="chunk_unique_ordinal")]
        indexes = [
            HnswIndex(
                name="chunk_embedding_hnsw",
                fields=["embedding"],
                m=16,
                ef_construction=64,
                opclasses=["vector_cosine_ops"],
            ),
            GinIndex(name="chunk_search_gin", fields=["search_vector"]),
            # A Vietnamese question's unaccented words are looked up among Vietnamese passages
            # only; without this index the lookup matched English passages by the thousand
            # ("may", "tin", "can") and threw them away.
            GinIndex(name="chunk_search_vi_gin", fields=["search_vector"], condition=Q(lang="vi")),
        ]

    def __str__(self) -> str:
        return f"{self.document_id}#{self.ordinal}"


class ChunkSentence(models.Model):
    """One sentence of a chunk, for the sentence leg of retrieval: a chunk scores by its best
    sentence (a paraphrased question often matches one sentence, not the passage as a whole).

    The vector is the chunk's stored sentence vector (`Chunk.sentence_vectors`, embedded with
    the document title and heading path as context), in half precision: the handbook has ~5
    sentences per chunk. Rows are rewritten with the chunk's sentence vectors and removed when
    the index moves to another model, until `manage.py reembed` fills them again.
    """

    chunk = models.ForeignKey(Chunk, on_delete=models.CASCADE, related_name="sentences")
    # The chunk's document, repeated so the access filter needs no join inside the vector scan.
    document = models.ForeignKey(Document, on_delete=models.CASCADE, related_name="+")
    ordinal = models.PositiveSmallIntegerField()
    embedding = HalfVectorField(dimensions=EMBEDDING_DIMENSIONS)

    class Meta:
        ordering = ["chunk_id", "ordinal"]
        indexes = [
            HnswIndex(
                name="sentence_embedding_hnsw",
                fields=["embedding"],
                m=16,
                ef_construction=64,
                opclasses=["halfvec_cosine_ops"],
            ),
            models.Index(fields=["document"], name="sentence_document"),
        ]

    def __str__(self) -> str:
        return f"{self.chunk_id}.{self.ordinal}"


class EmbeddingIndex(models.Model):
    """One row: whose vectors the index holds, and which model a running re-embed moves it to.

    Queries are embedded with `model`, whatever a process was configured with, so a swap made by
    `manage.py reembed` reaches every running process without a restart (rag/index.py).
    """

    model = models.CharField(max_length=100)
    dimensions = models.PositiveIntegerField()
    target_model = models.CharField(max_length=100, blank=True, default="")
    updated_at = models.DateTimeField(auto_now=True)

    def __str__(self) -> str:
        return f"{self.model} ({self.dimensions})" + (f" → {self.target_model}" if self.target_model else "")
