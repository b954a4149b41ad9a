"""Retrieval latency (query embedding included, warm): p50/p95/p99 over N queries.

    .venv/bin/python bench/retrieval_latency.py [--queries 500] [--golden bench/golden/tts-handbook.jsonl]

Run against a database holding the corpus to measure (e.g. after
`manage.py ingest ../shared/corpus/tts-handbook --wait`).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--queries", type=int, default=500)
    parser.add_argument(
        "--golden", type=Path, default=Path(__file__).parent / "golden" / "tts-handbook.jsonl"
    )
    args = parser.parse_args()
    import django

    django.setup()
    from rag.models import Chunk
    from rag.selectors import retrieve

    questions = [
        json.loads(line)["question"] for line in args.golden.read_text().splitlines() if line.strip()
    ]
    retrieve(query="warm up", user=None, k=5)
    timings = []
    for i in range(args.queries):
        start = time.perf_counter()
        retrieve(query=questions[i % len(questions)], user=None, k=5)
        timings.append((time.perf_counter() - start) * 1000)
    q = statistics.quantiles(timings, n=100)
    print(json.dumps({
        "chunks": Chunk.objects.count(), "queries": args.queries,
        "p50_ms": round(q[49], 1), "p95_ms": round(q[94], 1), "p99_ms": round(q[98], 1),
    }))  # fmt: skip


if __name__ == "__main__":
    main()
