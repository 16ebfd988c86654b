"""Team keys benchmark (issue 3).

In one run: the gateway with 1,000 virtual keys, each with a budget, an rpm and a tpm
limit (none of them reached), a team budget over all of them and the usage ledger on,
against the same gateway with auth and ledger off (the master key only and
`ledger: {enabled: false}`), both in front of the same simulator. wrk sends small chat
completions at 16 connections, each request with the next of the 1,000 keys (the plain
gateway gets its one key the same way, so wrk's cost is the same on both sides). Rounds
alternate between the two gateways; the table shows medians, and the ratio is the median of
each round's keyed/plain ratio (the two runs of a round share the machine's state of the
moment, which moves by more than the difference measured). Target: the keyed gateway keeps
at least 90% of the plain one's throughput. Every request wrk got an answer
to must be in the ledger afterwards. CPU per request is shown for the gateway's process and
for its ledger writer apart: on a machine this small, wrk, the simulator, the gateway and the
writer share the cores, so the writer's CPU costs throughput too.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import statistics
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from gateway_overhead import REQUEST, start_gateway, start_sim
from lib import BENCH_DIR, WRK_SCRIPT, Service, cpu_seconds, fmt, run_wrk, say, stop_services, table
from xvckit.store import Store
from xvckit.store.keys import Limits, create_key, create_team
from xvckit.store.ledger import ledger_request_ids

KEYS_SCRIPT = BENCH_DIR / "wrk_keys.lua"
CONNECTIONS = 16


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--keys", type=int, default=1000, help="virtual keys (default 1000)")
    parser.add_argument("--duration", type=int, default=5, help="seconds per measured run (default 5)")
    parser.add_argument("--warmup", type=int, default=2, help="seconds of warm-up per run (default 2)")
    parser.add_argument("--rounds", type=int, default=7, help="alternating rounds (default 7)")
    parser.add_argument("--sim-cmd", default=None, help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def make_keys(gateway: Service, count: int) -> list[str]:
    """Create the team and keys in the gateway's store (it picks them up within a second)."""
    store = Store.open(f"sqlite:///{gateway.log_path.parent / gateway.name / 'xvckit.db'}")
    create_team(
        store, "bench", Limits(budget_usd=1e6, budget_period="month", rpm=10**7, tpm=2**31 - 1), "bench"
    )
    limits = Limits(rpm=10**6, tpm=10**9, budget_usd=1e4, budget_period="day")
    raws = [create_key(store, f"k{i}", "bench", team="bench", limits=limits)[1] for i in range(count)]
    store.close()
    time.sleep(1.5)
    return raws


def wait_for_ledger(gateway: Service, timeout: float = 30.0) -> None:
    """Until the gateway's journal is all in the database (its writer commits about once a
    second under load): what /readyz reports as `ledger_backlog_bytes`."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with urllib.request.urlopen(gateway.url + "/readyz", timeout=5) as response:
            if json.loads(response.read())["ledger_backlog_bytes"] == 0:
                return
        time.sleep(0.2)
    raise SystemExit(f"the ledger writer did not catch up within {timeout:.0f} s")


def ledger_count(gateway: Service) -> int:
    store = Store.open(f"sqlite:///{gateway.log_path.parent / gateway.name / 'xvckit.db'}")
    count = len(ledger_request_ids(store))
    store.close()
    return count


def wrk(gateway: Service, keys_file: Path, body: Path, seconds: int):
    env = {"XVCKIT_BENCH_KEYS": str(keys_file), "XVCKIT_WRK_JSON": str(WRK_SCRIPT)}
    return run_wrk(
        gateway.url + "/v1/chat/completions",
        connections=CONNECTIONS,
        threads=2,
        duration_s=seconds,
        body_file=body,
        headers={"Content-Type": "application/json"},
        script=KEYS_SCRIPT,
        env=env,
    )


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    tmp = Path(tempfile.mkdtemp(prefix="xvckit-bench-keys-"))
    body = tmp / "request.json"
    body.write_text(json.dumps(REQUEST))
    master = "sk-bench-" + secrets.token_hex(16)
    services: list[Service] = []
    try:
        sim = start_sim(args, tmp)
        services.append(sim)
        plain = start_gateway("plain", sim, tmp, master, "ledger: {enabled: false}")
        services.append(plain)
        keyed = start_gateway("keyed", sim, tmp, master)
        services.append(keyed)
        say(f"creating {args.keys} keys ...")
        keys_file = tmp / "keys.txt"
        keys_file.write_text("\n".join(make_keys(keyed, args.keys)) + "\n")
        master_file = tmp / "master.txt"
        master_file.write_text(master + "\n")
        before = ledger_count(keyed)
        runs: dict[str, list] = {"plain": [], "keyed": []}
        # CPU per request: the gateway's process, and its ledger writer (its child)
        cpu: dict[str, list[float]] = {"plain": [], "keyed": []}
        writer_cpu: dict[str, list[float]] = {"plain": [], "keyed": []}
        sent = 0
        for round_no in range(1, args.rounds + 1):
            for name, gateway, keys in (("plain", plain, master_file), ("keyed", keyed, keys_file)):
                warm = wrk(gateway, keys, body, args.warmup)
                own_before, tree_before = cpu_seconds(gateway.pid), gateway.cpu_seconds()
                result = wrk(gateway, keys, body, args.duration)
                own, tree = cpu_seconds(gateway.pid) - own_before, gateway.cpu_seconds() - tree_before
                cpu[name].append(own / max(1, result.requests) * 1e6)
                writer_cpu[name].append((tree - own) / max(1, result.requests) * 1e6)
                for run in (warm, result):
                    if run.problems():
                        raise SystemExit(f"{name}: {run.problems()}")
                if name == "keyed":
                    sent += warm.requests + result.requests
                runs[name].append(result.rps)
                say(f"round {round_no} {name}: {result.rps:,.0f} req/s")
        wait_for_ledger(keyed)
        recorded = ledger_count(keyed) - before
    finally:
        stop_services(services, tmp)
    plain_rps, keyed_rps = statistics.median(runs["plain"]), statistics.median(runs["keyed"])
    ratios = [k / p for p, k in zip(runs["plain"], runs["keyed"], strict=True)]
    ratio = statistics.median(ratios)
    say()
    say(
        f"Team keys: {args.keys} keys with budgets and rpm/tpm limits, ledger on, vs auth and ledger off; "
        f"{CONNECTIONS} connections, median of {args.rounds} rounds of {args.duration}s (vs off: of each "
        f"round's ratio); load avg {os.getloadavg()[0]:.2f}"
    )
    rows = [
        (
            label,
            fmt(rps, 0),
            share,
            fmt(statistics.median(cpu[name]), 0),
            fmt(statistics.median(writer_cpu[name]), 1),
        )
        for label, name, rps, share in (
            ("auth+ledger off", "plain", plain_rps, "100%"),
            (f"{args.keys} keys+ledger", "keyed", keyed_rps, f"{ratio:.0%}"),
        )
    ]
    say(table(["gateway", "req/s c16", "vs off", "gateway CPU us/req", "writer CPU us/req"], rows, "lrrrr"))
    say(f"each round's keyed/off ratio, in order: {', '.join(f'{r:.0%}' for r in ratios)}")
    verdict = "PASS" if ratio >= 0.9 else "FAIL"
    say(f"{verdict}  throughput with keys and ledger vs off: {ratio:.0%} (target >= 90%)")
    verdict = "PASS" if recorded >= sent else "FAIL"
    say(
        f"{verdict}  ledger rows for the keyed runs: {recorded:,} for {sent:,} answered requests "
        "(the rest were in flight when wrk stopped)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
