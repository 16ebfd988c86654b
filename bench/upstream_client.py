"""Upstream client micro-benchmark: xvckit.gateway.http1 against aiohttp, side by side.

    .venv/bin/python bench/upstream_client.py                    # 3 rounds of 3 s runs, ~1 min
    .venv/bin/python bench/upstream_client.py --rounds 1 --duration 2

Starts the simulator (`xvckit sim --tier enterprise --latency-ms 0`, limits far above what is
sent) as a subprocess on a free loopback port, then, in this process on uvloop (as the gateway
runs), sends the gateway's typical upstream call: `POST /v1/chat/completions` with a small JSON
body, content-type and authorization headers, reading the whole body. Each client runs with 1
and with 16 concurrent callers (each a loop of sequential requests, so 16 kept-alive
connections), first a warm-up, then a measured run. Rounds are interleaved (every client and
concurrency once per round) and the table shows per-cell medians.

A third row, `floor`, is no HTTP client at all: fixed request bytes on a bare asyncio protocol
that only counts the response's bytes. It is what the event loop and the syscalls cost on
their own, so `client - floor` is the CPU the HTTP client itself adds to each request.

Measured: this process's CPU time (`time.process_time()`, user + system, the simulator is
another process) per request, and requests per second; for context also the simulator's CPU
time per request (from /proc, its whole process tree). The simulator is one process and the
bottleneck at 16 callers, so req/s moves less than CPU; what the client costs the gateway is
the CPU column. Compare ratios within one run, not absolute numbers between runs.

aiohttp is configured as the gateway used it: one ClientSession, TCPConnector(limit=0),
ClientTimeout(sock_connect, sock_read), no User-Agent; `session.post(url, data=, headers=)`,
`await response.read()`, `response.close()`.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import aiohttp
import uvloop

from lib import ROOT, BenchError, Service, fmt, free_port, http_request, local_env, say, table
from xvckit.gateway.http1 import Pool, split_url

PATH = "/v1/chat/completions"
BODY = json.dumps(
    {"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 16},
    separators=(",", ":"),
).encode()
KEY = "sim-key"
CONCURRENCY = (1, 16)
CLIENTS = ("http1", "aiohttp", "floor")


@dataclass
class Run:
    client: str
    concurrency: int
    requests: int
    wall_s: float
    cpu_s: float
    sim_cpu_s: float  # CPU time the simulator used in the same run

    @property
    def sim_cpu_us_per_request(self) -> float:
        return self.sim_cpu_s / self.requests * 1e6

    @property
    def cpu_us_per_request(self) -> float:
        return self.cpu_s / self.requests * 1e6

    @property
    def rps(self) -> float:
        return self.requests / self.wall_s


# --------------------------------------------------------------------------- the two clients


class Http1Client:
    def __init__(self, url: str) -> None:
        self.pool = Pool(connect_timeout_s=10, read_timeout_s=30)
        self.origin, self.target = split_url(url)
        self.headers = [(b"content-type", b"application/json"), (b"authorization", f"Bearer {KEY}".encode())]

    async def call(self) -> int:
        response = await self.pool.request(b"POST", self.origin, self.target, self.headers, BODY)
        try:
            body = await response.read()
        finally:
            response.close()
        if response.status != 200 or not body:
            raise BenchError(f"http1: status {response.status}, {len(body)} bytes")
        return len(body)

    async def close(self) -> None:
        await self.pool.close()


class AiohttpClient:
    def __init__(self, url: str) -> None:
        self.url = url
        self.headers = {"content-type": "application/json", "authorization": f"Bearer {KEY}"}
        self.session: aiohttp.ClientSession | None = None

    async def start(self) -> None:
        connector = aiohttp.TCPConnector(limit=0, limit_per_host=0, ttl_dns_cache=300, keepalive_timeout=60)
        timeout = aiohttp.ClientTimeout(total=None, sock_connect=10, sock_read=30)
        self.session = aiohttp.ClientSession(
            connector=connector, timeout=timeout, skip_auto_headers=("User-Agent",), raise_for_status=False
        )

    async def call(self) -> int:
        response = await self.session.post(self.url, data=BODY, headers=self.headers)  # type: ignore[union-attr]
        try:
            body = await response.read()
        finally:
            response.close()
        if response.status != 200 or not body:
            raise BenchError(f"aiohttp: status {response.status}, {len(body)} bytes")
        return len(body)

    async def close(self) -> None:
        await self.session.close()  # type: ignore[union-attr]


class _RawConnection(asyncio.Protocol):
    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.buffer = b""
        self.done: asyncio.Future[None] | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        head_end = self.buffer.find(b"\r\n\r\n")
        if head_end < 0:
            return
        start = self.buffer.find(b"content-length: ") + 16
        length = int(self.buffer[start : self.buffer.find(b"\r\n", start)])
        if len(self.buffer) >= head_end + 4 + length:
            self.buffer = b""
            self.done.set_result(None)  # type: ignore[union-attr]


class FloorClient:
    """Not an HTTP client: fixed request bytes on a bare uvloop protocol, a response ends when
    content-length bytes followed its head. What any client pays at least on this loop (the
    event loop, the syscalls), so `client - floor` is what the HTTP client itself costs."""

    def __init__(self, url: str) -> None:
        self.origin, target = split_url(url)
        self.request = b"POST %s HTTP/1.1\r\nhost: %s\r\ncontent-length: %d\r\n" % (
            target,
            self.origin.host_header,
            len(BODY),
        )
        self.request += b"content-type: application/json\r\nauthorization: Bearer %s\r\n\r\n" % KEY.encode()
        self.request += BODY
        self.idle: list[_RawConnection] = []
        self.all: list[_RawConnection] = []

    async def call(self) -> int:
        loop = asyncio.get_running_loop()
        if self.idle:
            conn = self.idle.pop()
        else:
            _, conn = await loop.create_connection(_RawConnection, self.origin.host, self.origin.port)
            self.all.append(conn)
        conn.done = loop.create_future()
        conn.transport.write(self.request)  # type: ignore[union-attr]
        await conn.done
        self.idle.append(conn)
        return 1

    async def close(self) -> None:
        for conn in self.all:
            conn.transport.close()  # type: ignore[union-attr]


async def make_client(name: str, url: str) -> Http1Client | AiohttpClient | FloorClient:
    if name == "http1":
        return Http1Client(url)
    if name == "floor":
        return FloorClient(url)
    client = AiohttpClient(url)
    await client.start()
    return client


# --------------------------------------------------------------------------- runs


async def drive(
    call: Callable[[], Awaitable[int]], concurrency: int, seconds: float
) -> tuple[int, float, float]:
    """`concurrency` callers, each sending requests one after another for `seconds`.
    Returns (requests, wall seconds, CPU seconds of this process)."""
    loop = asyncio.get_running_loop()
    stop_at = loop.time() + seconds
    counts = [0] * concurrency

    async def caller(i: int) -> None:
        while loop.time() < stop_at:
            await call()
            counts[i] += 1

    cpu0, wall0 = time.process_time(), time.perf_counter()
    await asyncio.gather(*(caller(i) for i in range(concurrency)))
    return sum(counts), time.perf_counter() - wall0, time.process_time() - cpu0


async def measure(
    client_name: str, sim: Service, concurrency: int, warmup_s: float, duration_s: float
) -> Run:
    client = await make_client(client_name, sim.url + PATH)
    try:
        if warmup_s > 0:
            await drive(client.call, concurrency, warmup_s)
        sim_cpu = sim.cpu_seconds()
        requests, wall, cpu = await drive(client.call, concurrency, duration_s)
        sim_cpu = sim.cpu_seconds() - sim_cpu
    finally:
        await client.close()
    return Run(client_name, concurrency, requests, wall, cpu, sim_cpu)


async def all_runs(sim: Service, args: argparse.Namespace) -> list[Run]:
    runs = []
    for round_no in range(1, args.rounds + 1):
        for concurrency in CONCURRENCY:
            for name in CLIENTS if round_no % 2 else reversed(CLIENTS):  # alternate the order
                run = await measure(name, sim, concurrency, args.warmup, args.duration)
                say(
                    f"  round {round_no}: {name:8} c={concurrency:<3} {run.requests:7d} requests  "
                    f"{run.cpu_us_per_request:7.1f} us CPU/req  {run.rps:8.0f} req/s  "
                    f"(simulator {run.sim_cpu_us_per_request:.0f} us CPU/req)"
                )
                runs.append(run)
    return runs


# --------------------------------------------------------------------------- report


def report(runs: list[Run]) -> dict[str, object]:
    medians: dict[tuple[str, int], tuple[float, float, float]] = {}
    for name in CLIENTS:
        for concurrency in CONCURRENCY:
            cell = [r for r in runs if r.client == name and r.concurrency == concurrency]
            medians[name, concurrency] = (
                statistics.median(r.cpu_us_per_request for r in cell),
                statistics.median(r.rps for r in cell),
                statistics.median(r.sim_cpu_us_per_request for r in cell),
            )
    rows = []
    for concurrency in CONCURRENCY:
        base_cpu, base_rps, _ = medians["aiohttp", concurrency]
        floor_cpu = medians["floor", concurrency][0]
        for name in CLIENTS:
            cpu, rps, sim_cpu = medians[name, concurrency]
            rows.append(
                [
                    name,
                    concurrency,
                    fmt(cpu, 1),
                    fmt(cpu - floor_cpu, 1) if name != "floor" else None,
                    fmt(rps, 0),
                    fmt(cpu / base_cpu, 2, "x"),
                    fmt(rps / base_rps, 2, "x"),
                    fmt(sim_cpu, 1),
                ]
            )
    print(
        table(
            [
                "client",
                "concurrency",
                "us CPU/request",
                "above floor",
                "req/s",
                "CPU vs aiohttp",
                "req/s vs aiohttp",
                "simulator us CPU/request",
            ],
            rows,
        )
    )
    return {
        "medians": [
            {
                "client": n,
                "concurrency": c,
                "cpu_us_per_request": v[0],
                "rps": v[1],
                "sim_cpu_us_per_request": v[2],
            }
            for (n, c), v in medians.items()
        ],
        "runs": [
            asdict(r)
            | {
                "cpu_us_per_request": r.cpu_us_per_request,
                "rps": r.rps,
                "sim_cpu_us_per_request": r.sim_cpu_us_per_request,
            }
            for r in runs
        ],
    }


def start_sim(log_dir: Path) -> Service:
    port = free_port()
    exe = Path(sys.executable).with_name("xvckit")
    argv = [str(exe), "sim", "--port", str(port), "--tier", "enterprise", "--latency-ms", "0"]
    argv += ["--rpm", str(10**9), "--tpm", str(10**12)]  # limits that never kick in
    env = local_env()
    env.pop("XVCKIT_SIM_API_KEY", None)
    say(f"starting simulator on port {port}")
    sim = Service.start("sim", argv, port=port, log_dir=log_dir, env=env, cwd=ROOT)

    def answers() -> bool:
        headers = {"content-type": "application/json", "authorization": f"Bearer {KEY}"}
        return http_request("POST", sim.url + PATH, BODY, headers).status == 200

    sim.wait_ready(answers, timeout=30)
    return sim


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--duration", type=float, default=3.0, help="seconds of each measured run (default 3)")
    p.add_argument("--warmup", type=float, default=1.0, help="seconds of warm-up before each run (default 1)")
    p.add_argument("--rounds", type=int, default=3, help="rounds; the table shows medians (default 3)")
    p.add_argument("--json", type=Path, metavar="FILE", help="also write all numbers to FILE")
    args = p.parse_args(argv)
    if args.duration <= 0 or args.warmup < 0 or args.rounds < 1:
        p.error("--duration must be positive, --warmup at least 0, --rounds at least 1")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="xvckit-bench-") as tmp:
        sim = start_sim(Path(tmp))
        try:
            runs = uvloop.run(all_runs(sim, args))
        except BenchError as exc:
            say(f"error: {exc}\n--- simulator log ---\n{sim.log_tail()}")
            return 1
        finally:
            sim.stop()
    summary = report(runs)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(summary, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
