"""Retrieval latency at scale: 100k synthetic chunks in a fresh embedded PostgreSQL.

    .venv/bin/python -m bench.retrieval_scale [--chunks 100000] [--queries 500] [--explain]
    .venv/bin/python -m bench.retrieval_scale --versions 3   # each document in 3 dated versions

Synthetic chunks reuse real sentences (so full-text search has real words to match) with
random unit vectors (so the HNSW graph has the right size and shape); each chunk's four
sentences get a row of the sentence leg with a random vector too (400k rows at 100k chunks,
their own HNSW graph); the query embedding is real. Prints p50/p95/p99 of `retrieve()` (query
embedding included), hybrid and per mode.
With --versions N, documents come in N dated versions of one source path, one year each, the
last open-ended: on today's date only 1/N of the chunks are in effect (rag.selectors.IN_EFFECT).
"""

from __future__ import annotations

import argparse
import json
import random
import secrets
import sys
import time
from datetime import date
from typing import Any

import numpy as np

from bench.common import ROOT, golden_questions, retrieval_latency, scratch_django
from rag.vectors import EMBEDDING_DIMENSIONS, l2_normalised


def _sentences() -> list[str]:
    text = " ".join(p.read_text() for p in sorted((ROOT / "demo_corpus").glob("*.md")))
    handbook = ROOT.parent / "shared" / "corpus" / "tts-handbook"
    if handbook.is_dir():
        text += " ".join(p.read_text() for p in sorted(handbook.rglob("*.md"))[:120])
    return [s.strip() for s in text.replace("\n", " ").split(". ") if len(s.split()) > 5]


SENTENCES_PER_CHUNK = 4  # the synthetic chunk's text is four sentences


def _unit_vectors(rng: np.random.Generator, count: int) -> np.ndarray:
    return l2_normalised(rng.standard_normal((count, EMBEDDING_DIMENSIONS)))


def _version_dates(d: int, versions: int) -> tuple[date | None, date | None]:
    """Version d % versions + 1 of its document: one year each from 2024, the last open-ended."""
    if versions == 1:
        return None, None
    n = d % versions
    start = date(2024 + n, 1, 1)
    return start, (None if n == versions - 1 else date(2024 + n, 12, 31))


def load_synthetic_chunks(count: int, versions: int = 1) -> tuple[float, float]:
    """`count` synthetic chunks in 400-chunk documents, their sentence rows, then both HNSW
    graphs; returns (load s, index s)."""
    from django.db import connection

    rng = random.Random(7)
    sentences = _sentences()
    generator = np.random.default_rng(7)
    vectors = _unit_vectors(generator, count)
    started = time.perf_counter()
    with connection.cursor() as cursor:
        # Bulk load first, build the graphs once.
        cursor.execute("DROP INDEX chunk_embedding_hnsw")
        cursor.execute("DROP INDEX sentence_embedding_hnsw")
        per_doc = 400
        for d in range(count // per_doc):
            cursor.execute(
                "INSERT INTO rag_document (title, source_path, content_hash, detected_type, size_bytes, version,"
                " lang, metadata, status, failure_reason, progress, file, created_at, updated_at,"
                " title_embedding, effective_from, effective_until)"
                " VALUES (%s, %s, %s, 'markdown', 0, %s, 'en', '{}', 'ready', '', '{}', '', now(), now(), %s,"
                " %s, %s)"
                " RETURNING id",
                [
                    f"Synthetic {d // versions}",
                    f"synthetic/{d // versions}.md",
                    secrets.token_hex(32),
                    d % versions + 1,
                    "[" + ",".join(f"{x:.6f}" for x in vectors[d]) + "]",  # a title vector
                    *_version_dates(d, versions),
                ],
            )
            document_id = cursor.fetchone()[0]
            with cursor.copy(
                "COPY rag_chunk (document_id, ordinal, text, heading_path, document_title, lang, token_count,"
                " embedding, sentence_model) FROM STDIN"
            ) as copy:
                for i in range(per_doc):
                    n = d * per_doc + i
                    text = " ".join(rng.sample(sentences, 4))
                    vector = "[" + ",".join(f"{x:.6f}" for x in vectors[n]) + "]"
                    copy.write_row(
                        (
                            document_id,
                            i,
                            text,
                            f"Section {i % 17}",
                            f"Synthetic {d // versions}",
                            "en",
                            len(text.split()),
                            vector,
                            "",  # no stored sentence vectors: the rows below stand for them
                        )
                    )
            _load_sentence_rows(cursor, document_id, _unit_vectors(generator, per_doc * SENTENCES_PER_CHUNK))
        load_s = time.perf_counter() - started
        started = time.perf_counter()
        cursor.execute("SET maintenance_work_mem = '1GB'")
        cursor.execute(
            "CREATE INDEX chunk_embedding_hnsw ON rag_chunk USING hnsw (embedding vector_cosine_ops)"
            " WITH (m = 16, ef_construction = 64)"
        )
        # As autovacuum would leave a table in use: hint bits set and the visibility map built. Without
        # it the first read of each freshly loaded page writes it back, and the first pass over
        # the questions measured 360 ms where later passes took 40 ms.
        cursor.execute(
            "CREATE INDEX sentence_embedding_hnsw ON rag_chunksentence USING hnsw (embedding halfvec_cosine_ops)"
            " WITH (m = 16, ef_construction = 64)"
        )
        cursor.execute("VACUUM (ANALYZE) rag_chunk")
        cursor.execute("VACUUM (ANALYZE) rag_chunksentence")
        index_s = time.perf_counter() - started
    return load_s, index_s


def _load_sentence_rows(cursor: Any, document_id: int, vectors: np.ndarray) -> None:
    cursor.execute("SELECT id FROM rag_chunk WHERE document_id = %s ORDER BY ordinal", [document_id])
    chunk_ids = [row[0] for row in cursor.fetchall()]
    with cursor.copy("COPY rag_chunksentence (chunk_id, document_id, ordinal, embedding) FROM STDIN") as copy:
        for i, chunk_id in enumerate(chunk_ids):
            for ordinal in range(SENTENCES_PER_CHUNK):
                vector = vectors[i * SENTENCES_PER_CHUNK + ordinal]
                copy.write_row(
                    (chunk_id, document_id, ordinal, "[" + ",".join(f"{x:.4f}" for x in vector) + "]")
                )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--chunks", type=int, default=100_000)
    parser.add_argument("--queries", type=int, default=500)
    parser.add_argument("--versions", type=int, default=1, help="dated versions per document (1-5)")
    parser.add_argument(
        "--explain",
        action="store_true",
        help="print EXPLAIN ANALYZE of the slowest hybrid question to stderr",
    )
    args = parser.parse_args()
    with scratch_django():
        load_s, index_s = load_synthetic_chunks(args.chunks, max(1, min(args.versions, 5)))
        questions = golden_questions()
        report: dict[str, object] = {
            "chunks": args.chunks,
            "versions_per_document": args.versions,
            "load_s": round(load_s, 1),
            "hnsw_build_s": round(index_s, 1),
        }
        for mode in ("hybrid", "vector", "text", "sentence"):
            report[mode] = retrieval_latency(questions, args.queries, mode)
        print(json.dumps(report))
        if args.explain:
            _explain_slowest(questions)


def _explain_slowest(questions: list[str]) -> None:
    from rag.selectors import retrieval_plan, retrieve

    timings = []
    for question in questions:
        started = time.perf_counter()
        retrieve(query=question, user=None, k=5)
        timings.append((time.perf_counter() - started, question))
    took, slowest = max(timings)
    print(f"slowest: {took * 1000:.1f} ms: {slowest}", file=sys.stderr)
    print(retrieval_plan(query=slowest, user=None, k=5), file=sys.stderr)


if __name__ == "__main__":
    main()
