"""A simulated OpenAI- and Anthropic-compatible provider with the guide's tier presets.

Providers cannot be reached from every machine, and tests and benchmarks need a provider
that behaves the same every time: this one speaks both wire formats exactly enough for the
official SDKs, enforces a tier's limits, and fails on request (see `xvckit.sim.app`).
"""

from __future__ import annotations

from collections.abc import Callable

from xvckit.asgi import Server, run
from xvckit.sim.app import SimApp
from xvckit.sim.settings import SimSettings

__all__ = ["SHUTDOWN_GRACE_S", "SimApp", "SimSettings", "serve"]

SHUTDOWN_GRACE_S = 5.0  # then requests still running (a `hang`) are cut off


def serve(
    settings: SimSettings,
    host: str = "127.0.0.1",
    port: int = 4242,
    on_ready: Callable[[str], None] | None = None,
) -> None:
    """Serve until SIGINT/SIGTERM; `on_ready` gets the URL once the port is bound (port 0 picks one)."""
    server = Server(SimApp(settings), host, port, shutdown_grace_s=SHUTDOWN_GRACE_S)
    if on_ready is not None:
        on_ready(server.url)
    run(server)
