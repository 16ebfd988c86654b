"""Bandwidth down and up against a configured URL, capped in bytes and seconds.

Down: GET the URL and read until the body ends or a cap is hit; the rate is the bytes after
the first read over the time after it, so connection set-up and the server's first-byte
delay do not count against the link. Up: POST a chunked body of random bytes (nothing a
proxy could compress) until a cap, and time it to the server's answer, which it sends only
once it has read everything. A server that refuses uploads (an error status) or cannot be
reached leaves the direction `unknown`: a test server, not a provider, whose absence says
nothing of the link's speed. Both run after the latency probes, so they do not skew them.
"""

from __future__ import annotations

import asyncio
import os
import time
from dataclasses import dataclass

from xvckit.doctor.http_probe import (
    Connection,
    Endpoint,
    ProbeError,
    connect,
    exchange,
    read_head,
    request,
    resolve,
)
from xvckit.doctor.runner import Deliver, Job, Promise
from xvckit.doctor.setup import Setup

KEY = "network.bandwidth"
CHUNK = 64 * 1024
FIX = "a faster or less shared connection (the guide: 10 Mbps minimum, 100+ optimal)"


@dataclass(frozen=True, slots=True)
class Transfer:
    nbytes: int
    seconds: float

    @property
    def mbit_s(self) -> float:
        return self.nbytes * 8 / self.seconds / 1e6


class Refused(Exception):
    """The server answered, but not with a transfer to measure."""


async def download(
    endpoint: Endpoint, conn: Connection, max_bytes: int, max_s: float, timeout_s: float
) -> Transfer:
    head = await exchange(conn, request("GET", endpoint, {"Accept-Encoding": "identity"}), timeout_s)
    if not 200 <= head.status < 300:
        raise Refused(f"the server answered {head.status}")
    first = await _read(conn, timeout_s)
    started = time.perf_counter()
    nbytes, last = 0, started
    while first and nbytes < max_bytes and last - started < max_s:
        data = await _read(conn, timeout_s)
        if not data:
            break
        nbytes += len(data)
        last = time.perf_counter()
    if nbytes < CHUNK or last <= started:
        raise Refused(f"too little data to measure ({nbytes + len(first)} bytes)")
    return Transfer(nbytes, last - started)


async def upload(
    endpoint: Endpoint, conn: Connection, max_bytes: int, max_s: float, timeout_s: float
) -> Transfer:
    headers = {"Transfer-Encoding": "chunked", "Content-Type": "application/octet-stream"}
    conn.writer.write(request("POST", endpoint, headers))
    block = os.urandom(CHUNK)
    framed = f"{len(block):x}\r\n".encode() + block + b"\r\n"
    started = time.perf_counter()
    nbytes = 0
    try:
        while nbytes < max_bytes and time.perf_counter() - started < max_s:
            conn.writer.write(framed)
            nbytes += len(block)
            await asyncio.wait_for(conn.writer.drain(), timeout_s)
        conn.writer.write(b"0\r\n\r\n")
        # The socket buffers may still hold up to several MB the server has yet to read.
        head = await read_head(conn, max_s + timeout_s, time.perf_counter())
    except (TimeoutError, ConnectionError) as exc:
        raise Refused(f"the upload stalled or was cut off ({type(exc).__name__})") from None
    if not 200 <= head.status < 300:
        raise Refused(f"the server answered {head.status}: it does not take uploads")
    return Transfer(nbytes, time.perf_counter() - started)


async def _read(conn: Connection, timeout_s: float) -> bytes:
    try:
        return await asyncio.wait_for(conn.reader.read(CHUNK), timeout_s)
    except TimeoutError:
        raise ProbeError(f"HTTP: the body stopped for {timeout_s:g} s", timed_out=True) from None


_DIRECTIONS = (
    ("network.bandwidth_down", "bandwidth down", "bandwidth_url", download),
    ("network.bandwidth_up", "bandwidth up", "bandwidth_upload_url", upload),
)


def jobs(setup: Setup) -> list[Job]:
    """One job per direction; they run after the deadline-bound checks, one after the other."""
    return [
        Job([Promise(check_id, title, KEY)], _job(setup, check_id, title, option, transfer))
        for check_id, title, option, transfer in _DIRECTIONS
    ]


def cap_s(setup: Setup) -> float:
    """The longest a direction may take: its transfer cap plus connecting and answering."""
    return setup.settings.bandwidth_max_s + 3 * setup.settings.probe_timeout_s


def _job(setup: Setup, check_id: str, title: str, option: str, transfer):
    async def run(deliver: Deliver) -> None:
        settings = setup.settings
        url = getattr(settings, option)
        if url is None:
            deliver(setup.judge.missing(check_id, title, KEY, f"doctor.{option} is null: not measured"))
            return
        endpoint = Endpoint.parse(url)
        timeout = settings.probe_timeout_s
        try:
            addresses = await resolve(endpoint.host, endpoint.port, timeout)
            conn = await connect(endpoint, addresses[0], timeout, setup.ssl_context)
            try:
                done = await transfer(
                    endpoint, conn, int(settings.bandwidth_max_mb * 1e6), settings.bandwidth_max_s, timeout
                )
            finally:
                conn.close()
        except ProbeError as exc:  # the test server, not a provider: the link is not measured
            fix = f"check that {endpoint.label} can be reached from here, or set doctor.{option}"
            deliver(setup.judge.missing(check_id, title, KEY, str(exc), fix=fix))
            return
        except Refused as exc:
            deliver(
                setup.judge.missing(
                    check_id, title, KEY, f"{endpoint.label}: {exc}", fix=f"set doctor.{option}"
                )
            )
            return
        detail = f"{done.nbytes / 1e6:.1f} MB in {done.seconds:.2f} s, {endpoint.label}"
        deliver(setup.judge.measured(check_id, title, KEY, round(done.mbit_s, 1), fix=FIX, detail=detail))

    return run
