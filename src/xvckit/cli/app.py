"""Top-level Typer app; each subcommand group lives in its own module."""

from __future__ import annotations

import sys

import typer

from xvckit import __version__
from xvckit.cli import (
    audit_cmd,
    config_cmd,
    context_cmd,
    db_cmd,
    doctor_cmd,
    gateway_cmd,
    keys_cmd,
    secrets_cmd,
    sim_cmd,
    usage_cmd,
)
from xvckit.errors import UserError

app = typer.Typer(
    name="xvckit",
    help="Infrastructure for AI-accelerated development: one gateway for every AI tool.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
app.add_typer(config_cmd.app, name="config")
app.add_typer(context_cmd.app, name="context")
app.add_typer(gateway_cmd.app, name="gateway")
app.add_typer(keys_cmd.keys_app, name="keys")
app.add_typer(keys_cmd.teams_app, name="teams")
app.add_typer(audit_cmd.app, name="audit")
app.add_typer(secrets_cmd.app, name="secrets")
app.add_typer(db_cmd.app, name="db")
app.add_typer(doctor_cmd.app, name="doctor")
app.command("up")(gateway_cmd.up)
app.command("sim")(sim_cmd.sim)
app.command("usage")(usage_cmd.usage)


@app.command()
def version() -> None:
    """Print xvckit's version."""
    typer.echo(__version__)


def main() -> None:
    """Entry point: user errors become one line on stderr and exit status 2."""
    try:
        app()
    except UserError as exc:
        typer.echo(f"xvckit: {exc}", err=True)
        sys.exit(2)
