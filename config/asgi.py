"""ASGI entry point: HTTP through Django, WebSockets through Channels with auth and origin checks."""

from __future__ import annotations

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

# Django must be set up before anything imports models (the consumers do).
django_asgi_app = get_asgi_application()

from channels.auth import AuthMiddlewareStack  # noqa: E402
from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402

from config.origin import SameOriginValidator  # noqa: E402
from config.routing import websocket_urlpatterns  # noqa: E402

application = ProtocolTypeRouter(
    {
        "http": django_asgi_app,
        "websocket": SameOriginValidator(AuthMiddlewareStack(URLRouter(websocket_urlpatterns))),
    }
)


def _warm_up() -> None:
    """Load the redaction and embedding models before the first question, not during it,
    and start the processes that redact answers (privacy.pool)."""
    import logging

    from django.conf import settings
    from django.core.exceptions import ImproperlyConfigured

    from privacy.analysis import redaction_warm_up
    from privacy.pool import redaction_pool_start
    from rag.embedding import get_embedder
    from rag.index import embedding_index_check, query_embedder

    try:
        redaction_pool_start(processes=settings.REDACTION_PROCESSES)
    except Exception:  # answers are redacted in this process instead
        logging.getLogger(__name__).exception("the redaction processes did not start")
    try:
        redaction_warm_up()
        get_embedder().embed_query("warm up")
    except Exception:  # the first question will load them (and report a failure) instead
        logging.getLogger(__name__).exception("model warm-up failed")
        return
    try:
        embedding_index_check()
        query_embedder().embed_query("warm up")  # the index's model, while a re-embed runs
    except ImproperlyConfigured as exc:  # /readyz reports it too, so no traffic is routed here
        logging.getLogger(__name__).critical("the search index does not match the settings: %s", exc)
    except Exception:  # the database is not reachable yet: /readyz reports it, and runs this check
        logging.getLogger(__name__).warning("the search index could not be checked at start")


if os.environ.get("POLICYDESK_WARM_UP", "true").lower() not in ("0", "false", "no", "off"):
    import threading

    threading.Thread(target=_warm_up, name="warm-up", daemon=True).start()
