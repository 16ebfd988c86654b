"""The gateway's own HTTP/1.1 server (xvckit.http_server) against real sockets on loopback.

Raw sockets where the bytes on the wire matter (framing, keep-alive, pipelining,
100-continue, errors, graceful stop); httpx for a stream read as it arrives."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import hashlib
import random
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass

import httpx
import pytest

from xvckit.asgi import ASGIApp, Receive, Scope, Send, lifespan, read_body, respond
from xvckit.http_server import BODY_HIGH_WATER, MAX_HEAD_BYTES, ON_DISCONNECT, HttpServer

WAIT_S = 5.0  # generous on a busy machine; a passing test never waits this long
CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"
TEXT = b"text/plain"
CLOSE = ("Connection: close",)

Handler = Callable[[Scope, Receive, Send], Awaitable[None]]


async def nothing() -> None:
    pass


def with_lifespan(
    handler: Handler,
    startup: Callable[[], Awaitable[None]] = nothing,
    shutdown: Callable[[], Awaitable[None]] = nothing,
) -> ASGIApp:
    """An app as the gateway is one: `handler` for requests, the lifespan protocol besides."""

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await lifespan(receive, send, startup, shutdown)
        else:
            await handler(scope, receive, send)

    return app


@contextlib.asynccontextmanager
async def serving(handler: Handler, **options) -> AsyncIterator[HttpServer]:
    server = HttpServer(with_lifespan(handler), **options)
    await server.start()
    try:
        yield server
    finally:
        await asyncio.wait_for(server.stop(), WAIT_S)  # a second stop() returns at once


def request(
    method: str = "GET",
    path: str = "/",
    body: bytes = b"",
    headers: tuple[str, ...] = (),
    version: str = "1.1",
) -> bytes:
    lines = [f"{method} {path} HTTP/{version}", "host: test", *headers]
    if body:
        lines.append(f"content-length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


def parse_head(head: bytes) -> tuple[int, dict[str, str]]:
    status_line, *lines = head.decode("latin-1").rstrip("\r\n").split("\r\n")
    fields = (line.partition(": ") for line in lines)
    return int(status_line.split(" ")[1]), {name.lower(): value for name, _, value in fields}


@dataclass
class Reply:
    status: int
    headers: dict[str, str]
    body: bytes  # as on the wire: a chunked body keeps its framing


class Client:
    """One raw connection: bytes out, responses read just far enough to check them."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer

    async def send(self, data: bytes) -> None:
        self.writer.write(data)
        async with asyncio.timeout(WAIT_S):
            await self.writer.drain()

    async def reply(self) -> Reply:
        async with asyncio.timeout(WAIT_S):
            status, headers = parse_head(await self.reader.readuntil(b"\r\n\r\n"))
            if "content-length" in headers:
                body = await self.reader.readexactly(int(headers["content-length"]))
            elif headers.get("transfer-encoding") == "chunked":
                body = await self._chunked()
            else:
                body = await self.reader.read()
        return Reply(status, headers, body)

    async def _chunked(self) -> bytes:
        wire = b""
        while True:
            size_line = await self.reader.readuntil(b"\r\n")
            size = int(size_line, 16)
            wire += size_line + await self.reader.readexactly(size + 2)
            if size == 0:
                return wire

    async def rest(self) -> bytes:
        """Everything until the server closes."""
        async with asyncio.timeout(WAIT_S):
            return await self.reader.read()

    async def closed(self) -> bool:
        """The server closed the connection without sending anything more."""
        try:
            return await self.rest() == b""
        except ConnectionResetError:
            return True


@contextlib.asynccontextmanager
async def connect(server: HttpServer) -> AsyncIterator[Client]:
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    try:
        yield Client(reader, writer)
    finally:
        writer.close()


async def exchange(server: HttpServer, data: bytes) -> tuple[int, dict[str, str], bytes]:
    """Status, headers and the exact body bytes of a request (that asks to close) on a
    connection of its own."""
    async with connect(server) as client:
        await client.send(data)
        head, _, body = (await client.rest()).partition(b"\r\n\r\n")
    return *parse_head(head), body


async def echo(scope: Scope, receive: Receive, send: Send) -> None:
    """Answers `METHOD PATH BODY`; the path /slow takes a while first."""
    body = await read_body(scope, receive, 1 << 30)
    if scope["path"] == "/slow":
        await asyncio.sleep(0.05)
    await respond(send, 200, f"{scope['method']} {scope['path']} ".encode() + body, TEXT)


# --- requests, keep-alive, pipelining ---------------------------------------------------------


@pytest.mark.parametrize(("method", "body"), [("GET", b""), ("POST", b"hello")])
async def test_request_with_content_length(method, body) -> None:
    async with serving(echo) as server, connect(server) as client:
        await client.send(request(method, "/x", body))
        reply = await client.reply()
    assert reply.status == 200
    assert reply.body == f"{method} /x ".encode() + body
    assert reply.headers["content-length"] == str(len(reply.body))
    assert reply.headers["date"].endswith(" GMT")


async def test_scope() -> None:
    """What the app is told: path decoded, raw path and query as sent, both ends' addresses."""
    scopes: list[Scope] = []

    async def record(scope: Scope, receive: Receive, send: Send) -> None:
        scopes.append(scope)
        await respond(send, 204, b"")

    async with serving(record) as server:
        await exchange(server, request("GET", "/a%20b/c?x=1&y=%20", headers=("X-Thing: Yes", *CLOSE)))
    scope = scopes[0]
    assert {key: scope[key] for key in ("type", "http_version", "method", "path", "raw_path")} == {
        "type": "http",
        "http_version": "1.1",
        "method": "GET",
        "path": "/a b/c",
        "raw_path": b"/a%20b/c",
    }
    assert scope["query_string"] == b"x=1&y=%20"
    assert (b"x-thing", b"Yes") in scope["headers"]
    assert scope["server"] == ("127.0.0.1", server.port)
    assert scope["client"][0] == "127.0.0.1"


@pytest.mark.parametrize(
    ("version", "headers", "connection"),
    [("1.1", (), None), ("1.0", ("Connection: keep-alive",), "keep-alive")],
)
async def test_keep_alive_serves_several_requests(version, headers, connection) -> None:
    async with serving(echo) as server, connect(server) as client:
        for n in range(3):
            await client.send(request("POST", "/", str(n).encode(), headers, version))
            reply = await client.reply()
            assert reply.body == f"POST / {n}".encode()
            assert reply.headers.get("connection") == connection


@pytest.mark.parametrize(("version", "headers"), [("1.0", ()), ("1.1", CLOSE)])
async def test_connection_closes_after_the_response(version, headers) -> None:
    async with serving(echo) as server, connect(server) as client:
        await client.send(request("GET", "/", b"", headers, version))
        reply = await client.reply()
        assert (reply.body, reply.headers["connection"]) == (b"GET / ", "close")
        assert await client.closed()


async def test_idle_keep_alive_connection_times_out() -> None:
    async with serving(echo, keep_alive_s=0.1) as server, connect(server) as client:
        await client.send(request())
        assert (await client.reply()).status == 200
        assert await client.closed()


async def test_pipelined_requests_are_answered_in_order() -> None:
    """The first takes longer, yet its answer comes first and the bodies stay apart."""
    async with serving(echo) as server, connect(server) as client:
        await client.send(request("POST", "/slow", b"one") + request("POST", "/fast", b"two"))
        assert (await client.reply()).body == b"POST /slow one"
        assert (await client.reply()).body == b"POST /fast two"


# --- request bodies ---------------------------------------------------------------------------


async def test_chunked_request_body_is_reassembled() -> None:
    head = b"POST / HTTP/1.1\r\nhost: test\r\ntransfer-encoding: chunked\r\n\r\n"
    async with serving(echo) as server, connect(server) as client:
        await client.send(head + b"5\r\nhello\r\n")
        await client.send(b"6\r\n world\r\n0\r\n\r\n")
        assert (await client.reply()).body == b"POST / hello world"


async def test_large_body_reaches_a_slow_reader_intact() -> None:
    """Reading pauses while the app lags, so no single body message holds more than about
    the high-water mark plus one socket read, however far behind the app is."""
    body = random.Random(6).randbytes(8 << 20)
    sizes: list[int] = []

    async def slow_digest(scope: Scope, receive: Receive, send: Send) -> None:
        await asyncio.sleep(0.2)  # the client has written far more than the high-water mark by now
        digest = hashlib.sha256()
        more = True
        while more:
            message = await receive()
            sizes.append(len(message["body"]))
            digest.update(message["body"])
            more = message["more_body"]
            await asyncio.sleep(0.001)
        await respond(send, 200, digest.hexdigest().encode(), TEXT)

    async with serving(slow_digest) as server, connect(server) as client:
        await client.send(request("POST", "/", body))
        assert (await client.reply()).body == hashlib.sha256(body).hexdigest().encode()
    assert sum(sizes) == len(body)
    assert max(sizes) < 3 * BODY_HIGH_WATER


async def test_expect_continue_is_answered_when_the_app_reads() -> None:
    head = request("POST", "/", headers=("Expect: 100-continue", "Content-Length: 5"))
    async with serving(echo) as server, connect(server) as client:
        await client.send(head)
        async with asyncio.timeout(WAIT_S):
            assert await client.reader.readexactly(len(CONTINUE)) == CONTINUE
        await client.send(b"hello")
        assert (await client.reply()).body == b"POST / hello"


async def test_no_continue_when_the_app_answers_without_reading() -> None:
    """The client never sends its body then, so the connection cannot carry another request."""

    async def refuse(scope: Scope, receive: Receive, send: Send) -> None:
        await respond(send, 401, b"no", TEXT)

    head = request("POST", "/", headers=("Expect: 100-continue", "Content-Length: 5"))
    async with serving(refuse) as server, connect(server) as client:
        await client.send(head)
        reply = await client.reply()
        assert (reply.status, reply.body, reply.headers["connection"]) == (401, b"no", "close")
        assert await client.closed()


@pytest.mark.parametrize("delay_s", [0, 0.1], ids=["at-once", "once-reading-paused"])
async def test_a_body_the_app_leaves_unread_does_not_stall_the_connection(delay_s) -> None:
    """An early answer (a 413, a 401) to a large upload: the rest of the body is read and
    dropped, and the next request on the connection is answered. The delay lets the body
    pass the high-water mark first, so reading is paused when the app answers."""

    async def refuse(scope: Scope, receive: Receive, send: Send) -> None:
        await asyncio.sleep(delay_s)
        await respond(send, 413, b"too large", TEXT)

    async with serving(refuse) as server, connect(server) as client:
        client.writer.write(request("POST", "/", b"x" * (3 * BODY_HIGH_WATER)))
        assert (await client.reply()).status == 413
        await client.send(request())
        assert (await client.reply()).status == 413


# --- responses --------------------------------------------------------------------------------


def start(*headers: tuple[bytes, bytes]) -> dict:
    return {"type": "http.response.start", "status": 200, "headers": list(headers)}


def part(body: bytes, more: bool = False) -> dict:
    return {"type": "http.response.body", "body": body, "more_body": more}


STREAM = [start(), part(b"hello", True), part(b"", True), part(b" world", True), part(b"")]
FIXED = [start((b"content-length", b"5")), part(b"hello")]
ERROR_500 = b"Internal Server Error"


def scripted(script: list) -> Handler:
    """Sends the script's messages in order; an exception in it is raised there."""

    async def handler(scope: Scope, receive: Receive, send: Send) -> None:
        for step in script:
            if isinstance(step, Exception):
                raise step
            await send(step)

    return handler


CHUNKED = {"transfer-encoding": "chunked"}
LENGTH_5 = {"content-length": "5"}
CLOSES = {"connection": "close"}


async def wire(script: list, data: bytes) -> tuple[int, dict[str, str], bytes]:
    """What a client reads, to the close, when an app sends the script's messages."""
    async with serving(scripted(script)) as server:
        return await exchange(server, data)


@pytest.mark.parametrize(
    ("version", "method", "script", "headers", "body"),
    [
        pytest.param("1.1", "GET", FIXED, LENGTH_5, b"hello", id="fixed-length"),
        pytest.param("1.1", "GET", [start(), part(b"hello")], LENGTH_5, b"hello", id="length-added"),
        pytest.param("1.1", "GET", STREAM, CHUNKED, b"5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n", id="chunked"),
        pytest.param("1.0", "GET", STREAM, CLOSES, b"hello world", id="1.0-stream-ends-at-close"),
        pytest.param("1.1", "HEAD", FIXED, LENGTH_5, b"", id="head-fixed"),
        pytest.param("1.1", "HEAD", STREAM, CHUNKED, b"", id="head-stream"),
    ],
)
async def test_response_framing(version, method, script, headers, body) -> None:
    """The exact bytes after the head (the request asks to close, so they end there)."""
    status, got_headers, got_body = await wire(script, request(method, headers=CLOSE, version=version))
    assert (status, got_body) == (200, body)
    assert headers.items() <= got_headers.items()
    assert "date" in got_headers
    assert not {"content-length", "transfer-encoding"} <= got_headers.keys()


@pytest.mark.parametrize(
    ("script", "status", "headers", "body"),
    [
        pytest.param(
            [start((b"x-a", b"1\r\nset-cookie: a=b")), part(b"")], 500, CLOSES, ERROR_500, id="crlf"
        ),
        pytest.param([start((b"x-a\nb", b"1")), part(b"")], 500, CLOSES, ERROR_500, id="lf-in-name"),
        pytest.param([start((b"x-a", b"1\rx")), part(b"")], 500, CLOSES, ERROR_500, id="cr-in-value"),
        pytest.param([ValueError("boom")], 500, CLOSES, ERROR_500, id="raises-before-start"),
        pytest.param([], 500, CLOSES, ERROR_500, id="returns-without-response"),
        pytest.param([FIXED[0], part(b"hel", True), ValueError()], 200, LENGTH_5, b"hel", id="cut-fixed"),
        pytest.param([*STREAM[:2], ValueError()], 200, CHUNKED, b"5\r\nhello\r\n", id="cut-stream"),
    ],
)
async def test_a_failed_request_closes_a_keep_alive_connection(script, status, headers, body) -> None:
    """A 500 if the app failed before the head went out, else the body cut short."""
    got_status, got_headers, got_body = await wire(script, request())
    assert (got_status, got_body) == (status, body)
    assert headers.items() <= got_headers.items()
    assert "set-cookie" not in got_headers


@pytest.mark.parametrize("status", [204, 304])
@pytest.mark.parametrize("script", [FIXED[1:], STREAM[1:]], ids=["one-part", "streamed"])
async def test_a_status_without_a_body_sends_no_framing(status, script) -> None:
    """204 and 304 end at the head: nothing after it may be read as the next answer."""
    begin = {"type": "http.response.start", "status": status, "headers": []}
    async with serving(scripted([begin, *script])) as server, connect(server) as client:
        await client.send(request() + request(headers=CLOSE))
        first, second = (await client.rest()).split(b"\r\n\r\n", 1)
    status_got, headers = parse_head(first)
    assert status_got == status
    assert not {"content-length", "transfer-encoding"} & headers.keys()
    assert second.startswith(f"HTTP/1.1 {status} ".encode())


async def test_the_apps_connection_close_is_sent_once() -> None:
    script = [start((b"connection", b"close")), part(b"bye")]
    async with serving(scripted(script)) as server, connect(server) as client:
        await client.send(request())
        wire_bytes = await client.rest()
    assert wire_bytes.lower().count(b"connection: close") == 1


async def test_stream_reaches_httpx_as_it_is_sent() -> None:
    """The first chunk is read before the app sends the second."""
    go_on = asyncio.Event()

    async def stream(scope: Scope, receive: Receive, send: Send) -> None:
        await send(start((b"content-type", b"text/event-stream")))
        await send(part(b"data: first\n\n", True))
        await go_on.wait()
        await send(part(b"data: second\n\n"))

    async with (
        serving(stream) as server,
        httpx.AsyncClient(base_url=server.url, timeout=WAIT_S) as http,
        http.stream("GET", "/") as response,
    ):
        chunks = response.aiter_bytes()
        assert await anext(chunks) == b"data: first\n\n"
        go_on.set()
        assert b"".join([chunk async for chunk in chunks]) == b"data: second\n\n"
        assert response.headers["transfer-encoding"] == "chunked"


# --- disconnects ------------------------------------------------------------------------------


class Listener:
    """Reads the first body message, then waits in receive() as the gateway's DisconnectWatch does."""

    def __init__(self) -> None:
        self.messages: list[dict] = []
        self.read, self.done = asyncio.Event(), asyncio.Event()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        self.messages.append(await receive())
        self.read.set()
        self.messages.append(await receive())
        self.done.set()


@pytest.mark.parametrize(
    "sent",
    [request("POST", "/", b"hello"), request("POST", "/", headers=("Content-Length: 10",)) + b"hello"],
    ids=["after-the-body", "mid-body"],
)
async def test_client_leaving_is_a_disconnect_message(sent) -> None:
    """What the gateway's DisconnectWatch waits for: `receive()` ends with http.disconnect."""
    listener = Listener()
    async with serving(listener) as server:
        async with connect(server) as client:
            await client.send(sent)
            await asyncio.wait_for(listener.read.wait(), WAIT_S)
        await asyncio.wait_for(listener.done.wait(), WAIT_S)
    assert listener.messages[0]["body"] == b"hello"
    assert listener.messages[1] == {"type": "http.disconnect"}


async def test_on_disconnect_is_called_when_the_client_leaves_mid_request() -> None:
    """The ON_DISCONNECT extension: the callback runs once when the client goes away before the
    response is complete, and not for a request answered in full."""
    calls: list[str] = []
    answered, parked = asyncio.Event(), asyncio.Event()

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        path = scope["path"]
        scope["extensions"][ON_DISCONNECT](lambda: calls.append(path))
        await receive()
        if path == "/quick":
            await respond(send, 200, b"done", TEXT)
            answered.set()
        else:
            parked.set()
            await asyncio.sleep(WAIT_S)  # the client leaves meanwhile

    async with serving(app) as server:
        async with connect(server) as client:
            await client.send(request("GET", "/quick"))
            assert (await client.reply()).status == 200
            await asyncio.wait_for(answered.wait(), WAIT_S)
        async with connect(server) as client:
            await client.send(request("GET", "/slow"))
            await asyncio.wait_for(parked.wait(), WAIT_S)
        for _ in range(100):
            if calls:
                break
            await asyncio.sleep(0.01)
    assert calls == ["/slow"]


async def test_requests_leave_no_reference_cycles() -> None:
    """A request's objects go when it is answered (reference counting), not at the garbage
    collector's next pass: the on_disconnect extension must not tie the request to itself."""

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        scope["extensions"][ON_DISCONNECT](lambda: None)
        await receive()
        await respond(send, 200, b"ok", TEXT)

    async with serving(app) as server, connect(server) as client:
        await client.send(request())
        await client.reply()
        gc.collect()
        gc.set_debug(gc.DEBUG_SAVEALL)
        try:
            for _ in range(20):
                await client.send(request())
                assert (await client.reply()).status == 200
            gc.collect()
            left = [type(o).__name__ for o in gc.garbage if type(o).__module__ == "xvckit.http_server"]
        finally:
            gc.set_debug(0)
            gc.garbage.clear()
    assert left == []


# --- refused requests -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("sent", "status"),
    [
        (b"NOT HTTP AT ALL\r\n\r\n", 400),
        (request(headers=("X-Big: " + "a" * MAX_HEAD_BYTES,)), 431),
        (request(headers=("Connection: Upgrade", "Upgrade: websocket")), 501),
    ],
    ids=["malformed", "head-too-large", "upgrade"],
)
async def test_refused_request(sent, status) -> None:
    """Answered and closed by the server; the app never sees it."""
    seen: list[Scope] = []

    async def record(scope: Scope, receive: Receive, send: Send) -> None:
        seen.append(scope)
        await respond(send, 200, b"app", TEXT)

    async with serving(record) as server, connect(server) as client:
        await client.send(sent)
        reply = await client.reply()
        assert (reply.status, reply.headers["connection"]) == (status, "close")
        assert await client.closed()
    assert seen == []


async def test_a_head_that_never_ends_is_refused() -> None:
    """A header value with no end: httptools would hold it whole; the server stops at 2x the
    head limit."""
    async with serving(echo) as server, connect(server) as client:
        await client.send(b"GET / HTTP/1.1\r\nx-endless: " + b"a" * (2 * MAX_HEAD_BYTES + 1024))
        status, _ = parse_head((await client.rest()).partition(b"\r\n\r\n")[0])
    assert status == 431


async def test_a_head_sent_too_slowly_is_refused() -> None:
    async with serving(echo, head_timeout_s=0.2) as server, connect(server) as client:
        await client.send(b"GET / HTTP/1.1\r\nhost: test\r\n")  # and then nothing more
        started = time.monotonic()
        status, _ = parse_head((await client.rest()).partition(b"\r\n\r\n")[0])
    assert status == 408 and time.monotonic() - started < WAIT_S


# --- graceful stop ----------------------------------------------------------------------------


async def refused(server: HttpServer) -> bool:
    try:
        async with connect(server):
            return False
    except ConnectionRefusedError:
        return True


async def test_stop_lets_an_in_flight_request_finish() -> None:
    """The answer arrives whole (and says close) while stop() waits; newcomers are refused."""
    started, finish = asyncio.Event(), asyncio.Event()

    async def slow(scope: Scope, receive: Receive, send: Send) -> None:
        started.set()
        await finish.wait()
        await respond(send, 200, b"x" * 100_000, TEXT)

    async with serving(slow) as server, connect(server) as client:
        await client.send(request())
        await asyncio.wait_for(started.wait(), WAIT_S)
        stopping = asyncio.create_task(server.stop())
        await asyncio.sleep(0)  # stop() has closed the listening socket and waits
        assert await refused(server)
        assert not stopping.done()
        finish.set()
        reply = await client.reply()
        assert (reply.body, reply.headers["connection"]) == (b"x" * 100_000, "close")
        assert await client.closed()
        await asyncio.wait_for(stopping, WAIT_S)


async def test_stop_closes_idle_keep_alive_connections() -> None:
    """No grace period, yet stop() does not wait: an idle connection has nothing in flight."""
    async with serving(echo) as server, connect(server) as client:
        await client.send(request())
        assert (await client.reply()).status == 200
        await asyncio.wait_for(server.stop(), WAIT_S)
        assert await client.closed()
        assert await refused(server)


@pytest.mark.parametrize(("grace_s", "force"), [(None, True), (0.2, False)], ids=["force-exit", "grace"])
async def test_stop_gives_up_on_a_request_that_does_not_end(grace_s, force) -> None:
    """force_exit() or the end of the grace period closes the connection; the app, waiting
    in receive(), learns of it as a disconnect."""
    listener = Listener()
    async with serving(listener, shutdown_grace_s=grace_s) as server, connect(server) as client:
        await client.send(request())
        await asyncio.wait_for(listener.read.wait(), WAIT_S)
        began = time.monotonic()
        stopping = asyncio.create_task(server.stop())
        if force:
            await asyncio.sleep(0.05)
            server.force_exit()
        await asyncio.wait_for(stopping, WAIT_S)
        assert time.monotonic() - began >= (grace_s or 0)
        assert await client.closed()
    assert listener.messages[-1] == {"type": "http.disconnect"}


# --- lifespan ---------------------------------------------------------------------------------


async def test_lifespan_hooks_run_in_order() -> None:
    events: list[str] = []

    async def note(event: str) -> None:
        events.append(event)

    async def handler(scope: Scope, receive: Receive, send: Send) -> None:
        await note("request")
        await respond(send, 204, b"")

    app = with_lifespan(handler, lambda: note("startup"), lambda: note("shutdown"))
    server = HttpServer(app)
    await server.start()
    assert events == ["startup"]
    await exchange(server, request(headers=CLOSE))
    await server.stop()
    assert events == ["startup", "request", "shutdown"]


async def test_failing_startup_fails_start() -> None:
    """start() says why, and the port is let go rather than left to queue clients."""

    async def broken() -> None:
        raise OSError("database unreachable")

    server = HttpServer(with_lifespan(echo, startup=broken))
    with pytest.raises(RuntimeError, match="database unreachable"):
        await server.start()
    assert await refused(server)
