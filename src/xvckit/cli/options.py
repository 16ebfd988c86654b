"""Options shared by several commands."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

ConfigOption = Annotated[
    Path | None,
    typer.Option("--config", "-c", help="xvckit.yaml to use (default: $XVCKIT_CONFIG, ./xvckit.yaml)"),
]
