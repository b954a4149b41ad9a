"""The gateway's HTTP transport: httpx on httpcore, with sockets that can be polled.

A streaming answer is read a few tokens at a time (see `stream_interval`). httpx's default
network backend (anyio) registers the socket with the event loop's selector every time a
read has to wait and unregisters it afterwards: at 200 streams that read path was about a
fifth of the web process's interpreter time. These sockets are read directly instead: a read that
finds data returns it, and a read that finds none either waits on the selector as usual
(before the first token, and for every non-streaming request) or, once the adapter has set
`poll_every` on a paced stream, sleeps for the stream's interval and tries again, so a paced
stream never touches the selector at all.

Used for plain-HTTP backends (runtimes inside the company network); https base URLs keep
httpx's default transport, with the same pacing done by the adapter between reads.
"""

from __future__ import annotations

import asyncio
import select
import socket
import ssl
from collections.abc import Callable, Iterable
from typing import Any

import httpcore
import httpx


class PolledStream(httpcore.AsyncNetworkStream):
    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        # While set (by the adapter, for one paced response): how long to sleep when no data
        # is waiting, instead of asking the selector to wake us.
        self.poll_every: Callable[[], float] | None = None

    async def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        while True:
            try:
                return self.sock.recv(max_bytes)
            except (BlockingIOError, InterruptedError):
                pass
            except OSError as exc:
                raise httpcore.ReadError(str(exc)) from exc
            delay = self.poll_every() if self.poll_every is not None else 0.0
            if delay <= 0:
                break  # not paced (or paced at 0): wait on the selector like any socket
            await asyncio.sleep(delay)
        try:
            async with asyncio.timeout(timeout):
                return await asyncio.get_running_loop().sock_recv(self.sock, max_bytes)
        except TimeoutError as exc:
            raise httpcore.ReadTimeout(f"no data within {timeout}s") from exc
        except OSError as exc:
            raise httpcore.ReadError(str(exc)) from exc

    async def write(self, buffer: bytes, timeout: float | None = None) -> None:
        if not buffer:
            return
        try:
            async with asyncio.timeout(timeout):
                await asyncio.get_running_loop().sock_sendall(self.sock, buffer)
        except TimeoutError as exc:
            raise httpcore.WriteTimeout(f"could not send within {timeout}s") from exc
        except OSError as exc:
            raise httpcore.WriteError(str(exc)) from exc

    async def aclose(self) -> None:
        self.sock.close()

    async def start_tls(
        self, ssl_context: ssl.SSLContext, server_hostname: str | None = None, timeout: float | None = None
    ) -> httpcore.AsyncNetworkStream:
        raise httpcore.ConnectError("TLS is not supported by the polled transport (use https via httpx)")

    def get_extra_info(self, info: str) -> Any:
        if info == "socket":
            return self.sock
        if info == "is_readable":
            return _readable(self.sock)
        if info == "client_addr":
            return self.sock.getsockname()
        if info == "server_addr":
            return self.sock.getpeername()
        return None


def _readable(sock: socket.socket) -> bool:
    """Data or EOF waiting: a pooled connection the server has closed must not be reused."""
    if sock.fileno() < 0:
        return True
    poller = select.poll()
    poller.register(sock, select.POLLIN)
    return bool(poller.poll(0))


class PolledBackend(httpcore.AsyncNetworkBackend):
    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout(timeout):
                addresses = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
                failure: OSError = OSError(f"no address for {host}")
                for family, kind, proto, _, address in addresses:
                    try:
                        return PolledStream(
                            await _connected(family, kind, proto, address, local_address, socket_options)
                        )
                    except OSError as exc:
                        failure = exc
                raise failure
        except TimeoutError as exc:
            raise httpcore.ConnectTimeout(f"no connection within {timeout}s") from exc
        except OSError as exc:
            raise httpcore.ConnectError(str(exc)) from exc

    async def connect_unix_socket(
        self, path: str, timeout: float | None = None, socket_options: Iterable[Any] | None = None
    ) -> httpcore.AsyncNetworkStream:
        raise httpcore.ConnectError("unix sockets are not supported by the polled transport")

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)


async def _connected(
    family: int,
    kind: int,
    proto: int,
    address: Any,
    local_address: str | None,
    socket_options: Iterable[Any] | None,
) -> socket.socket:
    sock = socket.socket(family, kind, proto)
    try:
        sock.setblocking(False)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # as asyncio does
        for option in socket_options or ():
            sock.setsockopt(*option)
        if local_address:
            sock.bind((local_address, 0))
        await asyncio.get_running_loop().sock_connect(sock, address)
    except BaseException:
        sock.close()  # a refused, timed-out or cancelled attempt leaves no socket behind
        raise
    return sock


def transport_for(base_url: str, *, limits: httpx.Limits) -> httpx.AsyncBaseTransport:
    """The polled transport for http:// backends, httpx's own for https://."""
    transport = httpx.AsyncHTTPTransport(limits=limits)
    if base_url.startswith("http://"):
        # httpx has no argument for a network backend (encode/httpx#3749); its transport keeps
        # request conversion and error mapping, with httpcore's pool on our backend underneath.
        transport._pool = httpcore.AsyncConnectionPool(
            max_connections=limits.max_connections,
            max_keepalive_connections=limits.max_keepalive_connections,
            keepalive_expiry=limits.keepalive_expiry,
            network_backend=PolledBackend(),
        )
    return transport


def polled_stream(response: httpx.Response) -> PolledStream | None:
    stream = response.extensions.get("network_stream")
    return stream if isinstance(stream, PolledStream) else None
