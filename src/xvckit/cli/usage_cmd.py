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
key_store = on_use("xvckit.store.keys")

COLUMNS = ("requests", "input_tokens", "output_tokens", "cached_tokens", "cost_usd", "errors")
HEADERS = {
    "requests": "requests",
    "input_tokens": "input tok",
    "output_tokens": "output tok",
    "cached_tokens": "cached tok",
    "cost_usd": "cost",
    "errors": "errors",
    "key_name": "key",
    "team_name": "team",
    "mean_latency_ms": "mean ms",
}
# the names beside the id of each group that has one (instead of it in the table: the id
# where there is no name)
NAMES = {"key": ["key_name", "team_name"], "team": ["team_name"]}
ID_OF = {"key_name": "key_id", "team_name": "team_id"}
# a cell starting with one of these is a formula to a spreadsheet (OWASP: CSV injection)
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


class By(StrEnum):
    key = "key"
    team = "team"
    model = "model"
    day = "day"
    prompt = "prompt"


def usage(
    by: By | None = typer.Option(
        None,
        "--by",
        help="one row per key, team, model, UTC day, or prompt version (x-xvckit-prompt; with mean latency)",
    ),
    since: str | None = typer.Option(
        None, "--since", help="from: 7d, 24h, 30m, or a UTC date/time (2026-11-01); default: all"
    ),
    until: str | None = typer.Option(None, "--until", help="up to (not including); same forms; default: now"),
    key: str | None = typer.Option(
        None, "--key", help="only this key (id, or name: with --team if several teams have it)"
    ),
    team: str | None = typer.Option(None, "--team", help="only this team (id or name)"),
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
            raise UserError(f"{option}: {value!r} is not an id or a name")
    _config, store = stores.open_store(config, data_dir)
    try:
        team_id = key_store.get_team(store, team).id if team else None
        key_id = key_store.get_key(store, key, team_id).id if key else None
        rows = usage_report(store, by.value if by else None, start, end, key_id=key_id, team_id=team_id)
        if by and by.value in NAMES:
            rows = key_store.with_names(rows, key_store.list_keys(store), key_store.list_teams(store))
    finally:
        store.close()
    group = [GROUPS[by.value], *NAMES.get(by.value, [])] if by else []
    columns = (*COLUMNS, "mean_latency_ms") if by is By.prompt else COLUMNS
    if as_json:
        import orjson

        sys.stdout.write(orjson.dumps(rows).decode() + "\n")
    elif as_csv:
        writer = csv.writer(sys.stdout, lineterminator="\n")
        writer.writerow([*group, *columns])
        for row in rows:
            writer.writerow([*(_csv_text(row[g]) for g in group), *(row[c] for c in columns)])
    else:
        _table(rows, NAMES.get(by.value, group) if by else group, columns, _period(start, end))


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


def _or_id(row: dict, name: str) -> str | None:
    value = row[name]
    return row.get(ID_OF[name]) if value is None and name in ID_OF else value


def _table(rows: list[dict], group: list[str], columns: tuple[str, ...], period: str) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"usage, {period}", title_justify="left", header_style="bold")
    for name in group:
        table.add_column(HEADERS.get(name, name))
    for name in columns:
        table.add_column(HEADERS[name], justify="right")
    for row in rows:
        cells = [str(_or_id(row, name) or "-") for name in group]
        cells += [f"${row[name]:,.4f}" if name == "cost_usd" else f"{row[name]:,}" for name in columns]
        table.add_row(*cells)
    Console(width=200 if not sys.stdout.isatty() else None).print(table)  # piped: names whole
