"""Gateway reads for operators: live health of each backend plus the shared breaker state."""

from __future__ import annotations

import asyncio
from typing import Any

from django.core.cache import cache

from llm.config import llm_backends
from llm.gateway import SNAPSHOT_KEY, Gateway


async def _probe(timeout: float | None) -> list[dict[str, Any]]:
    gateway = Gateway(llm_backends(), probe_interval=0)
    try:
        await asyncio.gather(*(gateway.probe(r, timeout=timeout) for r in gateway.runtimes))
        return gateway.snapshot()
    finally:
        await gateway.aclose()


def shared_breaker_states() -> dict[str, dict[str, Any]]:
    """Breaker state as last published by the serving processes (empty before any question)."""
    try:
        snapshot = cache.get(SNAPSHOT_KEY) or {}
    except Exception:  # Redis down: report what the live probe sees
        snapshot = {}
    return {b["name"]: b for b in snapshot.get("backends", [])}


def backends_status(*, timeout: float | None = None) -> list[dict[str, Any]]:
    """Probe every backend now (model list, in parallel, each within `timeout` s or its own
    connect timeout + 3 s) and add the serving processes' breaker state."""
    live = asyncio.run(_probe(timeout))
    shared = shared_breaker_states()
    for row in live:
        served = shared.get(str(row["name"]))
        row["breaker"] = served["breaker"] if served else "closed"
        row["failures"] = served["failures"] if served else 0
        row["last_error"] = served["last_error"] if served else ""
    return live
