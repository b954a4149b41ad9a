"""Load what the first question needs before it arrives, not while it waits."""

from __future__ import annotations

import logging
import threading

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

logger = logging.getLogger(__name__)


def warm_up() -> None:
    """Load the redaction and embedding models and start the processes that redact answers
    (privacy.pool)."""
    from privacy.analysis import redaction_warm_up
    from privacy.pool import redaction_pool_start
    from rag.embedding import get_embedder
    from rag.index import embedding_index_check, query_embedder

    try:
        redaction_pool_start(processes=settings.REDACTION_PROCESSES)
    except Exception:  # answers are redacted in this process instead
        logger.exception("the redaction processes did not start")
    try:
        redaction_warm_up()
        get_embedder().embed_query("warm up")
    except Exception:  # the first question will load them (and report a failure) instead
        logger.exception("model warm-up failed")
        return
    try:
        embedding_index_check()
        query_embedder().embed_query("warm up")  # the index's model, while a re-embed runs
    except ImproperlyConfigured as exc:  # /readyz reports it too, so no traffic is routed here
        logger.critical("the search index does not match the settings: %s", exc)
    except Exception:  # the database is not reachable yet: /readyz reports it, and runs this check
        logger.warning("the search index could not be checked at start")


def warm_up_in_background() -> None:
    threading.Thread(target=warm_up, name="warm-up", daemon=True).start()
