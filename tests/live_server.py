"""Daphne, the server PolicyDesk runs under, serving `config.asgi.application` on a real port
from a thread of the test process.

The API tests talk to it with real clients (the official `openai` SDK, raw sockets) while it
shares what the tests control: the test database, `override_settings`, and fake LLM servers on
the test's own event loop. Twisted's reactor runs once per process, so this is one server per
test session (tests/conftest.py's `live_daphne`).
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Coroutine
from typing import Any, TypeVar

T = TypeVar("T")


class LiveDaphne:
    def __init__(self) -> None:
        self.port = 0
        self.thread: threading.Thread | None = None
        self.loop: asyncio.AbstractEventLoop | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 30.0) -> None:
        from daphne.endpoints import build_endpoint_description_strings
        from daphne.server import Server, twisted_loop

        from config.asgi import application

        server = Server(
            application=application,
            endpoints=build_endpoint_description_strings(host="127.0.0.1", port=0),
            signal_handlers=False,
        )
        self.loop = twisted_loop
        self.thread = threading.Thread(target=server.run, name="live-daphne", daemon=True)
        self.thread.start()
        deadline = time.monotonic() + timeout
        while not server.listening_addresses:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("Daphne did not start listening")
            time.sleep(0.02)
        self.port = server.listening_addresses[0][1]
        self.server = server

    async def call(self, coroutine: Coroutine[Any, Any, T]) -> T:
        """Run a coroutine on the server's event loop (each loop has its own LLM gateway)."""
        assert self.loop is not None
        return await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(coroutine, self.loop))

    def stop(self) -> None:
        from twisted.internet import reactor

        reactor.callFromThread(reactor.stop)  # type: ignore[misc]
        if self.thread is not None:
            self.thread.join(10)
