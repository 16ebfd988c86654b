"""Top-level Typer app; each subcommand group lives in its own module."""

from __future__ import annotations

import functools
import sys

import typer

from xvckit import __version__
from xvckit.cli import (
    audit_cmd,
    batch_cmd,
    config_cmd,
    context_cmd,
    db_cmd,
    doctor_cmd,
    gateway_cmd,
    kb_cmd,
    keys_cmd,
    mcp_cmd,
    metrics_cmd,
    new_cmd,
    prompts_cmd,
    review_cmd,
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
    rich_markup_mode=None,  # plain help: Rich's tables write a flag as `--json <bool>`
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 120},
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
app.add_typer(prompts_cmd.app, name="prompts")
app.add_typer(kb_cmd.app, name="kb")
app.add_typer(batch_cmd.app, name="batch")
app.command("review")(review_cmd.review)
app.command("up")(gateway_cmd.up)
app.command("sim")(sim_cmd.sim)
app.command("usage")(usage_cmd.usage)
app.command("metrics")(metrics_cmd.metrics)
app.command("roi")(metrics_cmd.roi)
app.command("mcp")(mcp_cmd.mcp)
app.command("new")(new_cmd.new)


def _print_version(value: bool) -> None:
    if value:
        typer.echo(__version__)
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(
        False, "--version", callback=_print_version, is_eager=True, help="print xvckit's version and exit"
    ),
) -> None:
    pass


@app.command()
def version() -> None:
    """Print xvckit's version."""
    typer.echo(__version__)


def command():
    """The app as click runs it, its arguments written in usage lines as other tools write them
    (`NAME`, `[PATH]`; hidden ones left out) where Typer writes `{name}`."""
    root = typer.main.get_command(app)
    pending = [root]
    while pending:
        cmd = pending.pop()
        pending.extend(getattr(cmd, "commands", {}).values())
        for param in cmd.params:
            if param.param_type_name == "argument":
                param.metavar = param.metavar or param.name.upper()
                param.get_usage_pieces = functools.partial(_argument_usage, param)
    return root


def _argument_usage(param, _ctx) -> list[str]:
    if param.hidden:
        return []
    name = param.metavar + ("..." if param.nargs != 1 else "")
    return [name if param.required else f"[{name}]"]


def main() -> None:
    """Entry point: user errors become a line on stderr each (`xvckit: ...`) and exit status 2."""
    try:
        command()(prog_name="xvckit")
    except UserError as exc:
        for line in str(exc).splitlines() or [type(exc).__name__]:
            typer.echo(f"xvckit: {line}", err=True)
        sys.exit(2)
