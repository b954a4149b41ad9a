"""Pieces the retrieval benchmarks share: a scratch database, golden questions, timing."""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import statistics
import time
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
GOLDEN = ROOT / "bench" / "golden" / "tts-handbook.jsonl"


HANDBOOK = ROOT.parent / "shared" / "corpus" / "tts-handbook"


def handbook_path() -> Path:
    """The handbook beside the checkout (../shared), or beside a worktree of it (../../shared)."""
    for candidate in (HANDBOOK, ROOT.parent.parent / "shared" / "corpus" / "tts-handbook"):
        if candidate.is_dir():
            return candidate
    return HANDBOOK


@contextlib.contextmanager
def scratch_django() -> Iterator[None]:
    """Fresh embedded PostgreSQL + Redis in /tmp (stopped afterwards), Django set up, migrated."""
    from devserver.embedded import temporary_services

    with temporary_services() as urls:
        _django_setup(urls.as_env())
        yield


@contextlib.contextmanager
def kept_django(data_dir: Path, *, with_llm: bool = False) -> Iterator[None]:
    """Embedded PostgreSQL + Redis (and with_llm, the local model's server) whose data stays in
    `data_dir` between runs (stopped afterwards, kept on disk): tuning scripts ingest the
    handbook once, then re-read it."""
    from devserver.embedded import services_down, services_status, services_up

    data_dir = data_dir.resolve()
    # Services another run started are left to it: stopping them would cut that run off.
    already_running = any(services_status(data_dir=data_dir).values())
    try:
        urls = services_up(data_dir=data_dir, with_llm=with_llm, fast=True, honour_env=False)
        _django_setup(urls.as_env())
        yield
    finally:
        if not already_running:
            services_down(data_dir=data_dir)


def _django_setup(urls: dict[str, str]) -> None:
    os.environ.update(urls)
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

    call_command("migrate", verbosity=0)


def golden_questions(path: Path = GOLDEN) -> list[str]:
    return [json.loads(line)["question"] for line in path.read_text().splitlines() if line.strip()]


def percentiles(values_ms: list[float]) -> dict[str, float]:
    q = statistics.quantiles(values_ms, n=100)
    return {"p50": round(q[49], 1), "p95": round(q[94], 1), "p99": round(q[98], 1)}


def retrieval_latency(questions: list[str], queries: int, mode: str = "hybrid") -> dict[str, float]:
    """`retrieve()` timed warm, query embedding included, cycling through `questions`."""
    from rag.selectors import retrieve

    retrieve(query="warm up", user=None, k=5, mode=mode)  # type: ignore[arg-type]
    timings = []
    for i in range(queries):
        started = time.perf_counter()
        retrieve(query=questions[i % len(questions)], user=None, k=5, mode=mode)  # type: ignore[arg-type]
        timings.append((time.perf_counter() - started) * 1000)
    return percentiles(timings)
