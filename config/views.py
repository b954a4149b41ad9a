from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import psycopg
import redis
from django.conf import settings
from django.http import HttpRequest, JsonResponse
from django.views.decorators.http import require_GET

from llm.services import backends_status


@require_GET
def healthz(request: HttpRequest) -> JsonResponse:
    """Liveness: the process answers. Touches no database or broker on purpose."""
    return JsonResponse({"status": "ok"})


def _check_database() -> str:
    db = settings.DATABASES["default"]
    with psycopg.connect(
        dbname=db["NAME"], user=db.get("USER") or None, password=db.get("PASSWORD") or None,
        host=db.get("HOST") or None, port=db.get("PORT") or None, connect_timeout=2,
    ) as conn:  # fmt: skip
        conn.execute("SELECT 1 FROM pg_extension WHERE extname = 'vector'").fetchone()
    return "ok"


def _check_redis() -> str:
    client = redis.Redis.from_url(settings.REDIS_URL, socket_timeout=2, socket_connect_timeout=2)
    client.ping()
    return "ok"


def _check_llm() -> str:
    """At least one backend answers its model list and its circuit is not open."""
    errors = []
    for row in backends_status(timeout=2.0):  # within the orchestrator's probe timeout
        if row["healthy"] and row["breaker"] != "open":
            return f"ok ({row['name']})"
        errors.append(f"{row['name']}: {'circuit open' if row['healthy'] else row['probe_error']}")
    raise RuntimeError("no healthy LLM backend: " + "; ".join(errors))


def _check_embedder() -> str:
    from rag.embedding import embedder_loaded
    from rag.index import embedding_index_check, index_models

    if not embedder_loaded():
        raise RuntimeError("the embedding model is not loaded yet")
    embedding_index_check()  # the index must hold the configured model's vectors (or move to it)
    return f"ok ({index_models().model})"


def _check_redaction() -> str:
    from privacy.analysis import redaction_loaded
    from privacy.pool import redaction_pool_size

    if not redaction_loaded():
        raise RuntimeError("the redaction models are not loaded yet")
    processes = redaction_pool_size()
    return f"ok ({processes} processes)" if processes else "ok (inline)"


CHECKS: dict[str, Callable[[], str]] = {
    "database": _check_database,
    "redis": _check_redis,
    "llm": _check_llm,
    "embedding_model": _check_embedder,
    "redaction": _check_redaction,
}


@require_GET
def readyz(request: HttpRequest) -> JsonResponse:
    """Readiness: every dependency a question needs. 503 until all of them answer."""
    results: dict[str, Any] = {}
    ready = True
    for name, check in CHECKS.items():
        started = time.perf_counter()
        try:
            status, ok = check(), True
        except Exception as exc:
            status, ok = f"{type(exc).__name__}: {exc}"[:300], False
        ready &= ok
        results[name] = {"ok": ok, "status": status, "ms": round((time.perf_counter() - started) * 1000, 1)}
    return JsonResponse({"ready": ready, "checks": results}, status=200 if ready else 503)
