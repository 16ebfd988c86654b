"""Reliability benchmark (`make bench`): issue 4's pacing, faults and replicas scenarios.

In one run against `xvckit sim` (see bench/README.md, "Reliability"):

- pacing: 600 chat completions from 64 concurrent clients to a deployment limited to 300 RPM
  (the simulator enforces it over a sliding 60 s window), sent directly, through xvckit (the
  provider configured with `rpm: 300`) and through LiteLLM's proxy (its model with `rpm: 300`);
  then through xvckit alone to deployments that enforce the same 300 RPM over shorter windows
  (`--windows`, default 1 s and 10 s: 5 calls in any second, 50 in any 10 s), which xvckit is
  not told of;
- faults: the simulator answers 10% of calls with HTTP 500 and drops 2% of connections;
  2,000 requests at 64 connections, directly, through xvckit and through LiteLLM;
- replicas: 3 xvckit gateway processes sharing Redis in front of one deployment limited to
  120 RPM; 240 requests at 64 connections spread over them.

The load generator is Python (asyncio + aiohttp, which never retries a POST): 64 workers take
requests from one queue, and every request's outcome is counted. (Not httpx: on this machine
its connection pool tops out near 100 requests/s at 64 connections, aiohttp's near 850.)
The simulator's `GET /sim/stats` counts the upstream calls. Each scenario prints a table and
PASS/FAIL lines against the issue's targets; missing one does not change the exit status
unless --strict is given (then 3). Exit 1 when something broke (a server did not start).
"""

from __future__ import annotations

import argparse
import asyncio
import heapq
import json
import os
import secrets
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp

from gateway_overhead import (
    CHAT_PATH,
    LITELLM_SPEC,
    LITELLM_VENV,
    REQUEST,
    SIM_KEY,
    ensure_litellm,
    start_gateway,
    start_litellm,
    start_sim,
)
from lib import BenchError, Service, http_request, say, stop_services, table

# Issue targets.
MAX_UPSTREAM_429_SHARE = 0.01
MAX_MAKESPAN_OVER_IDEAL = 0.10
MIN_FAULT_SUCCESS = 0.995
MAX_EXTRA_UPSTREAM_CALLS = 0.20

WINDOW_S = 60.0  # the simulator's sliding window
ROUTE = "chat_completions"  # the simulator's name for POST /v1/chat/completions in /sim/stats
REDIS_URL = "redis://127.0.0.1:6379/0"


# --------------------------------------------------------------------------- load


@dataclass
class Run:
    """One target under one load: what the clients saw and what the simulator served."""

    target: str
    requests: int
    connections: int
    outcomes: Counter = field(default_factory=Counter)  # "200", "429", "500", "ReadError", ...
    makespan_s: float = 0.0
    upstream: Counter = field(default_factory=Counter)  # the simulator's counts: "200", "429", "drop"
    ideal_s: float | None = None
    started_at: float = 0.0  # wall clock
    seconds: dict = field(default_factory=dict)  # label -> total seconds the requests with it took
    samples: dict = field(default_factory=dict)  # label -> the start of the first such response's body

    @property
    def ok(self) -> int:
        return self.outcomes["200"]

    @property
    def client_429(self) -> int:
        return self.outcomes["429"]

    @property
    def other_errors(self) -> int:
        return self.requests - self.ok - self.client_429

    @property
    def upstream_calls(self) -> int:
        return sum(self.upstream.values())

    @property
    def upstream_429(self) -> int:
        return self.upstream["429"]

    @property
    def upstream_429_share(self) -> float:
        return self.upstream_429 / self.upstream_calls if self.upstream_calls else 0.0

    def errors(self) -> str:
        bad = {label: n for label, n in self.outcomes.items() if label != "200"}
        return ", ".join(f"{n} x {label}" for label, n in sorted(bad.items())) or "none"

    def mean_s(self, label: str) -> float:
        return self.seconds.get(label, 0.0) / self.outcomes[label] if self.outcomes[label] else 0.0

    def to_dict(self) -> dict[str, object]:
        return {
            "target": self.target,
            "requests": self.requests,
            "connections": self.connections,
            "client_outcomes": dict(self.outcomes),
            "upstream_outcomes": dict(self.upstream),
            "upstream_calls": self.upstream_calls,
            "makespan_s": round(self.makespan_s, 3),
            "ideal_s": self.ideal_s,
            "started_at": time.strftime("%H:%M:%S", time.localtime(self.started_at)),
            "mean_s_by_outcome": {label: round(self.mean_s(label), 3) for label in self.outcomes},
            "first_body_by_outcome": self.samples,
        }


async def _load(run: Run, urls: list[str], key: str, timeout_s: float, cap_s: float) -> None:
    """`run.requests` POSTs from `run.connections` workers taking from one queue, round-robin
    over `urls` by request number, counted into `run`; requests still unanswered after `cap_s`
    are cancelled and counted as "unfinished"."""
    body = json.dumps(REQUEST, separators=(",", ":")).encode()
    headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
    requests, connections, outcomes = run.requests, run.connections, run.outcomes
    queue: asyncio.Queue[int] = asyncio.Queue()
    for index in range(requests):
        queue.put_nowait(index)
    connector = aiohttp.TCPConnector(limit=connections)
    timeout = aiohttp.ClientTimeout(total=timeout_s)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout, trust_env=False) as client:

        async def worker() -> None:
            while True:
                try:
                    index = queue.get_nowait()
                except asyncio.QueueEmpty:
                    return
                sent = time.monotonic()
                content = b""
                try:
                    async with client.post(urls[index % len(urls)], data=body, headers=headers) as response:
                        content = await response.read()
                    label = str(response.status)
                    if response.status == 200 and b'"choices"' not in content:
                        label = "200 without choices"
                except TimeoutError:
                    label = "timeout"
                except aiohttp.ClientError as exc:
                    label = type(exc).__name__
                outcomes[label] += 1
                run.seconds[label] = run.seconds.get(label, 0.0) + time.monotonic() - sent
                if label != "200" and label not in run.samples:
                    run.samples[label] = content[:300].decode("utf-8", "replace")

        run.started_at = time.time()
        started = time.monotonic()
        workers = [asyncio.create_task(worker()) for _ in range(connections)]
        _, pending = await asyncio.wait(workers, timeout=cap_s)
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)
        run.makespan_s = time.monotonic() - started
    unfinished = requests - sum(outcomes.values())
    if unfinished:
        outcomes["unfinished"] += unfinished


def sim_reset(sim: Service) -> None:
    """Zero the simulator's statistics and empty its rate-limit windows."""
    response = http_request("POST", sim.url + "/sim/reset", b"", timeout=10)
    if response.status != 200:
        raise sim.fail(f"POST /sim/reset answered {response.status}")


def sim_counts(sim: Service) -> Counter:
    response = http_request("GET", sim.url + "/sim/stats", timeout=10)
    if response.status != 200:
        raise sim.fail(f"GET /sim/stats answered {response.status}")
    return Counter(response.json().get(ROUTE, {}))  # type: ignore[union-attr]


def run_load(
    target: str,
    urls: list[str],
    key: str,
    sim: Service,
    requests: int,
    connections: int,
    args: argparse.Namespace,
    ideal_s: float | None = None,
) -> Run:
    """Reset the simulator, send the load, read the simulator's counts."""
    sim_reset(sim)
    say(f"  {target}: {requests} requests, {connections} connections ...")
    run = Run(target, requests, connections, ideal_s=ideal_s)
    asyncio.run(_load(run, urls, key, args.request_timeout, args.run_timeout))
    run.upstream = sim_counts(sim)
    makespan = run.makespan_s
    seen = ", ".join(f"{n} x {k}" for k, n in sorted(run.upstream.items()))
    say(
        f"  {target}: {run.ok}/{requests} ok in {makespan:.1f} s; client errors: {run.errors()}; "
        f"upstream: {run.upstream_calls} calls ({seen})"
    )
    return run


def ideal_makespan(
    requests: int, connections: int, rpm: int, service_s: float, window_s: float = WINDOW_S
) -> float:
    """The shortest makespan the limit allows: each request starts as soon as a connection is
    free and the sliding window has room (the request `share` places earlier started at least
    `window_s` ago, `share` being what the limit allows in that window), and takes `service_s`.
    600 requests, 64 connections, 300 RPM, 0.5 s: the first 300 go in five rounds (by 2.0 s),
    the next 300 a window after their predecessors, the last ending at 62.5 s."""
    share = max(1, int(rpm * window_s / WINDOW_S))
    free = [0.0] * connections
    starts: list[float] = []
    for index in range(requests):
        start = heapq.heappop(free)
        if index >= share:
            start = max(start, starts[index - share] + window_s)
        starts.append(start)
        heapq.heappush(free, start + service_s)
    return max(starts) + service_s


# --------------------------------------------------------------------------- report


def pct(value: float, digits: int = 1) -> str:
    return f"{value:.{digits}%}"


def paced_table(runs: list[Run]) -> str:
    rows = []
    for run in runs:
        vs = f"{run.makespan_s / run.ideal_s:.2f}x" if run.ideal_s else None
        rows.append(
            [
                run.target,
                f"{run.ok}/{run.requests}",
                run.client_429,
                run.other_errors,
                run.upstream_calls,
                run.upstream_429,
                pct(run.upstream_429_share),
                f"{run.makespan_s:.1f}",
                f"{run.ideal_s:.1f}" if run.ideal_s else None,
                vs,
            ]
        )
    headers = [
        "target",
        "ok",
        "client 429",
        "other errors",
        "upstream calls",
        "upstream 429",
        "429 share",
        "makespan s",
        "ideal s",
        "vs ideal",
    ]
    return table(headers, rows)


def faults_table(runs: list[Run]) -> str:
    rows = []
    for run in runs:
        faults = sum(n for label, n in run.upstream.items() if label not in ("200", "429"))
        rows.append(
            [
                run.target,
                f"{run.ok}/{run.requests}",
                pct(run.ok / run.requests, 2),
                run.requests - run.ok,
                run.upstream_calls,
                f"{run.upstream_calls / run.requests - 1:+.1%}",
                faults,
                f"{run.makespan_s:.1f}",
            ]
        )
    headers = [
        "target",
        "ok",
        "success",
        "client errors",
        "upstream calls",
        "extra calls",
        "faults",
        "makespan s",
    ]
    return table(headers, rows)


def error_notes(runs: list[Run]) -> list[str]:
    lines = []
    for run in runs:
        upstream = ", ".join(f"{n} x {k}" for k, n in sorted(run.upstream.items())) or "none"
        started = time.strftime("%H:%M:%S", time.localtime(run.started_at))
        lines.append(
            f"  {run.target} (started {started}): client errors: {run.errors()}; upstream: {upstream}"
        )
        for label in sorted(run.outcomes):
            if label != "200":
                sample = " ".join(run.samples.get(label, "").split())
                lines.append(
                    f"    {label}: after {run.mean_s(label):.2f} s on average"
                    + (f"; first body: {sample[:160]}" if sample else "")
                )
    return lines


Check = tuple[str, str, str, str]  # status, what, measured, target


def check(ok: bool, what: str, measured: str, target: str) -> Check:
    return ("PASS" if ok else "FAIL", what, measured, target)


def pacing_checks(run: Run, label: str) -> list[Check]:
    assert run.ideal_s is not None
    over = run.makespan_s / run.ideal_s - 1
    return [
        check(run.client_429 == 0, f"{label}: 429s seen by clients", str(run.client_429), "0"),
        check(
            run.upstream_429_share <= MAX_UPSTREAM_429_SHARE,
            f"{label}: upstream calls answered 429",
            f"{run.upstream_429}/{run.upstream_calls} ({pct(run.upstream_429_share, 2)})",
            f"<= {MAX_UPSTREAM_429_SHARE:.0%}",
        ),
        check(
            over <= MAX_MAKESPAN_OVER_IDEAL,
            f"{label}: makespan vs ideal",
            f"{run.makespan_s:.1f} s vs {run.ideal_s:.1f} s ({over:+.1%})",
            f"<= +{MAX_MAKESPAN_OVER_IDEAL:.0%}",
        ),
    ]


def fault_checks(run: Run) -> list[Check]:
    success = run.ok / run.requests
    extra = run.upstream_calls / run.requests - 1
    return [
        check(
            success >= MIN_FAULT_SUCCESS,
            "faults, xvckit: client success",
            f"{run.ok}/{run.requests} ({pct(success, 2)})",
            f">= {MIN_FAULT_SUCCESS:.1%}",
        ),
        check(
            extra <= MAX_EXTRA_UPSTREAM_CALLS,
            "faults, xvckit: upstream calls over client requests",
            f"{run.upstream_calls} for {run.requests} ({extra:+.1%})",
            f"<= +{MAX_EXTRA_UPSTREAM_CALLS:.0%}",
        ),
    ]


# --------------------------------------------------------------------------- scenarios


def litellm_or_none(
    exe: Path | None, sim: Service, tmp: Path, key: str, name: str, notes: list[str], **kwargs
) -> Service | None:
    if exe is None:
        return None
    try:
        return start_litellm(exe, sim, tmp, key, timeout=180, name=name, warm=False, **kwargs)
    except BenchError as exc:
        say(f"LiteLLM ({name}) skipped: {exc}")
        notes.append(f"LiteLLM ({name}) skipped: it did not start ({str(exc).splitlines()[0]})")
        return None


def pacing(args, tmp, key, litellm_exe, services, notes) -> tuple[list[Run], list[Check]]:
    rpm, latency_s = args.rpm, args.latency_ms / 1000
    sim, gateway = paced_pair(args, tmp, key, services, "pacing", [])
    proxy = litellm_or_none(
        litellm_exe,
        sim,
        tmp,
        key,
        "litellm-pacing",
        notes,
        params_yaml=f"rpm: {rpm}",
        extra_yaml="router_settings:\n  enable_pre_call_checks: true\n",
    )
    if proxy is not None:
        services.append(proxy)
    ideal = ideal_makespan(args.requests, args.connections, rpm, latency_s)
    say(f"pacing: {args.requests} requests, {args.connections} connections, {rpm} RPM; ideal {ideal:.1f} s")
    targets = [("direct", sim, SIM_KEY), ("xvckit", gateway, key)]
    if proxy is not None:
        targets.append(("litellm", proxy, key))
    runs = []
    for name, service, target_key in targets:
        url = service.url + CHAT_PATH
        runs.append(run_load(name, [url], target_key, sim, args.requests, args.connections, args, ideal))
    if proxy is not None:
        proxy.stop()  # give its CPU back
    gateway.stop()
    sim.stop()
    checks = pacing_checks(runs[1], "pacing, xvckit")
    for window in args.windows:
        run = short_window(args, tmp, key, services, window)
        runs.append(run)
        checks += pacing_checks(run, f"pacing over {window:g} s, xvckit")
    return runs, checks


def paced_pair(args, tmp, key, services, name: str, sim_args: list[str]) -> tuple[Service, Service]:
    """A simulator limited to `--rpm`, and xvckit in front of it configured with that rpm."""
    extra = ["--rpm", str(args.rpm), "--latency-ms", str(args.latency_ms), *sim_args]
    sim = start_sim(args, tmp, extra, name=f"sim-{name}")
    services.append(sim)
    gateway = start_gateway(
        f"xvckit-{name}",
        sim,
        tmp,
        key,
        f"gateway: {{queue_timeout_s: {args.queue_timeout}}}" if args.queue_timeout else "",
        provider_yaml=f"rpm: {args.rpm}",
        warm=False,
    )
    services.append(gateway)
    return sim, gateway


def short_window(args, tmp, key, services, window: float) -> Run:
    """xvckit, configured with the deployment's rpm only, in front of a simulator that enforces
    it over `window` seconds."""
    rpm, latency_s = args.rpm, args.latency_ms / 1000
    sim, gateway = paced_pair(
        args, tmp, key, services, f"window-{window:g}", ["--rate-window", f"{window:g}"]
    )
    ideal = ideal_makespan(args.requests, args.connections, rpm, latency_s, window)
    say(f"pacing over {window:g} s: ideal {ideal:.1f} s")
    run = run_load(
        f"xvckit, {window:g} s window",
        [gateway.url + CHAT_PATH],
        key,
        sim,
        args.requests,
        args.connections,
        args,
        ideal,
    )
    gateway.stop()
    sim.stop()
    return run


def faults(args, tmp, key, litellm_exe, services, notes) -> tuple[list[Run], list[Check]]:
    extra = ["--fail-rate", str(args.fail_rate), "--drop-rate", str(args.drop_rate)]
    extra += ["--latency-ms", str(args.fault_latency_ms), "--seed", str(args.seed)]
    sim = start_sim(args, tmp, extra, name="sim-faults")
    services.append(sim)
    gateway = start_gateway("xvckit-faults", sim, tmp, key)
    services.append(gateway)
    proxy = litellm_or_none(litellm_exe, sim, tmp, key, "litellm-faults", notes)
    if proxy is not None:
        services.append(proxy)
    say(
        f"faults: {args.fault_requests} requests, {args.connections} connections, "
        f"{args.fail_rate:.0%} HTTP 500, {args.drop_rate:.0%} dropped"
    )
    targets = [("direct", sim, SIM_KEY), ("xvckit", gateway, key)]
    if proxy is not None:
        targets.append(("litellm", proxy, key))
    runs = [
        run_load(
            name, [service.url + CHAT_PATH], target_key, sim, args.fault_requests, args.connections, args
        )
        for name, service, target_key in targets
    ]
    if proxy is not None:
        proxy.stop()
    gateway.stop()
    sim.stop()
    return runs, fault_checks(runs[1])


def redis_problem(url: str) -> str | None:
    try:
        import redis
    except ImportError as exc:
        return f"redis-py is not installed ({exc})"
    try:
        client = redis.Redis.from_url(url, socket_connect_timeout=1, socket_timeout=1)
        client.ping()
        client.close()
    except Exception as exc:
        return f"{url}: {type(exc).__name__}: {exc}"
    return None


def redis_cleanup(url: str, provider: str) -> None:
    """Delete the pacing keys of this run's provider (a name of its own: nothing else shares them)."""
    import redis

    client = redis.Redis.from_url(url, socket_connect_timeout=1, socket_timeout=2)
    try:
        keys = list(client.scan_iter(match=f"xvckit:pace:{{{provider}#*"))
        if keys:
            client.delete(*keys)
    finally:
        client.close()


def replicas(args, tmp, key, services, notes) -> tuple[list[Run], list[Check]]:
    problem = redis_problem(args.redis_url)
    what = "replicas: upstream calls answered 429"
    if problem:
        notes.append(f"replicas skipped: Redis unavailable ({problem})")
        return [], [("SKIP", what, f"Redis unavailable: {problem}", f"<= {MAX_UPSTREAM_429_SHARE:.0%}")]
    rpm, count = args.replica_rpm, args.replicas
    sim = start_sim(args, tmp, ["--rpm", str(rpm), "--latency-ms", str(args.latency_ms)], name="sim-replicas")
    services.append(sim)
    provider = f"sim-{secrets.token_hex(4)}"  # its own Redis keys
    extra = f"redis: {{url: '{args.redis_url}'}}\n"
    if args.queue_timeout:
        extra += f"gateway: {{queue_timeout_s: {args.queue_timeout}}}\n"
    gateways = []
    try:
        for index in range(count):
            gateway = start_gateway(
                f"xvckit-replica{index + 1}",
                sim,
                tmp,
                key,
                extra,
                provider=provider,
                provider_yaml=f"rpm: {rpm}",
                warm=False,
            )
            services.append(gateway)
            gateways.append(gateway)
        ideal = ideal_makespan(args.replica_requests, args.connections, rpm, args.latency_ms / 1000)
        say(
            f"replicas: {count} gateways sharing Redis, {args.replica_requests} requests round-robin, "
            f"{args.connections} connections, {rpm} RPM; ideal {ideal:.1f} s"
        )
        urls = [gateway.url + CHAT_PATH for gateway in gateways]
        run = run_load(
            f"xvckit x{count} (Redis)", urls, key, sim, args.replica_requests, args.connections, args, ideal
        )
    finally:
        for gateway in gateways:
            gateway.stop()
        sim.stop()
        redis_cleanup(args.redis_url, provider)
    checks = [
        check(
            run.upstream_429_share <= MAX_UPSTREAM_429_SHARE,
            what,
            f"{run.upstream_429}/{run.upstream_calls} ({pct(run.upstream_429_share, 2)})",
            f"<= {MAX_UPSTREAM_429_SHARE:.0%}",
        ),
        ("INFO", "replicas: 429s seen by clients", str(run.client_429), "0 (not a target of the issue)"),
    ]
    return [run], checks


# --------------------------------------------------------------------------- main


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--only", choices=("pacing", "faults", "replicas"), action="append", help="run only these")
    p.add_argument("--requests", type=int, default=600, help="pacing: requests (600)")
    p.add_argument("--connections", type=int, default=64, help="concurrent clients, every scenario (64)")
    p.add_argument("--rpm", type=int, default=300, help="pacing: the deployment's limit (300)")
    p.add_argument(
        "--windows",
        type=lambda text: [float(part) for part in text.split(",") if part],
        default=[1.0, 10.0],
        help="pacing: shorter windows the limit is also enforced over, one run each (1,10; '': none)",
    )
    p.add_argument("--latency-ms", type=float, default=500, help="pacing, replicas: simulator latency (500)")
    p.add_argument("--fault-requests", type=int, default=2000, help="faults: requests (2000)")
    p.add_argument("--fail-rate", type=float, default=0.10, help="faults: share answered 500 (0.10)")
    p.add_argument(
        "--drop-rate", type=float, default=0.02, help="faults: share of connections dropped (0.02)"
    )
    p.add_argument("--fault-latency-ms", type=float, default=50, help="faults: simulator latency (50)")
    p.add_argument("--seed", type=int, default=1, help="faults: the simulator's random seed (1)")
    p.add_argument("--replicas", type=int, default=3, help="replicas: gateway processes (3)")
    p.add_argument("--replica-rpm", type=int, default=120, help="replicas: the deployment's limit (120)")
    p.add_argument("--replica-requests", type=int, default=240, help="replicas: requests (240)")
    p.add_argument("--redis-url", default=REDIS_URL, help=f"replicas: Redis ({REDIS_URL})")
    p.add_argument(
        "--queue-timeout",
        type=float,
        default=120,
        help="gateway.queue_timeout_s of the paced gateways (120; 0: the gateway's default, 60)",
    )
    p.add_argument("--request-timeout", type=float, default=300, help="client timeout per request, s (300)")
    p.add_argument("--run-timeout", type=float, default=300, help="longest run of one target, s (300)")
    p.add_argument("--no-litellm", action="store_true", help="leave LiteLLM out")
    p.add_argument("--no-install", action="store_true", help="use LiteLLM only if already installed")
    p.add_argument("--litellm-spec", default=LITELLM_SPEC, help=f"what pip installs (default {LITELLM_SPEC})")
    p.add_argument("--sim-cmd", help="run this instead of `xvckit sim` (see gateway_overhead.py)")
    p.add_argument("--json", type=Path, metavar="FILE", help="also write all numbers to FILE")
    p.add_argument("--strict", action="store_true", help="exit 3 when a target is missed")
    p.add_argument("--keep", action="store_true", help="keep the temporary directory (configs, logs)")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    scenarios = args.only or ["pacing", "faults", "replicas"]
    notes: list[str] = []
    litellm_exe = None
    if args.no_litellm:
        notes.append("LiteLLM left out (--no-litellm)")
    elif "pacing" in scenarios or "faults" in scenarios:
        litellm_exe, note = ensure_litellm(args.litellm_spec, LITELLM_VENV, not args.no_install)
        say(note)
        notes.append(note)
    if args.queue_timeout:
        notes.append(
            f"paced gateways run with gateway.queue_timeout_s: {args.queue_timeout:g} (default 60); "
            "see bench/README.md"
        )

    tmp = Path(tempfile.mkdtemp(prefix="xvckit-bench-rel-"))
    key = "sk-bench-" + secrets.token_hex(16)
    services: list[Service] = []
    started = time.time()
    results: dict[str, list[Run]] = {}
    checks: list[Check] = []
    try:
        if "pacing" in scenarios:
            results["pacing"], found = pacing(args, tmp, key, litellm_exe, services, notes)
            checks += found
        if "faults" in scenarios:
            results["faults"], found = faults(args, tmp, key, litellm_exe, services, notes)
            checks += found
        if "replicas" in scenarios:
            results["replicas"], found = replicas(args, tmp, key, services, notes)
            checks += found
    except BenchError as exc:
        print(f"bench: FAILED: {exc}", file=sys.stderr)
        return 1
    finally:
        stop_services(services, tmp, args.keep)

    if "pacing" in results:
        print(
            f"Pacing: {args.requests} chat completions, {args.connections} connections, to a deployment "
            f"limited to {args.rpm} RPM (simulator: sliding 60 s window, {args.latency_ms:g} ms per call); "
            f"then xvckit to the same limit enforced over {', '.join(f'{w:g} s' for w in args.windows)}"
        )
        print(
            "ideal: the shortest makespan the limit allows at this concurrency and latency; "
            "no client retries; upstream = what the simulator served"
        )
        print()
        print(paced_table(results["pacing"]))
        print("\n".join(error_notes(results["pacing"])))
        print()
    if "faults" in results:
        print(
            f"Faults: {args.fault_requests} chat completions, {args.connections} connections; the simulator "
            f"answers {args.fail_rate:.0%} HTTP 500 and drops {args.drop_rate:.0%} of connections "
            f"({args.fault_latency_ms:g} ms per call, seed {args.seed})"
        )
        print()
        print(faults_table(results["faults"]))
        print("\n".join(error_notes(results["faults"])))
        print()
    if results.get("replicas"):
        print(
            f"Replicas: {args.replicas} gateway processes sharing Redis, one deployment limited to "
            f"{args.replica_rpm} RPM (smaller than pacing's 300 to keep the run to about a minute); "
            f"{args.replica_requests} requests round-robin over them, {args.connections} connections, "
            f"{args.latency_ms:g} ms per call"
        )
        print()
        print(paced_table(results["replicas"]))
        print("\n".join(error_notes(results["replicas"])))
        print()
    print("Targets:")
    print(table(["", "check", "measured", "target"], checks, align="llll"))
    for note in notes:
        print(f"note: {note}")
    failed = any(status == "FAIL" for status, *_ in checks)
    if args.json:
        summary = {
            "results": {name: [run.to_dict() for run in runs] for name, runs in results.items()},
            "checks": [dict(zip(("status", "check", "measured", "target"), c, strict=True)) for c in checks],
            "notes": notes,
            "meta": {
                "started": time.strftime("%Y-%m-%dT%H:%M:%S%z", time.localtime(started)),
                "seconds": round(time.time() - started, 1),
                "cpus": os.cpu_count(),
                "loadavg_at_end": os.getloadavg(),
                "args": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
            },
        }
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(summary, indent=2) + "\n")
        say(f"wrote {args.json}")
    say(f"reliability benchmark took {time.time() - started:.0f} s")
    return 3 if failed and args.strict else 0


if __name__ == "__main__":
    sys.exit(main())
