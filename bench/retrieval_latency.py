"""Retrieval latency (query embedding included, warm): p50/p95/p99 over N queries.

    .venv/bin/python bench/retrieval_latency.py [--queries 500] [--golden bench/golden/tts-handbook.jsonl]

Run against a database holding the corpus to measure (e.g. after
`manage.py ingest ../shared/corpus/tts-handbook --wait`).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--queries", type=int, default=500)
    parser.add_argument(
        "--golden",
        type=Path,
        default=Path(__file__).parent / "golden" / "tts-handbook.jsonl",
    )
    args = parser.parse_args()
    import django

    django.setup()
    from bench.common import golden_questions, retrieval_latency
    from rag.models import Chunk

    latency = retrieval_latency(golden_questions(args.golden), args.queries)
    print(json.dumps({"chunks": Chunk.objects.count(), "queries": args.queries, **latency}))


if __name__ == "__main__":
    main()
