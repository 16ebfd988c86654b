"""The gateway's HTTP/1.1 server: ASGI on asyncio protocols, with httptools' C parser.

Why not uvicorn: on the gateway's hot path uvicorn's response side cost ~28% of the CPU (a
regular-expression check per header, and two write() calls per response: head, then body).
This server joins the head in one go and writes head and body with one call, runs each
request as one task, and does little else. It speaks the part of ASGI 3 that HTTP/1.1 apps
use: the http and lifespan scopes, request bodies with flow control, fixed-length and
chunked responses, `http.disconnect`, keep-alive and pipelining, `Expect: 100-continue`,
and a graceful stop that lets in-flight requests finish. Slow clients cannot hold it: a
request head and body must arrive in time (408), and one address may keep only so many
connections open (503).
"""

from __future__ import annotations

import asyncio
import contextlib
import email.utils
import logging
import ssl
import time
import urllib.parse
from collections import deque
from collections.abc import Callable
from http import HTTPStatus

import httptools

from xvckit.asgi import ASGIApp, Scope, listening_socket, url_of

log = logging.getLogger("xvckit.http")

KEEP_ALIVE_S = 75.0
HEAD_TIMEOUT_S = 30.0  # from a request's first byte to the end of its head (slow-head clients)
MAX_HEAD_BYTES = 64 * 1024
# A request body must arrive within BODY_TIMEOUT_S of its head, plus a second for every
# BODY_MIN_RATE bytes received (Apache's mod_reqtimeout rule): a large body on a slow link
# gets the time it needs, a byte now and then does not hold a connection open.
BODY_TIMEOUT_S = 30.0
BODY_MIN_RATE = 8 * 1024
MAX_CONNECTIONS_PER_CLIENT = 256  # open connections from one address; 0: no cap
TLS_SHUTDOWN_S = 1.0  # how long a TLS close waits for the client's close_notify
BODY_HIGH_WATER = 256 * 1024  # request body bytes buffered before reading pauses
ASGI = {"version": "3.0", "spec_version": "2.3"}
# A scope extension: `scope["extensions"][ON_DISCONNECT](callback)` has `callback()` called once
# if the client goes away before the response is complete (`None` takes it back). An app can
# stop work nobody will read without a task waiting in `receive()` per request.
ON_DISCONNECT = "xvckit.on_disconnect"
_NO_BODY = frozenset({204, 304})


def _status_line(status: int) -> bytes:
    try:
        phrase = HTTPStatus(status).phrase
    except ValueError:
        phrase = ""
    return f"HTTP/1.1 {status} {phrase}\r\n".encode()


_STATUS_LINES = {status.value: _status_line(status.value) for status in HTTPStatus}


class _Clock:
    """The Date header, made once a second rather than per response."""

    def __init__(self) -> None:
        self._second = 0
        self.header = b""

    def date(self) -> bytes:
        now = int(time.time())
        if now != self._second:
            self._second = now
            self.header = b"date: " + email.utils.formatdate(now, usegmt=True).encode() + b"\r\n"
        return self.header


_clock = _Clock()


class HttpServer:
    """One ASGI app on a socket bound (and listening) at construction; `port` 0 picks one."""

    def __init__(
        self,
        app: ASGIApp,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        shutdown_grace_s: float | None = None,
        keep_alive_s: float = KEEP_ALIVE_S,
        head_timeout_s: float = HEAD_TIMEOUT_S,
        ssl_context: ssl.SSLContext | None = None,
        body_timeout_s: float = BODY_TIMEOUT_S,
        body_min_rate: float = BODY_MIN_RATE,
        max_connections_per_client: int = MAX_CONNECTIONS_PER_CLIENT,
    ) -> None:
        self.app = app
        self.host = host
        self.ssl_context = ssl_context  # HTTPS when given
        self.scheme = "https" if ssl_context else "http"
        self.shutdown_grace_s = shutdown_grace_s
        self.keep_alive_s = keep_alive_s
        self.head_timeout_s = head_timeout_s
        self.body_timeout_s = body_timeout_s
        self.body_min_rate = body_min_rate  # bytes per second
        self.max_connections_per_client = max_connections_per_client
        self.stopping = False
        self.connections: set[_Connection] = set()
        self._per_client: dict[str, int] = {}  # open connections by client address (when capped)
        self._socket = listening_socket(host, port)
        self.port: int = self._socket.getsockname()[1]
        self._server: asyncio.Server | None = None
        self._sweeper: asyncio.TimerHandle | None = None
        self._lifespan = _Lifespan(app)
        self._force = asyncio.Event()

    @property
    def url(self) -> str:
        return self.scheme + url_of(self.host, self.port).removeprefix("http")

    async def start(self) -> None:
        try:
            await self._lifespan.startup()
        except BaseException:
            self._socket.close()  # not left listening: clients are refused, not queued
            raise
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(
            lambda: _Connection(self), sock=self._socket, backlog=4096, **self._tls_options()
        )
        self._sweep()

    def _tls_options(self) -> dict:
        """A handshake is bounded like a request head; a close waits little for the client's
        close_notify (an idle pooled client sends none: a stop would wait out the grace)."""
        if self.ssl_context is None:
            return {}
        return {
            "ssl": self.ssl_context,
            "ssl_handshake_timeout": self.head_timeout_s,
            "ssl_shutdown_timeout": TLS_SHUTDOWN_S,
        }

    def _sweep(self) -> None:
        """Close the connections idle for `keep_alive_s`, and refuse request bodies arriving
        too slowly: one timer for the server, not one armed and cancelled per request (~2 us
        each on uvloop)."""
        loop = asyncio.get_running_loop()
        now = loop.time()
        for connection in list(self.connections):
            since = connection.idle_since
            if since is None:
                connection.check_body_pace(now)
            elif now - since >= self.keep_alive_s:
                connection.transport.close()
        self._sweeper = loop.call_later(min(1.0, self.keep_alive_s / 4), self._sweep)

    def client_opened(self, address: str) -> bool:
        """Count a connection from `address`; True when that is more than it may have open."""
        count = self._per_client.get(address, 0) + 1
        self._per_client[address] = count
        return count > self.max_connections_per_client

    def client_closed(self, address: str) -> None:
        count = self._per_client[address] - 1
        if count:
            self._per_client[address] = count
        else:
            del self._per_client[address]

    async def stop(self) -> None:
        """Stop accepting, let in-flight requests finish (up to the grace period), close."""
        if self._server is None:
            return
        self.stopping = True
        self._server.close()
        if self._sweeper is not None:
            self._sweeper.cancel()
        for connection in list(self.connections):
            connection.close_when_idle()
        grace = self.shutdown_grace_s
        deadline = time.monotonic() + (grace if grace is not None else float("inf"))
        while self.connections and not self._force.is_set() and time.monotonic() < deadline:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._force.wait(), 0.05)
        for connection in list(self.connections):
            connection.abort()
        await self._lifespan.shutdown()
        self._server = None

    def force_exit(self) -> None:
        self._force.set()


class _Lifespan:
    """The ASGI lifespan protocol: start-up before the first connection, shut-down after the last."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self._inbox: asyncio.Queue[dict] = asyncio.Queue()
        self._outbox: asyncio.Queue[dict] = asyncio.Queue()
        self._task: asyncio.Task | None = None

    async def startup(self) -> None:
        scope = {"type": "lifespan", "asgi": ASGI, "state": {}}
        self._task = asyncio.create_task(self.app(scope, self._inbox.get, self._outbox.put))
        answer = await self._exchange("lifespan.startup")
        if answer["type"] == "lifespan.startup.failed":
            raise RuntimeError(f"start-up failed: {answer.get('message', '')}")

    async def shutdown(self) -> None:
        if self._task is not None and not self._task.done():
            await self._exchange("lifespan.shutdown")
            await self._task

    async def _exchange(self, kind: str) -> dict:
        await self._inbox.put({"type": kind})
        answer = asyncio.ensure_future(self._outbox.get())
        await asyncio.wait({answer, self._task}, return_when=asyncio.FIRST_COMPLETED)
        if answer.done():
            return answer.result()
        answer.cancel()
        self._task.result()  # the app raised: say why
        raise RuntimeError(f"the app ended without answering {kind}")


class _Connection(asyncio.Protocol):
    """One client connection: parses requests, runs them one after another (pipelining)."""

    def __init__(self, server: HttpServer) -> None:
        self.server = server
        self.loop = asyncio.get_running_loop()
        self.parser = httptools.HttpRequestParser(self)
        self.transport: asyncio.Transport | None = None
        self.client: tuple | None = None
        self.local: tuple | None = None
        self.active: _Cycle | None = None  # the request being answered
        self.incoming: _Cycle | None = None  # the request whose body is being parsed
        self.queued: deque[_Cycle] = deque()
        self.writable: asyncio.Future | None = None
        self.paused_by_body = False
        self.idle_since: float | None = None  # loop time since when no request is in progress
        self.head_timer: asyncio.TimerHandle | None = None
        self._in_head = False  # a request has begun and its head is not complete
        self._head_input = 0  # bytes received since it began
        self._url = b""
        self._headers: list[tuple[bytes, bytes]] = []
        self._head_bytes = 0
        self._expect_continue = False

    # asyncio.Protocol

    def connection_made(self, transport: asyncio.Transport) -> None:
        self.transport = transport
        self.client = transport.get_extra_info("peername")[:2]
        self.local = transport.get_extra_info("sockname")[:2]
        server = self.server
        if server.max_connections_per_client and server.client_opened(self.client[0]):
            self._refuse(503, b"too many connections from this address")
            return
        server.connections.add(self)
        self._idle()

    def data_received(self, data: bytes) -> None:
        self.idle_since = None
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            self._refuse(501, b"protocol upgrades are not supported")
        except httptools.HttpParserError:  # _count's _HeadTooLarge arrives as one (a callback error)
            if self._head_bytes > MAX_HEAD_BYTES:
                self._refuse(431, b"request head too large")
            else:
                self._refuse(400, b"malformed HTTP request")
        else:
            if self._in_head:
                self._head_pending(len(data))

    def _head_pending(self, received: int) -> None:
        """A head still incomplete: bounded in size (httptools holds an unfinished header
        value whole, unseen by `_count`) and in time (a client sending it a byte at a time)."""
        self._head_input += received
        if self._head_input > 2 * MAX_HEAD_BYTES:
            self._refuse(431, b"request head too large")
        elif self.head_timer is None and self.active is None:  # a pipelined head waits its turn
            self.head_timer = self.loop.call_later(self.server.head_timeout_s, self._head_too_slow)

    def _head_too_slow(self) -> None:
        self.head_timer = None
        self._refuse(408, b"request head not received in time")

    def connection_lost(self, exc: Exception | None) -> None:
        server = self.server
        server.connections.discard(self)
        if server.max_connections_per_client:
            server.client_closed(self.client[0])
        if self.head_timer is not None:
            self.head_timer.cancel()
        for cycle in (self.active, self.incoming, *self.queued):
            if cycle is not None:
                cycle.disconnect()
        self.queued.clear()
        if self.writable is not None and not self.writable.done():
            self.writable.set_result(None)

    def pause_writing(self) -> None:
        self.writable = self.loop.create_future()

    def resume_writing(self) -> None:
        if self.writable is not None and not self.writable.done():
            self.writable.set_result(None)
        self.writable = None

    # httptools callbacks

    def on_message_begin(self) -> None:
        self._url = b""
        self._headers = []
        self._head_bytes = 0
        self._expect_continue = False
        self._in_head = True
        self._head_input = 0

    def on_url(self, url: bytes) -> None:
        self._url += url
        self._count(len(url))

    def on_header(self, name: bytes, value: bytes) -> None:
        self._count(len(name) + len(value))
        name = name.lower()
        if name == b"expect" and value.lower() == b"100-continue":
            self._expect_continue = True
        self._headers.append((name, value))

    def on_headers_complete(self) -> None:
        self._in_head = False
        if self.head_timer is not None:
            self.head_timer.cancel()
            self.head_timer = None
        parser = self.parser
        url = httptools.parse_url(self._url)
        raw_path = url.path
        path = raw_path.decode("latin-1")
        if "%" in path:
            path = urllib.parse.unquote(path)
        version = parser.get_http_version()
        scope: Scope = {
            "type": "http",
            "asgi": ASGI,
            "http_version": version,
            "method": parser.get_method().decode("ascii"),
            "scheme": self.server.scheme,
            "path": path,
            "raw_path": raw_path,
            "query_string": url.query or b"",
            "root_path": "",
            "headers": self._headers,
            "client": self.client,
            "server": self.local,
        }
        keep_alive = parser.should_keep_alive() and not self.server.stopping
        cycle = _Cycle(self, scope, keep_alive, self._expect_continue)
        scope["extensions"] = {ON_DISCONNECT: cycle.on_disconnect}
        self.incoming = cycle
        if parser.should_upgrade():
            return  # refused with 501 when the parser stops at the upgrade; the app never sees it
        if self.active is None:
            self._begin(cycle)
        else:
            self.queued.append(cycle)
            self.transport.pause_reading()  # pipelined: one request at a time

    def on_body(self, body: bytes) -> None:
        cycle = self.incoming
        size = len(body)
        cycle.received += size
        if cycle.complete:
            return  # answered already: the rest of its body is read and dropped
        cycle.chunks.append(body)
        cycle.buffered += size
        cycle.wake()
        if cycle.buffered > BODY_HIGH_WATER and not self.paused_by_body:
            self.paused_by_body = True
            self.transport.pause_reading()

    def on_message_complete(self) -> None:
        self.incoming.more_body = False
        self.incoming.wake()

    # the rest

    def check_body_pace(self, now: float) -> None:
        """From the server's sweep: refuse (408) a request body that arrives too slowly. Its
        clock starts at the first sweep that sees it arriving and stops while the server is
        not reading (the app has not taken what came, a pipelined request waits, or the
        client waits for `100 Continue`), which is not the client's doing."""
        cycle = self.incoming
        if cycle is None or not cycle.more_body:
            return
        if self.paused_by_body or self.queued or cycle.expect_continue:
            cycle.body_since = None
            return
        if cycle.body_since is None:
            cycle.body_since = now
            return
        server = self.server
        if now - cycle.body_since > server.body_timeout_s + cycle.received / server.body_min_rate:
            self._refuse(408, b"request body not received in time")

    def close_when_idle(self) -> None:
        """The server is stopping: close now if idle, else once the current answer is out."""
        if self.active is None:
            self.transport.close()
        else:
            self.active.keep_alive = False

    def abort(self) -> None:
        self.transport.abort()

    def body_taken(self) -> None:
        if self.paused_by_body:
            self.paused_by_body = False
            if not self.queued:
                self.transport.resume_reading()

    def finished(self, cycle: _Cycle) -> None:
        """The app returned: next pipelined request, keep-alive wait, or close."""
        self.active = None
        if self.transport.is_closing():
            return
        if not cycle.keep_alive or not cycle.complete:
            self.transport.close()
            return
        if self.paused_by_body:  # paused for a body the app left unread, now dropped
            self.paused_by_body = False
            if not self.queued:
                self.transport.resume_reading()
        if self.queued:
            self._begin(self.queued.popleft())
            if not self.queued:
                self.transport.resume_reading()
        else:
            self._idle()

    def _begin(self, cycle: _Cycle) -> None:
        self.active = cycle
        cycle.task = self.loop.create_task(cycle.run())

    def _idle(self) -> None:
        if self.server.stopping:
            self.transport.close()
            return
        self.idle_since = self.loop.time()

    def _count(self, size: int) -> None:
        self._head_bytes += size
        if self._head_bytes > MAX_HEAD_BYTES:
            raise _HeadTooLarge

    def _refuse(self, status: int, message: bytes) -> None:
        if self.active is None or not self.active.started:
            self.transport.write(
                _STATUS_LINES[status]
                + b"content-type: text/plain; charset=utf-8\r\nconnection: close\r\ncontent-length: "
                + str(len(message)).encode()
                + b"\r\n\r\n"
                + message
            )
        self.transport.close()


class _HeadTooLarge(Exception):
    pass


class _Cycle:
    """One request and its response: the `receive` and `send` the app gets."""

    __slots__ = (
        "body_done",
        "body_since",
        "buffered",
        "chunked",
        "chunks",
        "complete",
        "connection",
        "disconnected",
        "event",
        "expect_continue",
        "head_only",
        "headers",
        "keep_alive",
        "more_body",
        "on_gone",
        "received",
        "scope",
        "started",
        "status",
        "task",
    )

    def __init__(
        self, connection: _Connection, scope: Scope, keep_alive: bool, expect_continue: bool
    ) -> None:
        self.connection = connection
        self.scope = scope
        self.keep_alive = keep_alive
        self.head_only = scope["method"] == "HEAD"  # or a status without a body
        self.chunks: list[bytes] = []
        self.buffered = 0
        self.received = 0  # body bytes, all of them
        self.body_since: float | None = None  # loop time the sweep first saw the body arriving
        self.more_body = True
        self.disconnected = False
        self.event: asyncio.Event | None = None
        self.body_done = False  # the last `http.request` message was handed over
        self.expect_continue = expect_continue
        self.started = False  # the head is written
        self.complete = False  # the last body bytes are written
        self.chunked = False
        self.status = 0
        self.headers: list = []
        self.task: asyncio.Task | None = None
        self.on_gone: Callable[[], object] | None = None

    def wake(self) -> None:
        if self.event is not None:
            self.event.set()

    def on_disconnect(self, callback: Callable[[], object] | None) -> None:
        self.on_gone = callback

    def disconnect(self) -> None:
        self.disconnected = True
        self.wake()
        callback, self.on_gone = self.on_gone, None
        if callback is not None and not self.complete:
            callback()

    async def run(self) -> None:
        try:
            await self.connection.server.app(self.scope, self.receive, self.send)
            if not self.started and not self.disconnected:
                log.error("request %s %s: the app sent no response", self.scope["method"], self.scope["path"])
                await self._error_500()
        except Exception:
            if not self.disconnected:
                log.exception("request %s %s failed", self.scope["method"], self.scope["path"])
                if not self.started:
                    await self._error_500()
            self.keep_alive = False
        finally:
            # The extension holds a method of this cycle, which holds the scope: without this,
            # every request would leave a reference cycle for the garbage collector.
            self.scope.pop("extensions", None)
            self.on_gone = None
            self.connection.finished(self)

    async def receive(self) -> dict:
        if not self.body_done:
            if self.expect_continue:
                self.expect_continue = False
                if self.more_body and not self.chunks and not self.started:
                    self.connection.transport.write(b"HTTP/1.1 100 Continue\r\n\r\n")
            while not self.chunks and self.more_body and not self.disconnected:
                await self._wait()
            if not self.disconnected:
                body = self.chunks[0] if len(self.chunks) == 1 else b"".join(self.chunks)
                self.chunks.clear()
                self.buffered = 0
                self.connection.body_taken()
                self.body_done = not self.more_body
                return {"type": "http.request", "body": body, "more_body": self.more_body}
        while not self.disconnected and not self.complete:
            await self._wait()
        return {"type": "http.disconnect"}

    async def _wait(self) -> None:
        if self.event is None:
            self.event = asyncio.Event()
        self.event.clear()
        await self.event.wait()

    async def send(self, message: dict) -> None:
        kind = message["type"]
        if kind == "http.response.start":
            if self.status:
                raise RuntimeError("http.response.start sent twice")
            self.status = message["status"]
            self.headers = message.get("headers", ())
            return
        if kind != "http.response.body":
            raise RuntimeError(f"unexpected ASGI message {kind!r}")
        if not self.status:
            raise RuntimeError("http.response.body before http.response.start")
        if self.complete:
            raise RuntimeError("http.response.body after the last one")
        if self.disconnected:
            return
        body = message.get("body", b"")
        more = message.get("more_body", False)
        transport = self.connection.transport
        if not self.started:
            data = self._head(body, more)
            if not self.head_only:
                data += _framed(body) if self.chunked else body
        elif self.head_only:
            data = b""
        else:
            data = _framed(body) if self.chunked else body
        if not more:
            self.complete = True
            if self.chunked and not self.head_only:
                data += b"0\r\n\r\n"
            self.wake()  # a `receive` waiting for the end returns `http.disconnect`
        if data:
            transport.write(data)
        writable = self.connection.writable
        if writable is not None:
            await writable

    def _head(self, body: bytes, more: bool) -> bytes:
        parts = [_STATUS_LINES.get(self.status) or _status_line(self.status), _clock.date()]
        framed = self.status in _NO_BODY  # such answers carry no body and no framing
        self.head_only |= framed
        said_close = False
        for name, value in self.headers:
            lower = name.lower()
            if lower == b"content-length" or lower == b"transfer-encoding":
                framed = True
            elif lower == b"connection" and value.lower() == b"close":
                self.keep_alive = False
                said_close = True
            parts.append(name + b": " + value + b"\r\n")
        if not framed:
            if not more:
                parts.append(b"content-length: " + str(len(body)).encode() + b"\r\n")
            elif self.scope["http_version"] == "1.1":
                parts.append(b"transfer-encoding: chunked\r\n")
                self.chunked = True
            else:
                self.keep_alive = False  # HTTP/1.0 without a length: the end is the close
        if self.expect_continue and self.more_body:
            self.keep_alive = False  # no 100 was sent, so the client may never send the body
        if not self.keep_alive and not said_close:
            parts.append(b"connection: close\r\n")
        elif self.scope["http_version"] == "1.0":
            parts.append(b"connection: keep-alive\r\n")
        parts.append(b"\r\n")
        head = b"".join(parts)
        # A line break inside a header would split the response (header injection): the head
        # holds exactly one CRLF per line. (Counting once: `b"\n" in value` costs a formatted
        # TypeError inside CPython 3.11 for each test, ~8% of the gateway's instructions.)
        if head.count(b"\n") != len(parts) or head.count(b"\r") != len(parts):
            raise RuntimeError("a response header holds a line break")
        self.started = True  # only now: a refused header above leaves room for the 500
        return head

    async def _error_500(self) -> None:
        self.keep_alive = False
        self.status = 500
        self.headers = [(b"content-type", b"text/plain; charset=utf-8")]
        await self.send({"type": "http.response.body", "body": b"Internal Server Error"})


def _framed(body: bytes) -> bytes:
    """A chunk of a chunked body; an empty one is nothing (the terminator is written apart)."""
    if not body:
        return b""
    return b"%x\r\n%b\r\n" % (len(body), body)
