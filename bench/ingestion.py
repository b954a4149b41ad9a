"""Ingestion benchmark: the TTS handbook into a fresh embedded PostgreSQL.

    .venv/bin/python -m bench.ingestion [--corpus ../shared/corpus/tts-handbook]

Starts its own PostgreSQL + Redis in /tmp (stopped afterwards), migrates, then ingests every
file in-process exactly as `manage.py ingest --wait` does. Prints wall time, documents,
chunks, chunks/s and the peak RSS of the process (parsing + embedding + storing).
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import resource
import secrets
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--corpus", type=Path, default=ROOT.parent / "shared" / "corpus" / "tts-handbook")
    parser.add_argument(
        "--golden", type=Path, default=ROOT / "bench" / "golden" / "tts-handbook.jsonl",
        help="also score retrieval on the freshly ingested corpus (hybrid, vector, text) and time it",
    )  # fmt: skip
    parser.add_argument("--queries", type=int, default=500, help="retrieval latency sample size")
    args = parser.parse_args()
    from config.embedded import temporary_services

    with temporary_services() as urls:
        os.environ.update(urls.as_env())
        os.environ.update(
            {
                "POLICYDESK_SECRET_KEY": secrets.token_urlsafe(32),
                "POLICYDESK_AUDIT_HMAC_KEY": secrets.token_urlsafe(32),
                "POLICYDESK_ENV_FILE": "/dev/null",
                "DJANGO_SETTINGS_MODULE": "config.settings",
                "POLICYDESK_LOG_LEVEL": "WARNING",
            }
        )
        import django

        django.setup()
        from django.core.management import CommandError, call_command

        from rag.embedding import get_embedder
        from rag.models import Chunk, Document

        call_command("migrate", verbosity=0)
        loaded = time.perf_counter()
        get_embedder()
        model_load_s = time.perf_counter() - loaded
        started = time.perf_counter()
        # Some handbook pages have no text: `ingest` then exits with an error; they are counted below.
        with contextlib.suppress(CommandError):
            call_command("ingest", str(args.corpus), "--wait", verbosity=0, stdout=io.StringIO())
        wall = time.perf_counter() - started
        chunks = Chunk.objects.count()
        report = {}
        if args.golden and args.golden.is_file():
            import statistics

            from rag.selectors import retrieve

            for mode in ("hybrid", "vector", "text"):
                out = io.StringIO()
                call_command("evaluate_retrieval", str(args.golden), "--mode", mode, stdout=out)
                scores = json.loads(out.getvalue().strip().splitlines()[-1])
                report[f"retrieval_{mode}"] = {
                    k: scores[k] for k in ("recall@1", "recall@5", "recall@10", "mrr")
                }
                report[f"retrieval_{mode}"]["en_recall@5"] = (
                    scores.get("by_lang", {}).get("en", {}).get("recall@5")
                )
            questions = [json.loads(x)["question"] for x in args.golden.read_text().splitlines() if x.strip()]
            timings = []
            for i in range(args.queries):
                t = time.perf_counter()
                retrieve(query=questions[i % len(questions)], user=None, k=5)
                timings.append((time.perf_counter() - t) * 1000)
            q = statistics.quantiles(timings, n=100)
            report["retrieval_latency_ms"] = {
                "p50": round(q[49], 1),
                "p95": round(q[94], 1),
                "p99": round(q[98], 1),
            }
        print(
            json.dumps(
                {
                    "corpus": str(args.corpus),
                    "documents_ready": Document.objects.filter(status="ready").count(),
                    "documents_failed": Document.objects.filter(status="failed").count(),
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
