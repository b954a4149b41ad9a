"""Reads: hybrid retrieval and document lists. Access rules live in the SQL, never in Python."""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from datetime import date
from typing import Any, Literal

import numpy as np
from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser, AnonymousUser, Group
from django.db import connection, transaction
from django.db.models import Count, QuerySet

from accounts.roles import ROLE_NAMES
from core.clock import company_today
from privacy.language import detect_language
from rag.evidence import Evidence, evidence_select, question_topic
from rag.glossary import english_paraphrase_terms, english_terms
from rag.index import query_embedder, sentence_vectors, sentence_vectors_seed
from rag.models import EMBEDDING_DIMENSIONS, SEARCH_CONFIG, VIETNAMESE_SEARCH_CONFIG, Document, DocumentStatus

RRF_K = 60  # the constant from Cormack et al.'s reciprocal rank fusion
CANDIDATES = 40
# Four rankings are fused by reciprocal rank fusion, each with its weight:
#   - vector: the chunk's embedding (its text after its title and heading path);
#   - sentence: the chunk's best sentence (each embedded after its title and heading path): a
#     paraphrased question often matches one sentence better than the passage as a whole;
#   - text: full text, OR-ed over every word of the question, so noisier; it breaks ties and
#     rescues exact terms (titles, form names, acronyms);
#   - title: how well the chunk's document title alone matches the question: questions often
#     name the subject of a whole page ("the Chicago office", "open source").
# Re-tuned on the tune split of bench/golden/answers-dev.jsonl with bench/retrieval_tuning.py
# (docs/answers-and-retrieval.md has the scan); the check split and the hold-out were not used.
TEXT_WEIGHT = 0.3
TITLE_WEIGHT = 0.15
SENTENCE_WEIGHT = 1.5
SENTENCE_CANDIDATES = 120  # sentences read by the sentence leg (several share a chunk)
# Whether an English question's paraphrase glossary words also join its vector (as a Vietnamese
# question's do), or only its full-text query and evidence vocabulary.
PARAPHRASES_IN_VECTOR = False
TITLE_CANDIDATES = 20
TEXT_SCAN_LIMIT = 1500
Mode = Literal["hybrid", "vector", "text", "sentence"]


@dataclass(frozen=True)
class RetrievedChunk:
    chunk_id: int
    document_id: int
    title: str
    source_path: str
    heading_path: str
    page: int | None
    text: str
    score: float
    vector_rank: int | None
    text_rank: int | None
    sentence_rank: int | None  # the rank of the chunk's best sentence in the sentence leg
    # The passage's sentence vectors from ingestion (rag.models.Chunk.sentence_vectors).
    sentence_vectors: bytes | None = field(default=None, repr=False, compare=False)
    sentence_model: str = ""


# Documents a user may see: ready, and either open to all or shared with one of the user's groups.
VISIBLE_DOCUMENTS = f"""
    SELECT d.id FROM rag_document d
    WHERE d.status = '{DocumentStatus.READY}'
      AND (
        NOT EXISTS (SELECT 1 FROM rag_document_allowed_groups g WHERE g.document_id = d.id)
        OR EXISTS (
          SELECT 1 FROM rag_document_allowed_groups g
          JOIN auth_user_groups ug ON ug.group_id = g.group_id
          WHERE g.document_id = d.id AND ug.user_id = %(user_id)s
        )
      )
"""

# Versions in effect on %(as_of)s, a company day (core/clock.py): today for a question about
# the current rule, the asked date for an "as of" question. A scheduled version (from a later
# day) and a superseded one (until an earlier day) are out; no dates means always in effect.
IN_EFFECT = """
      AND (d.effective_from IS NULL OR d.effective_from <= %(as_of)s::date)
      AND (d.effective_until IS NULL OR d.effective_until >= %(as_of)s::date)
"""

# Only module constants are interpolated; every value from a request is a bound parameter.
HYBRID_SQL = f"""
WITH visible AS ({VISIBLE_DOCUMENTS}{IN_EFFECT}),
vector_hits AS (
    SELECT id, row_number() OVER (ORDER BY distance) AS rank
    FROM (
        SELECT c.id, c.embedding <=> %(embedding)s::vector AS distance
        FROM rag_chunk c
        WHERE c.document_id IN (SELECT id FROM visible) AND %(use_vector)s
        ORDER BY c.embedding <=> %(embedding)s::vector
        LIMIT %(candidates)s
    ) nearest
),
title_hits AS (
    SELECT id AS document_id, row_number() OVER (ORDER BY distance) AS rank
    FROM (
        SELECT d.id, d.title_embedding <=> %(embedding)s::vector AS distance
        FROM rag_document d
        WHERE d.id IN (SELECT id FROM visible) AND d.title_embedding IS NOT NULL AND %(use_title)s
        ORDER BY d.title_embedding <=> %(embedding)s::vector
        LIMIT {TITLE_CANDIDATES}
    ) nearest_titles
),
query AS (
    -- websearch syntax (quotes, OR, -) is honoured; plain words are OR-ed so that a question
    -- phrased in many words still finds passages that share only some of them. A Vietnamese
    -- question also asks, of Vietnamese passages only, for its words without diacritics (as
    -- those passages are indexed); English passages would match its syllables by accident
    -- ("may", "tin", "cap").
    SELECT replace(websearch_to_tsquery('{SEARCH_CONFIG}', %(english_query)s)::text, ' & ', ' | ')::tsquery AS en,
           CASE WHEN %(vietnamese)s
             THEN replace(websearch_to_tsquery('{VIETNAMESE_SEARCH_CONFIG}', %(query)s)::text, ' & ', ' | ')::tsquery
             ELSE ''::tsquery END AS vi
),
text_matches AS (
    -- Bounded: OR-ed common words can match most of a large corpus, and ranking every match
    -- dominated latency at 100k chunks. At most TEXT_SCAN_LIMIT matches of each part are ranked,
    -- with ts_rank: ts_rank_cd's cover density took 8 of a question's 12 ms at handbook size and
    -- ranked worse on the dev golden set (text-only recall@5 0.73 vs 0.77, MRR 0.59 vs 0.66).
    (
        SELECT c.id, ts_rank(c.search_vector, query.en, 32) AS score
        FROM rag_chunk c, query
        WHERE %(use_text)s AND query.en::text <> '' AND c.search_vector @@ query.en
          AND c.document_id IN (SELECT id FROM visible)
        LIMIT {TEXT_SCAN_LIMIT}
    )
    UNION ALL
    (
        SELECT c.id, ts_rank(c.search_vector, query.en || query.vi, 32) AS score
        FROM rag_chunk c, query
        WHERE %(use_text)s AND query.vi::text <> '' AND c.lang = 'vi' AND c.search_vector @@ query.vi
          AND c.document_id IN (SELECT id FROM visible)
        LIMIT {TEXT_SCAN_LIMIT}
    )
),
sentence_hits AS (
    SELECT chunk_id AS id, row_number() OVER (ORDER BY min(distance), chunk_id) AS rank
    FROM (
        SELECT s.chunk_id, s.embedding <=> %(embedding)s::halfvec AS distance
        FROM rag_chunksentence s
        WHERE s.document_id IN (SELECT id FROM visible) AND %(use_sentences)s
        ORDER BY s.embedding <=> %(embedding)s::halfvec
        LIMIT {SENTENCE_CANDIDATES}
    ) nearest_sentences
    GROUP BY chunk_id
    ORDER BY min(distance), chunk_id
    LIMIT %(candidates)s
),
text_hits AS (
    SELECT id, row_number() OVER (ORDER BY score DESC, id) AS rank
    FROM (
        SELECT id, max(score) AS score FROM text_matches GROUP BY id ORDER BY score DESC, id
        LIMIT %(candidates)s
    ) matched
),
candidates AS (
    SELECT id, min(vector_rank) AS vector_rank, min(text_rank) AS text_rank,
           min(sentence_rank) AS sentence_rank
    FROM (
        SELECT id, rank AS vector_rank, NULL::bigint AS text_rank, NULL::bigint AS sentence_rank
        FROM vector_hits
        UNION ALL SELECT id, NULL, rank, NULL FROM text_hits
        UNION ALL SELECT id, NULL, NULL, rank FROM sentence_hits
    ) legs
    GROUP BY id
),
fused AS (
    SELECT k.id, k.vector_rank, k.text_rank, k.sentence_rank,
           COALESCE(1.0 / ({RRF_K} + k.vector_rank), 0)
             + %(text_weight)s * COALESCE(1.0 / ({RRF_K} + k.text_rank), 0)
             + %(sentence_weight)s * COALESCE(1.0 / ({RRF_K} + k.sentence_rank), 0)
             + %(title_weight)s * COALESCE(1.0 / ({RRF_K} + th.rank), 0) AS score
    FROM candidates k
    JOIN rag_chunk c ON c.id = k.id
    LEFT JOIN title_hits th ON th.document_id = c.document_id
)
SELECT c.id, c.document_id, d.title, d.source_path, c.heading_path, c.page, c.text,
       f.score, f.vector_rank, f.text_rank, f.sentence_rank, c.sentence_vectors, c.sentence_model
FROM fused f
JOIN rag_chunk c ON c.id = f.id
JOIN rag_document d ON d.id = c.document_id
ORDER BY f.score DESC, c.id
LIMIT %(limit)s
"""


def retrieve(
    *,
    query: str,
    user: AbstractBaseUser | AnonymousUser | None,
    k: int | None = None,
    mode: Mode = "hybrid",
    as_of: date | None = None,
) -> list[RetrievedChunk]:
    """The k passages that best answer `query` among the documents `user` may see.

    Vector (HNSW cosine) and full-text candidates are fused with reciprocal rank fusion; in
    hybrid mode a candidate also scores by its best sentence (HNSW over sentence vectors) and
    its document by how near its title is to the question.
    A user of None or an anonymous user sees only documents open to everyone. Only versions in
    effect on `as_of` (default: the company's today) are searched.
    """
    return retrieve_for_question(query=query, user=user, k=k, mode=mode, as_of=as_of).passages


@dataclass(frozen=True)
class Retrieval:
    passages: list[RetrievedChunk]
    question_vector: list[float]  # what the passages were searched with (evidence reuses it)
    # The glossary's words for the question: a Vietnamese question's English words, or the policy
    # words for an English question's everyday ones ("time off" → leave); "" when none.
    english_terms: str
    vector_terms: str = ""  # those of them mixed into the question's vector


def retrieve_for_question(
    *,
    query: str,
    user: AbstractBaseUser | AnonymousUser | None,
    k: int | None = None,
    mode: Mode = "hybrid",
    as_of: date | None = None,
) -> Retrieval:
    """`retrieve`, also returning the question's vector and glossary terms."""
    params = _retrieval_params(query=query, user=user, k=k, mode=mode)
    vector, terms, vector_terms = params.pop("vector"), params.pop("terms"), params.pop("vector_terms")
    params["as_of"] = as_of or company_today()
    rows = _run_retrieval(params)
    return Retrieval(
        passages=[_chunk(row) for row in rows],
        question_vector=vector,
        english_terms=terms,
        vector_terms=vector_terms,
    )


def retrieval_plan(
    *,
    query: str,
    user: AbstractBaseUser | AnonymousUser | None,
    k: int | None = None,
    mode: Mode = "hybrid",
    as_of: date | None = None,
) -> str:
    """EXPLAIN ANALYZE of the retrieval query for `query` (bench/retrieval_scale.py --explain)."""
    params = _retrieval_params(query=query, user=user, k=k, mode=mode)
    for key in ("vector", "terms", "vector_terms"):
        params.pop(key)
    params["as_of"] = as_of or company_today()
    return "\n".join(row[0] for row in _run_retrieval(params, explain=True))


def _retrieval_params(
    *, query: str, user: AbstractBaseUser | AnonymousUser | None, k: int | None, mode: Mode
) -> dict[str, Any]:
    k = k or settings.RETRIEVAL_K
    vietnamese = detect_language(query) == "vi"
    # A Vietnamese question also searches with the English words of its policy terms.
    terms = english_terms(query) if vietnamese else english_paraphrase_terms(query)
    vector_terms = terms if vietnamese or PARAPHRASES_IN_VECTOR else ""
    embedding = question_vector(query, vector_terms) if mode != "text" else [0.0] * EMBEDDING_DIMENSIONS
    return {
        "user_id": user.pk if user is not None and user.is_authenticated else None,
        "embedding": "[" + ",".join(f"{x:.7f}" for x in embedding) + "]",
        "vector": embedding,
        "terms": terms,
        "vector_terms": vector_terms,
        "query": query,
        # English passages are searched with the glossary's words only: the Vietnamese words
        # match no English stem, and each word OR-ed in made ranking 1,500 matches slower.
        "english_query": terms if vietnamese else f"{query} {terms}".strip(),
        "vietnamese": vietnamese,
        "candidates": max(CANDIDATES, k),
        "limit": k,
        "use_vector": mode in ("hybrid", "vector"),
        "use_text": mode in ("hybrid", "text"),
        "use_title": mode == "hybrid",
        "use_sentences": mode in ("hybrid", "sentence"),
        # Read at call time, so bench/retrieval_tuning.py can scan them.
        "text_weight": TEXT_WEIGHT,
        "title_weight": TITLE_WEIGHT,
        "sentence_weight": SENTENCE_WEIGHT,
    }


def _run_retrieval(params: dict[str, Any], *, explain: bool = False) -> list[tuple[Any, ...]]:
    with transaction.atomic(), connection.cursor() as cursor:
        # SET LOCAL: scoped to this transaction, so pooled connections keep their defaults.
        cursor.execute("SELECT set_config('hnsw.ef_search', %s, true)", [str(settings.HNSW_EF_SEARCH)])
        # Keep scanning the graph until enough rows pass the access filter (pgvector >= 0.8).
        cursor.execute("SELECT set_config('hnsw.iterative_scan', 'relaxed_order', true)")
        cursor.execute(("EXPLAIN (ANALYZE, BUFFERS) " if explain else "") + HYBRID_SQL, params)
        return cursor.fetchall()


def question_vector(query: str, terms: str) -> list[float]:
    """The question's embedding; with glossary terms, the normalised mean of both embeddings
    (Vietnamese recall@5 on the dev golden questions: 11/17 alone, 13/17 with the terms)."""
    embedder = query_embedder()
    if not terms:
        return embedder.embed_query(query)
    vector = np.sum(embedder.embed_queries([query, terms]), axis=0)
    return (vector / max(float(np.linalg.norm(vector)), 1e-12)).tolist()


def question_evidence(*, question: str, retrieval: Retrieval) -> Evidence:
    """The sentences of the retrieved passages that answer `question` (redacted), with the
    sentence vectors ingestion stored for them (nothing to embed on the question's path)."""
    sentence_vectors_seed(passages=retrieval.passages)
    # Sentences are compared with what the question asks, without the personal data around it.
    topic = question_topic(question)
    vector = retrieval.question_vector
    if topic != question and topic:
        vector = question_vector(topic, retrieval.vector_terms)
    return evidence_select(
        question=topic or question,
        passages=retrieval.passages,
        question_vector=vector,
        embed=sentence_vectors,
        extra_terms=retrieval.english_terms,
        embed_questions=lambda parts: query_embedder().embed_queries(parts),
    )


def document_list() -> QuerySet[Document]:
    return (
        Document.objects.annotate(chunk_count=Count("chunks"))
        .select_related("uploaded_by")
        .prefetch_related("allowed_groups")
        .order_by("source_path", "-version")
    )


def access_group_names() -> list[str]:
    """Groups a document can be restricted to: every group that is not a role."""
    return list(Group.objects.exclude(name__in=ROLE_NAMES).order_by("name").values_list("name", flat=True))


def document_visible_to(*, user: AbstractBaseUser | AnonymousUser, document_id: int) -> Document | None:
    """The document if `user` may read it (same rule as retrieval), else None."""
    user_id = user.pk if user.is_authenticated else None
    visible = Document.objects.raw(
        VISIBLE_DOCUMENTS.replace("%(user_id)s", "%s") + " AND d.id = %s", [user_id, document_id]
    )
    ids = [d.id for d in visible]
    return Document.objects.filter(pk__in=ids).first()


MAX_HIGHLIGHTS = 20


_SPAN = re.compile(r"([0-9]{1,9})-([0-9]{1,9})", re.ASCII)


def evidence_spans(raw: str) -> list[tuple[int, int]]:
    """ "12-80,95-140" → [(12, 80), (95, 140)]; anything malformed is ignored (it comes from a URL)."""
    spans = []
    for part in raw.split(",")[:MAX_HIGHLIGHTS]:
        # ASCII digits only, nine at most: str.isdigit() takes "²", which int() refuses, and
        # int() refuses a 5,000-digit number; either was a server error.
        matched = _SPAN.fullmatch(part)
        if matched and int(matched[1]) < int(matched[2]):
            spans.append((int(matched[1]), int(matched[2])))
    return sorted(spans)


def text_segments(text: str, spans: list[tuple[int, int]]) -> list[tuple[str, bool]]:
    """The text cut into (piece, highlighted) runs by the spans, which may overlap or overrun."""
    segments: list[tuple[str, bool]] = []
    position = 0
    for start, end in spans:
        start, end = max(start, position), min(end, len(text))
        if start >= end:
            continue
        if start > position:
            segments.append((text[position:start], False))
        segments.append((text[start:end], True))
        position = end
    if position < len(text):
        segments.append((text[position:], False))
    return segments


def _chunk(row: tuple[Any, ...]) -> RetrievedChunk:
    *head, vectors, model = row
    chunk = RetrievedChunk(*head)
    stored = bytes(vectors) if vectors is not None else None
    return replace(chunk, sentence_vectors=stored, sentence_model=model)
