"""A kept database with the handbook ingested, for the tuning scripts (bench/evidence_tuning.py,
bench/retrieval_tuning.py): ingesting 247 pages takes minutes, scoring a change seconds.

    .venv/bin/python -m bench.devdb [--data-dir .data/tuning/db] [--reingest] [--reembed]

Starts embedded PostgreSQL + Redis with their data in --data-dir (kept on disk, stopped at the
end), migrates, and ingests the handbook when the database holds no document yet (or again
with --reingest). --reembed runs `manage.py reembed` (sentence vectors of another split or
context are stored again). Prints what the database holds.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import time
from pathlib import Path

from bench.common import ROOT, handbook_path, kept_django

DEFAULT_DATA_DIR = ROOT / ".data" / "tuning" / "db"


def handbook_ingested(*, reingest: bool = False) -> dict[str, object]:
    """Ingest the handbook unless it is there already; returns counts and the time it took."""
    from django.core.management import CommandError, call_command

    from rag.models import Chunk, Document, DocumentStatus

    took = 0.0
    if reingest:
        Document.objects.all().delete()
    if not Document.objects.exists():
        started = time.perf_counter()
        # Some handbook pages have no text: `ingest` then exits with an error; they are counted below.
        with contextlib.suppress(CommandError):
            call_command("ingest", str(handbook_path()), "--wait", verbosity=0, stdout=io.StringIO())
        took = time.perf_counter() - started
    return {
        "documents_ready": Document.objects.filter(status=DocumentStatus.READY).count(),
        "documents_failed": Document.objects.filter(status=DocumentStatus.FAILED).count(),
        "chunks": Chunk.objects.count(),
        "ingest_s": round(took, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--data-dir", type=Path, default=DEFAULT_DATA_DIR)
    parser.add_argument("--reingest", action="store_true")
    parser.add_argument("--reembed", action="store_true")
    args = parser.parse_args()
    with kept_django(args.data_dir):
        report = handbook_ingested(reingest=args.reingest)
        if args.reembed:
            from django.core.management import call_command

            out = io.StringIO()
            call_command("reembed", stdout=out)
            report["reembed"] = out.getvalue().strip().splitlines()[-1:]
        print(json.dumps(report))


if __name__ == "__main__":
    main()
