"""The gateway's HTTP/1.1 upstream client (xvckit.gateway.http1) against real sockets on loopback:
small servers written here (raw bytes, so every framing and failure can be produced on purpose),
a TLS server with a certificate made for the test, and the simulator.

Each test runs on uvloop (what the gateway runs on) and on asyncio's own loop."""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import hashlib
import ipaddress
import os
import socket
import ssl
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

import orjson
import pytest
import uvloop
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from xvckit.gateway.http1 import (
    ConnectFailed,
    Disconnected,
    Origin,
    Pool,
    ProtocolError,
    Response,
    Timeout,
    Upstream,
    split_url,
)

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]

OK_HEADERS = b"HTTP/1.1 200 OK\r\ncontent-type: Application/JSON; charset=utf-8\r\n"
STREAM_HEADERS = b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n"


@pytest.fixture(params=["uvloop", "asyncio"])
def run(request) -> Callable[[Coroutine[Any, Any, Any]], Any]:
    factory = uvloop.new_event_loop if request.param == "uvloop" else asyncio.new_event_loop

    def run(coro: Coroutine[Any, Any, Any]) -> Any:
        with asyncio.Runner(loop_factory=factory) as runner:
            return runner.run(asyncio.wait_for(coro, 20))

    return run


def make_pool(**overrides: Any) -> Pool:
    settings: dict[str, Any] = {"connect_timeout_s": 2.0, "read_timeout_s": 5.0, **overrides}
    return Pool(**settings)


# --------------------------------------------------------------------------- test servers


class Server:
    """An asyncio TCP server on loopback running `handler` per connection, counting them."""

    def __init__(self, handler: Handler, host: str = "127.0.0.1", ssl_context: ssl.SSLContext | None = None):
        self.handler = handler
        self.host = host
        self.ssl_context = ssl_context
        self.connections = 0
        self.tasks: set[asyncio.Task] = set()

    async def __aenter__(self) -> Server:
        self.server = await asyncio.start_server(self._serve, self.host, 0, ssl=self.ssl_context)
        self.port = self.server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        self.server.close()
        for task in self.tasks:
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)

    def origin(self, scheme: str = "http") -> Origin:
        return Origin(scheme, self.host, self.port)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        self.tasks.add(asyncio.current_task())  # type: ignore[arg-type]
        try:
            await self.handler(reader, writer)
        except (ConnectionError, asyncio.IncompleteReadError, asyncio.CancelledError):
            pass  # (a cancelled handler that raised would be logged as an error by asyncio)
        finally:
            writer.close()


async def read_request(reader: asyncio.StreamReader) -> tuple[list[bytes], bytes] | None:
    """The request's head lines and body (by content-length); None at EOF."""
    try:
        head = await reader.readuntil(b"\r\n\r\n")
    except asyncio.IncompleteReadError:
        return None
    lines = head[:-4].split(b"\r\n")
    length = 0
    for line in lines[1:]:
        name, _, value = line.partition(b":")
        if name.lower() == b"content-length":
            length = int(value)
    return lines, await reader.readexactly(length)


def answering(*responses: bytes, then_close: bool = False) -> Handler:
    """A handler that answers successive requests on a connection with `responses`, in turn
    (the last one again and again), and closes after them if `then_close`."""

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        count = 0
        while await read_request(reader) is not None:
            writer.write(responses[min(count, len(responses) - 1)])
            count += 1
            if then_close and count >= len(responses):
                await writer.drain()
                return

    return handler


def with_length(body: bytes, head: bytes = OK_HEADERS) -> bytes:
    return head + b"content-length: %d\r\n\r\n" % len(body) + body


async def get(pool: Pool, origin: Origin, target: bytes = b"/", body: bytes = b"") -> tuple[Response, bytes]:
    response = await pool.request(b"POST", origin, target, [(b"content-type", b"text/plain")], body)
    try:
        return response, await response.read()
    finally:
        response.close()


# --------------------------------------------------------------------------- framing


def test_content_length_body_and_what_is_sent(run) -> None:
    seen: list[tuple[list[bytes], bytes]] = []

    async def handler(reader, writer) -> None:
        while (request := await read_request(reader)) is not None:
            seen.append(request)
            writer.write(with_length(b'{"ok":true}', OK_HEADERS + b"X-Request-ID: abc\r\n"))

    async def scenario() -> None:
        pool = make_pool()
        async with Server(handler) as server:
            headers = [(b"authorization", b"Bearer k"), (b"x-Custom", b"1")]
            response = await pool.request(b"POST", server.origin(), b"/v1/x?y=1", headers, b"hello")
            assert response.status == 200
            assert response.content_type == b"application/json"
            assert (b"x-request-id", b"abc") in response.headers
            assert all(name == name.lower() for name, _ in response.headers)
            assert await response.read() == b'{"ok":true}'
            response.close()
            response.close()  # idempotent
            for method in (b"GET", b"DELETE"):
                (await pool.request(method, server.origin(), b"/", [], b"")).close()
        await pool.close()
        host = f"host: 127.0.0.1:{server.port}".encode()
        lines, body = seen[0]
        assert lines == [
            b"POST /v1/x?y=1 HTTP/1.1",
            host,
            b"content-length: 5",
            b"authorization: Bearer k",
            b"x-Custom: 1",
        ]
        assert body == b"hello"
        assert seen[1] == ([b"GET / HTTP/1.1", host], b"")  # no content-length on a GET without body
        assert seen[2] == ([b"DELETE / HTTP/1.1", host, b"content-length: 0"], b"")

    run(scenario())


def test_chunked_body_is_decoded(run) -> None:
    wire = (
        b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n"
        b"5\r\nhello\r\n1;ext=1\r\n \r\n6\r\nworld!\r\n0\r\nx-trailer: t\r\n\r\n"
    )

    async def scenario() -> None:
        pool = make_pool()
        async with Server(answering(wire)) as server:
            response, body = await get(pool, server.origin())
            assert body == b"hello world!"
            assert response.content_type == b"text/event-stream"
            assert [name for name, _ in response.headers] == [b"content-type", b"transfer-encoding"]
            response = await pool.request(b"GET", server.origin(), b"/", [], b"")
            assert b"".join([chunk async for chunk in response.chunks()]) == b"hello world!"
            response.close()
            assert server.connections == 1  # a chunked response leaves the connection reusable
        await pool.close()

    run(scenario())


def test_close_delimited_body_and_no_reuse(run) -> None:
    async def scenario() -> None:
        pool = make_pool()
        wire = b"HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\n\r\n" + b"x" * 100_000
        async with Server(answering(wire, then_close=True)) as server:
            for _ in range(2):
                _, body = await get(pool, server.origin())
                assert body == b"x" * 100_000
            assert server.connections == 2
        await pool.close()

    run(scenario())


@pytest.mark.parametrize(
    "wire",
    [
        with_length(b"bye", OK_HEADERS + b"connection: close\r\n"),
        with_length(b"bye", b"HTTP/1.0 200 OK\r\n"),
        with_length(b"bye", b"HTTP/1.0 200 OK\r\nconnection: keep-alive\r\n"),
    ],
    ids=["connection-close", "http-1.0", "http-1.0-keep-alive"],
)
def test_connection_close_and_http_1_0_are_not_reused(run, wire: bytes) -> None:
    async def scenario() -> None:
        pool = make_pool()
        async with Server(answering(wire)) as server:
            for _ in range(3):
                assert (await get(pool, server.origin()))[1] == b"bye"
            assert server.connections == 3
        await pool.close()

    run(scenario())


def test_informational_responses_are_skipped(run) -> None:
    informational = b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nlink: </a>\r\n\r\n"
    wire = informational + with_length(b"done")

    async def scenario() -> None:
        pool = make_pool()
        async with Server(answering(wire)) as server:
            for _ in range(2):
                response, body = await get(pool, server.origin())
                assert (response.status, body) == (200, b"done")
                assert (b"link", b"</a>") not in response.headers
            assert server.connections == 1
        await pool.close()

    run(scenario())


def test_status_without_body_and_errors_pass_through(run) -> None:
    responses = (
        b"HTTP/1.1 204 No Content\r\n\r\n",
        with_length(b'{"error":1}', b"HTTP/1.1 429 Too Many Requests\r\ncontent-type: application/json\r\n"),
    )

    async def scenario() -> None:
        pool = make_pool()
        async with Server(answering(*responses)) as server:
            assert [(r.status, b) for r, b in [await get(pool, server.origin())]] == [(204, b"")]
            response, body = await get(pool, server.origin())
            assert (response.status, body) == (429, b'{"error":1}')
            assert server.connections == 1
        await pool.close()

    run(scenario())


def test_malformed_response_is_a_protocol_error(run) -> None:
    async def scenario() -> None:
        pool = make_pool()
        async with Server(answering(b"HTTP/1.1 200 OK\r\nbad header line\r\n\r\n")) as server:
            with pytest.raises(ProtocolError, match="malformed response"):
                await get(pool, server.origin())
        async with Server(answering(b"SSH-2.0-OpenSSH\r\n")) as server:
            with pytest.raises(ProtocolError):
                await get(pool, server.origin())
        await pool.close()

    run(scenario())


# --------------------------------------------------------------------------- streaming and flow control


def test_chunks_arrive_before_the_response_ends(run) -> None:
    async def scenario() -> None:
        first_seen = asyncio.Event()

        async def handler(reader, writer) -> None:
            await read_request(reader)
            writer.write(STREAM_HEADERS)
            writer.write(b"8\r\ndata: 1\n\r\n")
            await writer.drain()
            await asyncio.wait_for(first_seen.wait(), 5)  # nothing more until the client has it
            writer.write(b"8\r\ndata: 2\n\r\n0\r\n\r\n")

        pool = make_pool()
        async with Server(handler) as server:
            response = await pool.request(b"POST", server.origin(), b"/", [], b"{}")
            received = []
            async for chunk in response.chunks():
                received.append(chunk)
                first_seen.set()
            response.close()
            assert received == [b"data: 1\n", b"data: 2\n"]
        await pool.close()

    run(scenario())


def test_request_returns_at_the_headers(run) -> None:
    async def scenario() -> None:
        go = asyncio.Event()

        async def handler(reader, writer) -> None:
            while (request := await read_request(reader)) is not None:
                size = int(request[1])
                writer.write(OK_HEADERS + b"content-length: %d\r\n\r\n" % size)
                await writer.drain()
                await go.wait()
                go.clear()
                writer.write(b"x" * size)

        pool = make_pool()
        async with Server(handler) as server:
            for size in (5, 100_000):
                pending = asyncio.ensure_future(
                    pool.request(b"POST", server.origin(), b"/", [], b"%d" % size)
                )
                await asyncio.sleep(0.1)
                assert pending.done()  # the body is not there yet
                go.set()
                response = await pending
                assert await response.read() == b"x" * size
                response.close()
        await pool.close()

    run(scenario())


def test_slow_consumer_pauses_reading_and_gets_every_byte(run) -> None:
    payload = os.urandom(3 * 1024 * 1024)

    async def scenario() -> None:
        pool = make_pool()
        async with Server(answering(with_length(payload))) as server:
            response = await pool.request(b"GET", server.origin(), b"/", [], b"")
            connection = response._conn
            paused = False
            parts = []
            async for chunk in response.chunks():
                parts.append(chunk)
                await asyncio.sleep(0.002)
                paused = paused or connection.reading_paused
            response.close()
            assert paused
            assert b"".join(parts) == payload
            assert (await get(pool, server.origin()))[1] == payload  # the connection was reused
            assert server.connections == 1
        await pool.close()

    run(scenario())


def test_large_bodies_both_ways(run) -> None:
    async def echo(reader, writer) -> None:
        while (request := await read_request(reader)) is not None:
            body = request[1]
            digest = hashlib.sha256(body).hexdigest().encode()
            writer.write(OK_HEADERS + b"x-sha256: %s\r\ncontent-length: %d\r\n\r\n" % (digest, len(body)))
            writer.write(body)

    async def scenario() -> None:
        pool = make_pool()
        async with Server(echo) as server:
            for size in (0, 10, 20_000, 6 * 1024 * 1024):
                body = os.urandom(size)
                response, echoed = await get(pool, server.origin(), body=body)
                assert dict(response.headers)[b"x-sha256"] == hashlib.sha256(body).hexdigest().encode()
                assert echoed == body
            assert server.connections == 1
        await pool.close()

    run(scenario())


# --------------------------------------------------------------------------- connections


def test_answer_before_the_whole_request_was_sent_is_not_reused(run) -> None:
    async def early(reader, writer) -> None:
        await reader.readuntil(b"\r\n\r\n")  # the head only: the body is never read
        writer.write(with_length(b"too large", b"HTTP/1.1 413 Content Too Large\r\n"))
        await asyncio.sleep(2)

    async def scenario() -> None:
        pool = make_pool()
        async with Server(early) as server:
            for _ in range(2):
                response, body = await get(pool, server.origin(), body=bytes(32 * 1024 * 1024))
                assert (response.status, body) == (413, b"too large")
            assert server.connections == 2 and not pool._idle.get(server.origin())
        await pool.close()

    run(scenario())


def test_keep_alive_one_connection_for_sequential_requests(run) -> None:
    async def scenario() -> None:
        pool = make_pool()
        async with Server(answering(with_length(b"ok"))) as server:
            for _ in range(20):
                assert (await get(pool, server.origin()))[1] == b"ok"
            assert server.connections == 1
        await pool.close()

    run(scenario())


def test_concurrent_requests_each_get_a_connection(run) -> None:
    async def scenario() -> None:
        arrived = 0
        all_arrived = asyncio.Event()

        async def handler(reader, writer) -> None:
            nonlocal arrived
            while await read_request(reader) is not None:
                arrived += 1
                if arrived == 16:
                    all_arrived.set()
                await asyncio.wait_for(all_arrived.wait(), 5)  # nobody answers before all 16 came
                writer.write(with_length(b"ok"))

        pool = make_pool()
        async with Server(handler) as server:
            results = await asyncio.gather(*(get(pool, server.origin()) for _ in range(16)))
            assert [body for _, body in results] == [b"ok"] * 16
            assert server.connections == 16
            results = await asyncio.gather(*(get(pool, server.origin()) for _ in range(16)))
            assert server.connections == 16  # the second wave reuses them all
        await pool.close()

    run(scenario())


def test_idle_connection_closed_by_the_server_is_not_used(run) -> None:
    async def scenario() -> None:
        pool = make_pool()
        async with Server(answering(with_length(b"ok"), then_close=True)) as server:
            assert (await get(pool, server.origin()))[1] == b"ok"
            (idle,) = pool._idle[server.origin()]
            for _ in range(100):  # until the loop has seen the EOF
                if idle.closed:
                    break
                await asyncio.sleep(0.01)
            assert idle.closed and not pool._idle[server.origin()]
            assert (await get(pool, server.origin()))[1] == b"ok"
            assert server.connections == 2
        await pool.close()

    run(scenario())


def test_reused_connection_that_fails_before_answering_is_retried_once(run) -> None:
    async def handler(reader, writer) -> None:
        # Answers the first request on a connection and drops the second unanswered: what a
        # server closing a kept-alive connection just as the client sends looks like.
        await read_request(reader)
        writer.write(with_length(b"first"))
        await read_request(reader)

    async def scenario() -> None:
        pool = make_pool()
        async with Server(handler) as server:
            assert (await get(pool, server.origin()))[1] == b"first"
            assert (await get(pool, server.origin()))[1] == b"first"  # retried on a new connection
            assert server.connections == 2
        await pool.close()

    run(scenario())


def test_fresh_connection_that_fails_before_answering_is_not_retried(run) -> None:
    async def scenario() -> None:
        pool = make_pool()

        async def drop(reader, writer) -> None:
            await read_request(reader)

        async with Server(drop) as server:
            with pytest.raises(Disconnected, match="closed the connection"):
                await get(pool, server.origin())
            assert server.connections == 1
        await pool.close()

    run(scenario())


def test_server_closing_mid_body_is_disconnected(run) -> None:
    async def scenario() -> None:
        pool = make_pool()
        truncated = OK_HEADERS + b"content-length: 100\r\n\r\n" + b"x" * 50
        async with Server(answering(truncated, then_close=True)) as server:
            with pytest.raises(Disconnected, match="before the response was complete"):
                await get(pool, server.origin())
            response = await pool.request(b"GET", server.origin(), b"/", [], b"")
            with pytest.raises(Disconnected):
                async for _ in response.chunks():
                    pass
            response.close()
        chunked = b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n5\r\nhello\r\n"
        async with Server(answering(chunked, then_close=True)) as server:
            with pytest.raises(Disconnected):
                await get(pool, server.origin())
        await pool.close()

    run(scenario())


def test_connection_refused(run) -> None:
    async def scenario() -> None:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]  # bound, not listening: refused
            pool = make_pool()
            with pytest.raises(ConnectFailed, match="refused") as caught:
                await pool.request(b"GET", Origin("http", "127.0.0.1", port), b"/", [], b"")
            assert isinstance(caught.value.os_error, ConnectionRefusedError)
            await pool.close()

    run(scenario())


def test_dns_failure(run) -> None:
    async def scenario() -> None:
        pool = make_pool()
        with pytest.raises(ConnectFailed, match=r"DNS lookup of no-such-host\.invalid failed"):
            await pool.request(b"GET", Origin("http", "no-such-host.invalid", 80), b"/", [], b"")
        await pool.close()

    run(scenario())


def test_ipv6_loopback(run) -> None:
    async def scenario() -> None:
        pool = make_pool()
        seen = []

        async def handler(reader, writer) -> None:
            seen.append((await read_request(reader))[0])  # type: ignore[index]
            writer.write(with_length(b"v6"))

        async with Server(handler, host="::1") as server:
            origin, target = split_url(f"http://[::1]:{server.port}/p")
            assert (await get(pool, origin, target))[1] == b"v6"
            assert seen[0][1] == f"host: [::1]:{server.port}".encode()
        await pool.close()

    run(scenario())


# --------------------------------------------------------------------------- timeouts


def test_silence_longer_than_the_read_timeout(run) -> None:
    async def scenario() -> None:
        async def silent(reader, writer) -> None:
            await read_request(reader)
            await asyncio.sleep(10)

        async def stalls_mid_body(reader, writer) -> None:
            await read_request(reader)
            writer.write(OK_HEADERS + b"content-length: 10\r\n\r\n12345")
            await asyncio.sleep(10)

        pool = make_pool(read_timeout_s=0.2)
        async with Server(silent) as server:
            started = asyncio.get_running_loop().time()
            with pytest.raises(Timeout, match=r"sent nothing for 0\.2s"):
                await get(pool, server.origin())
            assert asyncio.get_running_loop().time() - started < 1.5
        async with Server(stalls_mid_body) as server:
            with pytest.raises(Timeout):
                await get(pool, server.origin())
        await pool.close()

    run(scenario())


def test_read_timeout_counts_silence_not_total_time(run) -> None:
    async def trickle(reader, writer) -> None:
        await read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n")
        for _ in range(8):
            await asyncio.sleep(0.05)
            writer.write(b"1\r\n.\r\n")
        writer.write(b"0\r\n\r\n")

    async def scenario() -> None:
        pool = make_pool(read_timeout_s=0.25)
        async with Server(trickle) as server:
            assert (await get(pool, server.origin()))[1] == b"." * 8  # 0.4 s in all, never 0.25 silent
        await pool.close()

    run(scenario())


def test_connect_timeout(run) -> None:
    async def scenario() -> None:
        pool = make_pool(connect_timeout_s=0.2)
        # A TCP server that never finishes the TLS handshake.
        async with Server(lambda reader, writer: asyncio.sleep(10)) as server:
            with pytest.raises(Timeout, match=r"TLS handshake to .* took longer than 0\.2s"):
                await pool.request(b"GET", server.origin("https"), b"/", [], b"")
        await pool.close()

    run(scenario())


def test_idle_connections_expire(run) -> None:
    async def scenario() -> None:
        pool = make_pool(idle_timeout_s=0.1)
        async with Server(answering(with_length(b"ok"))) as server:
            await get(pool, server.origin())
            (idle,) = pool._idle[server.origin()]
            await asyncio.sleep(0.3)
            assert idle.closed and not pool._idle[server.origin()] and not pool._connections
        await pool.close()

    run(scenario())


# --------------------------------------------------------------------------- abandoning a call


def test_close_mid_stream_closes_the_socket(run) -> None:
    async def scenario() -> None:
        saw_end = asyncio.Event()

        async def endless(reader, writer) -> None:
            await read_request(reader)
            writer.write(STREAM_HEADERS)
            writer.write(b"6\r\nevent\n\r\n")
            with contextlib.suppress(ConnectionError):
                while await reader.read(1024):  # the client sends nothing more: b"" is its EOF
                    pass
            saw_end.set()

        pool = make_pool()
        async with Server(endless) as server:
            response = await pool.request(b"POST", server.origin(), b"/", [], b"{}")
            async for chunk in response.chunks():
                assert chunk == b"event\n"
                break
            response.close()
            await asyncio.wait_for(saw_end.wait(), 2)
            assert not pool._connections
            with pytest.raises(Disconnected):
                await response.read()
        await pool.close()

    run(scenario())


def test_cancelling_a_pending_request_closes_the_socket(run) -> None:
    async def scenario() -> None:
        saw_end = asyncio.Event()
        got_request = asyncio.Event()

        async def slow(reader, writer) -> None:
            await read_request(reader)
            got_request.set()
            with contextlib.suppress(ConnectionError):
                await reader.read(1024)
            saw_end.set()

        pool = make_pool()
        async with Server(slow) as server:
            task = asyncio.ensure_future(get(pool, server.origin()))
            await asyncio.wait_for(got_request.wait(), 2)
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            await asyncio.wait_for(saw_end.wait(), 2)
            assert not pool._connections
        await pool.close()

    run(scenario())


def test_close_from_another_task_ends_a_waiting_read(run) -> None:
    async def scenario() -> None:
        async def partial(reader, writer) -> None:
            await read_request(reader)
            writer.write(OK_HEADERS + b"content-length: 10\r\n\r\n12345")
            await asyncio.sleep(10)

        pool = make_pool()
        async with Server(partial) as server:
            response = await pool.request(b"GET", server.origin(), b"/", [], b"")
            reading = asyncio.ensure_future(response.read())
            await asyncio.sleep(0.05)
            response.close()
            with pytest.raises(Disconnected, match="closed before its end"):
                await asyncio.wait_for(reading, 2)
        await pool.close()

    run(scenario())


def test_pool_close_ends_responses_in_flight(run) -> None:
    async def scenario() -> None:
        async def partial(reader, writer) -> None:
            await read_request(reader)
            writer.write(OK_HEADERS + b"content-length: 10\r\n\r\n12345")
            await asyncio.sleep(10)

        pool = make_pool()
        async with Server(partial) as server:
            response = await pool.request(b"GET", server.origin(), b"/", [], b"")
            await pool.close()
            with pytest.raises(Disconnected, match="pool was closed"):
                await response.read()
            response.close()
            with pytest.raises(RuntimeError):
                await pool.request(b"GET", server.origin(), b"/", [], b"")

    run(scenario())


# --------------------------------------------------------------------------- TLS


def self_signed() -> tuple[bytes, bytes]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "xvckit test")])
    now = datetime.datetime.now(datetime.UTC)
    public = key.public_key()
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(public)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(public), critical=False)
        .sign(key, hashes.SHA256())
    )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    return cert.public_bytes(serialization.Encoding.PEM), key_pem


@pytest.fixture(scope="module")
def tls_contexts(tmp_path_factory) -> tuple[ssl.SSLContext, ssl.SSLContext]:
    cert_pem, key_pem = self_signed()
    directory = tmp_path_factory.mktemp("tls")
    (directory / "cert.pem").write_bytes(cert_pem)
    (directory / "key.pem").write_bytes(key_pem)
    server = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server.load_cert_chain(directory / "cert.pem", directory / "key.pem")
    client = ssl.create_default_context(cadata=cert_pem.decode())
    return server, client


def test_tls(run, tls_contexts) -> None:
    server_context, client_context = tls_contexts
    sni: list[str | None] = []
    server_context.sni_callback = lambda sock, name, ctx: sni.append(name)  # type: ignore[assignment]

    async def echo(reader, writer) -> None:
        while (request := await read_request(reader)) is not None:
            writer.write(with_length(request[1]))

    async def scenario() -> None:
        pool = make_pool(ssl_context=client_context)
        async with Server(echo, ssl_context=server_context) as server:
            for host in ("localhost", "127.0.0.1"):
                origin = Origin("https", host, server.port)
                big = os.urandom(2 * 1024 * 1024)
                for body in (b"secret", big, b"again"):
                    assert (await get(pool, origin, body=body))[1] == body
            assert server.connections == 2
            assert sni == ["localhost", None]  # no SNI for an IP address

            untrusting = make_pool()  # the default context does not know the test's certificate
            with pytest.raises(ConnectFailed, match=r"TLS handshake with .* failed") as caught:
                await untrusting.request(b"GET", Origin("https", "localhost", server.port), b"/", [], b"")
            assert isinstance(caught.value.os_error, ssl.SSLError)
            await untrusting.close()
        await pool.close()

    run(scenario())


# --------------------------------------------------------------------------- the simulator


def test_against_the_simulator(run, sim) -> None:
    async def scenario() -> None:
        pool = make_pool()
        origin, target = split_url(f"{sim.openai_base_url}/chat/completions")
        headers = [(b"content-type", b"application/json"), (b"authorization", b"Bearer sim-key")]
        request = {"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 16}
        for _ in range(3):
            response, body = await get_json(pool, origin, target, headers, request)
            assert response.status == 200 and response.content_type == b"application/json"
            assert orjson.loads(body)["object"] == "chat.completion"
        response = await pool.request(
            b"POST", origin, target, headers, orjson.dumps({**request, "stream": True})
        )
        assert response.content_type == b"text/event-stream"
        events = b"".join([chunk async for chunk in response.chunks()])
        response.close()
        assert events.startswith(b"data: {") and events.endswith(b"data: [DONE]\n\n")
        assert len(pool._connections) == 1
        await pool.close()

    run(scenario())
    assert sim.count("chat_completions") == 4


async def get_json(pool: Pool, origin: Origin, target: bytes, headers, payload) -> tuple[Response, bytes]:
    response = await pool.request(b"POST", origin, target, headers, orjson.dumps(payload))
    try:
        return response, await response.read()
    finally:
        response.close()


# --------------------------------------------------------------------------- URLs and request checks


def test_split_url() -> None:
    assert split_url("https://api.openai.com/v1/chat/completions?x=1") == (
        Origin("https", "api.openai.com", 443),
        b"/v1/chat/completions?x=1",
    )
    origin, target = split_url("http://[::1]:8080")
    assert (origin, target, origin.host_header) == (Origin("http", "::1", 8080), b"/", b"[::1]:8080")
    assert split_url("HTTP://Example.COM/a#frag")[0].host_header == b"example.com"
    assert split_url("http://h/ü?q=é")[1] == b"/%C3%BC?q=%C3%A9"
    assert Origin("https", "h", 8443).host_header == b"h:8443"
    assert hash(Origin("https", "h", 443)) == hash(split_url("https://h/")[0])
    for bad in ("ftp://h/", "/relative", "http://user:pw@h/", "http://h:99999/"):
        with pytest.raises(ValueError):
            split_url(bad)


def test_line_breaks_in_a_request_are_refused(run) -> None:
    async def scenario() -> None:
        pool = make_pool()
        origin = Origin("http", "127.0.0.1", 9)
        for headers, target in (
            ([(b"x", b"1\r\nx-injected: 1")], b"/"),
            ([(b"x\n", b"1")], b"/"),
            ([], b"/ HTTP/1.1\r\nx: y"),
        ):
            with pytest.raises(ValueError, match="line break"):
                await pool.request(b"GET", origin, target, headers, b"")
        await pool.close()

    run(scenario())


def test_errors_share_a_base() -> None:
    for error in (ConnectFailed, Timeout, Disconnected, ProtocolError):
        assert issubclass(error, Upstream)
