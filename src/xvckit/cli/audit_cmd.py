"""`xvckit audit list|verify|export`: the hash-chained trail of admin actions."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table
from rich.text import Text

from xvckit.cli.options import ConfigOption, DataDirOption, on_use, output_file

audit = on_use("xvckit.store.audit")
stores = on_use("xvckit.store")

app = typer.Typer(help="The audit trail of admin actions: list, verify, export.", no_args_is_help=True)


@app.command("list")
def list_entries(
    config: ConfigOption = None,
    data_dir: DataDirOption = None,
    since: str | None = typer.Option(None, "--since", help="age (7d, 12h, 30m) or date (2025-01-31)"),
    limit: int | None = typer.Option(None, "--limit", "-n", min=1, help="only the newest N entries"),
    action: str | None = typer.Option(None, "--action", help="e.g. key.create, or key.* for a prefix"),
    as_json: bool = typer.Option(False, "--json", help="print JSON for scripts"),
) -> None:
    """Show audit entries, oldest first."""
    when = audit.parse_since(since) if since else None
    _, store = stores.open_store(config, data_dir)
    try:
        found = audit.entries(store, since=when, limit=limit, action=action)
    finally:
        store.close()
    if as_json:
        typer.echo(json.dumps([entry.to_json() for entry in found], indent=2, ensure_ascii=False))
        return
    console = Console(width=None if sys.stdout.isatty() else 200)
    if not found:
        console.print("(no audit entries)")
        return
    table = Table("id", "time (UTC)", "actor", "action", "target", "detail", box=None, header_style="bold")
    for entry in found:
        detail = json.dumps(entry.detail, ensure_ascii=False, separators=(",", ":")) if entry.detail else ""
        cells = (str(entry.id), f"{entry.ts:%Y-%m-%d %H:%M:%S}", entry.actor, entry.action, entry.target)
        table.add_row(*(Text(cell) for cell in (*cells, detail)))  # Text, not markup: "[redacted]" stays
    console.print(table)


@app.command()
def verify(
    config: ConfigOption = None,
    data_dir: DataDirOption = None,
    as_json: bool = typer.Option(False, "--json", help="print JSON for scripts"),
    sign_head: bool = typer.Option(
        False,
        "--sign-head",
        help="first sign a head that xvckit 0.1 left unsigned, if every entry checks out "
        "(once, after that upgrade; recorded in the trail)",
    ),
) -> None:
    """Check the hash chain and its signed head; exit 1 and name the first broken entry if a row
    was changed or removed, or the head moved."""
    _, store = stores.open_store(config, data_dir)
    try:
        result = audit.sign_head(store, audit.default_actor()) if sign_head else audit.verify(store)
    finally:
        store.close()
    typer.echo(json.dumps(result.to_json()) if as_json else result.describe())
    if not result.ok:
        raise typer.Exit(1)


@app.command()
def export(
    config: ConfigOption = None,
    data_dir: DataDirOption = None,
    out: Path | None = typer.Option(
        None, "--out", "-o", callback=output_file, help="file to write (default: standard output)"
    ),
) -> None:
    """Write every entry as JSON lines (with hashes, so the export can be checked elsewhere)."""
    _, store = stores.open_store(config, data_dir)
    try:
        if out is None:
            audit.export_jsonl(store, sys.stdout)
            return
        with out.open("w", encoding="utf-8") as handle:
            count = audit.export_jsonl(store, handle)
        typer.echo(f"wrote {count} audit entr{'y' if count == 1 else 'ies'} to {out}", err=True)
    finally:
        store.close()
