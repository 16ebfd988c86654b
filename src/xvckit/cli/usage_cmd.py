"""`xvckit usage`: totals and breakdowns from the usage ledger."""

from __future__ import annotations

import csv
import sys
import time
from enum import StrEnum

import typer

from xvckit.cli.options import ConfigOption, DataDirOption, on_use
from xvckit.errors import UserError
from xvckit.timespec import parse_moment

stores = on_use("xvckit.store")

COLUMNS = ("requests", "input_tokens", "output_tokens", "cached_tokens", "cost_usd", "errors")
HEADERS = {
    "requests": "requests",
    "input_tokens": "input tok",
    "output_tokens": "output tok",
    "cached_tokens": "cached tok",
    "cost_usd": "cost",
    "errors": "errors",
}
# a cell starting with one of these is a formula to a spreadsheet (OWASP: CSV injection)
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


class By(StrEnum):
    key = "key"
    team = "team"
    model = "model"
    day = "day"


def usage(
    by: By | None = typer.Option(None, "--by", help="one row per key, team, model or UTC day"),
    since: str | None = typer.Option(
        None, "--since", help="from: 7d, 24h, 30m, or a UTC date/time (2026-11-01); default: all"
    ),
    until: str | None = typer.Option(None, "--until", help="up to (not including); same forms; default: now"),
    key: str | None = typer.Option(None, "--key", help="only this key id"),
    team: str | None = typer.Option(None, "--team", help="only this team id"),
    as_json: bool = typer.Option(False, "--json", help="print a JSON list of rows"),
    as_csv: bool = typer.Option(False, "--csv", help="print CSV with a header line"),
    config: ConfigOption = None,
    data_dir: DataDirOption = None,
) -> None:
    """Requests, tokens, cost and errors from the usage ledger."""
    from xvckit.store.ledger import GROUPS, usage_report

    if as_json and as_csv:
        raise UserError("--json and --csv: choose one")
    now = time.time()
    start = _time("--since", since, now)
    end = _time("--until", until, now)
    if start is not None and end is not None and end <= start:
        raise UserError(f"--until ({until}) is not after --since ({since})")
    for option, value in (("--key", key), ("--team", team)):
        if value is not None and not value.isprintable():  # an id never is; a database could not hold it
            raise UserError(f"{option}: {value!r} is not an id")
    _config, store = stores.open_store(config, data_dir)
    try:
        rows = usage_report(store, by.value if by else None, start, end, key_id=key, team_id=team)
    finally:
        store.close()
    group = [GROUPS[by.value]] if by else []
    if as_json:
        import orjson

        sys.stdout.write(orjson.dumps(rows).decode() + "\n")
    elif as_csv:
        writer = csv.writer(sys.stdout, lineterminator="\n")
        writer.writerow([*group, *COLUMNS])
        for row in rows:
            writer.writerow([*(_csv_text(row[g]) for g in group), *(row[c] for c in COLUMNS)])
    else:
        _table(rows, group, _period(start, end))


def _csv_text(value: str | None) -> str:
    """A text cell a spreadsheet will not run: one that starts like a formula gets a leading
    quote (OWASP's advice against CSV injection; model names come from clients)."""
    if value is None:
        return ""
    return "'" + value if value.startswith(FORMULA_STARTS) else value


def _time(option: str, text: str | None, now: float) -> float | None:
    if text is None:
        return None
    try:
        return parse_moment(text, now)
    except ValueError as exc:
        raise UserError(f"{option}: {exc}") from None


def _period(start: float | None, end: float | None) -> str:
    def show(value: float | None, default: str) -> str:
        return default if value is None else time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(value))

    return f"{show(start, 'the beginning')} to {show(end, 'now')}"


def _table(rows: list[dict], group: list[str], period: str) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"usage, {period}", title_justify="left", header_style="bold")
    for name in group:
        table.add_column(name)
    for name in COLUMNS:
        table.add_column(HEADERS[name], justify="right")
    for row in rows:
        cells = ["-" if row[name] is None else str(row[name]) for name in group]
        cells += [f"${row[name]:,.4f}" if name == "cost_usd" else f"{row[name]:,}" for name in COLUMNS]
        table.add_row(*cells)
    Console().print(table)
