"""Issue 23: each dashboard panel's JSON endpoint (/ui/api/...) on a 10-million-row ledger, timed
through a real gateway (`xvckit gateway serve`), beside what a panel that scanned the raw rows
would pay at least: reading the range's rows (`metrics.usage.read`, as `xvckit metrics` reads the
ledger), before any aggregation.

    .venv/bin/python bench/dashboard_panels.py                 # the 10M-row ledger of make bench-ledger
    .venv/bin/python bench/dashboard_panels.py --rows 1000000  # quicker look

The ledger file is `bench/ledger_query.py`'s (made once, cached in bench/.work/); its raw rows
are inserted by SQL, so the dashboard stats the ledger writer keeps are built here once from
them (`ledger.stats_rows`, a day at a time), and a day of per-minute and 90 days of per-hour
infrastructure samples for two hosts and two providers are added (`store.infra.add`). Each
panel is asked `--runs` times (the median and the largest are printed), as the master key (all
teams) and with `team=` (one team's numbers); the raw read once per range (90 days of raw rows
is the whole ledger in memory: left out unless `--raw-90d`).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH))

from ledger_query import WORK, ledger_file  # noqa: E402
from lib import Service, free_port, http_request, local_env, say, table  # noqa: E402

MASTER_KEY = "xvc-bench-master-key-0123456789abcdef"
DAY = 86400
RANGES = {"24h": DAY, "7d": 7 * DAY, "30d": 30 * DAY, "90d": 90 * DAY}


def build_stats(store) -> None:
    """The dashboard stats of every raw row, as the writer would have made them."""
    import sqlalchemy as sa

    from xvckit.store.ledger import RAW_COLUMNS, ledger_rows, stats_rows, writer_for
    from xvckit.store.ledger_stats import usage_stats

    with store.engine.connect() as conn:
        if conn.execute(sa.select(sa.func.count()).select_from(usage_stats)).scalar():
            return
        first, last = conn.exec_driver_sql("SELECT min(ts), max(ts) FROM xvckit_usage").one()
    say("building the dashboard stats from the raw rows (once) ...")
    writer = writer_for(store.engine.dialect.name)
    began = time.perf_counter()
    day = int(first // DAY) * DAY
    while day <= last:
        rows = ledger_rows(store, day, day + DAY, RAW_COLUMNS)
        with store.engine.begin() as conn:
            writer.upsert_stats(conn, stats_rows(rows))
        day += DAY
    say(f"  stats built ({time.perf_counter() - began:.0f} s)")


def add_team(store, team: str) -> None:
    """The bench's team ids are names too (`team-001`): a teams row makes `team=` find one."""
    from xvckit.store.keys import teams_table

    with store.engine.begin() as conn:
        if not conn.execute(teams_table.select().where(teams_table.c.id == team)).first():
            conn.execute(teams_table.insert().values(id=team, name=team, created_at=time.time()))


def add_infra(store, now: float) -> None:
    """A day of minute samples and 90 days of hour samples, two hosts, two providers."""
    import sqlalchemy as sa

    from xvckit.store import infra

    with store.engine.connect() as conn:
        if conn.execute(sa.select(sa.func.count()).select_from(infra.infra)).scalar():
            return
    say("adding infrastructure samples (once) ...")

    def values(i: int) -> list:
        return [
            ("cpu_percent", "", 20 + i % 50),
            ("memory_percent", "", 40 + i % 10),
            ("load1", "", 1.0),
            ("disk_read_bytes_s", "", 1e5 * (i % 7)),
            ("disk_write_bytes_s", "", 2e5 * (i % 5)),
            ("net_recv_bytes_s", "", 3e5),
            ("net_sent_bytes_s", "", 1e5),
            ("provider_up", "openai", 1.0),
            ("probe_ms", "openai", 80 + i % 30),
            ("provider_up", "anthropic", float(i % 97 != 0)),
            ("probe_ms", "anthropic", 120 + i % 40),
            ("pacing_waits", "openai#0/gpt-4o", float(i % 3)),
            ("pacing_wait_s", "openai#0/gpt-4o", 0.5 * (i % 3)),
        ]

    for host in ("gw-1", "gw-2"):
        for i in range(90 * 24):
            infra.add(store, now - 90 * DAY + i * 3600, host, values(i))
        for i in range(24 * 60):
            infra.add(store, now - DAY + i * 60, host, values(i))


def timed_get(url: str, runs: int) -> tuple[list[float], int]:
    samples, size = [], 0
    for _ in range(runs):
        began = time.perf_counter()
        answer = http_request("GET", url, headers={"authorization": f"Bearer {MASTER_KEY}"}, timeout=60)
        samples.append(time.perf_counter() - began)
        if answer.status != 200:
            raise SystemExit(f"{url}: {answer.status} {answer.body[:300]!r}")
        size = len(answer.body)
    return samples, size


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=10_000_000)
    parser.add_argument("--days", type=float, default=90)
    parser.add_argument("--keys", type=int, default=200)
    parser.add_argument("--teams", type=int, default=20)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument(
        "--raw-90d", action="store_true", help="also read 90 days of raw rows (the whole ledger)"
    )
    args = parser.parse_args()

    from xvckit.metrics import usage
    from xvckit.store import Store
    from xvckit.web.panels import Window

    path, generated = ledger_file(args.rows, args.days, args.keys, args.teams, fresh=False)
    store = Store.open(f"sqlite:///{path}")
    build_stats(store)
    add_infra(store, generated)
    add_team(store, "team-001")
    with store.engine.connect() as conn:
        count = conn.exec_driver_sql("SELECT max(id) FROM xvckit_usage").scalar()
        stats = conn.exec_driver_sql("SELECT count(*) FROM xvckit_usage_stats").scalar()
        rolled = conn.exec_driver_sql("SELECT count(*) FROM xvckit_usage_rollup").scalar()
    say(f"{count:,} raw rows, {rolled:,} rollup rows, {stats:,} dashboard stats rows")

    config = WORK / "dashboard-bench.yaml"
    config.write_text(
        f"storage:\n  url: sqlite:///{path}\nadmin:\n  master_key: {MASTER_KEY}\nmonitor:\n  interval_s: 0\n"
    )
    port = free_port()
    xvckit = [sys.executable, "-m", "xvckit"]
    argv = [
        *xvckit,
        "gateway",
        "serve",
        "--config",
        str(config),
        "--port",
        str(port),
        "--log-level",
        "warning",
    ]
    rows = []
    lag_h = (time.time() - generated) / 3600  # the panels look back from now, the data ends then
    with Service.start("gateway", argv, port=port, log_dir=WORK, env=local_env()) as gateway:
        gateway.wait_ready(timeout=120)
        base = f"{gateway.url}/ui/api"
        for name, seconds in RANGES.items():
            for panel, team in (
                ("overview", None),
                ("overview", "team-001"),
                ("api", None),
                ("api", "team-001"),
            ):
                query = f"range={name}" + (f"&team={team}" if team else "")
                samples, size = timed_get(f"{base}/{panel}?{query}", args.runs)
                label = f"{panel}{' team=' + team if team else ''}"
                rows.append([label, name, *_ms(samples), f"{size / 1024:.0f}", "-", "-"])
            if name in ("24h", "7d", "90d"):
                samples, size = timed_get(f"{base}/infrastructure?range={name}", args.runs)
                rows.append(["infrastructure", name, *_ms(samples), f"{size / 1024:.0f}", "-", "-"])
            if name != "90d" or args.raw_90d:
                window = Window.last(seconds, time.time())
                began = time.perf_counter()
                raw = usage.read(store, window.since, window.until)
                elapsed = time.perf_counter() - began
                rows.append(
                    [
                        "raw rows of the range read",
                        name,
                        "-",
                        "-",
                        "-",
                        f"{len(raw):,}",
                        f"{elapsed * 1000:.0f}",
                    ]
                )
        samples, size = timed_get(f"{base}/delivery", args.runs)
        rows.append(["delivery (no repository)", "-", *_ms(samples), f"{size / 1024:.0f}", "-", "-"])
    store.close()
    print(f"\nledger: {count:,} rows over {args.days:g} days, {args.keys} keys, {args.teams} teams, SQLite")
    print(f"rollup: {rolled:,} rows; dashboard stats: {stats:,} rows; the data ends {lag_h:.1f} h ago\n")
    print(
        table(
            ["panel", "range", "median ms", "max ms", "KiB", "raw rows", "raw read ms"],
            rows,
            "llrrrrr",
        )
    )


def _ms(samples: list[float]) -> list[str]:
    return [f"{statistics.median(samples) * 1000:.0f}", f"{max(samples) * 1000:.0f}"]


if __name__ == "__main__":
    main()
