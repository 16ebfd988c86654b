"""Options shared by several commands."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated

import typer

from xvckit.errors import UserError

ConfigOption = Annotated[
    Path | None,
    typer.Option("--config", "-c", help="xvckit.yaml to use (default: $XVCKIT_CONFIG, ./xvckit.yaml)"),
]

JsonOption = typer.Option(False, "--json", help="print JSON for scripts")

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


def parse_duration(text: str) -> float:
    """'30d', '12h', '15m', '90s', '2w' in seconds."""
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([smhdw])\s*", text)
    if not match:
        raise UserError(f"not a duration: {text!r} (use e.g. 30d, 12h, 15m)")
    return float(match[1]) * _UNITS[match[2]]
