"""Ingestion benchmark: the TTS handbook into a fresh embedded PostgreSQL.

    .venv/bin/python -m bench.ingestion [--corpus ../shared/corpus/tts-handbook] [--golden FILE]
    .venv/bin/python -m bench.ingestion --corpus demo_corpus --golden bench/golden/demo-corpus.jsonl

Starts its own PostgreSQL + Redis in /tmp (stopped afterwards), migrates, then ingests every
file in-process exactly as `manage.py ingest --wait` does. Prints wall time, documents,
chunks, chunks/s and the peak RSS of the process (parsing + embedding + storing).
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import resource
import time
from pathlib import Path

from bench.common import GOLDEN, ROOT, golden_questions, retrieval_latency, scratch_django


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument(
        "--corpus", type=Path, nargs="+",
        default=[ROOT.parent / "shared" / "corpus" / "tts-handbook"],
        help="files or directories to ingest",
    )  # fmt: skip
    parser.add_argument(
        "--golden", type=Path, default=GOLDEN,
        help="also score retrieval on the freshly ingested corpus (hybrid, vector, text) and time it",
    )  # fmt: skip
    parser.add_argument("--queries", type=int, default=500, help="retrieval latency sample size")
    args = parser.parse_args()
    with scratch_django():
        from django.core.management import CommandError, call_command

        from rag.embedding import get_embedder
        from rag.models import Chunk, Document, DocumentStatus

        loaded = time.perf_counter()
        get_embedder()
        model_load_s = time.perf_counter() - loaded
        started = time.perf_counter()
        # Some handbook pages have no text: `ingest` then exits with an error; they are counted below.
        with contextlib.suppress(CommandError):
            call_command("ingest", *map(str, args.corpus), "--wait", verbosity=0, stdout=io.StringIO())
        wall = time.perf_counter() - started
        chunks = Chunk.objects.count()
        report: dict[str, object] = {}
        if args.golden and args.golden.is_file():
            for mode in ("hybrid", "vector", "text"):
                out = io.StringIO()
                call_command("evaluate_retrieval", str(args.golden), "--mode", mode, stdout=out)
                scores = json.loads(out.getvalue().strip().splitlines()[-1])
                report[f"retrieval_{mode}"] = {
                    **{k: scores[k] for k in ("recall@1", "recall@5", "recall@10", "mrr")},
                    **{
                        f"{lang}_recall@5": by_lang.get("recall@5")
                        for lang, by_lang in scores.get("by_lang", {}).items()
                    },
                }
            report["retrieval_latency_ms"] = retrieval_latency(golden_questions(args.golden), args.queries)
        print(
            json.dumps(
                {
                    "corpus": [str(c) for c in args.corpus],
                    "documents_ready": Document.objects.filter(status=DocumentStatus.READY).count(),
                    "documents_failed": Document.objects.filter(status=DocumentStatus.FAILED).count(),
                    "chunks": chunks,
                    "wall_s": round(wall, 1),
                    "chunks_per_s": round(chunks / wall, 1),
                    "model_load_s": round(model_load_s, 1),
                    "peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
                    **report,
                }
            )
        )


if __name__ == "__main__":
    main()
