"""Batch benchmark (issue 22): `xvckit batch run` over 1,000 files against `xvckit sim --rpm 300`
through the gateway (its provider configured with `rpm: 300`).

Two runs, each in a fresh folder, the simulator's statistics zeroed before each:

- whole: the run from start to end. Makespan against the limit's ideal (`reliability.py`'s
  `ideal_makespan`: the sim's sliding 60 s window, every request `--latency-ms` long), failed
  items, upstream 429s, the client's own CPU per item (user + system of the `xvckit batch`
  process, from wait4), and its resident memory when 100 items were done and at the end;
- killed: SIGKILL when half the items are done, then the same command again: what the re-run
  sent, what the gateway answered from its Idempotency-Key records, and the simulator's count
  of answers (each item once: no request paid twice).

Prints a table and PASS/FAIL lines against the issue's targets; `--strict` exits 3 on a FAIL.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import secrets
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from gateway_overhead import MODEL, start_gateway, start_sim, xvckit_exe
from lib import WORK_DIR, BenchError, local_env, rss_kib, say, stop_services, table
from reliability import ideal_makespan, sim_counts, sim_reset

TEMPLATE = "Write a one-line summary of {{ path }}:\n{{ content }}\n"
MAX_MAKESPAN_OVER_IDEAL = 0.10
MAX_CPU_MS_PER_ITEM = 5.0
MEMORY_SAMPLE_AT = 100


def make_project(folder: Path, items: int) -> None:
    """Files whose text names the run, so no request of another run (or an earlier benchmark
    within the gateway's 24 h) is answered from the gateway's Idempotency-Key records."""
    (folder / "src").mkdir(parents=True)
    for n in range(items):
        (folder / "src" / f"m{n:04}.py").write_text(f"# {folder}\ndef f{n}(x):\n    return x * {n}\n")
    (folder / "summary.j2").write_text(TEMPLATE)


def command(args) -> list[str]:
    return [
        xvckit_exe(), "batch", "run", "summary.j2", "--files", "src/*.py", "--model", MODEL,
        "--out", "out", "--max-tokens", str(args.max_tokens), "--concurrency", args.concurrency, "--json",
    ]  # fmt: skip


def done_items(folder: Path) -> int:
    journals = list((folder / ".xvckit" / "batch").glob("*/run.db"))
    if not journals:
        return 0
    try:
        with sqlite3.connect(journals[0], timeout=5) as db:
            return db.execute("SELECT COUNT(*) FROM items WHERE state = 'done'").fetchone()[0]
    except sqlite3.OperationalError:
        return 0


def run_client(folder: Path, args, env: dict, kill_at: int | None = None, extra: tuple = ()) -> dict:
    """One `xvckit batch run`; its summary, wall time, CPU and memory samples."""
    started = time.monotonic()
    proc = subprocess.Popen(
        [*command(args), *extra], cwd=folder, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    rss_at_sample = None
    rss_last = 0
    while True:  # wait4, not poll(): it gives the child's CPU time
        pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
        if pid:
            break
        done = done_items(folder)
        with contextlib.suppress(OSError, BenchError):
            rss_last = rss_kib(proc.pid)
        if rss_at_sample is None and done >= MEMORY_SAMPLE_AT:
            rss_at_sample = rss_last
        if kill_at is not None and done >= kill_at:
            proc.send_signal(signal.SIGKILL)
            _, status, usage = os.wait4(proc.pid, 0)
            break
        time.sleep(0.2)
    proc.returncode = status
    wall = time.monotonic() - started
    out = proc.stdout.read()
    err = proc.stderr.read()
    summary = json.loads(out) if out.strip() else None
    if kill_at is None and summary is None:
        raise BenchError(f"xvckit batch run printed no summary: {err.decode()[-2000:]}")
    return {
        "summary": summary,
        "wall_s": wall,
        "cpu_s": usage.ru_utime + usage.ru_stime,
        "rss_sample_kib": rss_at_sample,
        "rss_end_kib": rss_last,
        "max_rss_kib": usage.ru_maxrss,
        "killed": os.WIFSIGNALED(status),
    }


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--items", type=int, default=1000)
    parser.add_argument("--rpm", type=int, default=300)
    parser.add_argument("--latency-ms", type=float, default=500.0, help="each simulated answer's time")
    parser.add_argument("--max-tokens", type=int, default=64)
    parser.add_argument("--concurrency", default="auto")
    parser.add_argument("--json", type=Path, help="write the results here too")
    parser.add_argument("--keep", action="store_true", help="keep the work folder")
    parser.add_argument("--strict", action="store_true")
    args = parser.parse_args()

    WORK_DIR.mkdir(exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix="batch-", dir=WORK_DIR))
    key = "xvc-bench-" + secrets.token_hex(16)
    services = []
    try:
        sim = start_sim(args, tmp, ["--rpm", str(args.rpm), "--latency-ms", str(args.latency_ms)])
        services.append(sim)
        gateway = start_gateway("gateway", sim, tmp, key, provider_yaml=f"rpm: {args.rpm}", warm=False)
        services.append(gateway)
        env = local_env({"OPENAI_BASE_URL": f"{gateway.url}/v1", "OPENAI_API_KEY": key})

        say(f"whole run: {args.items} items, {args.rpm} RPM, answers of {args.latency_ms:.0f} ms ...")
        sim_reset(sim)
        whole_dir = tmp / "whole"
        make_project(whole_dir, args.items)
        whole = run_client(whole_dir, args, env)
        planning = run_client(whole_dir, args, env, extra=("--dry-run",))
        whole["upstream"] = dict(sim_counts(sim))

        say(f"killed run: SIGKILL at {args.items // 2} items done, then the same command again ...")
        sim_reset(sim)
        killed_dir = tmp / "killed"
        make_project(killed_dir, args.items)
        first = run_client(killed_dir, args, env, kill_at=args.items // 2)
        at_kill = done_items(killed_dir)
        rerun = run_client(killed_dir, args, env)
        rerun["upstream"] = dict(sim_counts(sim))
    finally:
        stop_services(services, tmp, keep=args.keep)

    ideal = ideal_makespan(args.items, 10**6, args.rpm, args.latency_ms / 1000)
    s = whole["summary"]
    over = whole["wall_s"] / ideal - 1
    cpu_ms = whole["cpu_s"] * 1000 / args.items
    sending_ms = (whole["cpu_s"] - planning["cpu_s"]) * 1000 / args.items
    again = rerun["summary"]
    upstream_ok = rerun["upstream"].get("200", 0)
    fails, again_done = again["failed"], again["done"] + again["done_before"]
    rows = [
        ("items", args.items, args.items),
        ("done / failed", f"{s['done']} / {s['failed']}", f"{again_done} / {fails}"),
        ("makespan (s)", f"{whole['wall_s']:.1f}", f"{first['wall_s']:.1f} + {rerun['wall_s']:.1f}"),
        ("ideal makespan (s)", f"{ideal:.1f}", ""),
        ("over ideal", f"{over:+.1%}", ""),
        ("upstream answers (200)", whole["upstream"].get("200", 0), upstream_ok),
        ("upstream 429s", whole["upstream"].get("429", 0), rerun["upstream"].get("429", 0)),
        ("client CPU per item (ms)", f"{cpu_ms:.2f}", ""),
        ("  of it beyond start and rendering (a dry run's)", f"{sending_ms:.2f}", ""),
        (f"client RSS at item {MEMORY_SAMPLE_AT} / end (MiB)",
         f"{(whole['rss_sample_kib'] or 0) / 1024:.1f} / {whole['rss_end_kib'] / 1024:.1f}", ""),
        ("done at the kill / sent by the re-run", "", f"{at_kill} / {again['done']}"),
        ("answered from the gateway's record", "", again["replayed"]),
    ]  # fmt: skip
    print(table(["", "whole run", "killed at 50% + re-run"], rows))
    rss_growth = (whole["rss_end_kib"] - (whole["rss_sample_kib"] or 0)) / 1024
    checks = [
        (s["failed"] == 0 and s["done"] == args.items, f"no failed item ({s['failed']} failed)"),
        (over <= MAX_MAKESPAN_OVER_IDEAL, f"makespan within 10% of the ideal ({over:+.1%})"),
        (cpu_ms < MAX_CPU_MS_PER_ITEM, f"client CPU under 5 ms per item ({cpu_ms:.2f} ms)"),
        (rss_growth < 10, f"memory flat from item {MEMORY_SAMPLE_AT} to the end ({rss_growth:+.1f} MiB)"),
        (upstream_ok == args.items, f"killed and re-run: each item answered upstream once ({upstream_ok})"),
    ]
    failed = False
    for ok, what in checks:
        print(f"{'PASS' if ok else 'FAIL'}: {what}")
        failed |= not ok
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(
            json.dumps({"whole": whole, "killed": first, "rerun": rerun, "ideal_s": ideal}, indent=2)
        )
    return 3 if failed and args.strict else 0


if __name__ == "__main__":
    sys.exit(main())
