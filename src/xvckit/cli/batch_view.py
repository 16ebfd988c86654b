"""How `xvckit batch` looks: a Rich progress bar on a terminal, summary tables, JSON."""

from __future__ import annotations

import sys
import time

import orjson
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table
from rich.text import Text

from xvckit.batch.engine import Stats


def print_json(data) -> None:
    sys.stdout.write(orjson.dumps(data, option=orjson.OPT_INDENT_2).decode() + "\n")


def _console() -> Console:
    return Console(width=200 if not sys.stdout.isatty() else None)


class ProgressView:
    """Items, rate, ETA, tokens, spend and failures, redrawn a few times a second (stderr)."""

    def __init__(self) -> None:
        self.progress = Progress(
            TextColumn("batch"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[rate]}"),
            TimeRemainingColumn(),
            TextColumn("{task.fields[detail]}"),
            console=Console(stderr=True),
            transient=True,
        )
        self.task = None

    @staticmethod
    def wanted() -> bool:
        return Console(stderr=True).is_terminal

    def start(self, stats: Stats) -> None:
        self.progress.start()
        self.task = self.progress.add_task("batch", total=stats.total or None, rate="", detail="")

    def update(self, stats: Stats) -> None:
        elapsed = max(time.monotonic() - stats.started, 1e-9)
        detail = (
            f"{stats.input_tokens:,} in / {stats.output_tokens:,} out tokens · ${stats.cost_usd:.4f}"
            f" · {stats.failed} failed · {stats.in_flight} in flight (limit {stats.limit})"
        )
        self.progress.update(
            self.task,
            total=stats.total,
            completed=stats.done_before + stats.finished,
            rate=f"{stats.finished / elapsed:.1f}/s",
            detail=detail,
        )

    def stop(self, stats: Stats) -> None:
        self.update(stats)
        self.progress.stop()


def print_estimate(estimate: dict) -> None:
    table = Table(
        "model", "items", "input tokens", "output tokens (at most)", "cost (USD)", header_style="bold"
    )
    for row in estimate["models"]:
        low, high = row["cost_min_usd"], row["cost_max_usd"]
        cost = "no price" if low is None else f"{low:.4f} to {high:.4f}"
        table.add_row(
            row["model"], str(row["items"]), f"{row['input_tokens']:,}", f"{row['output_tokens_max']:,}", cost
        )
    console = _console()
    console.print(table)
    console.print(
        f"dry run: nothing sent. The output is at most --max-tokens {estimate['max_tokens']:,} per item; "
        "the cost runs from input alone to input plus all of it"
        + (" (at the batch price: half the price table's)." if estimate.get("price_share", 1.0) < 1 else ".")
    )
    _left_out(console, estimate["left_out"])


def print_summary(result: dict) -> None:
    console = _console()
    table = Table(box=None, show_header=False)
    rate = result["done"] / result["elapsed_s"] if result["elapsed_s"] else 0.0
    rows = [
        ("run", result["run"]),
        ("state", result["state"]),
        ("items", f"{result['items']:,}"),
        ("done", f"{result['done']:,} now, {result['done_before']:,} before"),
        ("failed", f"{result['failed']:,}"),
        (
            "not sent",
            f"{result['skipped']:,}"
            + (f" (at most ${result['skipped_worst_usd']:.4f})" if result["skipped"] else ""),
        ),
        ("answered from the gateway's record", f"{result['replayed']:,}"),
        ("sent more than once (retried)", f"{result['retried']:,}"),
        ("tokens", f"{result['input_tokens']:,} in, {result['output_tokens']:,} out"),
        ("cost", f"${result['cost_usd']:.4f} now, ${result['cost_total_usd']:.4f} for the run"),
        ("time", f"{result['elapsed_s']:.1f} s, {rate:.1f} items/s"),
    ]
    if result.get("stopped"):
        rows.append(("stopped", result["stopped"]))
    for name, value in rows:
        table.add_row(Text(name, style="bold"), Text(value))
    console.print(table)
    for failure in result["failures"]:
        console.print(Text(f"failed: {failure['item']}: {failure['error']}"))
    _provider_batches(console, result.get("provider_batches") or [])
    if "edits" in result:
        print_edits(result["edits"], console)
    _left_out(console, result.get("left_out") or {})


def print_edits(summary: dict, console: Console | None = None) -> None:
    console = console or _console()
    files = summary["files"]
    console.print(
        Text(
            f"edits: {files['applied']} files changed, {files['already applied']} already applied, "
            f"{files['failed']} not applied"
        )
    )
    for failed in summary["failed"]:
        console.print(
            Text(
                f"not applied: {failed['path'] or '?'} (item {failed['item']}): "
                + "; ".join(failed["problems"])
            )
        )


def print_show(data: dict) -> None:
    console = _console()
    table = Table(box=None, show_header=False)
    for name in ("run", "state", "mode", "template", "model", "items", "done", "failed", "cost_usd"):
        table.add_row(Text(name, style="bold"), Text(str(data[name])))
    for name, value in data["outputs"].items():
        table.add_row(Text(name, style="bold"), Text(str(value)))
    table.add_row(
        Text("states", style="bold"), Text(", ".join(f"{n} {s}" for s, n in data["states"].items() if n))
    )
    console.print(table)
    for failure in data["failures"]:
        console.print(Text(f"failed: {failure['item']}: {failure['error']}"))
    _provider_batches(console, data["provider_batches"])
    if "edits" in data:
        print_edits(data["edits"], console)
    if data.get("item_rows"):
        rows = Table("item", "state", "tokens in", "tokens out", "cost (USD)", "error", header_style="bold")
        for row in data["item_rows"]:
            cost = "-" if row["cost_usd"] is None else f"{row['cost_usd']:.6f}"
            rows.add_row(
                row["item"],
                row["state"],
                str(row["input_tokens"]),
                str(row["output_tokens"]),
                cost,
                row["error"] or "",
            )
        console.print(rows)


def _provider_batches(console: Console, batches: list[dict]) -> None:
    """A provider-batch run's batches: id, status at the provider, requests, counts."""
    for batch in batches:
        counts = ", ".join(
            f"{n} {what}" for what, n in (batch["counts"] or {}).items() if n and what != "total"
        )
        state = "open" if batch["open"] else "collected"
        console.print(
            Text(
                f"provider batch {batch['id']} ({batch['api']}): {batch['status']}, {state}, "
                f"{batch['requests']:,} requests" + (f" ({counts})" if counts else "")
            )
        )


def _left_out(console: Console, left_out: dict) -> None:
    if left_out:
        reasons = ", ".join(f"{n} {why}" for why, n in sorted(left_out.items()))
        console.print(f"left out of the glob's matches, never sent: {reasons}")
