"""`xvckit kb ...`: the team's knowledge base (patterns, problems, solutions) in the store."""

from __future__ import annotations

import sys
from pathlib import Path

import click
import typer

from xvckit.cli.options import ConfigOption, DataDirOption, JsonOption, input_file, on_use
from xvckit.cli.render import print_rows
from xvckit.errors import UserError

audit = on_use("xvckit.store.audit")
stores = on_use("xvckit.store")
kb = on_use("xvckit.knowledge.kb")
kb_store = on_use("xvckit.knowledge.kb_store")

app = typer.Typer(
    help="The knowledge base: documented patterns and solutions, searched.", no_args_is_help=True
)

TeamOption = typer.Option(None, "--team", help="the team whose keys see it (default: every key)")


def _store(config: Path | None, data_dir: Path | None):
    return stores.open_store(config, data_dir)[1]


@app.command()
def add(
    file: Path | None = typer.Option(
        None,
        "--file",
        "-f",
        callback=input_file,
        help="the entry as Markdown ('# pattern', '## Problem', ...)",
    ),
    pattern: str | None = typer.Option(None, "--pattern", help="the pattern, in a line (without --file)"),
    problem: str | None = typer.Option(None, "--problem", help="the problem it answers"),
    solution: str | None = typer.Option(None, "--solution", help="the solution"),
    tag: list[str] | None = typer.Option(None, "--tag", metavar="TAG", help="a tag"),
    link: list[str] | None = typer.Option(None, "--link", metavar="URL", help="a link"),
    slug: str | None = typer.Option(None, "--slug", help="its name (default: from the pattern or file)"),
    team: str | None = TeamOption,
    config: ConfigOption = None,
    data_dir: DataDirOption = None,
) -> None:
    """Add an entry, from a Markdown file or from the options."""
    if file is not None:
        entry = kb.parse(file.read_text(), default_slug=slug or kb.slugify(file.stem), where=str(file))
    elif pattern and problem and solution:
        entry = kb.Entry(slug or kb.slugify(pattern), pattern, problem, solution)
    else:
        raise UserError("give --file, or --pattern, --problem and --solution")
    entry.tags = (*entry.tags, *(tag or ()))
    entry.links = (*entry.links, *(link or ()))
    entry.team = team or entry.team
    store = _store(config, data_dir)
    try:
        kb_store.add(store, entry, audit.default_actor())
    finally:
        store.close()
    typer.echo(f"added {entry.slug}")


@app.command()
def search(
    query: str = typer.Argument(..., help="what you are looking for, in words"),
    limit: int = typer.Option(5, "--limit", min=1, max=50, help="entries shown"),
    team: str | None = typer.Option(None, "--team", help="only what this team's keys see"),
    as_json: bool = JsonOption,
    config: ConfigOption = None,
    data_dir: DataDirOption = None,
) -> None:
    """The entries most relevant to a query, best first (full-text search)."""
    store = _store(config, data_dir)
    try:
        scope = {"team_id": stores.keys.get_team(store, team).id, "every_team": False} if team else {}
        found = kb_store.search(store, query, limit, **scope)
    finally:
        store.close()
    rows = [e.public() for e in found]
    print_rows(rows, ["slug", "pattern", "tags", "team", "score"], as_json=as_json)


@app.command()
def show(
    slug: str = typer.Argument(..., help="the entry's slug"),
    as_json: bool = JsonOption,
    config: ConfigOption = None,
    data_dir: DataDirOption = None,
) -> None:
    """An entry, as Markdown."""
    store = _store(config, data_dir)
    try:
        entry = kb_store.get(store, slug)
    finally:
        store.close()
    if as_json:
        import orjson

        sys.stdout.write(orjson.dumps(entry.public(), option=orjson.OPT_INDENT_2).decode() + "\n")
    else:
        sys.stdout.write(entry.markdown())


@app.command()
def edit(
    slug: str = typer.Argument(..., help="the entry's slug"),
    file: Path | None = typer.Option(
        None, "--file", "-f", callback=input_file, help="the new Markdown (default: open $EDITOR)"
    ),
    config: ConfigOption = None,
    data_dir: DataDirOption = None,
) -> None:
    """Change an entry: in $EDITOR, or from a Markdown file. Its slug stays."""
    store = _store(config, data_dir)
    try:
        entry = kb_store.get(store, slug)
        text = file.read_text() if file is not None else click.edit(entry.markdown(), extension=".md")
        if text is None:
            typer.echo(f"{slug}: unchanged")
            return
        changed = kb.parse(text, default_slug=slug, where=str(file or slug))
        if changed.slug != slug:
            raise UserError(f"the slug stays {slug!r}; add a new entry for another")
        changed.source = entry.source
        outcome = kb_store.add(store, changed, audit.default_actor(), overwrite=True)
    finally:
        store.close()
    typer.echo(f"{slug}: {outcome}")


@app.command("import")
def import_(
    folder: Path = typer.Argument(..., help="a folder of Markdown entries (e.g. kb/), read recursively"),
    team: str | None = TeamOption,
    as_json: bool = JsonOption,
    config: ConfigOption = None,
    data_dir: DataDirOption = None,
) -> None:
    """Add or update an entry per Markdown file (slug: the file's name); running it again
    changes only what changed."""
    store = _store(config, data_dir)
    try:
        counts = kb_store.import_dir(store, folder, audit.default_actor(), team)
    finally:
        store.close()
    print_rows([counts], None, as_json=as_json)
