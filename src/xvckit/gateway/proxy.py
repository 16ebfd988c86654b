"""The proxy step: authenticate, read, route, forward, stream back, read usage.

Bodies are parsed once (to find the model and the stream flag) and re-encoded only
when the gateway must change them; upstream bytes are forwarded as whole SSE events
the moment they arrive.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, replace

import orjson

from xvckit.asgi import JSON, BodyTooLarge, ClientGone, Receive, Scope, Send, read_body
from xvckit.gateway import crossing
from xvckit.gateway.admission import Admission, BudgetNotLoaded
from xvckit.gateway.cache import CachedResponse, cache_key, replay, replay_as_stream, stored_headers
from xvckit.gateway.dialects import ANTHROPIC, OPENAI, Dialect, GatewayError
from xvckit.gateway.dispatch import Dispatcher
from xvckit.gateway.exchange import Exchange, client_request_id, request_id
from xvckit.gateway.http1 import Response, TooLarge, Upstream
from xvckit.gateway.idempotency import HEADER as IDEMPOTENCY_KEY
from xvckit.gateway.idempotency import conflict_error, in_progress_error, request_hash, scoped_key
from xvckit.gateway.keyring import Keyring, Principal
from xvckit.gateway.metrics import Metrics
from xvckit.gateway.routing import Deployment, Router
from xvckit.gateway.token_estimate import estimate_parts
from xvckit.gateway.upstream import failure
from xvckit.http_server import ON_DISCONNECT
from xvckit.providers import Usage, anthropic, openai
from xvckit.providers.prices import PriceTable
from xvckit.providers.sse import EventSplitter, event_json
from xvckit.store.ledger_feed import Ledger

log = logging.getLogger("xvckit.gateway")

# Answers kept for an Idempotency-Key retry are at most this large (a larger one is not kept).
MAX_KEPT_BYTES = 16 << 20
# Statuses of answers a retry must not get again: the retry should call upstream.
_RETRYABLE = frozenset({408, 409, 429})

_HOP_BY_HOP = frozenset(
    {
        b"connection",
        b"keep-alive",
        b"transfer-encoding",
        b"content-length",
        b"content-encoding",
        b"server",
        b"date",
        b"x-request-id",
    }
)


@dataclass(frozen=True, slots=True)
class Endpoint:
    name: str
    dialect: Dialect
    upstream_path: str  # appended to the provider's base_url
    provider_kind: str
    streams: bool
    crosses: bool = False  # can be served by the other dialect's provider (translated)


CHAT = Endpoint("chat", OPENAI, "/chat/completions", "openai", True, crosses=True)
EMBEDDINGS = Endpoint("embeddings", OPENAI, "/embeddings", "openai", False)
MESSAGES = Endpoint("messages", ANTHROPIC, "/v1/messages", "anthropic", True, crosses=True)
COUNT_TOKENS = Endpoint("count_tokens", ANTHROPIC, "/v1/messages/count_tokens", "anthropic", False)


class Proxy:
    def __init__(
        self,
        keyring: Keyring,
        router: Router,
        dispatcher: Dispatcher,
        admission: Admission,
        ledger: Ledger | None,
        metrics: Metrics,
        prices: PriceTable,
        max_body: int,
        cache=None,
        cache_ttl_s: float = 3600.0,
        idempotency=None,
        idempotency_wait_s: float = 60.0,
    ) -> None:
        self.keyring = keyring
        self.router = router
        self.dispatcher = dispatcher
        self.admission = admission
        self.ledger = ledger
        self.metrics = metrics
        self.prices = prices
        self.max_body = max_body
        self.cache = cache  # ResponseCache | RedisResponseCache | None
        self.cache_ttl_s = cache_ttl_s
        self.idempotency = idempotency  # IdempotencyStore | RedisIdempotencyStore | None
        self.idempotency_wait_s = idempotency_wait_s

    async def handle(self, scope: Scope, receive: Receive, send: Send, endpoint: Endpoint) -> None:
        headers = dict(scope["headers"])
        ex = Exchange(request_id(), endpoint.name)
        ex.client_request_id = client_request_id(headers.get(b"x-request-id"))
        ex.client = headers.get(b"user-agent", b"").decode("latin-1")[:200] or None
        watch: DisconnectWatch | None = None
        owned: str | None = None  # the Idempotency-Key this request answers for (finish or abandon)
        capture: _Capture | None = None
        gateway_failed = False
        self.metrics.in_flight += 1
        try:
            who = self.keyring.authenticate(scope)
            ex.key_id, ex.team_id = who.key_id, who.team_id
            body = await self._read_json_body(scope, receive, headers.get(b"content-type", b""))
            payload = _parse_object(body)
            deployment = self.router.resolve(payload.get("model"))
            ex.model = payload["model"]
            ex.served_by(deployment)
            if deployment.provider.kind != endpoint.provider_kind and not endpoint.crosses:
                raise GatewayError(
                    400,
                    f"model '{ex.model}' is served by the {deployment.provider.kind} provider "
                    f"'{ex.provider}', which has no {endpoint.name} endpoint",
                    "dialect_mismatch",
                )
            ex.stream = endpoint.streams and payload.get("stream") is True
            include_usage = _asks_usage(payload)
            # Both hashes are over the request as the client sent it (`_requests` changes it).
            idempotency_value = headers.get(IDEMPOTENCY_KEY)
            if idempotency_value is not None and self.idempotency is not None and endpoint.crosses:
                key = scoped_key(who.key_id, idempotency_value)
                stored = await self._claim(key, request_hash(payload))
                if stored is not None:
                    await self._answer_stored(send, endpoint, stored, include_usage, b"idempotent-replay", ex)
                    return
                owned = key
            wanted = (
                endpoint.crosses
                and self.cache is not None
                and _cache_wanted(headers, deployment, payload, who.key.cache if who.key else None)
            )
            entry_key = (
                cache_key(endpoint.name, deployment.model, payload, headers=headers, scope=ex.team_id or "")
                if wanted
                else None
            )
            tokens = None  # input tokens + output allowance: reserved by admission and by pacing
            if who.scopes:  # the master key has no key or team to hold to
                given, allowed = estimate_parts(payload, deployment.model)
                tokens, usd = given + allowed, self.prices.estimate_usd(deployment.model, given, allowed)
                try:
                    ex.ticket = self.admission.try_admit(who.scopes, ex.model, tokens, usd)
                except BudgetNotLoaded:
                    ex.ticket = await self.admission.admit(who.scopes, ex.model, tokens, usd)
            if entry_key is not None:
                hit = await self.cache.get(entry_key)
                if hit is not None and hit.status == 200:
                    await self._answer_stored(send, endpoint, hit, include_usage, b"hit", ex)
                    if owned:
                        await self.idempotency.finish(owned, hit)
                        owned = None
                    return
            if owned or entry_key:
                limit = MAX_KEPT_BYTES if owned else self.cache.max_entry_bytes
                send = capture = _Capture(send, limit, b"miss" if entry_key else None)
            request_for, hide_usage = _requests(payload, body, ex.stream, endpoint)
            # A request with an Idempotency-Key runs to its end when its client leaves: the
            # client's retry is to find the answer.
            watch = None if owned else DisconnectWatch(scope, receive)
            priority = _priority(headers.get(b"x-xvckit-priority"), who)
            if tokens is None:  # not counted before the cache was asked: a hit needs none
                tokens = sum(estimate_parts(payload, deployment.model))
            await self._forward(scope, send, endpoint, request_for, tokens, priority, hide_usage, ex, watch)
            complete = entry_key and capture.complete and ex.status == 200 and ex.error is None
            if complete and ex.upstream_model == deployment.model:  # not a fallback's answer
                await self.cache.put(entry_key, capture.entry(ex, endpoint.dialect), self.cache_ttl_s)
        except GatewayError as exc:
            gateway_failed = True
            if watch:
                watch.close()
            ex.status, ex.error = exc.status, exc.code or "error"
            ex.overhead_ms = _ms_since(ex.started) - ex.upstream_ms
            self._finish(ex)
            await _send_error(send, endpoint.dialect, exc, ex)
        except ClientGone:
            ex.status, ex.error = 499, "client_disconnected"
            self._finish(ex)
        except asyncio.CancelledError:
            if watch is None or not watch.gone:
                raise
            asyncio.current_task().uncancel()
            ex.status, ex.error = 499, "client_disconnected"
            self._finish(ex)
        finally:
            if watch:
                watch.close()
            if owned:
                await self._settle_key(owned, capture, ex, gateway_failed, endpoint.dialect)
            self.metrics.in_flight -= 1

    async def _claim(self, key: str, digest: str) -> CachedResponse | None:
        """Own an Idempotency-Key (None: call upstream) or get the answer it already has;
        422 for another body under the key, 409 when its first request is still running."""
        deadline = time.monotonic() + self.idempotency_wait_s
        while True:
            begun = await self.idempotency.begin(key, digest)
            if begun.kind == "first":
                return None
            if begun.kind == "replay":
                return begun.response
            if begun.kind == "conflict":
                raise conflict_error()
            left = deadline - time.monotonic()
            if left <= 0:
                raise in_progress_error()
            response = await self.idempotency.wait_for(key, left)
            if response is not None:
                return response
            # the first request gave up (or its lease ran out): begin again

    async def _settle_key(
        self, key: str, capture: _Capture | None, ex: Exchange, gateway_failed: bool, dialect: Dialect
    ) -> None:
        """Keep the answer the client got for its retries, unless a retry should try again."""
        status = capture.status if capture is not None else 0
        keep = (
            capture is not None
            and capture.complete
            and not gateway_failed
            and (
                (200 <= status < 300 and ex.error is None)
                or (400 <= status < 500 and status not in _RETRYABLE)
            )
        )
        try:
            if keep:
                await self.idempotency.finish(key, capture.entry(ex, dialect))
            else:
                await self.idempotency.abandon(key)
        except Exception as exc:  # the client has its answer; a retry may call upstream again
            log.warning("idempotency record for %s not settled: %s", ex.request_id, type(exc).__name__)

    async def _answer_stored(
        self,
        send: Send,
        endpoint: Endpoint,
        entry: CachedResponse,
        include_usage: bool,
        how: bytes,
        ex: Exchange,
    ) -> None:
        """Answer with a stored response (a cache hit or an idempotent replay): no upstream call,
        no cost; what the first call cost is recorded as saved."""
        status, headers, data = replay(
            entry, endpoint.dialect.name, stream=ex.stream, include_usage=include_usage
        )
        ex.status, ex.cache_hit, ex.cost_saved_usd = status, True, entry.cost_usd
        if status != 200:
            ex.error = f"upstream_{status}"
        headers += [(b"x-request-id", ex.trace_id.encode()), (b"x-xvckit-cache", how)]
        ex.overhead_ms = _ms_since(ex.started)
        headers.append(ex.overhead_header())
        self._finish(ex)
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": data})

    def _finish(self, ex: Exchange) -> None:
        """Settle, record and count the request: done before the client gets its last bytes,
        so a response a client received in full is always in the ledger (journaled on disk)."""
        cost = (self.prices.cost_usd(ex.upstream_model, ex.usage) or 0.0) if ex.upstream_model else 0.0
        ex.cost_usd = cost
        used = ex.usage.input_tokens + ex.usage.output_tokens
        if ex.ticket is not None:
            self.admission.settle(ex.ticket, used, cost)
        if ex.attempt is not None:
            self.dispatcher.settle(ex.attempt, used)
        if self.ledger is not None:
            try:
                self.ledger.record(ex.ledger_row(cost))
            except Exception as exc:  # the response still goes out; the loss is said loudly
                log.error("ledger write failed for %s: %s", ex.request_id, type(exc).__name__)
        self.metrics.observe(ex, cost)
        ex.log()

    async def _read_json_body(self, scope: Scope, receive: Receive, content_type: bytes) -> bytes:
        if content_type.split(b";", 1)[0].strip().lower() != JSON:
            raise GatewayError(
                415,
                "the request body must be JSON (Content-Type: application/json)",
                "unsupported_content_type",
            )
        try:
            return await read_body(scope, receive, self.max_body)
        except BodyTooLarge:
            raise GatewayError(
                413,
                f"the request body is larger than the gateway's limit of {self.max_body} bytes",
                "request_too_large",
            ) from None

    async def _forward(
        self,
        scope: Scope,
        send: Send,
        endpoint: Endpoint,
        request_for: Callable[[Deployment], tuple[str, bytes]],
        tokens: int,
        priority: int,
        hide_usage: bool,
        ex: Exchange,
        watch: DisconnectWatch | None,
    ) -> None:
        ex.upstream_started = time.perf_counter()
        try:
            attempt = await self.dispatcher.call(
                scope, ex.model, request_for, tokens, priority, endpoint.crosses
            )
        except GatewayError:
            ex.upstream_ms = _ms_since(ex.upstream_started)
            raise
        ex.attempt, ex.retries = attempt, attempt.retries
        ex.served_by(attempt.deployment)
        upstream_kind = attempt.deployment.provider.kind
        response = attempt.response
        try:
            ex.status = response.status
            if ex.stream and response.content_type == b"text/event-stream":
                await self._stream_back(send, endpoint, upstream_kind, response, hide_usage, ex, watch)
            else:
                try:
                    data = attempt.body if attempt.body is not None else await response.read()
                except Upstream as exc:
                    ex.upstream_ms = _ms_since(ex.upstream_started)
                    raise failure(exc, ex.provider) from None
                await self._send_whole(send, endpoint, upstream_kind, response, data, ex, watch)
        finally:
            response.close()

    async def _send_whole(
        self,
        send: Send,
        endpoint: Endpoint,
        upstream_kind: str,
        response: Response,
        data: bytes,
        ex: Exchange,
        watch: DisconnectWatch | None,
    ) -> None:
        upstream_done = time.perf_counter()
        ex.upstream_ms = (upstream_done - ex.upstream_started) * 1000
        if response.status == 200:
            ex.usage = _usage_of_body(endpoint, upstream_kind, data)
        else:
            ex.error = f"upstream_{response.status}"
        if upstream_kind != endpoint.provider_kind:
            data = crossing.response_body(endpoint.provider_kind, response.status, data, ex.model)
        headers = _response_headers(response, ex)
        headers.append((b"content-length", str(len(data)).encode()))
        ex.overhead_ms = _overhead_ms(ex, upstream_done)
        headers.append(ex.overhead_header())
        if watch:
            watch.close()
        self._finish(ex)
        await send({"type": "http.response.start", "status": response.status, "headers": headers})
        await send({"type": "http.response.body", "body": data})

    async def _stream_back(
        self,
        send: Send,
        endpoint: Endpoint,
        upstream_kind: str,
        response: Response,
        hide_usage: bool,
        ex: Exchange,
        watch: DisconnectWatch | None,
    ) -> None:
        """Forward whole SSE events as they arrive. The end-of-stream event is held back until
        the ledger has the request; a broken upstream ends in a well-formed error event."""
        headers_in = time.perf_counter()
        headers = _response_headers(response, ex)
        ex.overhead_ms = _overhead_ms(ex, headers_in)
        headers.append(ex.overhead_header())
        await send({"type": "http.response.start", "status": response.status, "headers": headers})
        translate = None
        if upstream_kind != endpoint.provider_kind:
            translate = crossing.stream_translator(endpoint.provider_kind, ex.model, not hide_usage)
        reader = _StreamReader(
            upstream_kind == "openai",
            hide_usage and translate is None,
            self.dispatcher.upstreams.max_event_bytes,
            translate,
        )
        held = b""
        broken: GatewayError | None = None
        try:
            async for data in response.chunks():
                out = reader.feed(data)
                if ex.ttft_ms is None and out:
                    ex.ttft_ms = _ms_since(ex.started)
                if reader.complete:
                    held += out
                elif out:
                    await send({"type": "http.response.body", "body": out, "more_body": True})
        except Upstream as exc:
            broken = failure(exc, ex.provider or "?")
        ex.upstream_ms = _ms_since(ex.upstream_started)
        ex.usage = reader.usage
        if broken is None and not reader.complete:
            broken = GatewayError(
                502, f"upstream '{ex.provider}' ended the stream early", "upstream_incomplete"
            )
        if watch:
            watch.close()
        if broken:
            ex.error = broken.code
            held += endpoint.dialect.stream_error_event(
                broken.status, broken.message, broken.code, ex.trace_id
            )
        self._finish(ex)
        await send({"type": "http.response.body", "body": held, "more_body": False})


class _Capture:
    """The client's `send`, keeping a copy of the answer (up to `limit` bytes of body) for the
    response cache and Idempotency-Key retries; `tag` marks the response (`x-xvckit-cache`)."""

    __slots__ = ("_send", "body", "complete", "headers", "limit", "status", "tag")

    def __init__(self, send: Send, limit: int, tag: bytes | None) -> None:
        self._send = send
        self.limit = limit
        self.tag = tag
        self.status = 0
        self.headers: list[tuple[bytes, bytes]] = []
        self.body = bytearray()
        self.complete = False

    async def __call__(self, message: dict) -> None:
        if message["type"] == "http.response.start":
            self.status, self.headers = message["status"], message["headers"]
            if self.tag is not None:
                message["headers"] = [*self.headers, (b"x-xvckit-cache", self.tag)]
        elif message["type"] == "http.response.body" and self.limit >= 0:
            chunk = message.get("body", b"")
            if len(self.body) + len(chunk) > self.limit:
                self.limit, self.body = -1, bytearray()  # too large to keep
            else:
                self.body += chunk
                self.complete = not message.get("more_body", False)
        await self._send(message)

    def entry(self, ex: Exchange, dialect: Dialect) -> CachedResponse:
        streamed = any(n == b"content-type" and v.startswith(b"text/event-stream") for n, v in self.headers)
        entry = CachedResponse(
            self.status, stored_headers(self.headers), bytes(self.body), streamed, ex.usage, ex.cost_usd
        )
        if streamed and self.status == 200 and dialect is OPENAI:
            # with the usage chunk the client may not have asked for (made from `ex.usage`), so
            # that a whole-body replay has its usage
            entry = replace(entry, body=replay_as_stream(entry, OPENAI.name, include_usage=True))
        return entry


def _asks_usage(payload: dict) -> bool:
    options = payload.get("stream_options")
    return isinstance(options, dict) and options.get("include_usage") is True


def _priority(asked: bytes | None, who: Principal) -> int:
    """Interactive (1) goes before batch (0): the request's `x-xvckit-priority`, else the key's."""
    if asked is not None:
        return 0 if asked.strip().lower() == b"batch" else 1
    return who.priority


def _cache_wanted(
    headers: dict[bytes, bytes], deployment: Deployment, payload: dict, key_setting: str | None
) -> bool:
    """`x-xvckit-cache: on|off` on the request, else the key's `cache` setting, else the model's."""
    asked = headers.get(b"x-xvckit-cache")
    if asked is not None:
        asked = asked.strip().lower()
        if asked not in (b"on", b"off"):
            raise GatewayError(400, "the x-xvckit-cache header must be 'on' or 'off'", "invalid_cache_header")
        return asked == b"on"
    setting = key_setting or deployment.cache
    if setting == "deterministic":
        temperature = payload.get("temperature")
        return type(temperature) in (int, float) and temperature == 0
    return setting == "on"


class _StreamReader:
    """Reads usage and the end marker out of an upstream stream (in the upstream's dialect),
    drops the usage chunk the gateway asked an OpenAI upstream for when the client did not,
    and translates each event when the client speaks the other dialect. An event that grows
    past `max_event` bytes without ending ends the stream (`TooLarge`)."""

    __slots__ = ("_hide_usage", "_max_event", "_openai", "_splitter", "_translate", "complete", "usage")

    def __init__(
        self,
        openai_upstream: bool,
        hide_usage: bool,
        max_event: int,
        translate: Callable[[bytes], bytes] | None = None,
    ) -> None:
        self._openai = openai_upstream
        self._hide_usage = hide_usage
        self._max_event = max_event
        self._translate = translate
        self._splitter = EventSplitter()
        self.usage = Usage()
        self.complete = False

    def feed(self, data: bytes) -> bytes:
        events = self._splitter.feed(data)
        if not events:
            # An unfinished event outgrows the limit only in feeds that complete none: checked here.
            if len(self._splitter.pending) > self._max_event:
                raise TooLarge("an SSE event", self._max_event)
            return b""
        keep = [event for event in events if self._keep(event)]
        if self._translate is not None:
            keep = [self._translate(event) for event in keep]
        return keep[0] if len(keep) == 1 else b"".join(keep)

    def _keep(self, event: bytes) -> bool:
        if self._openai:
            if event.startswith(b"data: [DONE]"):
                self.complete = True
            elif b'"usage"' in event and b'"usage":null' not in event and b'"usage": null' not in event:
                chunk = event_json(event)
                if chunk and chunk.get("usage"):
                    self.usage = openai.usage_from_obj(chunk["usage"])
                    return not (self._hide_usage and openai.is_usage_only_chunk(chunk))
            return True
        if event.startswith((b"event: message_start", b"event: message_delta")):
            parsed = event_json(event)
            found = anthropic.usage_from_event(parsed) if parsed else None
            if found:
                self.usage.add(found)
        elif event.startswith(b"event: message_stop"):
            self.complete = True
        return True


class DisconnectWatch:
    """Cancels the request's task when its client goes away, so the upstream call stops
    too (no tokens are spent on an answer nobody reads). Closed before the last send.

    The gateway's own server calls back when the connection drops (its `ON_DISCONNECT` scope
    extension: nothing to schedule per request); under another ASGI server a task waits in
    `receive()` for `http.disconnect`."""

    __slots__ = ("_hook", "_task", "_watcher", "gone")

    def __init__(self, scope: Scope, receive: Receive) -> None:
        self.gone = False
        self._task = asyncio.current_task()
        self._watcher: asyncio.Task | None = None
        self._hook = (scope.get("extensions") or {}).get(ON_DISCONNECT)
        if self._hook is not None:
            self._hook(self._left)
        else:
            self._watcher = asyncio.get_running_loop().create_task(self._watch(receive))

    def _left(self) -> None:
        self.gone = True
        self._task.cancel()

    async def _watch(self, receive: Receive) -> None:
        while (await receive())["type"] != "http.disconnect":
            pass
        self._left()

    def close(self) -> None:
        if self._hook is not None:
            self._hook(None)
        if self._watcher is not None:
            self._watcher.cancel()


def _requests(
    payload: dict, body: bytes, stream: bool, endpoint: Endpoint
) -> tuple[Callable[[Deployment], tuple[str, bytes]], bool]:
    """Where and what to send to a deployment, and whether to hide a usage chunk the client
    did not ask for. In the client's own dialect only `model` and `stream_options` may
    change, every other field passes untouched, and an unchanged request is sent as the
    very bytes the client sent; a provider of the other dialect gets a translation."""
    hide_usage = False
    if stream and endpoint is CHAT:
        options = payload.get("stream_options")
        if not (isinstance(options, dict) and options.get("include_usage")):
            payload["stream_options"] = {
                **(options if isinstance(options, dict) else {}),
                "include_usage": True,
            }
            hide_usage = True
    asked = payload["model"]

    def request_for(deployment: Deployment) -> tuple[str, bytes]:
        kind = deployment.provider.kind
        if kind != endpoint.provider_kind:
            return crossing.CHAT_PATH[kind], crossing.request_body(kind, payload, deployment.model)
        if deployment.model == asked and not hide_usage:
            return endpoint.upstream_path, body
        return endpoint.upstream_path, orjson.dumps({**payload, "model": deployment.model})

    return request_for, hide_usage


def _parse_object(body: bytes) -> dict:
    try:
        payload = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise GatewayError(400, f"the request body is not valid JSON: {exc}", "invalid_json") from None
    if not isinstance(payload, dict):
        raise GatewayError(400, "the request body must be a JSON object", "invalid_json")
    return payload


def _usage_of_body(endpoint: Endpoint, upstream_kind: str, data: bytes) -> Usage:
    try:
        body = orjson.loads(data)
    except orjson.JSONDecodeError:
        return Usage()
    if not isinstance(body, dict):
        return Usage()
    if endpoint is COUNT_TOKENS:
        return Usage(input_tokens=body.get("input_tokens") or 0)
    return (anthropic if upstream_kind == "anthropic" else openai).usage_from_body(body)


def _response_headers(response: Response, ex: Exchange) -> list[tuple[bytes, bytes]]:
    headers = [
        (b"x-request-id", ex.trace_id.encode()),
        (b"x-xvckit-deployment", ex.deployment.encode()),
    ]
    for name, value in response.headers:
        if name == b"x-request-id":
            headers.append((b"x-upstream-request-id", value))
        elif name not in _HOP_BY_HOP:
            headers.append((name, value))
    return headers


async def _send_error(send: Send, dialect: Dialect, exc: GatewayError, ex: Exchange) -> None:
    body = dialect.error_body(exc.status, exc.message, exc.code, ex.trace_id)
    headers = [
        (b"content-type", JSON),
        (b"content-length", str(len(body)).encode()),
        (b"x-request-id", ex.trace_id.encode()),
        ex.overhead_header(),
        *((name.encode(), value.encode()) for name, value in exc.headers.items()),
    ]
    await send({"type": "http.response.start", "status": exc.status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def _overhead_ms(ex: Exchange, upstream_ready: float) -> float:
    """Time spent in the gateway itself: before the upstream call and after its answer."""
    return ((ex.upstream_started - ex.started) + (time.perf_counter() - upstream_ready)) * 1000


def _ms_since(start: float) -> float:
    return (time.perf_counter() - start) * 1000
