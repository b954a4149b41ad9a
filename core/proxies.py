"""The client's address and scheme, from X-Forwarded-For and X-Forwarded-Proto only where a
trusted proxy wrote them.

Daphne's own `--proxy-headers` takes the left-most X-Forwarded-For address, which the client
writes: a script could send a new address with every wrong password and never meet the login
throttle (django-axes counts per REMOTE_ADDR). Here the headers count only when the connection
comes from a trusted proxy (POLICYDESK_TRUSTED_PROXIES: a number of hops, or their addresses
and networks; none by default), and the chain is read from the right, so an address a client
put in front is never the one taken.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass, field
from typing import Any

from django.core.exceptions import ImproperlyConfigured

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
ASGIApp = Callable[[MutableMapping[str, Any], Any, Any], Awaitable[None]]


@dataclass(frozen=True)
class TrustedProxies:
    """`hops`: how many proxies stand in front (each trusted whatever its address), or
    `networks`: the addresses proxies connect from. Neither: no forwarded header is read."""

    hops: int = 0
    networks: tuple[Network, ...] = field(default_factory=tuple)

    def trusts(self, address: str) -> bool:
        try:
            ip = ipaddress.ip_address(address)
        except ValueError:
            return False
        return any(ip in network for network in self.networks)

    @property
    def none(self) -> bool:
        return not self.hops and not self.networks

    def client(self, peer: str, forwarded_for: str) -> tuple[str, bool]:
        """The client's address, and whether the connection came through a trusted proxy (whose
        X-Forwarded-Proto may then be believed)."""
        chain = [part.strip() for part in forwarded_for.split(",") if part.strip()] + [peer]
        if self.hops:
            # The proxies wrote the last `hops` entries (the peer is the nearest); the one
            # before them is the client. A shorter chain: the left-most there is.
            return chain[max(0, len(chain) - 1 - self.hops)], True
        if not self.trusts(peer):
            return peer, False
        address = chain.pop()
        while chain and self.trusts(address):
            address = chain.pop()
        return address, True


def trusted_proxies_parse(raw: str) -> TrustedProxies:
    """ "" → none; "2" → two hops; "10.0.0.5, 10.1.0.0/16" → those addresses. Raises
    ImproperlyConfigured for anything else."""
    raw = raw.strip()
    if not raw:
        return TrustedProxies()
    if raw.isascii() and raw.isdigit():
        hops = int(raw)
        if hops > 10:
            raise ImproperlyConfigured(f"POLICYDESK_TRUSTED_PROXIES={raw!r}: at most 10 hops")
        return TrustedProxies(hops=hops)
    networks = []
    for part in raw.split(","):
        try:
            networks.append(ipaddress.ip_network(part.strip(), strict=False))
        except ValueError:
            raise ImproperlyConfigured(
                f"POLICYDESK_TRUSTED_PROXIES: {part.strip()!r} is neither a number of hops nor an address "
                "or network"
            ) from None
    return TrustedProxies(networks=tuple(networks))


class ForwardedClientMiddleware:
    """ASGI middleware: rewrites scope["client"] (Django's REMOTE_ADDR) and scope["scheme"] from
    the forwarded headers of a trusted proxy; with no trusted proxy it drops nothing and reads
    nothing, whatever the request carries."""

    def __init__(self, application: ASGIApp, proxies: TrustedProxies | None = None) -> None:
        self.application = application
        self.proxies = proxies

    def _proxies(self) -> TrustedProxies:
        if self.proxies is not None:
            return self.proxies
        from django.conf import settings

        proxies: TrustedProxies = settings.TRUSTED_PROXIES
        return proxies

    async def __call__(self, scope: MutableMapping[str, Any], receive: Any, send: Any) -> None:
        proxies = self._proxies()
        if scope.get("type") in ("http", "websocket") and not proxies.none and scope.get("client"):
            headers = dict(scope.get("headers") or [])
            forwarded_for = headers.get(b"x-forwarded-for", b"").decode("latin1")
            peer, port = scope["client"][0], scope["client"][1]
            client, via_proxy = proxies.client(peer, forwarded_for)
            scope = dict(scope)
            scope["client"] = [client, port if client == peer else 0]
            proto = headers.get(b"x-forwarded-proto", b"").decode("latin1").strip().lower()
            if via_proxy and proto in ("http", "https"):
                secure = proto == "https"
                if scope["type"] == "websocket":
                    scope["scheme"] = "wss" if secure else "ws"
                else:
                    scope["scheme"] = proto
        await self.application(scope, receive, send)
