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

With `--cookbook PATH` (openai-cookbook's `examples/api_request_parallel_processor.py`, the
user's copy: it is not on PyPI and not in this repository), the same items, the same prompts,
straight at the same simulator as that script is used against a provider, told the limit and 75%
of it (its own advice is to leave 25-50% headroom): makespan, failed items, upstream 429s and
the items sent more than once (its warnings name each request that failed), beside the batch
run's, in one table.

Prints the tables and PASS/FAIL lines against the issue's targets; `--strict` exits 3 on a FAIL.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import secrets
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import jinja2

from gateway_overhead import MODEL, SIM_KEY, start_gateway, start_sim, xvckit_exe
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


def measured(proc: subprocess.Popen, tick=None) -> tuple[int, object, float]:
    """Wait for `proc` with wait4 (poll() does not give the child's CPU time), calling `tick()`
    every 0.2 s; a tick that answers True kills it. Its status, rusage and wall time."""
    started = time.monotonic()
    while True:
        pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
        if pid:
            break
        if tick is not None and tick():
            proc.send_signal(signal.SIGKILL)
            _, status, usage = os.wait4(proc.pid, 0)
            break
        time.sleep(0.2)
    proc.returncode = status
    return status, usage, time.monotonic() - started


def run_client(folder: Path, args, env: dict, kill_at: int | None = None, extra: tuple = ()) -> dict:
    """One `xvckit batch run`; its summary, wall time, CPU and memory samples."""
    proc = subprocess.Popen(
        [*command(args), *extra], cwd=folder, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    rss = {"sample": None, "last": 0}

    def tick() -> bool:
        done = done_items(folder)
        with contextlib.suppress(OSError, BenchError):
            rss["last"] = rss_kib(proc.pid)
        if rss["sample"] is None and done >= MEMORY_SAMPLE_AT:
            rss["sample"] = rss["last"]
        return kill_at is not None and done >= kill_at

    status, usage, wall = measured(proc, tick)
    out = proc.stdout.read()
    err = proc.stderr.read()
    summary = json.loads(out) if out.strip() else None
    if kill_at is None and summary is None:
        raise BenchError(f"xvckit batch run printed no summary: {err.decode()[-2000:]}")
    return {
        "summary": summary,
        "wall_s": wall,
        "cpu_s": usage.ru_utime + usage.ru_stime,
        "rss_sample_kib": rss["sample"],
        "rss_end_kib": rss["last"],
        "max_rss_kib": usage.ru_maxrss,
        "killed": os.WIFSIGNALED(status),
    }


def cookbook_requests(folder: Path, path: Path, args) -> None:
    """The batch run's items as the cookbook script reads them: one chat request a line, each
    the same template rendered for the same file, with the same --max-tokens."""
    template = jinja2.Template(TEMPLATE, keep_trailing_newline=True)
    with path.open("w") as out:
        for source in sorted((folder / "src").glob("*.py")):
            prompt = template.render(path=f"src/{source.name}", content=source.read_text())
            request = {
                "model": MODEL,
                "messages": [{"role": "user", "content": prompt}],
                "max_tokens": args.max_tokens,
            }
            out.write(json.dumps(request) + "\n")


def run_cookbook(script: Path, folder: Path, sim, rpm: int, args, env: dict) -> dict:
    """openai-cookbook's script straight at the simulator (as it is used against a provider),
    told the limit is `rpm`: its wall time, CPU, failed items, and the items it sent again."""
    make_project(folder, args.items)
    cookbook_requests(folder, folder / "requests.jsonl", args)
    sim_reset(sim)
    with (folder / "cookbook.log").open("wb") as log:
        proc = subprocess.Popen(
            [sys.executable, str(Path(__file__).with_name("cookbook_shim.py")), str(script),
             str(folder / "requests.jsonl"), str(folder / "results.jsonl"),
             f"{sim.url}/v1/chat/completions", SIM_KEY, str(rpm)],
            cwd=folder, env=env, stdout=log, stderr=subprocess.STDOUT,
        )  # fmt: skip
        status, usage, wall = measured(proc)
    text = (folder / "cookbook.log").read_text(errors="replace")
    if status != 0:
        raise BenchError(
            f"the cookbook script exited with {os.waitstatus_to_exitcode(status)}: {text[-2000:]}"
        )
    results = [json.loads(line) for line in (folder / "results.jsonl").read_text().splitlines()]
    failed = sum(isinstance(row[1], list) for row in results)  # [request, [errors]]: gave up
    return {
        "rpm": rpm,
        "wall_s": wall,
        "cpu_s": usage.ru_utime + usage.ru_stime,
        "done": len(results) - failed,
        "failed": failed,
        "retried": len(set(re.findall(r"Request (\d+) failed with", text))),
        "upstream": dict(sim_counts(sim)),
    }


def comparison(whole: dict, cookbooks: list[dict], args, ideal: float) -> str:
    """xvckit batch through the gateway beside the cookbook script at each limit it was told."""
    s = whole["summary"]
    ours = {"done": s["done"], "failed": s["failed"], "retried": s["retried"]}
    runs = [{**whole, **ours, "name": f"xvckit batch (gateway, rpm {args.rpm})"}]
    runs += [{**c, "name": f"cookbook told {c['rpm']} RPM"} for c in cookbooks]
    rows = [
        ("items done / failed", *(f"{r['done']} / {r['failed']}" for r in runs)),
        ("makespan (s)", *(f"{r['wall_s']:.1f}" for r in runs)),
        ("over the ideal", *(f"{r['wall_s'] / ideal - 1:+.1%}" for r in runs)),
        ("upstream answers (200)", *(r["upstream"].get("200", 0) for r in runs)),
        ("upstream 429s", *(r["upstream"].get("429", 0) for r in runs)),
        ("items sent more than once", *(f"{r['retried']} ({r['retried'] / args.items:.1%})" for r in runs)),
        ("client CPU per item (ms)", *(f"{r['cpu_s'] * 1000 / args.items:.2f}" for r in runs)),
    ]
    return table(["", *(r["name"] for r in runs)], rows)


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
    parser.add_argument(
        "--cookbook", type=Path, help="openai-cookbook's api_request_parallel_processor.py, to run beside"
    )
    parser.add_argument(
        "--cookbook-rpm",
        help="the limits the cookbook script is told, comma-separated (default: the limit and 75%% of it,"
        " its advice being 50-75%%)",
    )
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

        cookbooks = []
        told = args.cookbook_rpm or f"{args.rpm},{args.rpm * 3 // 4}"
        for rpm in [int(n) for n in told.split(",")] if args.cookbook else []:
            say(f"openai-cookbook's script straight at the simulator, told {rpm} RPM ...")
            cookbooks.append(
                run_cookbook(args.cookbook.resolve(), tmp / f"cookbook-{rpm}", sim, rpm, args, local_env())
            )
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
    print()
    print(comparison(whole, cookbooks, args, ideal))
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
            json.dumps(
                {"whole": whole, "killed": first, "rerun": rerun, "cookbook": cookbooks, "ideal_s": ideal},
                indent=2,
            )
        )
    return 3 if failed and args.strict else 0


if __name__ == "__main__":
    sys.exit(main())
