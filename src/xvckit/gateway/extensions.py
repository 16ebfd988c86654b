"""What other rooms serve through the gateway, behind its keys.

`xvckit.stack` (and the tests) hand the gateway an `Extensions`: a prompt library (its routes
under /v1/xvckit/prompts and the `x-xvckit-prompt` header of model requests, in
gateway/prompting.py), ASGI apps mounted at a path (the MCP endpoint at /mcp, the dashboard at
/ui) and background services that add Prometheus families to /metrics (the infrastructure
monitor, the repository KPIs). The gateway
never imports the rooms that make them (`xvckit.knowledge`): it checks the key, then hands the
caller (a `Principal`: `key_id`, `team_id`, `role`) to the interface, and the room applies its
own access rule.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from contextlib import AbstractAsyncContextManager, AsyncExitStack
from dataclasses import dataclass
from typing import Any, Protocol

from prometheus_client.core import Metric

from xvckit.asgi import ASGIApp, Receive, Scope, Send, respond
from xvckit.gateway import prompting
from xvckit.gateway.dialects import OPENAI, GatewayError
from xvckit.gateway.keyring import Keyring
from xvckit.gateway.prompting import PromptLibrary


@dataclass(frozen=True)
class Mount:
    """An ASGI app served at `path` and below to every usable key, with the caller put in the
    scope under `caller_key`; `running`, when given, is entered while the gateway serves;
    `public`, when given, names the paths served without a key (and without a caller)."""

    path: str
    app: ASGIApp
    caller_key: str
    running: Callable[[], AbstractAsyncContextManager[Any]] | None = None
    public: Callable[[str], bool] | None = None

    def serves(self, path: str) -> bool:
        return path == self.path or path.startswith(self.path + "/")


class Service(Protocol):
    """Background work while the gateway serves, and what /metrics shows of it (families made
    on the event loop, from what the service holds: no I/O)."""

    def running(self) -> AbstractAsyncContextManager[Any]: ...

    def metrics(self) -> list[Metric]: ...


class Extensions:
    def __init__(
        self,
        prompts: PromptLibrary | None = None,
        mounts: Sequence[Mount] = (),
        services: Sequence[Service] = (),
    ) -> None:
        self.prompts = prompts
        self.mounts = tuple(mounts)
        self.services = tuple(services)
        self._running = AsyncExitStack()

    def serves(self, path: str) -> bool:
        return (self.prompts is not None and prompting.serves(path)) or any(
            m.serves(path) for m in self.mounts
        )

    async def answer(self, scope: Scope, receive: Receive, send: Send, keyring: Keyring) -> None:
        """A request for a path that `serves`, from a caller whose key is checked first."""
        path = scope["path"]
        if self.prompts is not None and prompting.serves(path):
            await prompting.answer(scope, receive, send, keyring, self.prompts)
            return
        mount = next(m for m in self.mounts if m.serves(path))
        if mount.public is not None and mount.public(path):
            await mount.app(scope, receive, send)
            return
        try:
            who = await keyring.authenticate(scope)
        except GatewayError as exc:
            body = OPENAI.error_body(exc.status, exc.message, exc.code, "")
            await respond(
                send, exc.status, body, headers=[(k.encode(), v.encode()) for k, v in exc.headers.items()]
            )
            return
        await mount.app({**scope, mount.caller_key: who}, receive, send)

    async def start(self) -> None:
        for mount in self.mounts:
            if mount.running is not None:
                await self._running.enter_async_context(mount.running())
        for service in self.services:
            await self._running.enter_async_context(service.running())

    def metrics(self) -> list[Metric]:
        return [family for service in self.services for family in service.metrics()]

    async def stop(self) -> None:
        await self._running.aclose()
