"""Timed network probes on real sockets: DNS, TCP connect, TLS handshake, HTTP first byte.

Each phase is timed on its own and bounded by its own timeout, and every failure becomes a
`ProbeError` whose message says which phase failed and how, in one line, with no more of the
URL than host and port (a URL may carry credentials).
"""

from __future__ import annotations

import asyncio
import os
import socket
import ssl
import time
from dataclasses import dataclass
from urllib.parse import urlsplit

from xvckit.doctor.runner import in_thread

USER_AGENT = b"xvckit-doctor"


class ProbeError(Exception):
    """A probe failed; `timed_out` when it was silence rather than a refusal; `connect_ms`
    when the TCP connection was made before a later phase failed."""

    def __init__(self, reason: str, *, timed_out: bool = False, connect_ms: float | None = None) -> None:
        super().__init__(reason)
        self.timed_out = timed_out
        self.connect_ms = connect_ms


@dataclass(frozen=True, slots=True)
class Endpoint:
    host: str
    port: int
    tls: bool
    target: str  # path and query

    @classmethod
    def parse(cls, url: str) -> Endpoint:
        parts = urlsplit(url)
        tls = parts.scheme == "https"
        target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        return cls(parts.hostname or "", parts.port or (443 if tls else 80), tls, target)

    @property
    def label(self) -> str:
        return f"{self.host}:{self.port}"

    def with_target(self, target: str) -> Endpoint:
        return Endpoint(self.host, self.port, self.tls, target)


Address = tuple[int, tuple]  # (family, sockaddr)


@dataclass(slots=True)
class Connection:
    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter
    connect_ms: float
    tls_ms: float | None

    def close(self) -> None:
        self.writer.close()


@dataclass(frozen=True, slots=True)
class Head:
    status: int
    headers: dict[str, str]  # lower-case names
    ttfb_ms: float


async def resolve(host: str, port: int, timeout_s: float) -> list[Address]:
    """The host's addresses, in the order a client would try them."""
    try:
        found = await asyncio.wait_for(
            in_thread(socket.getaddrinfo, host, port, 0, socket.SOCK_STREAM), timeout_s
        )
    except TimeoutError:
        raise ProbeError(f"DNS: no answer for {host} within {timeout_s:g} s", timed_out=True) from None
    except (socket.gaierror, UnicodeError) as exc:
        raise ProbeError(f"DNS: cannot resolve {host}: {getattr(exc, 'strerror', None) or exc}") from None
    return [(family, sockaddr) for family, _type, _proto, _name, sockaddr in found]


async def connect(
    endpoint: Endpoint, address: Address, timeout_s: float, ssl_context: ssl.SSLContext | None
) -> Connection:
    """A TCP connection (and its TLS session for https), each phase timed."""
    family, sockaddr = address
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setblocking(False)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    loop = asyncio.get_running_loop()
    try:
        started = time.perf_counter()
        try:
            await asyncio.wait_for(loop.sock_connect(sock, sockaddr), timeout_s)
        except TimeoutError:
            raise ProbeError(
                f"TCP: no answer from {endpoint.label} within {timeout_s:g} s", timed_out=True
            ) from None
        except OSError as exc:
            reason = os.strerror(exc.errno) if exc.errno else str(exc)
            raise ProbeError(f"TCP: {endpoint.label}: {reason}") from None
        connected = time.perf_counter()
        connect_ms = (connected - started) * 1000
        if not endpoint.tls:
            reader, writer = await asyncio.open_connection(sock=sock)
            return Connection(reader, writer, connect_ms, None)
        context = ssl_context or ssl.create_default_context()
        try:
            reader, writer = await asyncio.wait_for(
                asyncio.open_connection(
                    sock=sock, ssl=context, server_hostname=endpoint.host, ssl_handshake_timeout=timeout_s
                ),
                timeout_s,
            )
        except TimeoutError:
            reason = f"TLS: no handshake with {endpoint.label} within {timeout_s:g} s"
            raise ProbeError(reason, timed_out=True, connect_ms=connect_ms) from None
        except ssl.SSLCertVerificationError as exc:
            raise ProbeError(f"TLS: {endpoint.label}: {exc.verify_message}", connect_ms=connect_ms) from None
        except (ssl.SSLError, OSError) as exc:
            reason = f"TLS: {endpoint.label}: {getattr(exc, 'reason', None) or exc}"
            raise ProbeError(reason, connect_ms=connect_ms) from None
        return Connection(reader, writer, connect_ms, (time.perf_counter() - connected) * 1000)
    except BaseException:
        sock.close()
        raise


def request(
    method: str, endpoint: Endpoint, headers: dict[str, str] | None = None, body: bytes | None = None
) -> bytes:
    """An HTTP/1.1 request head (and body); `Connection: close`, so the server ends the body."""
    host = endpoint.host if endpoint.port in (80, 443) else endpoint.label
    lines = [f"{method} {endpoint.target} HTTP/1.1", f"Host: {host}", "Accept: */*", "Connection: close"]
    lines.append(f"User-Agent: {USER_AGENT.decode()}")
    lines += [f"{name}: {value}" for name, value in (headers or {}).items()]
    if body is not None:
        lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + (body or b"")


async def read_head(conn: Connection, timeout_s: float, sent_at: float) -> Head:
    """The response's status line and headers; `ttfb_ms` from `sent_at` to its first byte."""
    try:
        first = await asyncio.wait_for(conn.reader.read(1), timeout_s)
        ttfb_ms = (time.perf_counter() - sent_at) * 1000
        if not first:
            raise ProbeError("HTTP: the server closed the connection without answering")
        rest = await asyncio.wait_for(conn.reader.readuntil(b"\r\n\r\n"), timeout_s)
    except TimeoutError:
        raise ProbeError(f"HTTP: no answer within {timeout_s:g} s", timed_out=True) from None
    except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, OSError) as exc:
        raise ProbeError(f"HTTP: broken response ({type(exc).__name__})") from None
    status_line, *header_lines = (first + rest).decode("latin-1").split("\r\n")
    try:
        status = int(status_line.split(" ", 2)[1])
    except (IndexError, ValueError):
        raise ProbeError("HTTP: not an HTTP response") from None
    headers = {}
    for line in header_lines:
        name, sep, value = line.partition(":")
        if sep:
            headers[name.strip().lower()] = value.strip()
    return Head(status, headers, ttfb_ms)


async def exchange(conn: Connection, data: bytes, timeout_s: float) -> Head:
    """Send a request and read the response head."""
    conn.writer.write(data)
    sent_at = time.perf_counter()
    return await read_head(conn, timeout_s, sent_at)


@dataclass(frozen=True, slots=True)
class Timing:
    """Each phase's time, None for the phases a failure (`error`) left undone."""

    connect_ms: float | None = None
    tls_ms: float | None = None
    ttfb_ms: float | None = None  # from the request written to the first byte of the answer
    error: ProbeError | None = None


async def probe(
    endpoint: Endpoint, address: Address, timeout_s: float, ssl_context: ssl.SSLContext | None
) -> Timing:
    """One fresh connection and one GET: each phase's time. Any HTTP status is an answer; a
    failure ends the probe, keeping the phases timed before it."""
    try:
        conn = await connect(endpoint, address, timeout_s, ssl_context)
    except ProbeError as exc:
        return Timing(connect_ms=exc.connect_ms, error=exc)
    try:
        head = await exchange(conn, request("GET", endpoint), timeout_s)
    except ProbeError as exc:
        return Timing(conn.connect_ms, conn.tls_ms, error=exc)
    finally:
        conn.close()
    return Timing(conn.connect_ms, conn.tls_ms, head.ttfb_ms)
