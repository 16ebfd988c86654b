"""The gateway as one ASGI application: a dict lookup routes each request."""

from __future__ import annotations

import asyncio
import logging

import orjson

from xvckit.asgi import Receive, Scope, Send, lifespan, respond
from xvckit.config import Config
from xvckit.gateway import batches, model_list, responses_api
from xvckit.gateway.admin import create_admin_app
from xvckit.gateway.admission import Admission
from xvckit.gateway.admission_redis import RedisAdmission
from xvckit.gateway.balancing import Balancer
from xvckit.gateway.cache import RedisResponseCache, ResponseCache
from xvckit.gateway.dialects import ANTHROPIC, OPENAI, GatewayError
from xvckit.gateway.dispatch import Dispatcher
from xvckit.gateway.exchange import client_request_id, log_answer, request_id
from xvckit.gateway.extensions import Extensions
from xvckit.gateway.idempotency import IdempotencyStore, RedisIdempotencyStore
from xvckit.gateway.keyring import Keyring
from xvckit.gateway.metrics import Metrics
from xvckit.gateway.pacing import Pacer
from xvckit.gateway.pacing_redis import RedisPacer
from xvckit.gateway.proxy import (
    CHAT,
    COMPLETIONS,
    COUNT_TOKENS,
    EMBEDDINGS,
    MESSAGES,
    RESPONSES,
    Endpoint,
    Proxy,
)
from xvckit.gateway.responses_api import Conversations
from xvckit.gateway.routing import Router
from xvckit.gateway.token_estimate import preload
from xvckit.gateway.upstream import Upstreams
from xvckit.providers.prices import price_table
from xvckit.store import Store, StoreError
from xvckit.store.journal import Journal, journal_dir
from xvckit.store.ledger import usage_report
from xvckit.store.ledger_feed import Ledger

log = logging.getLogger("xvckit.gateway")

_PROXIED: dict[str, Endpoint] = {
    "/v1/chat/completions": CHAT,
    "/chat/completions": CHAT,
    "/v1/embeddings": EMBEDDINGS,
    "/embeddings": EMBEDDINGS,
    "/v1/messages": MESSAGES,
    "/v1/messages/count_tokens": COUNT_TOKENS,
    "/v1/responses": RESPONSES,
    "/responses": RESPONSES,
    "/v1/completions": COMPLETIONS,
    "/completions": COMPLETIONS,
}
_METRICS_TYPE = b"text/plain; version=0.0.4; charset=utf-8"


class Gateway:
    """Holds what every request needs; background parts start and stop with the app."""

    def __init__(
        self, config: Config, master_key: str, store: Store, extensions: Extensions | None = None
    ) -> None:
        self.config = config
        self.store = store
        self.extensions = extensions or Extensions()  # prompt routes and mounted apps (MCP)
        self.router = Router(config)
        self.upstreams = Upstreams(config.providers, config.gateway)
        redis = config.redis
        # Limits shared by the replicas through Redis; each holds 1/replicas of them without it.
        self.admission = (
            RedisAdmission(redis.url, self._spent_since, replicas=redis.replicas)
            if redis
            else Admission(self._spent_since)
        )
        self.keyring = Keyring(store, master_key, self.admission.scope)
        self.ledger = _ledger(config, store) if config.ledger.enabled else None
        self.metrics = Metrics(config.models)
        prices = price_table({m: p.model_dump(exclude_none=True) for m, p in config.prices.items()})
        max_body = int(config.gateway.max_body_mb * 1024 * 1024)
        self.admin = create_admin_app(store, self.keyring, config)
        self.pacer = RedisPacer(redis.url, local_share=1 / redis.replicas) if redis else Pacer()
        cache_bytes = int(config.cache.max_mb * 1024 * 1024)
        entry_bytes = int(config.cache.max_entry_mb * 1024 * 1024)
        kept_bytes = int(config.responses.max_mb * 1024 * 1024)
        if config.redis:  # shared by the replicas; each falls back to its own when Redis is away
            self.cache = RedisResponseCache(
                config.redis.url, max_bytes=cache_bytes, max_entry_bytes=entry_bytes
            )
            self.idempotency = RedisIdempotencyStore(config.redis.url)
            kept = RedisResponseCache(
                config.redis.url, prefix="xvckit:responses:", max_bytes=kept_bytes, max_entry_bytes=max_body
            )
        else:
            self.cache = ResponseCache(cache_bytes, entry_bytes)
            self.idempotency = IdempotencyStore()
            kept = ResponseCache(kept_bytes, max_body)
        self.conversations = Conversations(kept, config.responses.ttl_s, self.cache)
        balancer = Balancer(config.gateway.routing, self.pacer, prices)
        self.dispatcher = Dispatcher(self.upstreams, self.router, self.pacer, balancer, config.gateway)
        self.batches = batches.Batches(
            store,
            self.keyring,
            self.router,
            self.upstreams,
            self.admission,
            self.ledger,
            prices,
            max_body,
            config.gateway.batch_sweep_s,
            config.gateway.upstream_deadline_s + 60,
        )
        self.proxy = Proxy(
            self.keyring,
            self.router,
            self.dispatcher,
            self.admission,
            self.ledger,
            self.metrics,
            prices,
            max_body,
            cache=self.cache,
            cache_ttl_s=config.cache.ttl_s,
            idempotency=self.idempotency,
            idempotency_wait_s=config.gateway.queue_timeout_s,
            conversations=self.conversations,
            prompts=self.extensions.prompts,
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind == "http":
            path = scope["path"]
            endpoint = _PROXIED.get(path)
            if endpoint is not None and scope["method"] == "POST":
                await self.proxy.handle(scope, receive, send, endpoint)  # logs its own line
            elif path == "/healthz":  # the probes, polled every few seconds: not in the access log
                await respond(send, 200, b'{"status":"ok"}')
            elif path == "/readyz":
                await self._ready(send)
            else:
                await self._logged(scope, receive, send, endpoint)
        elif kind == "lifespan":
            await lifespan(receive, send, self._startup, self._shutdown)

    async def _logged(self, scope: Scope, receive: Receive, send: Send, endpoint: Endpoint | None) -> None:
        """A request the proxy does not handle, answered with its id and logged with its status."""
        headers = dict(scope["headers"])
        answer = _Answer(send, client_request_id(headers.get(b"x-request-id")))
        try:
            await self._route(scope, receive, answer, endpoint)
        finally:
            log_answer(
                scope["method"], scope["path"], answer.status, answer.request_id, answer.client_id, headers
            )

    async def _route(self, scope: Scope, receive: Receive, send: Send, endpoint: Endpoint | None) -> None:
        path = scope["path"]
        if scope["method"] == "GET" and (
            path in ("/v1/models", "/models") or path.startswith(model_list.PREFIXES)
        ):
            await model_list.answer(scope, send, self.keyring, self.router)
        elif path.startswith(responses_api.PREFIXES):
            await self.conversations.answer(scope, send, self.keyring)
        elif path.startswith(batches.PREFIXES):
            await self.batches.answer(scope, receive, send)
        elif path == "/" and scope["method"] in ("GET", "HEAD"):
            await _root(scope, send)
        elif path.startswith("/admin"):
            await self.admin(scope, receive, send)
        elif path == "/metrics":
            await self._metrics(scope, send)
        elif self.extensions.serves(path):
            await self.extensions.answer(scope, receive, send, self.keyring)
        else:
            await _not_found(scope, send, endpoint)

    async def _startup(self) -> None:
        preload(self.router.upstream_models())  # in a thread: the event loop must not wait on it
        await self.keyring.start()
        if self.ledger:
            self.ledger.start()
        await self.upstreams.start()
        self.batches.start()
        await self.extensions.start()

    async def _shutdown(self) -> None:
        """After uvicorn has drained in-flight requests: flush the ledger, close connections."""
        await self.extensions.stop()
        await self.batches.stop()
        await self.upstreams.close()
        await self.pacer.aclose()
        if isinstance(self.admission, RedisAdmission):
            await self.admission.aclose()
        await self.cache.aclose()
        await self.conversations.aclose()
        await self.idempotency.aclose()
        if self.ledger:
            await self.ledger.close()
        await self.keyring.close()
        self.store.close()

    async def _spent_since(self, scope: str, ident: str, since: float) -> float:
        if self.ledger:
            await self.ledger.leftovers_committed()
        filters = {"key_id": ident} if scope == "key" else {"team_id": ident}
        rows = await asyncio.to_thread(usage_report, self.store, None, since, **filters)
        return float(rows[0]["cost_usd"]) if rows else 0.0

    async def _metrics(self, scope: Scope, send: Send) -> None:
        """The Prometheus exposition, for the master key and admin keys: it names every key and
        team, and their budgets."""
        try:
            if (await self.keyring.authenticate(scope)).role != "admin":
                raise GatewayError(403, "/metrics needs an admin key or the master key", "permission_denied")
        except GatewayError as exc:
            await respond(send, exc.status, OPENAI.error_body(exc.status, exc.message, exc.code, ""))
            return
        backlog = self.ledger.backlog_bytes if self.ledger else None
        body = await self.metrics.exposition(self.admission.remaining(), backlog, self.extensions.metrics())
        await respond(send, 200, body, _METRICS_TYPE)

    async def _ready(self, send: Send) -> None:
        """Ready when the store answers and at least one model routes to a provider."""
        problems = []
        try:
            await asyncio.to_thread(self.store.ping)
        except StoreError as exc:
            problems.append(f"store: {exc}")
        if not self.config.models:
            problems.append("config: no model routes")
        body = {"status": "not ready" if problems else "ready", "problems": problems}
        degraded = []  # still serving: a replica on its own state beats no replica
        for part, what in (
            (self.pacer, "pacing"),
            (self.admission, f"key and team limits (1/{getattr(self.admission, 'replicas', 1)} of each)"),
            (self.cache, "response cache"),
            (self.idempotency, "idempotency"),
        ):
            reason = getattr(part, "degraded", None)
            if reason:
                degraded.append(f"redis: {reason}; {what} on this replica's own state")
        if self.ledger and not self.ledger.writer_running:
            degraded.append("usage ledger: the writer is not running; records wait in the journal")
        if degraded:
            body["degraded"] = degraded
        if self.ledger:
            body["ledger_backlog_bytes"] = self.ledger.backlog_bytes
        disabled = self.pacer.disabled()
        if disabled:
            body["disabled_upstream_keys"] = {str(lane): reason for lane, reason in disabled.items()}
        await respond(send, 503 if problems else 200, orjson.dumps(body))


def _ledger(config: Config, store: Store) -> Ledger:
    """The usage ledger, journaled in the data folder: the hot path appends, a process commits."""
    journal = Journal(journal_dir(store.data_dir, store.url))
    return Ledger(store, journal, retention_days=config.ledger.retention_days)


async def _root(scope: Scope, send: Send) -> None:
    """What a client probing the base URL (HEAD / or GET /) is told: a gateway is here."""
    body = b'{"service":"xvckit","status":"ok","openai_base_url":"/v1","anthropic_base_url":"/"}'
    if scope["method"] == "HEAD":
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode()),
                ],
            }
        )
        await send({"type": "http.response.body", "body": b""})
        return
    await respond(send, 200, body)


class _Answer:
    """The client's `send` for a request the proxy does not handle: the response carries an
    `x-request-id` (the caller's own when it sent a sane one) and its status is kept for the
    access log (500 when the app sent none: the server answers that)."""

    __slots__ = ("_send", "client_id", "request_id", "status")

    def __init__(self, send: Send, client_id: str | None) -> None:
        self._send = send
        self.client_id = client_id
        self.request_id = request_id()
        self.status = 500

    async def __call__(self, message: dict) -> None:
        if message["type"] == "http.response.start":
            self.status = message["status"]
            trace_id = (self.client_id or self.request_id).encode()
            message = {**message, "headers": [*message.get("headers", ()), (b"x-request-id", trace_id)]}
        await self._send(message)


async def _not_found(scope: Scope, send: Send, endpoint: Endpoint | None) -> None:
    if endpoint is not None:
        status, message = 405, f"{scope['method']} is not allowed on {scope['path']}; use POST"
    else:
        status, message = 404, f"no such endpoint: {scope['method']} {scope['path']}"
    dialect = ANTHROPIC if scope["path"].startswith("/v1/messages") else OPENAI
    await respond(send, status, dialect.error_body(status, message, "not_found", ""))
