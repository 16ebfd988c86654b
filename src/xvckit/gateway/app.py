"""The gateway as one ASGI application: a dict lookup routes each request."""

from __future__ import annotations

import asyncio
import logging

import orjson

from xvckit.asgi import Receive, Scope, Send, lifespan, respond
from xvckit.config import Config
from xvckit.gateway.auth import Authenticator
from xvckit.gateway.dialects import ANTHROPIC, OPENAI, GatewayError
from xvckit.gateway.proxy import CHAT, COUNT_TOKENS, EMBEDDINGS, MESSAGES, Endpoint, Proxy
from xvckit.gateway.routing import Router
from xvckit.gateway.upstream import Upstreams
from xvckit.store import Store, StoreError

log = logging.getLogger("xvckit.gateway")

_PROXIED: dict[str, Endpoint] = {
    "/v1/chat/completions": CHAT,
    "/chat/completions": CHAT,
    "/v1/embeddings": EMBEDDINGS,
    "/embeddings": EMBEDDINGS,
    "/v1/messages": MESSAGES,
    "/v1/messages/count_tokens": COUNT_TOKENS,
}


class Gateway:
    """Holds what every request needs; the store is opened and closed with the app."""

    def __init__(self, config: Config, master_key: str, store: Store | None = None) -> None:
        self.config = config
        self.store = store
        self.router = Router(config)
        self.upstreams = Upstreams(config.providers, config.gateway)
        self.auth = Authenticator(master_key)
        max_body = int(config.gateway.max_body_mb * 1024 * 1024)
        self.proxy = Proxy(self.auth, self.router, self.upstreams, max_body)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind == "http":
            path = scope["path"]
            endpoint = _PROXIED.get(path)
            if endpoint is not None and scope["method"] == "POST":
                await self.proxy.handle(scope, receive, send, endpoint)
            elif path in ("/v1/models", "/models") and scope["method"] == "GET":
                await self._models(scope, send)
            elif path == "/healthz":
                await respond(send, 200, b'{"status":"ok"}')
            elif path == "/readyz":
                await self._ready(send)
            else:
                await _not_found(scope, send, endpoint)
        elif kind == "lifespan":
            await lifespan(receive, send, self.upstreams.start, self.upstreams.close)

    async def _models(self, scope: Scope, send: Send) -> None:
        anthropic_client = any(name == b"anthropic-version" for name, _ in scope["headers"])
        try:
            self.auth.check(scope)
        except GatewayError as exc:
            dialect = ANTHROPIC if anthropic_client else OPENAI
            await respond(send, exc.status, dialect.error_body(exc.status, exc.message, exc.code, ""))
            return
        models = self.router.listed_models()
        if anthropic_client:
            data = [
                {"type": "model", "id": name, "display_name": name, "created_at": "1970-01-01T00:00:00Z"}
                for name, _ in models
            ]
            body = {
                "data": data,
                "has_more": False,
                "first_id": data[0]["id"] if data else None,
                "last_id": data[-1]["id"] if data else None,
            }
        else:
            body = {
                "object": "list",
                "data": [
                    {"id": name, "object": "model", "created": 0, "owned_by": provider}
                    for name, provider in models
                ],
            }
        await respond(send, 200, orjson.dumps(body))

    async def _ready(self, send: Send) -> None:
        """Ready when the store answers and at least one model routes to a provider."""
        problems = []
        if self.store is not None:
            try:
                await asyncio.to_thread(self.store.ping)
            except StoreError as exc:
                problems.append(f"store: {exc}")
        if not self.config.models:
            problems.append("config: no model routes")
        body = {"status": "not ready" if problems else "ready", "problems": problems}
        await respond(send, 503 if problems else 200, orjson.dumps(body))


async def _not_found(scope: Scope, send: Send, endpoint: Endpoint | None) -> None:
    if endpoint is not None:
        status, message = 405, f"{scope['method']} is not allowed on {scope['path']}; use POST"
    else:
        status, message = 404, f"no such endpoint: {scope['method']} {scope['path']}"
    dialect = ANTHROPIC if scope["path"].startswith("/v1/messages") else OPENAI
    await respond(send, status, dialect.error_body(status, message, "not_found", ""))
