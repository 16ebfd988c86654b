"""The usage ledger: `xvckit usage --by team --since 30d` on a 10-million-row SQLite ledger,
and what `Ledger.write` costs a request.

    .venv/bin/python bench/ledger_query.py                 # 10M rows (generated once, ~2 min)
    .venv/bin/python bench/ledger_query.py --rows 1000000  # quicker look
    .venv/bin/python bench/ledger_query.py --writes        # also the write benchmark
    .venv/bin/python bench/ledger_query.py --writes --postgres postgresql://postgres@127.0.0.1/test

Query. The ledger file is made once and cached under bench/.work/ (gitignored): the tables
come from `Store.open` (the real schema and indexes), the raw rows are inserted straight into
`xvckit_usage` by SQL (sequential request ids, one request every `days*86400/rows` seconds up to
the time of generation, `keys` keys each in one of `teams` teams, 8 priced models, 3% errors,
cost from the price table; the "random" columns are a multiplicative hash of the row number,
because SQLite evaluates random() again wherever a subquery column is used), and the rollup
is made from those rows with the same sums the writer keeps (`INSERT ... SELECT ... GROUP BY`
per hour, then per day from the hours). Then, for `--runs` rounds, side by side:

- cli: `xvckit usage --by team --since 30d --config F` as a new process each time (interpreter
  start, imports, config, store open, query, Rich table), stdout captured;
- cli --json: the same with `--json`;
- startup only: `xvckit version`, the part of the CLI time that is not the ledger's;
- command path only: a new interpreter that imports only what the command uses (config, store,
  Rich), opens the store, runs the report and prints the table: the command without the
  CLI app, which today imports every command module and through them the gateway;
- in-process: `usage_report(store, "team", now - 30d)` in this process (rollup + edge rows);
- raw: `usage_report_raw(...)`, the same answer aggregated from the raw rows, for comparison.

The file stays in the OS page cache between runs (nothing drops caches: the machine is
shared), so "cold process" means a new interpreter, not a cold disk. The two reports are
checked to be equal before anything is timed.

Writes (`--writes`). A fresh store; on one uvloop event loop a `Ledger` is started, then:
- low load: 2000 `await ledger.write(record)` one after another (nothing else running): the
  time each await takes is what the ledger adds to a response at low load;
- concurrency: C tasks each writing records back to back, N records in all: records per
  second, per-write latency percentiles, transactions used (group commit: records per commit).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import sqlite3
import statistics
import subprocess
import sys
import time
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
ROOT = BENCH_DIR.parent
WORK = BENCH_DIR / ".work"

MODELS = [
    "gpt-4o",
    "gpt-4o-mini",
    "gpt-4.1",
    "gpt-5-mini",
    "o4-mini",
    "claude-sonnet-4-5",
    "claude-haiku-4-5",
    "text-embedding-3-small",
]


def say(message: str = "") -> None:
    print(message, file=sys.stderr, flush=True)


def table(headers: list[str], rows: list[list[object]]) -> str:
    cells = [headers, *[[str(c) for c in row] for row in rows]]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    lines = []
    for n, row in enumerate(cells):
        padded = (
            c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(row, widths, strict=True))
        )
        lines.append("  ".join(padded))
        if n == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines)


# ---------------------------------------------------------------- the ledger file


def generate(path: Path, rows: int, days: float, keys: int, teams: int) -> float:
    """Write the ledger; returns the time it ends at (the generation's "now")."""
    from xvckit.providers.prices import lookup
    from xvckit.store import Store

    tmp = path.with_suffix(".tmp")
    for stale in (tmp, Path(f"{tmp}-wal"), Path(f"{tmp}-shm")):
        stale.unlink(missing_ok=True)
    store = Store.open(f"sqlite:///{tmp}")  # the real schema: tables, indexes, WITHOUT ROWID rollup
    store.close()
    end = time.time()
    start = end - days * 86400
    step = days * 86400 / rows
    db = sqlite3.connect(tmp, isolation_level=None)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=OFF")
    db.execute("PRAGMA cache_size=-1000000")
    db.execute(
        "CREATE TEMP TABLE bench_models (i INTEGER PRIMARY KEY, name TEXT, pin REAL, pout REAL, pread REAL)"
    )
    for i, name in enumerate(MODELS):
        price = lookup(name)
        db.execute(
            "INSERT INTO bench_models VALUES (?, ?, ?, ?, ?)",
            (i, name, price.input, price.output, price.cache_read),
        )
    insert = f"""
        WITH RECURSIVE seq(n) AS (SELECT :lo UNION ALL SELECT n + 1 FROM seq WHERE n + 1 < :hi)
        INSERT INTO xvckit_usage (request_id, ts, endpoint, key_id, team_id, model, deployment, status,
            error_type, input_tokens, output_tokens, cached_tokens, cache_write_tokens, cost_usd,
            latency_ms, ttft_ms, upstream_ms, overhead_ms, retries, cache_hit, client)
        SELECT printf('req-%011d', n), :start + n * :step,
            CASE WHEN m.name LIKE 'text-embedding%' THEN 'embeddings' ELSE 'chat' END,
            printf('key-%04d', k), printf('team-%03d', k % {teams}), m.name,
            CASE WHEN m.name LIKE 'claude%' THEN 'anthropic/' ELSE 'openai/' END || m.name,
            CASE WHEN r < 2 THEN 429 WHEN r < 3 THEN 500 ELSE 200 END,
            CASE WHEN r < 2 THEN 'rate_limit_error' WHEN r < 3 THEN 'api_error' END,
            inp, outp, cached, 0,
            ((inp - cached) * m.pin + cached * m.pread + outp * m.pout) / 1e6,
            lat, lat / 4, lat - 1, 0.6, 0, 0, 'openai-python/1.99'
        FROM (
            SELECT n, h % {keys} AS k, (h / 7919) % {len(MODELS)} AS mi, (h / 104729) % 100 AS r,
                200 + (h / 13) % 8000 AS inp, (h / 17) % 800 AS outp, ((h / 19) % 4) * 512 AS cached,
                50 + (h / 23) % 3000 AS lat
            FROM (SELECT n, (n * 2654435761 + 12345) % 4294967296 AS h FROM seq)
        ) JOIN bench_models m ON m.i = mi
    """
    chunk = 1_000_000
    began = time.perf_counter()
    for lo in range(0, rows, chunk):
        hi = min(rows, lo + chunk)
        db.execute("BEGIN")
        db.execute(insert, {"lo": lo, "hi": hi, "start": start, "step": step})
        db.execute("COMMIT")
        say(f"  raw rows {hi:,}/{rows:,} ({time.perf_counter() - began:.0f} s)")
    sums = "count(*), sum(input_tokens), sum(output_tokens), sum(cached_tokens), sum(cache_write_tokens), "
    sums += "sum(cost_usd), sum(CASE WHEN status >= 400 OR error_type IS NOT NULL THEN 1 ELSE 0 END)"
    db.execute("BEGIN")
    db.execute(
        f"""INSERT INTO xvckit_usage_rollup SELECT 3600, CAST(ts / 3600 AS INTEGER) * 3600,
            coalesce(key_id, ''), coalesce(team_id, ''), coalesce(model, ''), {sums}
            FROM xvckit_usage GROUP BY 2, 3, 4, 5"""
    )
    db.execute(
        """INSERT INTO xvckit_usage_rollup SELECT 86400, (bucket / 86400) * 86400, key_id, team_id, model,
            sum(requests), sum(input_tokens), sum(output_tokens), sum(cached_tokens), sum(cache_write_tokens),
            sum(cost_usd), sum(errors)
            FROM xvckit_usage_rollup WHERE span = 3600 GROUP BY 2, 3, 4, 5"""
    )
    db.execute("COMMIT")
    say(f"  rollup built ({time.perf_counter() - began:.0f} s)")
    db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    db.execute("CREATE TABLE bench_info (generated_at REAL)")
    db.execute("INSERT INTO bench_info VALUES (?)", (end,))
    db.close()
    for suffix in ("", "-wal", "-shm"):
        source = Path(f"{tmp}{suffix}")
        if source.exists():
            source.replace(Path(f"{path}{suffix}"))
    return end


def ledger_file(rows: int, days: float, keys: int, teams: int, fresh: bool) -> tuple[Path, float]:
    WORK.mkdir(parents=True, exist_ok=True)
    path = WORK / f"ledger-{rows}rows-{days:g}d-{keys}k-{teams}t.db"
    if fresh:
        for suffix in ("", "-wal", "-shm"):
            Path(f"{path}{suffix}").unlink(missing_ok=True)
    if path.exists():
        with sqlite3.connect(path) as db:
            generated = db.execute("SELECT generated_at FROM bench_info").fetchone()[0]
        say(f"using {path} (generated {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime(generated))})")
        return path, generated
    say(f"generating {rows:,} rows over {days:g} days into {path} ...")
    return path, generate(path, rows, days, keys, teams)


# ---------------------------------------------------------------- timing


# What `xvckit usage` runs, without importing the CLI app (which imports every command and so
# the gateway): the cost of the command itself in a new process.
COMMAND_PATH = """
import sys, time
from rich.console import Console
from rich.table import Table
from xvckit.config import load
from xvckit.store import Store
from xvckit.store.ledger import usage_report
store = Store.open(load(sys.argv[1]).storage.url)
rows = usage_report(store, "team", time.time() - 30 * 86400)
table = Table(*rows[0])
for row in rows:
    table.add_row(*map(str, row.values()))
Console().print(table)
"""


def timed_process(argv: list[str]) -> float:
    began = time.perf_counter()
    done = subprocess.run(argv, capture_output=True, text=True, env={**os.environ, "COLUMNS": "120"})
    elapsed = time.perf_counter() - began
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(argv)} failed: {done.stderr.strip()}")
    return elapsed


def timed(fn, *args) -> float:
    began = time.perf_counter()
    fn(*args)
    return time.perf_counter() - began


def stats(samples: list[float]) -> list[str]:
    return [
        f"{min(samples) * 1000:.0f}",
        f"{statistics.median(samples) * 1000:.0f}",
        f"{max(samples) * 1000:.0f}",
    ]


def bench_query(args: argparse.Namespace) -> None:
    from xvckit.store import Store
    from xvckit.store.ledger import usage_report, usage_report_raw

    path, generated = ledger_file(args.rows, args.days, args.keys, args.teams, args.fresh)
    config = WORK / "ledger-bench.yaml"
    config.write_text(f"storage:\n  url: sqlite:///{path}\n")
    xvckit = shutil.which("xvckit", path=str(Path(sys.executable).parent)) or "xvckit"
    store = Store.open(f"sqlite:///{path}")
    with store.engine.connect() as conn:
        count = conn.exec_driver_sql("SELECT max(id) FROM xvckit_usage").scalar()
        rolled = conn.exec_driver_sql("SELECT count(*) FROM xvckit_usage_rollup").scalar()
    since = time.time() - 30 * 86400
    age_days = (time.time() - generated) / 86400
    say(f"{count:,} raw rows, {rolled:,} rollup rows; data ends {age_days:.2f} days ago")

    fast = usage_report(store, "team", since)
    slow = usage_report_raw(store, "team", since)
    assert [r["requests"] for r in fast] == [r["requests"] for r in slow], "rollup and raw reports differ"
    assert all(abs(a["cost_usd"] - b["cost_usd"]) < 1e-6 for a, b in zip(fast, slow, strict=True))
    in_window = sum(row["requests"] for row in fast)
    say(f"--since 30d covers {in_window:,} rows in {len(fast)} teams; rollup and raw reports agree")

    command = [xvckit, "usage", "--by", "team", "--since", "30d", "--config", str(config)]
    samples: dict[str, list[float]] = {
        "cli": [],
        "cli --json": [],
        "startup only": [],
        "command path only": [],
        "in-process": [],
        "in-process --by day": [],
        "in-process --by key": [],
        "raw": [],
    }
    for round_ in range(args.runs):
        say(f"round {round_ + 1}/{args.runs}")
        samples["cli"].append(timed_process(command))
        samples["cli --json"].append(timed_process([*command, "--json"]))
        samples["startup only"].append(timed_process([xvckit, "version"]))
        samples["command path only"].append(timed_process([sys.executable, "-c", COMMAND_PATH, str(config)]))
        since = time.time() - 30 * 86400
        samples["in-process"].append(timed(usage_report, store, "team", since))
        samples["in-process --by day"].append(timed(usage_report, store, "day", since))
        samples["in-process --by key"].append(timed(usage_report, store, "key", since))
        if round_ < args.raw_runs:
            samples["raw"].append(timed(usage_report_raw, store, "team", since))
    store.close()
    what = {
        "cli": "xvckit usage --by team --since 30d (new process, Rich table)",
        "cli --json": "the same with --json",
        "startup only": "xvckit version (interpreter + CLI imports)",
        "command path only": "new process: config, store, report, table; no CLI app",
        "in-process": "usage_report(store, 'team', now-30d)",
        "in-process --by day": "usage_report(store, 'day', now-30d)",
        "in-process --by key": "usage_report(store, 'key', now-30d)",
        "raw": "usage_report_raw: the same from raw rows",
    }
    print(f"\nledger: {count:,} rows over {args.days:g} days, {args.keys} keys, {args.teams} teams, SQLite")
    print(f"--since 30d: {in_window:,} rows; rollup table: {rolled:,} rows\n")
    print(
        table(
            ["measure", "min ms", "median ms", "max ms", "runs", "what"],
            [[name, *stats(values), len(values), what[name]] for name, values in samples.items() if values],
        )
    )


# ---------------------------------------------------------------- writes


async def write_bench(url: str, sequential: int, concurrency: int, total: int) -> list[list[object]]:
    from xvckit.store import Ledger, Store, UsageRecord

    store = Store.open(url)
    ledger = Ledger(store)
    ledger.start()
    stamp = f"{time.time():.0f}"

    def rec(n: int) -> UsageRecord:
        return UsageRecord(
            request_id=f"w{stamp}-{n}",
            endpoint="chat",
            key_id=f"key-{n % 50}",
            team_id=f"team-{n % 5}",
            model="gpt-4o-mini",
            deployment="openai/gpt-4o-mini",
            status=200,
            input_tokens=1200,
            output_tokens=300,
            cost_usd=0.00036,
            latency_ms=420.0,
            client="openai-python/1.99",
        )

    for n in range(200):  # warm up: connection, statement cache
        await ledger.write(rec(-1 - n))
    latencies = []
    for n in range(sequential):
        began = time.perf_counter()
        await ledger.write(rec(n))
        latencies.append(time.perf_counter() - began)
    commits_before = ledger.commits
    per_write: list[float] = []
    counter = iter(range(sequential, sequential + total))

    async def worker() -> None:
        for n in counter:
            began = time.perf_counter()
            await ledger.write(rec(n))
            per_write.append(time.perf_counter() - began)

    began = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    elapsed = time.perf_counter() - began
    commits = ledger.commits - commits_before
    await ledger.close()
    store.close()

    def pct(samples: list[float], q: float) -> str:
        ordered = sorted(samples)
        return f"{ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000:.3f}"

    return [
        [
            "sequential writes",
            sequential,
            pct(latencies, 0.5),
            pct(latencies, 0.9),
            pct(latencies, 0.99),
            "-",
            "-",
        ],
        [
            f"{concurrency} concurrent writers",
            total,
            pct(per_write, 0.5),
            pct(per_write, 0.9),
            pct(per_write, 0.99),
            f"{total / elapsed:,.0f}",
            f"{total / max(commits, 1):.0f}",
        ],
    ]


def bench_writes(args: argparse.Namespace) -> None:
    import uvloop

    targets = []
    WORK.mkdir(parents=True, exist_ok=True)
    path = WORK / "ledger-writes.db"
    for suffix in ("", "-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)
    targets.append(("SQLite (WAL, synchronous=NORMAL)", f"sqlite:///{path}"))
    if args.postgres:
        targets.append(("PostgreSQL", args.postgres))
    for name, url in targets:
        say(f"write benchmark on {name} ...")
        rows = uvloop.run(write_bench(url, args.sequential, args.concurrency, args.total))
        print(f"\nLedger.write on {name}, one uvloop event loop, writer thread group commit\n")
        print(
            table(
                ["load", "records", "p50 ms", "p90 ms", "p99 ms", "records/s", "records/commit"],
                rows,
            )
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=10_000_000)
    parser.add_argument("--days", type=float, default=90)
    parser.add_argument("--keys", type=int, default=200)
    parser.add_argument("--teams", type=int, default=20)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--raw-runs", type=int, default=2, help="rounds that also time the raw aggregation")
    parser.add_argument("--fresh", action="store_true", help="generate the ledger file again")
    parser.add_argument("--no-query", action="store_true", help="skip the query benchmark")
    parser.add_argument("--writes", action="store_true", help="also run the write benchmark")
    parser.add_argument(
        "--postgres", help="PostgreSQL URL for the write benchmark (tables are created there)"
    )
    parser.add_argument("--sequential", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=256)
    parser.add_argument("--total", type=int, default=50_000)
    args = parser.parse_args()
    if not args.no_query:
        bench_query(args)
    if args.writes:
        bench_writes(args)


if __name__ == "__main__":
    main()
