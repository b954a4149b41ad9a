"""Ingestion benchmark: the TTS handbook into a fresh embedded PostgreSQL.

    .venv/bin/python -m bench.ingestion [--corpus ../shared/corpus/tts-handbook]

Starts its own PostgreSQL + Redis in /tmp (stopped afterwards), migrates, then ingests every
file in-process exactly as `manage.py ingest --wait` does. Prints wall time, documents,
chunks, chunks/s and the peak RSS of the process (parsing + embedding + storing).
"""

from __future__ import annotations

import argparse
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
        from django.core.management import call_command

        from rag.embedding import get_embedder
        from rag.models import Chunk, Document

        call_command("migrate", verbosity=0)
        loaded = time.perf_counter()
        get_embedder()
        model_load_s = time.perf_counter() - loaded
        started = time.perf_counter()
        call_command("ingest", str(args.corpus), "--wait", verbosity=0)
        wall = time.perf_counter() - started
        chunks = Chunk.objects.count()
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
                }
            )
        )


if __name__ == "__main__":
    main()
