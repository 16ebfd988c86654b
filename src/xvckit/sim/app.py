"""The simulator as a raw ASGI app: route, authenticate, inject faults, rate-limit, answer, count.

Control headers, for deterministic tests:
    x-sim-fail: <status 400-599> | drop | midstream | hang
        a status answers with that provider's error body (429 with rate-limit headers and
        `retry-after: 1`); drop closes the connection without a response; midstream sends the
        head and about half of the body or stream, then closes; hang never answers.
    x-sim-output-tokens: N      reply length in tokens (before max_tokens cuts it)
    x-sim-latency-ms: N         this request's whole response time, instead of the tier's
                                time to first token and output speed
    x-sim-batch-ms: N           (creating a batch) how long it takes, instead of `batch_ms`
    x-sim-batch: expire         (creating a batch) its time runs out half way through

Timing: a reply starts after the time to first token (`latency_ms`; embeddings a tenth of
it), then its output tokens come at `tokens_per_s`: a stream's events spread over that time,
a plain body sent once it has passed.

Plain endpoints: GET /healthz; GET /sim/stats (requests served per route and status, a fault
counted under its name); POST /sim/reset (zero the statistics and the rate-limit windows).
"""

from __future__ import annotations

import asyncio
import itertools
import random
from typing import Any

import orjson

from xvckit.asgi import (
    JSON,
    BodyTooLarge,
    ClientGone,
    Receive,
    Scope,
    Send,
    lifespan,
    read_body,
)
from xvckit.sim import (
    anthropic_routes,
    batch_routes,
    completions_route,
    faults,
    openai_routes,
    responses_route,
)
from xvckit.sim.batch_store import BatchStore
from xvckit.sim.catalog import Catalog
from xvckit.sim.exchange import Dialect, Headers, Reply, Request, Route
from xvckit.sim.kept import KeptConversations
from xvckit.sim.limiter import Limiter
from xvckit.sim.settings import SimSettings

MAX_BODY = 64 * 1024 * 1024  # a 1M-token prompt fits
FORCED_RETRY_AFTER_S = 1.0
_EVENT_STREAM = b"text/event-stream; charset=utf-8"
_OK = orjson.dumps({"status": "ok"})


async def _nothing() -> None:
    pass


class SimApp:
    """One simulated provider speaking both dialects. Build it in any thread; it serves on one
    event loop."""

    def __init__(self, settings: SimSettings | None = None) -> None:
        self.settings = settings = settings or SimSettings()
        self._limiter = Limiter(settings.rpm or 0, settings.tpm or 0, window_s=settings.rate_window_s)
        self._rng = random.Random(settings.seed)
        self._id_stem = f"{self._rng.getrandbits(48):012x}"
        self._ids = itertools.count(1)
        self.catalog = Catalog(settings)
        self.kept = KeptConversations()
        self.batches = BatchStore()
        self._latency_s = (settings.latency_ms or 0) / 1000
        self._tokens_per_s = settings.tokens_per_s or 0
        self._chunk_delay_s = settings.chunk_delay_ms / 1000
        self._api_key = settings.api_key.encode() if settings.api_key else None
        self._stats: dict[tuple[str, str], int] = {}
        self._routes: dict[tuple[str, str], Route] = {
            **openai_routes.ROUTES,
            **anthropic_routes.ROUTES,
            **responses_route.ROUTES,
            **completions_route.ROUTES,
        }

    # --- what routes use (the `Simulator` protocol) --------------------------------------------

    def unknown_model(self, req: Request, model: str) -> Reply | None:
        if self.catalog.known(model):
            return None
        return Reply(404, [req.dialect.model_not_found(model, req.request_id)])

    def admit(self, req: Request, model: str, tokens: int) -> Reply | None:
        if not self._limiter.active:
            return None
        verdict = self._limiter.admit(req.api_key, tokens)
        req.out_headers += req.dialect.rate_limit_headers(verdict.limits)
        if verdict.refused is None:
            return None
        return Reply(429, [req.dialect.rate_limited(verdict, model, req.request_id)])

    async def delay(self, req: Request, share: float = 1.0) -> None:
        millis = req.control(b"x-sim-latency-ms")
        seconds = self._latency_s * share if millis is None else millis / 1000
        if seconds:
            await asyncio.sleep(seconds)

    def _generation_s(self, req: Request, reply: Reply) -> float:
        """How long the reply's output tokens take; none when the request set its own time."""
        if not self._tokens_per_s or req.control(b"x-sim-latency-ms") is not None:
            return 0.0
        return reply.tokens / self._tokens_per_s

    def new_id(self, prefix: str) -> str:
        return f"{prefix}{self._id_stem}{next(self._ids):012x}"

    # --- for tests and benchmarks --------------------------------------------------------------

    def stats(self) -> dict[str, dict[str, int]]:
        """Requests served so far: {route: {status or fault: count}}."""
        table: dict[str, dict[str, int]] = {}
        for (route, outcome), count in self._stats.items():
            table.setdefault(route, {})[outcome] = count
        return table

    def reset(self) -> None:
        self._stats.clear()
        self._limiter.reset()

    # --- ASGI ----------------------------------------------------------------------------------

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            await self._http(scope, receive, send)
        elif scope["type"] == "lifespan":
            await lifespan(receive, send, _nothing, _nothing)

    async def _http(self, scope: Scope, receive: Receive, send: Send) -> None:
        method, path = scope["method"], scope["path"]
        headers = dict(scope["headers"])
        plain = self._plain(method, path)
        if plain is not None:
            await self._send(send, receive, Reply(200, [plain]), [])
            return
        route = self._route(method, path, headers)
        dialect = route.dialect if route else _guess_dialect(headers)
        name = route.name if route else "not_found"
        fault = headers.get(b"x-sim-fail") or self._random_fault(dialect)
        if fault == faults.DROP:
            self._count(name, "drop")
            await faults.close_connection(receive)
            return
        if fault == faults.HANG:
            self._count(name, "hang")
            await faults.hang(receive)
            return
        req = Request(dialect, headers, self.new_id("req_"))
        try:
            body = await read_body(scope, receive, MAX_BODY)
        except ClientGone:
            return
        except BodyTooLarge:
            reply = req.fail(413, f"Request body exceeds {MAX_BODY} bytes.")
        else:
            if route is None:
                reply = req.fail(404, f"Invalid URL ({method} {path})")
            else:
                reply = await self._answer(route, req, body, fault)
        midstream = fault == faults.MIDSTREAM and reply.status == 200
        self._count(name, "midstream" if midstream else str(reply.status))
        head = [(dialect.request_id_header, req.request_id.encode()), *req.out_headers]
        await self._send(send, receive, reply, head, midstream, self._generation_s(req, reply))

    async def _answer(self, route: Route, req: Request, body: bytes, fault: bytes | None) -> Reply:
        """Authenticate, apply a forced status, parse the body, then let the route answer."""
        dialect = req.dialect
        key = dialect.api_key(req.headers)
        if not key or (self._api_key is not None and key != self._api_key):
            return Reply(401, [dialect.auth_error(not key, req.request_id)])
        req.api_key = key
        if fault is not None and fault != faults.MIDSTREAM:
            return self._forced(req, fault)
        if route.raw_body:
            req.body = body
        elif body:
            try:
                parsed = orjson.loads(body)
            except orjson.JSONDecodeError:
                parsed = None
            if not isinstance(parsed, dict):
                return req.fail(
                    400, "We could not parse the JSON body of your request: expected a JSON object."
                )
            req.json = parsed
        return await route.handler(self, req)

    def _forced(self, req: Request, fault: bytes) -> Reply:
        status = int(fault) if fault.isdigit() else 0
        if not 400 <= status <= 599:
            return req.fail(400, "x-sim-fail must be a status 400-599, drop, midstream or hang")
        if status == 429:
            limits = self._limiter.snapshot(req.api_key, FORCED_RETRY_AFTER_S)
            req.out_headers += req.dialect.rate_limit_headers(limits)
        return Reply(status, [req.dialect.status_error(status, req.request_id)])

    def _route(self, method: str, path: str, headers: dict[bytes, bytes]) -> Route | None:
        route = self._routes.get((method, path)) or batch_routes.route(method, path)
        if route is openai_routes.MODEL_LIST and b"anthropic-version" in headers:
            return anthropic_routes.MODEL_LIST
        return route

    def _plain(self, method: str, path: str) -> bytes | None:
        """The body of a simulator endpoint that is no provider's, or None."""
        if path == "/healthz" and method == "GET":
            return _OK
        if path == "/sim/stats" and method == "GET":
            return orjson.dumps(self.stats())
        if path == "/sim/reset" and method == "POST":
            self.reset()
            return _OK
        return None

    def _random_fault(self, dialect: Dialect) -> bytes | None:
        drop, fail = self.settings.drop_rate, self.settings.fail_rate
        if not (drop or fail):
            return None
        draw = self._rng.random()
        if draw < drop:
            return faults.DROP
        if draw < drop + fail:
            return self._rng.choice(dialect.server_errors)
        return None

    def _count(self, route: str, outcome: str) -> None:
        key = (route, outcome)
        self._stats[key] = self._stats.get(key, 0) + 1

    async def _send(
        self,
        send: Send,
        receive: Receive,
        reply: Reply,
        headers: Headers,
        midstream: bool = False,
        generation_s: float = 0.0,
    ) -> None:
        """Send `reply`; its events spread over `generation_s` (a plain body waits it out)."""
        if reply.stream:
            head = [(b"content-type", _EVENT_STREAM), (b"cache-control", b"no-cache"), *headers]
        else:
            head = [(b"content-type", JSON), (b"content-length", str(len(reply.parts[0])).encode()), *headers]
        start: dict[str, Any] = {"type": "http.response.start", "status": reply.status, "headers": head}
        if midstream:
            await faults.send_partial(send, receive, start, reply.parts)
            return
        last = len(reply.parts) - 1
        if not reply.stream and generation_s:
            await asyncio.sleep(generation_s)
        gap = self._chunk_delay_s + (generation_s / last if reply.stream and last else 0.0)
        await send(start)
        for index, part in enumerate(reply.parts):
            if index and gap:
                await asyncio.sleep(gap)
            await send({"type": "http.response.body", "body": part, "more_body": index < last})


def _guess_dialect(headers: dict[bytes, bytes]) -> Dialect:
    """Whose error shape to answer an unknown path in: Anthropic's clients send their version."""
    return anthropic_routes.DIALECT if b"anthropic-version" in headers else openai_routes.DIALECT
