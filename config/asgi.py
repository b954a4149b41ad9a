"""ASGI entry point: HTTP through Django, WebSockets through Channels with auth and origin checks."""

from __future__ import annotations

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

# Django must be set up before anything imports models (the consumers do).
django_asgi_app = get_asgi_application()

from channels.auth import AuthMiddlewareStack  # noqa: E402
from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402

from config.routing import websocket_urlpatterns  # noqa: E402
from core.origin import SameOriginValidator  # noqa: E402
from core.proxies import ForwardedClientMiddleware  # noqa: E402

# Outermost: the client's address and scheme (from a trusted proxy's headers only) are what
# the login throttle, the origin check and the secure-cookie logic see.
application = ForwardedClientMiddleware(
    ProtocolTypeRouter(
        {
            "http": django_asgi_app,
            "websocket": SameOriginValidator(AuthMiddlewareStack(URLRouter(websocket_urlpatterns))),
        }
    )
)


if os.environ.get("POLICYDESK_WARM_UP", "true").lower() not in ("0", "false", "no", "off"):
    from core.warmup import warm_up_in_background

    warm_up_in_background()
