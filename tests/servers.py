"""Serve an ASGI app on a free loopback port from a background thread, for tests whose
clients (the official SDKs) block."""

from __future__ import annotations

import asyncio
import threading

import uvloop

from xvckit.asgi import ASGIApp, Server


class BackgroundServer:
    def __init__(self, app: ASGIApp, shutdown_grace_s: float | None = 5) -> None:
        self._server = Server(app, "127.0.0.1", 0, shutdown_grace_s=shutdown_grace_s)
        self.url = self._server.url
        self.port = self._server.port
        self._loop = uvloop.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)

    def __enter__(self) -> BackgroundServer:
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._server.start(), self._loop).result(timeout=10)
        return self

    def __exit__(self, *exc_info: object) -> None:
        asyncio.run_coroutine_threadsafe(self._server.stop(), self._loop).result(timeout=15)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=5)
        self._loop.close()
