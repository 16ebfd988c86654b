"""Printing rows: a Rich table for people, JSON for scripts."""

from __future__ import annotations

import sys
import time
from typing import Any

import orjson
from rich.console import Console
from rich.table import Table
from rich.text import Text


def print_rows(rows: list[dict[str, Any]], columns: list[str] | None, *, as_json: bool = False) -> None:
    if as_json:
        sys.stdout.write(orjson.dumps(rows, option=orjson.OPT_INDENT_2).decode() + "\n")
        return
    if not rows:
        Console().print("(none)")
        return
    columns = columns or list(rows[0])
    table = Table(*columns, box=None, header_style="bold")
    for row in rows:
        table.add_row(*(Text(_cell(name, row.get(name))) for name in columns))
    Console(width=200 if not sys.stdout.isatty() else None).print(table)


def _cell(name: str, value: Any) -> str:
    if value is None:
        return "-"
    if name.endswith("_at") and isinstance(value, (int, float)):
        return time.strftime("%Y-%m-%d %H:%M", time.gmtime(value))
    if isinstance(value, list):
        return ",".join(map(str, value))
    if isinstance(value, float):
        return f"{value:.4f}"
    return str(value)
