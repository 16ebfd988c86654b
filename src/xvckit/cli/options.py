"""Options shared by several commands."""

from __future__ import annotations

import importlib
from pathlib import Path
from types import ModuleType
from typing import Annotated

import typer

from xvckit.errors import UserError
from xvckit.timespec import parse_duration

ConfigOption = Annotated[
    Path | None,
    typer.Option("--config", "-c", help="xvckit.yaml to use (default: $XVCKIT_CONFIG, ./xvckit.yaml)"),
]

JsonOption = typer.Option(False, "--json", help="print JSON for scripts")


def parse_lifetime(text: str) -> float:
    """A lifetime such as '30d' or '12h', in seconds; a one-line error otherwise."""
    seconds = parse_duration(text)
    if seconds is None:
        raise UserError(f"not a duration: {text!r} (use e.g. 30d, 12h, 15m)")
    return seconds


class _OnUse:
    """A module imported at its first attribute access."""

    def __init__(self, name: str) -> None:
        self._name = name

    def __getattr__(self, attribute: str):
        return getattr(importlib.import_module(self._name), attribute)


def on_use(name: str) -> ModuleType:
    """`name` imported when first used, so a command starts without what other commands
    need (the store pulls in SQLAlchemy and cryptography: ~0.4 s of every start)."""
    return _OnUse(name)  # type: ignore[return-value]
