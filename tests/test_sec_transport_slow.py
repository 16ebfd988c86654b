"""Clients that hold connections (issue 19, hole 9): a request body sent a byte at a time is
refused with a 408 and the connection closed; one address may hold only so many connections.

The gateway is made as `xvckit gateway serve` makes it (`stack.gateway_server`), so these
settings go from the config to the server."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable

import pytest

from conftest import MASTER_KEY
from xvckit.config import from_mapping
from xvckit.http_server import HttpServer
from xvckit.stack import gateway_server

Connection = tuple[asyncio.StreamReader, asyncio.StreamWriter]


@pytest.fixture
async def serve(tmp_path) -> AsyncIterator[Callable[..., HttpServer]]:
    servers: list[HttpServer] = []

    async def start(**gateway: object) -> HttpServer:
        config = from_mapping({"storage": {"url": f"sqlite:///{tmp_path}/xvckit.db"}, "gateway": gateway})
        server = gateway_server(config, MASTER_KEY, "127.0.0.1", 0)
        await server.start()
        servers.append(server)
        return server

    yield start
    for server in servers:
        await server.stop()


def head(length: int) -> bytes:
    return (
        b"POST /v1/chat/completions HTTP/1.1\r\nhost: gw\r\ncontent-type: application/json\r\n"
        b"authorization: Bearer %b\r\ncontent-length: %d\r\n\r\n" % (MASTER_KEY.encode(), length)
    )


async def answer(reader: asyncio.StreamReader, timeout: float) -> bytes:
    """What the server sent until it closed the connection, or `timeout` passed (then the
    bytes end with `(still open)`)."""
    got = b""
    deadline = time.monotonic() + timeout
    try:
        while chunk := await asyncio.wait_for(reader.read(65536), deadline - time.monotonic()):
            got += chunk
    except TimeoutError:
        got += b"(still open)"
    return got


async def test_a_body_sent_a_byte_at_a_time_gets_a_408_and_the_connection_closes(serve):
    server = await serve(body_timeout_s=1, body_min_rate_kb_s=1)
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    writer.write(head(1000))
    started = time.monotonic()

    async def drip() -> None:
        for _ in range(100):
            writer.write(b" ")
            await asyncio.sleep(0.3)

    dripping = asyncio.create_task(drip())
    try:
        got = await answer(reader, 8)
    finally:
        dripping.cancel()
        writer.close()
    assert got.startswith(b"HTTP/1.1 408 "), got[:200]
    assert got.endswith(b"request body not received in time")
    assert time.monotonic() - started < 5  # 1 s, a little for the bytes, and the sweep's second


async def test_a_body_at_the_minimum_rate_takes_the_time_it_needs(serve):
    """8 KiB at 2 KiB/s take 4 s, over the 1 s timeout: each KiB received earns a second more."""
    server = await serve(body_timeout_s=1, body_min_rate_kb_s=1)
    body = b'{"model": "none", "messages": [], "pad": "' + b"x" * 8000 + b'"}'
    body += b" " * (8192 - len(body))
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    writer.write(head(len(body)))
    for start in range(0, len(body), 1024):
        writer.write(body[start : start + 1024])
        await asyncio.sleep(0.5)
    got = await answer(reader, 0.5)  # kept open after the answer: keep-alive
    writer.close()
    assert got.startswith(b"HTTP/1.1 404 ") and b"model_not_found" in got, got[:300]


async def test_one_address_may_hold_only_so_many_connections(serve):
    server = await serve(max_connections_per_client=3)
    held = [await healthy(server) for _ in range(3)]
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    got = await answer(reader, 5)
    writer.close()
    assert got.startswith(b"HTTP/1.1 503 ") and got.endswith(b"too many connections from this address"), got
    held.pop()[1].close()  # one closes: another may open
    await asyncio.sleep(0.1)
    held.append(await healthy(server))
    for _, kept in held:
        kept.close()


async def healthy(server: HttpServer) -> Connection:
    """A keep-alive connection that was served (so the server counts it)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    writer.write(b"GET /healthz HTTP/1.1\r\nhost: gw\r\n\r\n")
    status = await asyncio.wait_for(reader.readline(), 5)
    assert status.startswith(b"HTTP/1.1 200 "), status
    return reader, writer
