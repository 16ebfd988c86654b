"""`xvckit metrics` (the guide's KPIs over a period against the one before) and `xvckit roi`
(the guide's API tiers priced on measured usage)."""

from __future__ import annotations

import sys
import time
from pathlib import Path

import typer

from xvckit.cli.options import ConfigOption, DataDirOption, JsonOption, input_file, on_use
from xvckit.errors import UserError
from xvckit.timespec import parse_duration, parse_moment

stores = on_use("xvckit.store")


def metrics(
    repo: Path | None = typer.Option(
        None, "--repo", help="the git repository (default: the current folder, when it is one)"
    ),
    since: str = typer.Option(
        "30d", "--since", help="the period: 30d, 2w, 12h, or a UTC date/time; compared with as long before it"
    ),
    until: str | None = typer.Option(
        None, "--until", help="the period's end (excluded); same forms; default: now"
    ),
    junit: list[str] = typer.Option(
        [], "--junit", metavar="GLOB", help="JUnit XML files: a path or a glob (repeatable)"
    ),
    coverage: list[str] = typer.Option(
        [],
        "--coverage",
        metavar="GLOB",
        help="Cobertura / coverage.py XML files: a path or a glob (repeatable)",
    ),
    incidents: Path | None = typer.Option(
        None,
        "--incidents",
        help="incidents: YAML or CSV with opened, resolved, severity",
        callback=input_file,
    ),
    ledger: bool = typer.Option(
        True, "--ledger/--no-ledger", help="read the gateway's ledger from the store"
    ),
    as_json: bool = JsonOption,
    markdown: bool = typer.Option(False, "--markdown", help="print Markdown for an issue or a pull request"),
    config: ConfigOption = None,
    data_dir: DataDirOption = None,
) -> None:
    """The guide's KPIs, measured: API, delivery, quality, CI, docs, incidents, DORA, cost."""
    from xvckit.metrics import report
    from xvckit.metrics.run import Options, run

    if as_json and markdown:
        raise UserError("--json and --markdown: choose one")
    options = Options(
        period=period(since, until),
        repo=repo or Path("."),
        repo_given=repo is not None,
        junit=junit,
        coverage=coverage,
        incidents=incidents,
    )
    store = stores.open_store(config, data_dir)[1] if ledger else None
    try:
        with _Progress() as progress:
            document = run(options, store, progress.update)
    finally:
        if store is not None:
            store.close()
    if as_json:
        _print_json(document)
    elif markdown:
        sys.stdout.write(report.markdown(document))
    else:
        _table(document)


def period(since: str, until: str | None, now: float | None = None):
    """The period `--since`/`--until` name: a duration before the end, or from a moment."""
    from xvckit.metrics.compute import Period

    now = time.time() if now is None else now
    try:
        end = now if until is None else parse_moment(until, now)
        length = parse_duration(since)
        start = end - length if length is not None else parse_moment(since, now)
    except ValueError as exc:
        raise UserError(f"--since/--until: {exc}") from None
    if start >= end:
        raise UserError(f"--since {since} is not before the period's end")
    return Period(start, end)


class _Progress:
    """Commits read from git, on a terminal's stderr while a cold run reads the history."""

    def __enter__(self) -> _Progress:
        from rich.console import Console
        from rich.progress import Progress, SpinnerColumn, TextColumn

        console = Console(stderr=True)
        self.bar = (
            Progress(
                SpinnerColumn(),
                TextColumn("reading git history: {task.completed:,} commits"),
                console=console,
                transient=True,
            )
            if console.is_terminal
            else None
        )
        self.task = self.bar.add_task("git", total=None) if self.bar else None
        return self

    def update(self, commits: int) -> None:
        if self.bar is not None:
            if not self.bar.live.is_started:
                self.bar.start()
            self.bar.update(self.task, completed=commits)  # type: ignore[arg-type]

    def __exit__(self, *_exc) -> None:
        if self.bar is not None:
            self.bar.stop()


def _print_json(data) -> None:
    import orjson

    sys.stdout.write(orjson.dumps(data, option=orjson.OPT_INDENT_2).decode() + "\n")


def _table(document: dict) -> None:
    from rich.console import Console
    from rich.table import Table

    from xvckit.metrics.report import show, show_change

    period = document["period"]
    table = Table(
        title=f"metrics, {period['since']} to {period['until']} against the {period['days']:g} days before",
        title_justify="left",
        header_style="bold",
    )
    for name, justify in (("", "left"), ("KPI", "left"), ("value", "right"), ("previous", "right")):
        table.add_column(name, justify=justify)  # type: ignore[arg-type]
    table.add_column("trend")
    table.add_column("note", overflow="fold")
    category = None
    for row in document["kpis"]:
        shown = row["category"] if row["category"] != category else ""
        category = row["category"]
        note = row["note"] or (f"the guide: {row['guide_says']}" if row["estimate"] else "")
        table.add_row(
            shown,
            row["name"],
            show(row["unit"], row["value"]),
            show(row["unit"], row["previous"]),
            show_change(row),
            note,
        )
    Console(width=200 if not sys.stdout.isatty() else None).print(table)


def roi(
    developers: int | None = typer.Option(
        None,
        "--developers",
        min=1,
        max=100_000,
        help="developers the ledger's usage is from (default: keys seen)",
    ),
    hourly_rate: float = typer.Option(
        100.0, "--hourly-rate", min=0, max=100_000, help="USD a developer hour costs (default 100)"
    ),
    since: str = typer.Option("30d", "--since", help="the usage to price: 30d, 2w, or a UTC date/time"),
    until: str | None = typer.Option(None, "--until", help="its end (excluded); default: now"),
    as_json: bool = JsonOption,
    config: ConfigOption = None,
    data_dir: DataDirOption = None,
) -> None:
    """The guide's API tiers priced on the ledger's measured usage: cost, hours lost, break-even."""
    from xvckit.metrics import usage
    from xvckit.metrics.roi import roi as tier_roi
    from xvckit.providers.prices import price_table

    chosen = period(since, until)
    loaded, store = stores.open_store(config, data_dir)
    try:
        requests = usage.read(store, chosen.since, chosen.until)
    finally:
        store.close()
    if not len(requests):
        raise UserError(f"no requests in the ledger in the period ({since}): nothing measured to price")
    document = tier_roi(requests, chosen, price_table(loaded.prices), developers, hourly_rate)
    if as_json:
        _print_json(document)
    else:
        _roi_table(document)


def _roi_table(document: dict) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console(width=200 if not sys.stdout.isatty() else None)
    measured = document["measured_per_month"]
    console.print(
        f"measured, per {document['month_days']}-day month: {measured['requests']:,} requests, "
        f"{measured['input_tokens']:,} input and {measured['output_tokens']:,} output tokens, "
        f"${measured['spend_usd']:,.2f} at the price table, "
        f"{measured['latency_hours']:,.1f} h of request time, "
        f"{measured['rate_limited']:,} answered 429; peak {measured['peak_requests_per_minute']:,} requests "
        f"and {measured['peak_tokens_per_minute']:,} tokens in a minute"
    )
    table = Table(
        title=f"tiers for {document['developers']} developer(s) at ${document['hourly_rate_usd']:,.0f}/h",
        title_justify="left",
        header_style="bold",
    )
    columns = ["tier", "fee (guide)", "usage", "rate-limit waits", "over limit", "answer waits", "total"]
    for name in (*columns, "velocity (guide)", "break-even (guide)"):
        table.add_column(name, justify="left" if name == "tier" else "right")
    for tier in document["tiers"]:
        low, high = tier["fee_usd"]
        guide = tier["guide_estimate"]
        table.add_row(
            tier["tier"],
            f"${low:,.0f}" + (f"-{high:,.0f}" if high is not None else "+"),
            f"${tier['spend_usd']:,.2f}",
            f"{tier['rate_limit_wait_hours']:,.1f} h",
            f"{tier['over_limit_requests']:,}",
            f"{tier['answer_wait_hours']:,.1f} h",
            f"${tier['total_usd']:,.2f}",
            "{}-{}x".format(*guide["velocity"]),
            guide["break_even"],
        )
    console.print(table)
    for step in document["break_even"]:
        rate = step["break_even_hourly_rate_usd"]
        console.print(
            f"{step['from']} -> {step['to']}: ${step['extra_fee_usd']:,.0f} more a month saves "
            f"{step['hours_saved']:,.1f} h; "
            + (
                "pays at any hourly rate"
                if rate is not None and rate <= 0
                else f"pays above ${rate:,.2f}/h"
                if rate is not None
                else "saves no time"
            )
        )
    console.print(f"recommended: {document['recommended']['tier']}")
    for reason in document["recommended"]["reasons"]:
        console.print(f"  - {reason}")
    console.print("fees, velocity and break-even marked (guide) are the guide's estimates, not measurements")
