"""PII analysis in separate processes, for the web process's long texts.

spaCy's NER holds the GIL for its whole run: ~50 ms for a 2,000-character answer. In a
Daphne process every other socket's tokens wait behind it, so with a few hundred streams
the event loop falls seconds behind. A small pool of worker processes (spawned, each with
its own analyzer) runs that analysis on another core while the event loop keeps relaying.

Only the analysis moves: the worker returns span positions and types, and the caller
applies its conversation's placeholder vault as before. The text travels over a local
pipe to a child process, never through a broker, a log or the database. When the pool is
not started (Celery, management commands, tests that do not ask for it) or a worker has
died, the analysis runs in the calling thread instead, so text is never left unredacted.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import threading
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool

from presidio_analyzer import RecognizerResult

from privacy.analysis import pii_find

logger = logging.getLogger(__name__)

Span = tuple[str, int, int, float]

_pool: ProcessPoolExecutor | None = None
_pool_size = 0
_lock = threading.Lock()


def _worker_start() -> None:
    """Runs once in each worker: Django settings (recognizer configuration) and the models."""
    import django

    # Below the event loop's priority: when cores are short, streams stay on time and an
    # answer's redaction (after its last token, before it is stored) waits a little instead.
    os.nice(10)

    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    django.setup()
    from privacy.analysis import analyzer

    analyzer()


def _worker_find(text: str, language: str) -> list[Span]:
    return [(r.entity_type, r.start, r.end, r.score) for r in pii_find(text=text, language=language)]


def _worker_ready() -> bool:
    return True


def redaction_pool_start(*, processes: int) -> None:
    """Start `processes` workers and wait until their models are loaded (0: analyse inline)."""
    global _pool, _pool_size
    if processes <= 0:
        return
    with _lock:
        if _pool is None:
            # spawn, not fork: the web process has threads and an event loop by now.
            _pool = ProcessPoolExecutor(
                max_workers=processes,
                mp_context=multiprocessing.get_context("spawn"),
                initializer=_worker_start,
            )
            _pool_size = processes
        pool = _pool
    # One trivial call per worker makes every one of them load before the first question.
    try:
        for future in [pool.submit(_worker_ready) for _ in range(processes)]:
            future.result(timeout=300)
    except Exception:
        redaction_pool_stop()  # answers are then analysed in-process, never left unredacted
        raise
    logger.info("redaction processes started", extra={"processes": processes})


def redaction_pool_stop() -> None:
    global _pool
    with _lock:
        pool, _pool = _pool, None
    if pool is not None:
        pool.shutdown(wait=True, cancel_futures=True)


def redaction_pool_size() -> int:
    """Worker processes now serving `pii_find_pooled` (0: it analyses inline)."""
    return _pool_size if _pool is not None else 0


def pii_find_pooled(*, text: str, language: str) -> list[RecognizerResult]:
    """`pii_find`, run by a worker process when the pool is started."""
    pool = _pool
    if pool is None:
        return pii_find(text=text, language=language)
    try:
        spans = pool.submit(_worker_find, text, language).result()
    except BrokenProcessPool:
        # A worker was killed (out of memory, an operator): start fresh ones for the next
        # answer, and analyse this one here so it is still redacted.
        logger.warning("a redaction process died; restarting the pool")
        _pool_replace(broken=pool)
        return pii_find(text=text, language=language)
    return [RecognizerResult(entity, start, end, score) for entity, start, end, score in spans]


def _pool_replace(*, broken: ProcessPoolExecutor) -> None:
    global _pool
    with _lock:
        if _pool is not broken:
            return  # another thread already replaced it
        _pool = None
    broken.shutdown(wait=False, cancel_futures=True)
    threading.Thread(
        target=redaction_pool_start, kwargs={"processes": _pool_size}, name="redaction-pool", daemon=True
    ).start()
