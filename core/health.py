from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

import psycopg
import redis
from django.conf import settings
from django.http import HttpRequest, JsonResponse
from django.views.decorators.http import require_GET

from core.metrics import operator_request
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


_readiness_lock = threading.Lock()
_readiness: tuple[float, bool, dict[str, Any]] | None = None


def readiness(*, max_age: float) -> tuple[bool, dict[str, Any]]:
    """Every check's result, run again only when the last run is older than `max_age` seconds:
    probes from every load balancer and anonymous callers must not each open database, Redis
    and LLM connections (20 concurrent callers took the login page from 8 to 169 ms)."""
    global _readiness
    with _readiness_lock:
        if _readiness is not None and time.monotonic() - _readiness[0] < max_age:
            return _readiness[1], _readiness[2]
        results: dict[str, Any] = {}
        ready = True
        for name, check in CHECKS.items():
            started = time.perf_counter()
            try:
                status, ok = check(), True
            except Exception as exc:
                status, ok = f"{type(exc).__name__}: {exc}"[:300], False
            ready &= ok
            results[name] = {
                "ok": ok,
                "status": status,
                "ms": round((time.perf_counter() - started) * 1000, 1),
            }
        _readiness = (time.monotonic(), ready, results)
        return ready, results


@require_GET
def readyz(request: HttpRequest) -> JsonResponse:
    """Readiness: every dependency a question needs. 503 until all of them answer. Each check's
    detail (backend names, errors, paths) only for operators (staff session or metrics token)."""
    ready, results = readiness(max_age=settings.READYZ_CACHE_SECONDS)
    body: dict[str, Any] = {"ready": ready}
    if operator_request(request):
        body["checks"] = results
    return JsonResponse(body, status=200 if ready else 503)
