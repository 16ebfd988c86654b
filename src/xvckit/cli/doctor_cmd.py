"""`xvckit doctor`: this machine and network against the guide's requirements; `doctor history`."""

from __future__ import annotations

import sys
from pathlib import Path

import typer

from xvckit.cli.options import ConfigOption, DataDirOption, JsonOption
from xvckit.errors import UserError

app = typer.Typer(help="Measure this machine, network and API access against the guide; fix the OS tuning.")

STATUS_STYLE = {
    "optimal": "green",
    "minimum": "yellow",
    "below_minimum": "bold red",
    "unreachable": "bold red",
    "unknown": "dim",
}


@app.callback(invoke_without_command=True)
def doctor(
    ctx: typer.Context,
    as_json: bool = JsonOption,
    markdown: bool = typer.Option(False, "--markdown", help="print a Markdown report"),
    only: str | None = typer.Option(None, "--only", help="sections: network,compute,tools,tuning,api"),
    save: bool = typer.Option(False, "--save", help="keep this run in the store (see `doctor history`)"),
    probe_api: bool = typer.Option(
        False,
        "--probe-api",
        help="send each provider one minimal request (1 output token) to read its limits",
    ),
    fix: bool = typer.Option(False, "--fix", help="print the commands that fix the failing tuning checks"),
    apply: bool = typer.Option(
        False, "--apply", help="with --fix: run them as root, persist them, measure again"
    ),
    yes: bool = typer.Option(False, "--yes", "-y", help="with --apply: do not ask first"),
    config: ConfigOption = None,
    data_dir: DataDirOption = None,
) -> None:
    """Measure network, compute, tools, OS tuning and API tier against the guide's requirements."""
    if ctx.invoked_subcommand is not None:
        return
    from xvckit.config import load
    from xvckit.doctor import Setup, diagnose, parse_sections, repository_root

    if as_json and markdown:
        raise UserError("--json and --markdown: choose one")
    if apply and not fix:
        raise UserError("--apply goes with --fix")
    if fix and (as_json or markdown):
        raise UserError("--fix prints commands for a shell: use it without --json or --markdown")
    sections = parse_sections(only)
    if fix and "tuning" not in sections:
        sections = (*sections, "tuning")
    setup = Setup(load(config, data_dir=data_dir), repository_root(Path.cwd()), probe_api=probe_api)
    report = diagnose(setup, sections)
    if as_json:
        import orjson

        sys.stdout.write(orjson.dumps(report.to_dict(), option=orjson.OPT_INDENT_2).decode() + "\n")
    elif markdown:
        sys.stdout.write(report.to_markdown())
    else:
        _print_report(report)
    if save:
        _save(setup, report)
    if fix:
        _fix(setup, report, apply, yes)


@app.command("history")
def history(
    limit: int = typer.Option(20, "--limit", min=1, help="the latest runs to show"),
    check: str | None = typer.Option(
        None, "--check", help="one check's value per run that measured it, e.g. network.ttfb.openai"
    ),
    partial: bool = typer.Option(
        False, "--partial", help="the runs made with --only instead (their band covers some sections)"
    ),
    as_json: bool = JsonOption,
    config: ConfigOption = None,
    data_dir: DataDirOption = None,
) -> None:
    """Runs kept with `xvckit doctor --save`: band, bottleneck and statuses, or one check's trend."""
    from xvckit.cli.render import print_rows
    from xvckit.doctor import Setup, check_ids, history_rows
    from xvckit.store import open_store
    from xvckit.store.doctor_runs import list_runs

    loaded, store = open_store(config, data_dir)
    try:
        runs = list_runs(store)
    finally:
        store.close()
    known = check_ids(Setup(loaded, Path.cwd())) if check else ()
    rows, note = history_rows(runs, limit, check_id=check, known_ids=known, partial=partial)
    print_rows(rows, None, as_json=as_json)
    if note:
        typer.echo(note, err=True)


def _save(setup, report) -> None:
    from xvckit.store import Store
    from xvckit.store.doctor_runs import save_run

    store = Store.configured(setup.config)
    try:
        run_id = save_run(store, report.to_dict())
    finally:
        store.close()
    typer.echo(f"saved as run {run_id} (xvckit doctor history)", err=True)


def _fix(setup, report, apply: bool, yes: bool) -> None:
    from xvckit.doctor import diagnose, fix

    found = fix.plan(report.checks, setup)
    if found.empty:
        typer.echo("\nNothing to fix: every measured tuning check is at the guide's value.")
        return
    typer.echo("\n# The guide's tuning (§4 Environment Optimization), for the checks short of it:")
    for line in fix.commands(found, setup.paths):
        typer.echo(line)
    if not apply:
        return
    if not fix.is_root():
        raise UserError(fix.needs(found, setup.paths))
    if not yes:
        typer.confirm("\nApply these changes now?", abort=True)
    for line in fix.apply(found, setup.paths):
        typer.echo(line)
    typer.echo("\nMeasured again:")
    _print_report(diagnose(setup, ("tuning",)))


def _print_report(report) -> None:
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    from xvckit.doctor import NO_CHECKS, show_bound, show_value

    console = Console(width=None if sys.stdout.isatty() else 160)
    for name in report.sections:
        if not report.section(name):
            console.print(Text(f"{name}: {NO_CHECKS}", style="dim"))
            continue
        table = Table(title=name, title_justify="left", header_style="bold", show_lines=False)
        for column in ("check", "value", "minimum", "optimal", "status", "fix"):
            table.add_column(column, overflow="fold")
        for check in report.section(name):
            label = Text(check.title)
            label.append(f"  {check.id}", style="dim")
            if check.detail:
                label.append(f"\n{check.detail}", style="dim")
            table.add_row(
                label,
                show_value(check),
                show_bound(check, check.minimum),
                show_bound(check, check.optimal),
                Text(check.status.value, style=STATUS_STYLE[check.status.value]),
                check.fix or "",
            )
        console.print(table)
    console.print(Text(report.headline, style="bold"))
    console.print(Text("(an estimate from the guide's tables, not a measurement)", style="dim"))
