"""A small HTTP/1.1 client for the gateway's upstream calls, on asyncio protocols and
httptools' C parser (llhttp).

Why not aiohttp: on the gateway's hot path its client (session, request and writer objects,
multidict headers, a timer per phase) costs more CPU than the whole rest of a proxied request.
This client does only what the gateway needs:

- one request is one write to the transport (a body over 16 KiB is not copied: one
  `writelines`): request line, `host`, `content-length` (left out on a GET or HEAD without
  body), the caller's headers, the body; nothing is added (no user-agent, no accept-encoding:
  the gateway forwards bytes as they come);
- responses are framed by content-length, chunked transfer coding (decoded: the body comes out
  without chunk framing) or the end of the connection; 1xx responses are skipped;
- connections are kept alive in a per-origin LIFO pool. A pooled connection on which the server
  sent EOF (or anything) while idle is dropped; a reused connection that fails before a single
  response byte arrived (the server closed it as we sent) is retried once on a new connection;
- one timer per connection, re-armed lazily, serves the read timeout (the longest silence while
  a response is due), the call's deadline (from sending the request to the response's last
  byte, however steadily it trickles) and the idle timeout; data arrival only stamps the time;
- reading pauses while more than `_HIGH_WATER` body bytes wait for a slow consumer of
  `Response.chunks()`;
- a response head over `max_head_bytes`, or a body taken whole by `read()` over
  `max_body_bytes`, ends the call (`TooLarge`): an upstream cannot make the gateway buffer
  without bound.

Errors are `Upstream` subclasses whose messages name the origin and the cause, never a header,
a target or a body (they may hold keys).
"""

from __future__ import annotations

import asyncio
import socket
import ssl
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from urllib.parse import quote, urlsplit

import httptools

_HIGH_WATER = 256 * 1024  # body bytes buffered for chunks() above which reading pauses
_JOIN_BODY_UP_TO = 16 * 1024  # smaller bodies are copied into the head's buffer: one write
_SLACK_S = 0.001  # a timer that fires this early counts as on time


class Upstream(Exception):
    """An upstream call failed. Messages name the origin and the cause, never a secret."""


class ConnectFailed(Upstream):
    """No connection: DNS lookup, TCP connect (refused, unreachable) or TLS handshake failed."""

    def __init__(self, message: str, os_error: OSError | None = None) -> None:
        super().__init__(message)
        self.os_error = os_error


class Timeout(Upstream):
    """Connecting took longer than the connect timeout, or the server was silent for longer than
    the read timeout while a response (headers or body) was due."""


class DeadlineExceeded(Timeout):
    """The response was not complete within the call's deadline (it may have kept sending)."""

    def __init__(self, message: str, deadline_s: float) -> None:
        super().__init__(message)
        self.deadline_s = deadline_s


class TooLarge(Upstream):
    """A part of the response (`what`: "a response head", "a response body", "an SSE event") is
    larger than `limit` bytes."""

    def __init__(self, what: str, limit: int) -> None:
        super().__init__(f"{what} is over the limit of {limit} bytes")
        self.what = what
        self.limit = limit


class Disconnected(Upstream):
    """The connection ended before the response was complete."""


class ProtocolError(Upstream):
    """The server's response is not valid HTTP/1.x."""


class _Stale(Disconnected):
    """A reused connection failed before any byte of the response: safe to try once more."""


class _Unsolicited(Exception):
    """Bytes of a response nobody asked for (raised inside the parser's callback)."""


class _BodyTooLarge(Exception):
    """More body than `read()` may take (raised inside the parser's callback)."""


@dataclass(frozen=True)
class Origin:
    scheme: str  # "http" or "https"
    host: str  # a name or an IP address (IPv6 without brackets)
    port: int
    host_header: bytes = field(init=False, repr=False, compare=False)
    _hash: int = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.scheme not in ("http", "https"):
            raise ValueError(f"unsupported scheme {self.scheme!r} (http or https)")
        name = f"[{self.host}]" if ":" in self.host else self.host
        if self.port != (443 if self.scheme == "https" else 80):
            name = f"{name}:{self.port}"
        try:
            host_header = name.encode("ascii")
        except UnicodeEncodeError:
            host_header = name.encode("idna")
        object.__setattr__(self, "host_header", host_header)
        object.__setattr__(self, "_hash", hash((self.scheme, self.host, self.port)))

    def __hash__(self) -> int:
        return self._hash

    def __str__(self) -> str:
        return f"{self.scheme}://{self.host_header.decode('ascii')}"


# Characters left as they are when a target with non-ASCII characters is percent-encoded.
_TARGET_SAFE = "/?&=%:@!$'()*+,;~-._[]"


def split_url(url: str) -> tuple[Origin, bytes]:
    """`https://host:port/path?query` as the origin to connect to and the request target
    (`/path?query`, bytes); the fragment is dropped. ValueError if it is not an http(s) URL."""
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https") or not parts.hostname:
        raise ValueError("not an absolute http(s) URL")
    if parts.username is not None or parts.password is not None:
        raise ValueError("credentials in the URL are not supported; send a header")
    port = parts.port or (443 if scheme == "https" else 80)  # .port raises ValueError when invalid
    target = parts.path or "/"
    if parts.query:
        target = f"{target}?{parts.query}"
    try:
        raw = target.encode("ascii")
    except UnicodeEncodeError:
        raw = quote(target, safe=_TARGET_SAFE).encode("ascii")
    return Origin(scheme, parts.hostname, port), raw


def _request_bytes(
    method: bytes, target: bytes, host: bytes, headers: list[tuple[bytes, bytes]], body: bytes
) -> bytes | list[bytes]:
    parts = [method, b" ", target, b" HTTP/1.1\r\nhost: ", host]
    lines = len(headers) + 3
    if body or (method != b"GET" and method != b"HEAD"):  # RFC 9110 8.6: not on a GET without body
        parts += (b"\r\ncontent-length: ", b"%d" % len(body))
        lines += 1
    for name, value in headers:
        parts += (b"\r\n", name, b": ", value)
    parts.append(b"\r\n\r\n")
    head = b"".join(parts)
    # A line break inside the method, the target or a header would split the request (header
    # injection): the head holds exactly one CRLF per line, or it is refused.
    if head.count(b"\n") != lines or head.count(b"\r") != lines:
        raise ValueError("a line break in the method, the target or a header name or value")
    if len(body) <= _JOIN_BODY_UP_TO:
        return head + body if body else head
    return [head, body]


class Response:
    """A response whose status line and headers have arrived; the body follows through `read()`
    or `chunks()`. Always `close()` it (idempotent): that returns the connection to the pool
    when the response arrived to its end on a reusable connection, and closes the socket
    otherwise (the way to abandon a call: the server sees the connection end)."""

    __slots__ = (
        "_accumulate",
        "_conn",
        "_done",
        "_error",
        "_headers_done",
        "_parts",
        "_size",
        "_waiter",
        "content_type",
        "headers",
        "status",
    )

    def __init__(self, conn: _Connection) -> None:
        self._conn: _Connection | None = conn
        self.status = 0
        self.headers: list[tuple[bytes, bytes]] = []  # as received, names lower-cased
        self.content_type = b""  # the media type only, lower-cased
        self._parts: list[bytes] = []  # body bytes received and not yet handed out
        self._size = 0
        self._headers_done = False
        self._done = False  # the whole body arrived
        self._error: Upstream | None = None  # why the body will never be complete
        self._waiter: asyncio.Future[None] | None = None
        self._accumulate = False  # read() takes everything: no flow control

    async def read(self) -> bytes:
        """The whole body (what `chunks()` has not handed out yet)."""
        if not self._done:
            self._accumulate = True
            conn = self._conn
            if conn is not None and conn.reading_paused:
                conn.resume_reading()
            while not self._done:
                if self._error is not None:
                    raise self._error
                await self._wait()
        parts = self._parts
        self._parts = []
        self._size = 0
        if len(parts) == 1:
            return parts[0]
        return b"".join(parts)

    async def chunks(self) -> AsyncIterator[bytes]:
        """The body as it arrives: each item is everything received since the previous one."""
        while True:
            parts = self._parts
            if parts:
                self._parts = []
                self._size = 0
                conn = self._conn
                if conn is not None and conn.reading_paused:
                    conn.resume_reading()
                yield parts[0] if len(parts) == 1 else b"".join(parts)
            elif self._done:
                return
            elif self._error is not None:
                raise self._error
            else:
                await self._wait()

    def close(self) -> None:
        conn = self._conn
        if conn is None:
            return
        self._conn = None
        if not self._done and self._error is None:
            self._error = Disconnected("the response was closed before its end")
            self._wake()  # a read() or chunks() waiting in another task ends too
        conn.release(self)

    def _wait(self) -> asyncio.Future[None]:
        waiter = self._conn.loop.create_future()  # type: ignore[union-attr]  # open while waiting
        self._waiter = waiter
        return waiter

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None:
            self._waiter = None
            if not waiter.done():
                waiter.set_result(None)


class _Connection(asyncio.Protocol):
    """One connection to an origin: an asyncio protocol and the parser's callbacks."""

    __slots__ = (
        "_deadline",
        "_head_bytes",
        "_headers",
        "_informational",
        "_keep_alive",
        "_parser",
        "_pool",
        "_received",
        "_timer",
        "_timer_at",
        "_uses",
        "closed",
        "idle_since",
        "last_activity",
        "loop",
        "origin",
        "pooled",
        "reading_paused",
        "response",
        "transport",
    )

    def __init__(self, pool: Pool, origin: Origin, loop: asyncio.AbstractEventLoop) -> None:
        self._pool = pool
        self.origin = origin
        self.loop = loop
        self.transport: asyncio.Transport | None = None
        self._parser = httptools.HttpResponseParser(self)
        self.response: Response | None = None  # the exchange in progress (None: idle)
        self.closed = False
        self.pooled = False  # in the pool's idle list
        self.reading_paused = False
        self.last_activity = 0.0  # loop time of the last progress (request sent, bytes received)
        self.idle_since = 0.0
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at = 0.0
        self._uses = 0
        self._received = False  # any byte of the current response
        self._head_bytes = 0  # bytes received while the current response's head is incomplete
        self._deadline = 0.0  # loop time by which the current response must be complete
        self._headers: list[tuple[bytes, bytes]] = []
        self._informational = False
        self._keep_alive = False

    # -- the exchange

    async def exchange(self, data: bytes | list[bytes]) -> Response:
        """Send one request and wait for the response's headers."""
        response = Response(self)
        self.response = response
        self._received = False
        self._head_bytes = 0
        self._uses += 1
        now = self.loop.time()
        self.last_activity = now
        pool = self._pool
        self._deadline = now + pool.deadline_s
        self._arm(now + pool.first_wait_s)
        try:
            transport = self.transport
            if transport is None or transport.is_closing():
                raise _Stale(f"the connection to {self.origin} was closed")
            if type(data) is bytes:
                transport.write(data)
            else:
                transport.writelines(data)
            while not response._headers_done:
                if response._error is not None:
                    raise response._error
                await response._wait()
        except _Stale:
            self.close(abort=True)
            if self._uses > 1:
                raise
            raise Disconnected(f"{self.origin} closed the connection before answering") from None
        except (RuntimeError, OSError) as exc:  # writing to a transport that is gone
            self.close(abort=True)
            if self._uses > 1:
                raise _Stale(f"the connection to {self.origin} was closed") from None
            raise Disconnected(f"{self.origin} closed the connection before answering") from exc
        except BaseException:  # an error, or the caller was cancelled: the socket goes too
            self.close(abort=True)
            raise
        return response

    def release(self, response: Response) -> None:
        """The caller is done with `response`: pool the connection or close it."""
        if self.response is not response:
            return
        self.response = None
        if self.closed:
            return
        transport = self.transport
        # Reusable: the response ended, the server keeps the connection open, and all of the
        # request was sent (a server that answers before reading a large body may not read it).
        if (
            response._done
            and self._keep_alive
            and not transport.is_closing()  # type: ignore[union-attr]
            and not transport.get_write_buffer_size()  # type: ignore[union-attr]
        ):
            if self.reading_paused:
                self.resume_reading()
            self._pool._put(self)
        else:
            self.close(abort=not response._done)

    def fail(self, error: Upstream) -> None:
        """End the connection; an unfinished response ends with `error`."""
        response = self.response
        if response is not None and not response._done and response._error is None:
            response._error = error
            response._wake()
        self.close(abort=True)

    def close(self, abort: bool = False) -> None:
        if self.closed:
            return
        self._forget()
        transport = self.transport
        if transport is not None:
            if abort:
                transport.abort()
            else:
                transport.close()

    def _forget(self) -> None:
        self.closed = True
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._pool._forget(self)

    # -- timers: one per connection, re-armed only when it fires or must fire sooner

    def _arm(self, when: float) -> None:
        timer = self._timer
        if timer is not None:
            if when >= self._timer_at:
                return
            timer.cancel()
        self._timer_at = when
        self._timer = self.loop.call_at(when, self._on_timer)

    def _on_timer(self) -> None:
        self._timer = None
        if self.closed:
            return
        now = self.loop.time()
        response = self.response
        if response is not None:
            if response._done:
                return  # nothing due from the server; re-armed by the next exchange
            pool = self._pool
            if self._deadline <= now + _SLACK_S:
                message = f"{self.origin} did not complete its response within {pool.deadline_s:g}s"
                self.fail(DeadlineExceeded(message, pool.deadline_s))
                return
            deadline = self._deadline
            if not self.reading_paused:  # paused: the caller is slow, not the server
                silence_ends = self.last_activity + pool.read_timeout_s
                if silence_ends <= now + _SLACK_S:
                    self.fail(Timeout(f"{self.origin} sent nothing for {pool.read_timeout_s:g}s"))
                    return
                if silence_ends < deadline:
                    deadline = silence_ends
        elif self.pooled:
            deadline = self.idle_since + self._pool.idle_timeout_s
            if deadline <= now + _SLACK_S:
                self.close()
                return
        else:
            return
        self._timer_at = deadline
        self._timer = self.loop.call_at(deadline, self._on_timer)

    # -- flow control

    def pause_reading(self) -> None:
        self.reading_paused = True
        self.transport.pause_reading()  # type: ignore[union-attr]

    def resume_reading(self) -> None:
        self.reading_paused = False
        if not self.closed:
            self.transport.resume_reading()  # type: ignore[union-attr]
            now = self.loop.time()
            self.last_activity = now
            self._arm(now + self._pool.read_timeout_s)

    def pause_writing(self) -> None:  # a large request body is on its way: that is progress
        self.last_activity = self.loop.time()

    def resume_writing(self) -> None:
        self.last_activity = self.loop.time()

    # -- asyncio.Protocol

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        response = self.response
        if response is None or response._done:
            self.close(abort=True)  # bytes while idle (or after the response): not reusable
            return
        self.last_activity = self.loop.time()
        self._received = True
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            self.fail(ProtocolError(f"{self.origin} switched protocols"))
        except httptools.HttpParserError as exc:
            if isinstance(exc.__context__, _Unsolicited):
                self.fail(ProtocolError(f"{self.origin} sent more than one response"))
            elif isinstance(exc.__context__, _BodyTooLarge):
                self.fail(TooLarge("a response body", self._pool.max_body_bytes))
            else:
                self.fail(ProtocolError(f"malformed response from {self.origin}: {exc}"))
        else:
            if not response._headers_done:
                self._head_pending(len(data))

    def _head_pending(self, received: int) -> None:
        """Count the bytes of a head still incomplete (the parser holds an unfinished header
        whole, so counting what it hands out would not bound it)."""
        self._head_bytes += received
        if self._head_bytes > self._pool.max_head_bytes:
            self.fail(TooLarge("a response head", self._pool.max_head_bytes))

    def eof_received(self) -> bool:
        return False  # the transport closes itself; connection_lost decides what it means

    def connection_lost(self, exc: Exception | None) -> None:
        closed_by_us = self.closed
        if not closed_by_us:
            self._forget()
        response = self.response
        if response is None or response._done or response._error is not None:
            return
        if closed_by_us:
            response._error = Disconnected(f"the connection to {self.origin} was closed")
        elif exc is None and response._headers_done and _close_delimited(response):
            self._keep_alive = False
            response._done = True  # a body without length or chunks ends with the connection
        elif not self._received and self._uses > 1:
            response._error = _Stale(f"{self.origin} closed a kept-alive connection")
        else:
            response._error = Disconnected(
                f"{self.origin} closed the connection before the response was complete"
            )
        response._wake()

    # -- httptools callbacks

    def on_message_begin(self) -> None:
        response = self.response
        if response is None or response._done:
            raise _Unsolicited
        self._headers = []

    def on_header(self, name: bytes, value: bytes) -> None:
        self._headers.append((name.lower(), value))

    def on_headers_complete(self) -> None:
        status = self._parser.get_status_code()
        if status < 200:
            self._informational = True  # 100 Continue, 103 Early Hints: the real one follows
            return
        self._informational = False
        response = self.response
        response.status = status  # type: ignore[union-attr]
        headers = self._headers
        response.headers = headers  # type: ignore[union-attr]
        self._headers = []  # trailer fields of a chunked body, if any, go here and are dropped
        for name, value in headers:
            if name == b"content-type":
                response.content_type = value.split(b";", 1)[0].strip().lower()  # type: ignore[union-attr]
                break
        response._headers_done = True  # type: ignore[union-attr]
        response._wake()  # type: ignore[union-attr]

    def on_body(self, body: bytes) -> None:
        response = self.response
        response._parts.append(body)  # type: ignore[union-attr]
        response._size += len(body)  # type: ignore[union-attr]
        if response._size > _HIGH_WATER:  # type: ignore[union-attr]
            self._piled_up(response)  # type: ignore[arg-type]
        response._wake()  # type: ignore[union-attr]

    def _piled_up(self, response: Response) -> None:
        """Over `_HIGH_WATER` body bytes wait: for a slow reader of `chunks()` (reading pauses
        until it takes them), or for `read()`, which takes the whole body up to the limit."""
        if not response._accumulate:
            if not self.reading_paused:
                self.pause_reading()
        elif response._size > self._pool.max_body_bytes:
            raise _BodyTooLarge

    def on_message_complete(self) -> None:
        if self._informational:
            self._informational = False
            return
        parser = self._parser
        self._keep_alive = parser.should_keep_alive() and parser.get_http_version() == "1.1"
        response = self.response
        response._done = True  # type: ignore[union-attr]
        response._wake()  # type: ignore[union-attr]


def _close_delimited(response: Response) -> bool:
    """Whether the body ends with the connection (no content-length, no chunked coding)."""
    if response.status == 204 or response.status == 304:
        return False
    return not any(name == b"content-length" or name == b"transfer-encoding" for name, _ in response.headers)


class Pool:
    """Keep-alive connections per origin, and the requests made on them."""

    def __init__(
        self,
        *,
        connect_timeout_s: float,
        read_timeout_s: float,
        max_idle_per_origin: int = 256,
        idle_timeout_s: float = 60.0,
        ssl_context: ssl.SSLContext | None = None,
        deadline_s: float = 3600.0,
        max_head_bytes: int = 64 * 1024,
        max_body_bytes: int = 64 * 1024 * 1024,
    ) -> None:
        """`deadline_s`: from sending a request to its response's last byte; `max_body_bytes`
        bounds a body taken by `read()` (checked once over 256 KiB wait, so no lower than that)."""
        self.connect_timeout_s = connect_timeout_s
        self.read_timeout_s = read_timeout_s
        self.deadline_s = deadline_s
        self.first_wait_s = min(read_timeout_s, deadline_s)  # the timer first set for a call
        self.max_head_bytes = max_head_bytes
        self.max_body_bytes = max_body_bytes
        self.max_idle_per_origin = max_idle_per_origin
        self.idle_timeout_s = idle_timeout_s
        self._ssl_context = ssl_context
        self._idle: dict[Origin, list[_Connection]] = {}
        self._connections: set[_Connection] = set()
        self._closed = False

    async def request(
        self,
        method: bytes,
        origin: Origin,
        target: bytes,
        headers: list[tuple[bytes, bytes]],
        body: bytes,
    ) -> Response:
        """Send a request and return once the response's status line and headers arrived.

        `headers` are sent as given, after `host` and `content-length` (so they must hold
        neither, nor `transfer-encoding`). Raises an `Upstream` error, or ValueError for a
        request that would be malformed."""
        if self._closed:
            raise RuntimeError("the upstream pool is closed")
        data = _request_bytes(method, target, origin.host_header, headers, body)
        idle = self._idle.get(origin)
        while idle:
            conn = idle.pop()
            conn.pooled = False
            if conn.closed:
                continue
            try:
                return await conn.exchange(data)
            except _Stale:
                break  # the server closed it as we sent: once more, on a new connection
        conn = await self._connect(origin)
        return await conn.exchange(data)

    async def close(self) -> None:
        """Close every connection, idle or in use; unfinished responses end with Disconnected."""
        self._closed = True
        self._idle.clear()
        for conn in list(self._connections):
            conn.fail(Disconnected("the upstream pool was closed"))
        await asyncio.sleep(0)  # let the transports finish closing

    def _put(self, conn: _Connection) -> None:
        if self._closed:
            conn.close()
            return
        idle = self._idle.get(conn.origin)
        if idle is None:
            idle = self._idle[conn.origin] = []
        if len(idle) >= self.max_idle_per_origin:
            conn.close()
            return
        now = conn.loop.time()
        conn.idle_since = now
        conn._arm(now + self.idle_timeout_s)
        conn.pooled = True
        idle.append(conn)

    def _forget(self, conn: _Connection) -> None:
        self._connections.discard(conn)
        if conn.pooled:
            conn.pooled = False
            idle = self._idle.get(conn.origin)
            if idle and conn in idle:
                idle.remove(conn)

    async def _connect(self, origin: Origin) -> _Connection:
        loop = asyncio.get_running_loop()
        conn = _Connection(self, origin, loop)
        transport: asyncio.BaseTransport | None = None
        stage = "connect"
        try:
            async with asyncio.timeout(self.connect_timeout_s):
                transport, _ = await loop.create_connection(lambda: conn, origin.host, origin.port)
                if origin.scheme == "https":
                    stage = "tls"
                    if self._ssl_context is None:
                        self._ssl_context = ssl.create_default_context()
                    conn.transport = await loop.start_tls(  # type: ignore[assignment]
                        transport,  # type: ignore[arg-type]
                        conn,
                        self._ssl_context,
                        server_hostname=origin.host,
                    )
        except BaseException as exc:
            if transport is not None:
                transport.abort()  # type: ignore[attr-defined]
            conn.closed = True
            raise _connect_error(exc, origin, stage, self.connect_timeout_s) from None
        if self._closed:
            conn.close(abort=True)
            raise Disconnected("the upstream pool was closed")
        self._connections.add(conn)
        return conn


def _connect_error(exc: BaseException, origin: Origin, stage: str, timeout_s: float) -> BaseException:
    if isinstance(exc, TimeoutError):
        what = "TLS handshake" if stage == "tls" else "connecting"
        return Timeout(f"{what} to {origin} took longer than {timeout_s:g}s")
    if not isinstance(exc, OSError):
        return exc  # cancelled, or a bug: as it is
    if stage == "tls":
        reason = exc.reason if isinstance(exc, ssl.SSLError) and exc.reason else exc.strerror or str(exc)
        return ConnectFailed(f"TLS handshake with {origin} failed: {reason}", exc)
    if isinstance(exc, socket.gaierror):
        return ConnectFailed(f"DNS lookup of {origin.host} failed: {exc.strerror}", exc)
    if isinstance(exc, ConnectionRefusedError):
        return ConnectFailed(f"{origin} refused the connection", exc)
    return ConnectFailed(f"cannot connect to {origin}: {exc.strerror or exc}", exc)
