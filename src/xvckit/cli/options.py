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

# Every command that opens the store takes it (config.load says how it meets storage.url).
DataDirOption = Annotated[
    Path | None,
    typer.Option(
        "--data-dir",
        help="the data folder: the SQLite store, secret.key, master.key, the ledger journal "
        "(default: $XVCKIT_DATA_DIR, else the config's storage, else $XDG_DATA_HOME/xvckit)",
    ),
]

JsonOption = typer.Option(False, "--json", help="print JSON for scripts")


def check_port(value: int | None) -> int | None:
    """A port to listen on, or a one-line error before anything starts."""
    if value is not None and not 0 <= value <= 65535:
        raise UserError(f"--port {value}: not a port (0 to 65535; 0: any free port)")
    return value


def input_file(param: typer.CallbackParam, value: Path | None) -> Path | None:
    """A file the command reads: said now if it is not there, not as a traceback later."""
    if value is not None and not value.is_file():
        what = "is a folder, not a file" if value.is_dir() else "no such file"
        raise UserError(f"{_given(param, value)}: {what}")
    return value


def output_file(param: typer.CallbackParam, value: Path | None) -> Path | None:
    """A file the command writes: its folder must exist (none is made on a typo), said before
    the work, not after it."""
    if value is not None:
        if value.is_dir():
            raise UserError(f"{_given(param, value)}: is a folder; name a file in it")
        if not value.parent.is_dir():
            raise UserError(f"{_given(param, value)}: the folder {value.parent} does not exist")
    return value


def _given(param: typer.CallbackParam, value: Path) -> str:
    """The path as the user gave it: `--out PATH`, or PATH alone for an argument."""
    option = next((o for o in param.opts if o.startswith("-")), None)
    return f"{option} {value}" if option else str(value)


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
