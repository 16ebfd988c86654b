"""The proxy step: authenticate, read, route, forward, stream back, read usage.

Bodies are parsed once (to find the model and the stream flag) and re-encoded only
when the gateway must change them; upstream bytes are forwarded as whole SSE events
the moment they arrive.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, replace

import orjson

from xvckit.asgi import JSON, BodyTooLarge, ClientGone, Receive, Scope, Send, read_body
from xvckit.gateway import crossing
from xvckit.gateway.admission import BUDGET_LEFT_HEADER, Admission, BudgetNotLoaded
from xvckit.gateway.cache import (
    CachedResponse,
    cache_key,
    replay,
    replay_as_body,
    replay_as_stream,
    stored_headers,
)
from xvckit.gateway.dialects import ANTHROPIC, OPENAI, Dialect, GatewayError
from xvckit.gateway.dialects import RESPONSES as RESPONSES_DIALECT
from xvckit.gateway.dispatch import Dispatcher
from xvckit.gateway.exchange import Exchange, client_request_id, request_id, user_agent
from xvckit.gateway.http1 import Response, TooLarge, Upstream
from xvckit.gateway.idempotency import HEADER as IDEMPOTENCY_KEY
from xvckit.gateway.idempotency import conflict_error, in_progress_error, request_hash, scoped_key
from xvckit.gateway.keyring import Keyring, Principal
from xvckit.gateway.metrics import Metrics
from xvckit.gateway.prompting import HEADER as PROMPT_HEADER
from xvckit.gateway.prompting import VARIABLES_FIELD, PromptLibrary, render_into
from xvckit.gateway.responses_api import Conversations, ResponsesCall, owner, wire
from xvckit.gateway.routing import Deployment, Router
from xvckit.gateway.token_estimate import estimate_parts, output_ceiling, streamed_output_tokens
from xvckit.gateway.upstream import failure
from xvckit.http_server import ON_DISCONNECT
from xvckit.providers import Usage, anthropic, openai
from xvckit.providers.completions import DEFAULT_MAX_TOKENS as LEGACY_MAX_TOKENS
from xvckit.providers.prices import PER, PriceTable
from xvckit.providers.sse import EventSplitter, event_json
from xvckit.providers.translate import InvalidRequest
from xvckit.providers.usage import count as usage_count
from xvckit.store.ledger_feed import Ledger

log = logging.getLogger("xvckit.gateway")

# Answers kept for an Idempotency-Key retry are at most this large (a larger one is not kept).
MAX_KEPT_BYTES = 16 << 20
# Statuses of answers a retry must not get again: the retry should call upstream.
_RETRYABLE = frozenset({408, 409, 429})
# orjson encodes JSON at most this deep, and the gateway encodes a request again (the cache
# key, a changed body, a translation): a deeper one is refused as it arrives.
MAX_DEPTH = 252  # orjson nests to 255; cache keys and Idempotency-Key hashes wrap a body in 2 more
MAX_MODEL_CHARS = 256
# The first bytes of a stream kept to count its output when it ends without its usage.
STREAM_SAMPLE_BYTES = 64 << 10
# Upstream answers the gateway reads may hold anything: reading one that is malformed raises
# one of these (the upstream's fault: a 502).
_UNREADABLE = (TypeError, ValueError, AttributeError, KeyError, IndexError)
# The events that end a Responses API stream.
_RESPONSE_ENDS = (b"event: response.completed", b"event: response.incomplete", b"event: response.failed")
_RESPONSE_FAILED = (b"event: response.failed", b"event: error")
# The fields that limit a request's output.
_OUTPUT_FIELDS = ("max_completion_tokens", "max_tokens")

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
    output_field: str | None = None  # the field that limits its output (None: it makes none)
    replays: bool = False  # its answers are kept and given again (response cache, Idempotency-Key)


CHAT = Endpoint("chat", OPENAI, "/chat/completions", "openai", True, True, "max_completion_tokens", True)
EMBEDDINGS = Endpoint("embeddings", OPENAI, "/embeddings", "openai", False)
MESSAGES = Endpoint("messages", ANTHROPIC, "/v1/messages", "anthropic", True, True, "max_tokens", True)
COUNT_TOKENS = Endpoint("count_tokens", ANTHROPIC, "/v1/messages/count_tokens", "anthropic", False)
RESPONSES = Endpoint(
    "responses", RESPONSES_DIALECT, "/responses", "responses", True, True, "max_output_tokens", True
)
# OpenAI's legacy completions: passed on to OpenAI-dialect providers, crossed to Anthropic as chat.
COMPLETIONS = Endpoint("completions", OPENAI, "/completions", "openai", True, True, "max_tokens")


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
        conversations: Conversations | None = None,
        prompts: PromptLibrary | None = None,
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
        self.conversations = conversations
        self.prompts = prompts  # the library `x-xvckit-prompt` names prompts of

    async def handle(self, scope: Scope, receive: Receive, send: Send, endpoint: Endpoint) -> None:
        headers = dict(scope["headers"])
        ex = Exchange(request_id(), endpoint.name, path=scope["path"])
        ex.client_request_id = client_request_id(headers.get(b"x-request-id"))
        ex.client = user_agent(headers)
        watch: DisconnectWatch | None = None
        owned: str | None = None  # the Idempotency-Key this request answers for (finish or abandon)
        capture: _Capture | None = None
        gateway_failed = False
        self.metrics.in_flight += 1
        try:
            who = self.keyring.known(scope) or await self.keyring.authenticate(scope)
            ex.key_id, ex.team_id, ex.authenticated = who.key_id, who.team_id, True
            body = await self._read_json_body(scope, receive, headers.get(b"content-type", b""))
            payload = _parse_object(body)
            if PROMPT_HEADER in headers or VARIABLES_FIELD in payload:
                header = headers.get(PROMPT_HEADER)
                ex.prompt = await render_into(self.prompts, who, header, payload, endpoint.name)
                body = orjson.dumps(payload)
            deployment = self.router.resolve(_model_name(payload))
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
            if endpoint is COMPLETIONS and payload.get("max_tokens") is None:
                payload["max_tokens"] = LEGACY_MAX_TOKENS  # the API's default: what a budget reserves
            estimated = payload  # what the input estimate reads
            if endpoint is RESPONSES:
                who_owns = owner(who)
                earlier = await self.conversations.earlier(who_owns, payload)
                ex.responses = ResponsesCall(payload, body, earlier, who_owns)
                estimated = ex.responses.whole_request()
            include_usage = _asks_usage(payload)
            # Both hashes are over the request as the client sent it (`_requests` changes it).
            idempotency_value = headers.get(IDEMPOTENCY_KEY)
            if idempotency_value is not None and self.idempotency is not None and endpoint.replays:
                key = scoped_key(who.key_id, idempotency_value)
                stored = await self._claim(key, request_hash(payload))
                if stored is not None:
                    await self._answer_stored(send, endpoint, stored, include_usage, b"idempotent-replay", ex)
                    return
                owned = key
            wanted = (
                endpoint.replays
                and self.cache is not None
                and _cache_wanted(headers, deployment, payload, who.key.cache if who.key else None)
            )
            entry_key = (
                cache_key(
                    endpoint.name,
                    deployment.model,
                    payload,
                    headers=headers,
                    scope=_cache_scope(who, payload),
                )
                if wanted
                else None
            )
            if ex.responses is not None:
                ex.responses.cache_key = entry_key  # a DELETE of the response drops the entry
            tokens = None  # input tokens + output allowance: reserved by admission and by pacing
            if who.scopes:  # the master key has no key or team to hold to
                model = deployment.model
                given, allowed = estimate_parts(estimated, model)
                ex.input_estimate, tokens = given, given + allowed
                # a budget pays for all the output the request can make, not the pacing estimate
                most = output_ceiling(payload, model, allowed) if endpoint.output_field else allowed
                usd = self.prices.estimate_usd(model, given, most)
                try:
                    try:
                        ex.ticket = self.admission.try_admit(who.scopes, ex.model, tokens, usd)
                    except BudgetNotLoaded:
                        ex.ticket = await self.admission.admit(who.scopes, ex.model, tokens, usd)
                except GatewayError as refused:
                    tokens = await self._admit_capped(
                        refused, who, ex, endpoint, payload, model, given, allowed, most
                    )
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
            changed = ex.max_tokens_capped is not None
            if ex.responses is not None:
                call, hide_usage = ex.responses, False
                request_for = lambda deployment: call.request_for(deployment, changed)  # noqa: E731
            else:
                request_for, hide_usage = _requests(payload, body, ex.stream, endpoint, changed)
            # A request with an Idempotency-Key runs to its end when its client leaves: the
            # client's retry is to find the answer.
            watch = None if owned else DisconnectWatch(scope, receive)
            priority = _priority(headers.get(b"x-xvckit-priority"), who)
            if tokens is None:  # not counted before the cache was asked: a hit needs none
                given, allowed = estimate_parts(estimated, deployment.model)
                ex.input_estimate, tokens = given, given + allowed
            await self._forward(scope, send, endpoint, request_for, tokens, priority, hide_usage, ex, watch)
            complete = entry_key and capture.complete and ex.status == 200 and ex.error is None
            # not a fallback's answer, nor one cut short for the caller's budget
            if complete and ex.upstream_model == deployment.model and not changed:
                await self.cache.put(entry_key, capture.entry(ex, endpoint.dialect), self.cache_ttl_s)
        except GatewayError as exc:
            gateway_failed = True
            await self._fail(send, endpoint, exc, ex, watch)
        except ClientGone:
            self._end(ex, 499, "client_disconnected")
        except asyncio.CancelledError:
            if watch is None or not watch.gone:  # the server is stopping: settled and ledgered still
                self._end(ex, 499, "cancelled")
                raise
            asyncio.current_task().uncancel()
            self._end(ex, 499, "client_disconnected")
        except Exception:
            gateway_failed = True
            log.exception("internal error in request %s", ex.request_id)
            internal = GatewayError(
                500,
                "the gateway failed on this request (an internal error, logged under its id)",
                "internal_error",
            )
            await self._fail(send, endpoint, internal, ex, watch)
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

    async def _admit_capped(
        self,
        refused: GatewayError,
        who: Principal,
        ex: Exchange,
        endpoint: Endpoint,
        payload: dict,
        model: str,
        given: int,
        allowed: int,
        most: int,
    ) -> int:
        """After a refusal for budget: admit the request with its output cut to what the budget
        has left pays for (its body changed, its answer saying so), or raise the refusal when
        that is no token. Returns the tokens reserved."""
        for _ in who.scopes:  # each refusal may be another budget's: the key's, then its team's
            cap = self._affordable_output(refused, model, given)
            if endpoint.output_field is None or cap is None or not 1 <= cap < most:
                raise refused
            tokens = given + (allowed if allowed < cap else cap)
            try:
                usd = self.prices.estimate_usd(model, given, cap)
                ex.ticket = await self.admission.admit(who.scopes, ex.model, tokens, usd)
            except GatewayError as again:
                refused = again
                continue
            _cap_output(payload, endpoint, cap)
            ex.max_tokens_capped = cap
            return tokens
        raise refused

    def _affordable_output(self, refused: GatewayError, model: str, given: int) -> int | None:
        """The output tokens that the budget a refusal names has left pays for after the input;
        None when the refusal is not for a budget or output costs nothing."""
        left = refused.headers.get(BUDGET_LEFT_HEADER)
        price = self.prices.lookup(model)
        if left is None or price is None or price.output <= 0:
            return None
        # a nano-dollar under: the figure is rounded, and the reservation must not pass it
        spare = float(left) - 1e-9 - self.prices.estimate_usd(model, given, 0)
        return math.floor(spare * PER / price.output)

    async def _fail(
        self, send: Send, endpoint: Endpoint, exc: GatewayError, ex: Exchange, watch: DisconnectWatch | None
    ) -> None:
        """End a request that failed: settled and ledgered (once), the client told in its dialect:
        an error response, or an error event ending an answer already under way."""
        if watch:
            watch.close()
        if not ex.finished:
            ex.overhead_ms = _ms_since(ex.started) - ex.upstream_ms
        self._end(ex, exc.status, exc.code or "error")
        if not ex.responded:
            await _send_error(send, endpoint.dialect, exc, ex)
            return
        end = endpoint.dialect.stream_error_event(exc.status, exc.message, exc.code, ex.trace_id)
        with contextlib.suppress(RuntimeError):  # the answer may be complete already
            await send({"type": "http.response.body", "body": end if ex.stream else b"", "more_body": False})

    def _end(self, ex: Exchange, status: int, error: str) -> None:
        """Finish a request that ends with `status` and `error`, unless it is finished already."""
        if not ex.finished:
            ex.status, ex.error = status, error
            self._finish(ex)

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
        if ex.responses is not None and status == 200:  # this key may go on from the replayed id
            ex.responses.final = orjson.loads(replay_as_body(entry, endpoint.dialect.name))
            await ex.responses.keep(self.conversations)
        self._finish(ex)
        ex.responded = True
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": data})

    def _finish(self, ex: Exchange) -> None:
        """Settle, record and count the request, once: done before the client gets its last
        bytes, so a response a client received in full is always in the ledger (journaled on
        disk)."""
        if ex.finished:
            return
        ex.finished = True
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
        provider = attempt.deployment.provider
        upstream_kind = wire(provider) if ex.responses is not None else provider.kind
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
            ex.usage = _usage_of_body(endpoint, upstream_kind, data, ex.provider)
        else:
            ex.error = f"upstream_{response.status}"
        try:
            if ex.responses is not None:
                data = ex.responses.answer(upstream_kind, response.status, data)
                await ex.responses.keep(self.conversations)
            elif upstream_kind != endpoint.provider_kind:
                data = crossing.response_body(
                    endpoint.provider_kind, response.status, data, ex.model, endpoint is COMPLETIONS
                )
        except _UNREADABLE:
            raise _malformed(ex.provider) from None
        headers = _response_headers(response, ex)
        headers.append((b"content-length", str(len(data)).encode()))
        ex.overhead_ms = _overhead_ms(ex, upstream_done)
        headers.append(ex.overhead_header())
        if watch:
            watch.close()
        self._finish(ex)
        ex.responded = True
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
        the ledger has the request; a broken upstream ends in a well-formed error event. A
        stream that does not end with its usage (broken, or its client left) is charged what it
        used as far as it went (`_StreamReader.usage_so_far`)."""
        headers_in = time.perf_counter()
        headers = _response_headers(response, ex)
        ex.overhead_ms = _overhead_ms(ex, headers_in)
        headers.append(ex.overhead_header())
        ex.responded = True
        await send({"type": "http.response.start", "status": response.status, "headers": headers})
        translate = None
        if ex.responses is not None:
            translate = ex.responses.stream(upstream_kind)
        elif upstream_kind != endpoint.provider_kind:
            translate = crossing.stream_translator(
                endpoint.provider_kind, ex.model, not hide_usage, endpoint is COMPLETIONS
            )
        reader = _StreamReader(
            upstream_kind,
            hide_usage and translate is None,
            self.dispatcher.upstreams.max_event_bytes,
            translate,
        )
        held = b""
        broken: GatewayError | None = None
        try:
            async for data in response.chunks():
                try:
                    out = reader.feed(data)
                except _UNREADABLE:
                    broken = _malformed(ex.provider)
                    break
                if ex.ttft_ms is None and out:
                    ex.ttft_ms = _ms_since(ex.started)
                if reader.complete:
                    held += out
                elif out:
                    await send({"type": "http.response.body", "body": out, "more_body": True})
        except Upstream as exc:
            broken = failure(exc, ex.provider or "?")
        finally:  # a client that left cancels the task here: what it received is charged all the same
            ex.usage = reader.usage_so_far(ex.upstream_model or "", ex.input_estimate)
        ex.upstream_ms = _ms_since(ex.upstream_started)
        if broken is None and not reader.complete:
            broken = GatewayError(
                502, f"upstream '{ex.provider}' ended the stream early", "upstream_incomplete"
            )
        if broken is None and reader.failed:  # passed on as sent; neither cached nor kept
            ex.error = "upstream_failed"
        if watch:
            watch.close()
        if broken:
            ex.error = broken.code
            held += endpoint.dialect.stream_error_event(
                broken.status, broken.message, broken.code, ex.trace_id
            )
        elif ex.responses is not None and not reader.failed:
            await ex.responses.keep(self.conversations)
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
    """Interactive (1) goes before batch (0): the key's priority, which the request's
    `x-xvckit-priority: batch` may lower but never raise (a batch key stays batch)."""
    if asked is not None and asked.strip().lower() == b"batch":
        return 0
    return who.priority


def _cache_scope(who: Principal, payload: dict) -> str:
    """Whose cache entries a caller shares: its team's, else its key's own (the master key's
    own too), so that no caller can learn from a hit what another one asked. A request that
    goes on from a stored response is its key's own: the id stands for that key's
    conversation."""
    if who.team_id and payload.get("previous_response_id") is None:
        return f"team:{who.team_id}"
    return f"key:{who.key_id}" if who.key_id else "master"


def _cap_output(payload: dict, endpoint: Endpoint, cap: int) -> None:
    """Cut the request's output limit to `cap`: each limit field it names, else its endpoint's."""
    for field in [name for name in _OUTPUT_FIELDS if name in payload] or [endpoint.output_field]:
        payload[field] = cap


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
    past `max_event` bytes without ending ends the stream (`TooLarge`). It counts the bytes it
    is fed and keeps the first STREAM_SAMPLE_BYTES of them, to count the output of a stream
    that ends without its usage (no parsing on the way)."""

    __slots__ = (
        "_anthropic_usage",
        "_hide_usage",
        "_kind",
        "_max_event",
        "_openai",
        "_sample",
        "_splitter",
        "_translate",
        "complete",
        "failed",
        "received",
        "usage",
    )

    def __init__(
        self,
        upstream_kind: str,
        hide_usage: bool,
        max_event: int,
        translate: Callable[[bytes], bytes] | None = None,
    ) -> None:
        self._kind = upstream_kind
        self._openai = upstream_kind != "anthropic"  # chat chunks or Responses events
        self._hide_usage = hide_usage
        self._max_event = max_event
        self._translate = translate
        self._splitter = EventSplitter()
        self.usage = Usage()
        self._anthropic_usage: dict = {}
        self.complete = False
        self.failed = False  # a Responses stream that reported its own failure
        self.received = 0
        self._sample: list[bytes] = []

    def feed(self, data: bytes) -> bytes:
        self.received += len(data)
        if self.received <= STREAM_SAMPLE_BYTES:
            self._sample.append(data)
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
        if self._kind == "responses":
            if event.startswith(_RESPONSE_FAILED):
                self.failed = True
            if event.startswith(_RESPONSE_ENDS):
                self.complete = True
                data = event_json(event)
                response = data.get("response") if data else None
                if isinstance(response, dict):
                    self.usage = openai.usage_from_response(response.get("usage"))
            return True
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
            if parsed:
                self._anthropic_usage = anthropic.usage_after_event(self._anthropic_usage, parsed)
                self.usage = anthropic.usage_from_obj(self._anthropic_usage)
        elif event.startswith(b"event: message_stop"):
            self.complete = True
        return True

    def usage_so_far(self, model: str, input_estimate: int) -> Usage:
        """The usage the upstream reported when the stream ended with it; else, for a stream
        broken off or left by its client, each figure at least what the gateway counts: the
        input estimated before the call, and the output in the deltas received (counted in
        the sample, scaled to all the bytes). Never nothing for output a client was sent."""
        usage = self.usage
        if self.complete and (usage.input_tokens or usage.output_tokens):
            return usage
        usage = replace(usage, input_tokens=usage.input_tokens or input_estimate)
        sample = b"".join(self._sample)
        if sample:
            counted = streamed_output_tokens(sample, self._openai, model)
            counted = math.ceil(counted * self.received / len(sample))
            if counted > usage.output_tokens:
                usage.output_tokens = counted
        return usage


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
    payload: dict, body: bytes, stream: bool, endpoint: Endpoint, changed: bool = False
) -> tuple[Callable[[Deployment], tuple[str, bytes]], bool]:
    """Where and what to send to a deployment, and whether to hide a usage chunk the client
    did not ask for. In the client's own dialect only `model`, `stream_options` and an output
    limit cut for a budget (`changed`) may change, every other field passes untouched, and an
    unchanged request is sent as the very bytes the client sent; a provider of the other
    dialect gets a translation (a field it cannot read is a 400)."""
    hide_usage = False
    if stream and (endpoint is CHAT or endpoint is COMPLETIONS):
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
            try:
                return crossing.CHAT_PATH[kind], crossing.request_body(
                    kind, payload, deployment.model, endpoint is COMPLETIONS
                )
            except InvalidRequest as exc:
                raise GatewayError(400, str(exc), "invalid_request") from None
        if deployment.model == asked and not hide_usage and not changed:
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
    if body.count(b"{") + body.count(b"[") > MAX_DEPTH:  # fewer brackets cannot nest deeper
        try:
            orjson.dumps([[payload]])  # as deep as the cache key and Idempotency-Key hash nest it
        except orjson.JSONEncodeError:
            raise GatewayError(
                400, f"the request body is nested deeper than {MAX_DEPTH} levels", "invalid_json"
            ) from None
    return payload


def _model_name(payload: dict) -> object:
    """The model the request names; one with control characters (a newline would forge a line
    of the access log) is refused."""
    model = payload.get("model")
    if type(model) is str:
        if len(model) > MAX_MODEL_CHARS:  # it becomes a routing-cache key, a lane and a header
            raise GatewayError(
                400, f"the model name is longer than {MAX_MODEL_CHARS} characters", "invalid_model"
            )
        if not model.isprintable():
            raise GatewayError(
                400, "the model name holds control or other unprintable characters", "invalid_model"
            )
    return model


def _usage_of_body(endpoint: Endpoint, upstream_kind: str, data: bytes, provider: str | None) -> Usage:
    """The usage of a 200 answer. One that is not the JSON the endpoint answers with (an HTML
    page from a proxy on the way, a cut body) is a 502: it must not pass as a free success."""
    try:
        body = orjson.loads(data)
    except orjson.JSONDecodeError:
        body = None
    if not (isinstance(body, dict) and _is_answer(endpoint, upstream_kind, body)):
        raise _malformed(provider)
    try:
        if endpoint is COUNT_TOKENS:
            return Usage(input_tokens=usage_count(body, "input_tokens"))
        if upstream_kind == "responses":
            return openai.usage_from_response(body.get("usage"))
        return (anthropic if upstream_kind == "anthropic" else openai).usage_from_body(body)
    except ValueError:  # counts that are not non-negative integers
        raise _malformed(provider) from None


def _is_answer(endpoint: Endpoint, upstream_kind: str, body: dict) -> bool:
    if endpoint is COUNT_TOKENS:
        return type(body.get("input_tokens")) is int
    if endpoint is EMBEDDINGS:
        return isinstance(body.get("data"), list)
    if upstream_kind == "responses":  # finished: a background or failed response is no answer
        return isinstance(body.get("output"), list) and body.get("status") in ("completed", "incomplete")
    return isinstance(body.get("choices" if upstream_kind == "openai" else "content"), list)


def _malformed(provider: str | None) -> GatewayError:
    return GatewayError(
        502, f"upstream '{provider}' answered with a body that is not a valid answer", "upstream_malformed"
    )


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
    if ex.max_tokens_capped is not None:
        headers.append((b"x-xvckit-max-tokens-capped", str(ex.max_tokens_capped).encode()))
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
    ex.responded = True
    await send({"type": "http.response.start", "status": exc.status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def _overhead_ms(ex: Exchange, upstream_ready: float) -> float:
    """Time spent in the gateway itself: before the upstream call and after its answer."""
    return ((ex.upstream_started - ex.started) + (time.perf_counter() - upstream_ready)) * 1000


def _ms_since(start: float) -> float:
    return (time.perf_counter() - start) * 1000
