"""Upstreams that never stop talking (issue 19, hole 8): a huge response head, an endless
body, one SSE event that never ends, an answer that trickles in forever. Each ends in a clear
502/504 in the client's dialect, and the gateway's memory stays bounded by its limits.

The upstream is a raw socket server on loopback; the gateway's peak memory is measured with
tracemalloc around the request (it runs in this process, on a background thread)."""

from __future__ import annotations

import contextlib
import socket
import socketserver
import threading
import time
import tracemalloc
from collections.abc import Iterator

import httpx
import orjson
import pytest

from conftest import MASTER_KEY

FILLER = b"x" * 65536
# What a gateway without limits takes in before this upstream stops sending and holds the
# connection open (kept small: this machine is shared).
STOP_AT = 64 << 20
ANSWERS = {  # a complete answer in each dialect
    "openai": orjson.dumps(
        {
            "id": "chatcmpl-1",
            "object": "chat.completion",
            "created": 0,
            "model": "gpt-4o-mini",
            "choices": [
                {"index": 0, "message": {"role": "assistant", "content": "hi"}, "finish_reason": "stop"}
            ],
            "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2},
        }
    ),
    "anthropic": orjson.dumps(
        {
            "id": "msg_1",
            "type": "message",
            "role": "assistant",
            "model": "claude-haiku-4-5",
            "content": [{"type": "text", "text": "hi"}],
            "stop_reason": "end_turn",
            "usage": {"input_tokens": 1, "output_tokens": 1},
        }
    ),
}
LIMITS = {
    "max_upstream_head_kb": 64,
    "max_upstream_body_mb": 1,
    "max_upstream_event_mb": 0.5,
    "upstream_deadline_s": 1,
}


class _Misbehave(socketserver.BaseRequestHandler):
    """Reads one request, then answers as its `x-misbehave` header says."""

    def handle(self) -> None:
        sock: socket.socket = self.request
        head = b""
        while b"\r\n\r\n" not in head:
            head += sock.recv(65536)
        head, _, body = head.partition(b"\r\n\r\n")
        self.dialect = "anthropic" if b" /v1/messages " in head.split(b"\r\n", 1)[0] else "openai"
        fields = dict(line.split(b": ", 1) for line in head.split(b"\r\n")[1:])
        length = int(fields.get(b"content-length", b"0"))
        while len(body) < length:
            body += sock.recv(65536)
        with contextlib.suppress(OSError):  # the gateway dropped the connection, as it should
            getattr(self, fields[b"x-misbehave"].decode())(sock)

    def head(self, sock: socket.socket) -> None:
        endless(sock, b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\nx-filler: ")

    def body(self, sock: socket.socket) -> None:
        endless(sock, b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n\r\n")

    def event(self, sock: socket.socket) -> None:
        endless(sock, b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\n\r\ndata: ")

    def ok(self, sock: socket.socket) -> None:
        sock.sendall(self.answer_head() + ANSWERS[self.dialect])

    def answer_head(self) -> bytes:
        length = len(ANSWERS[self.dialect])
        return b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: %d\r\n\r\n" % length

    def trickle(self, sock: socket.socket) -> None:
        """A valid answer, a byte every 0.1 s: never silent for long, never done in time."""
        sock.sendall(self.answer_head())
        for byte in ANSWERS[self.dialect]:
            sock.sendall(bytes([byte]))
            time.sleep(0.1)


def endless(sock: socket.socket, start: bytes) -> None:
    sock.sendall(start)
    for _ in range(STOP_AT // len(FILLER)):
        sock.sendall(FILLER)
    sock.recv(1)  # then silence, until the gateway gives up


@pytest.fixture(scope="module")
def upstream() -> Iterator[int]:
    server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), _Misbehave)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server.server_address[1]
    server.shutdown()
    server.server_close()


@pytest.fixture
def gw(upstream, make_gateway):
    providers = [
        {"name": "bad-oa", "kind": "openai", "base_url": f"http://127.0.0.1:{upstream}/v1"},
        {"name": "bad-an", "kind": "anthropic", "base_url": f"http://127.0.0.1:{upstream}"},
    ]
    server = make_gateway(
        {
            "gateway": {"read_timeout_s": 0.5, "max_attempts": 1, **LIMITS},
            "providers": [{**p, "api_keys": ["k"], "forward_headers": ["x-misbehave"]} for p in providers],
            "models": [
                {"name": "gpt-4o-mini", "provider": "bad-oa"},
                {"name": "claude-haiku-4-5", "provider": "bad-an"},
            ],
        }
    )
    for dialect in ("openai", "anthropic"):  # what the first requests load is not measured
        assert call(server, dialect, "ok")[0].status_code == 200
    return server


def call(gw, dialect: str, how: str, stream: bool = False) -> tuple[httpx.Response, int]:
    """The gateway's answer to a request the upstream misbehaves on, and the peak of the
    memory allocated meanwhile (the gateway's, mostly)."""
    messages = [{"role": "user", "content": "hi"}]
    if dialect == "openai":
        path, body = "/v1/chat/completions", {"model": "gpt-4o-mini", "messages": messages}
    else:
        path, body = "/v1/messages", {"model": "claude-haiku-4-5", "messages": messages, "max_tokens": 5}
    headers = {"authorization": f"Bearer {MASTER_KEY}", "x-misbehave": how}
    tracemalloc.start()
    try:
        response = httpx.post(f"{gw.url}{path}", json={**body, "stream": stream}, headers=headers, timeout=30)
        return response, tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def error_of(dialect: str, data: bytes) -> dict:
    """The error object of an error body or of a stream's last (error) event."""
    if data.startswith((b"data: ", b"event: ")):
        data = data.rstrip().rsplit(b"\n\n", 1)[-1].split(b"data: ", 1)[1]
    error = orjson.loads(data)["error"]
    assert dialect == "openai" or orjson.loads(data)["type"] == "error"
    return error


@pytest.mark.parametrize("dialect", ["openai", "anthropic"])
@pytest.mark.parametrize(("how", "limit"), [("head", 64 << 10), ("body", 1 << 20)])
def test_a_head_or_whole_body_over_its_limit_is_a_502(gw, dialect, how, limit):
    response, peak = call(gw, dialect, how)
    assert response.status_code == 502, response.text[:300]
    error = error_of(dialect, response.content)
    assert f"sent a response {how} over the gateway's limit of {limit} bytes" in error["message"]
    if dialect == "openai":
        assert error["code"] == "upstream_too_large"
    assert peak < 8 << 20, f"{peak} bytes allocated at the peak"


@pytest.mark.parametrize("dialect", ["openai", "anthropic"])
def test_an_sse_event_that_never_ends_ends_the_stream_with_an_error_event(gw, dialect):
    response, peak = call(gw, dialect, "event", stream=True)
    assert response.status_code == 200  # the stream had begun
    error = error_of(dialect, response.content)
    assert f"sent an SSE event over the gateway's limit of {1 << 19} bytes" in error["message"]
    assert peak < 8 << 20, f"{peak} bytes allocated at the peak"


def test_an_answer_trickling_past_the_deadline_is_a_504(gw):
    """A byte every 0.1 s never trips the 0.5 s read timeout; the 1 s deadline ends it."""
    started = time.monotonic()
    response, _ = call(gw, "openai", "trickle")
    assert response.status_code == 504, response.text[:300]
    error = error_of("openai", response.content)
    assert error["code"] == "upstream_timeout"
    assert "did not complete its answer within 1 s" in error["message"]
    assert time.monotonic() - started < 3
