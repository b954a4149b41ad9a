"""Which pages may open a socket: the site itself, scheme and port included.

Channels' AllowedHostsOriginValidator compares the Origin's host name with ALLOWED_HOSTS only, so
a page served from http://localhost:9999 could open a socket to the app on port 8000. Here the
Origin must be this site as the browser reached it (the scheme the socket came in on and the Host
header, port included) or one of POLICYDESK_CSRF_TRUSTED_ORIGINS, as Django's CSRF check does for
forms. Behind a proxy that ends TLS, list the public origin there (https://policydesk.example.com).
"""

from __future__ import annotations

from typing import Any

from channels.security.websocket import OriginValidator, WebsocketDenier
from django.conf import settings


class SameOriginValidator(OriginValidator):
    def __init__(self, application: Any) -> None:
        super().__init__(application, settings.ALLOWED_HOSTS)

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> Any:
        if scope["type"] == "websocket" and not same_origin(scope):
            return await WebsocketDenier()(scope, receive, send)
        # Host names are still limited to ALLOWED_HOSTS (and a missing Origin refused) by Channels.
        return await super().__call__(scope, receive, send)


def same_origin(scope: dict[str, Any]) -> bool:
    headers = dict(scope.get("headers", []))
    origin = headers.get(b"origin", b"").decode("latin1").rstrip("/").lower()
    if not origin:
        return False
    if origin in {trusted.rstrip("/").lower() for trusted in settings.CSRF_TRUSTED_ORIGINS}:
        return True
    host = headers.get(b"host", b"").decode("latin1").lower()
    if not host:
        return True  # no Host header (in-process clients): the host-name check alone decides
    scheme = "https" if scope.get("scheme") in ("wss", "https") else "http"
    return origin == f"{scheme}://{host}"
