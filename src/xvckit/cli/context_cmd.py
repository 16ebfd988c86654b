"""`xvckit context`: budgeted packs of a repository for a task, and where its tokens are."""

from __future__ import annotations

import sys
from enum import StrEnum
from pathlib import Path

import typer

from xvckit.cli.context_window import window
from xvckit.cli.options import ConfigOption, JsonOption, output_file

app = typer.Typer(no_args_is_help=True, help="Context for models: packs within a token budget.")


class Format(StrEnum):
    markdown = "markdown"
    xml = "xml"
    json = "json"


@app.command()
def pack(
    task: str = typer.Argument(..., help="what the pack is for, in words (an issue, a commit message)"),
    repo: Path = typer.Option(Path("."), "--repo", help="the repository to pack"),
    budget: int | None = typer.Option(None, "--budget", help="tokens the pack may use (core + working)"),
    model: str | None = typer.Option(
        None, "--model", help="fit the model's context window less the buffer, counted with its encoding"
    ),
    core: list[str] | None = typer.Option(
        None,
        "--core",
        metavar="FILE",
        help="files for the core part (default: AGENTS.md, CLAUDE.md, CONVENTIONS.md, README*)",
    ),
    fmt: Format = typer.Option(Format.markdown, "--format", help="markdown, xml, or json with the file list"),
    out: Path | None = typer.Option(
        None, "--out", callback=output_file, help="write the pack here (default: stdout)"
    ),
    kb: bool = typer.Option(
        True, "--kb/--no-kb", help="the knowledge base's entries relevant to the task in the core part"
    ),
    config: ConfigOption = None,
) -> None:
    """Pack the code a task needs into a token budget: guidance and the knowledge base's
    relevant entries first, then the repository outline, then the most relevant code whole and
    the rest as signatures and outline lines."""
    import orjson

    from xvckit.config import load
    from xvckit.context.pack import build_pack

    if budget is not None and model is not None:
        from xvckit.errors import UserError

        raise UserError("--budget and --model: choose one")
    loaded = load(config)
    settings = loaded.context
    notes = None
    if kb:
        from xvckit.knowledge.kb_store import notes_for_task

        notes = notes_for_task(loaded, task)
    result = build_pack(
        task,
        repo,
        settings,
        budget=budget,
        model=model,
        core=core,
        fmt="xml" if fmt is Format.xml else "markdown",
        notes=notes,
    )
    if fmt is Format.json:
        output = orjson.dumps(result.as_dict(), option=orjson.OPT_INDENT_2).decode() + "\n"
    else:
        output = result.text
    if out:
        out.write_text(output)
    else:
        sys.stdout.write(output)
    typer.echo(f"context pack: {result.summary()}", err=True)


@app.command()
def stats(
    repo: Path = typer.Option(Path("."), "--repo", help="the repository to measure"),
    depth: int = typer.Option(2, "--depth", min=0, help="directory levels shown"),
    as_json: bool = JsonOption,
    config: ConfigOption = None,
) -> None:
    """Tokens of the files a pack can draw on, as a tree by directory, largest first."""
    import orjson

    from xvckit.config import load
    from xvckit.context.stats import repo_stats

    settings = load(config).context
    tree, excluded = repo_stats(repo, settings)
    if as_json:
        data = {"tree": tree.as_dict(depth), "excluded": excluded}
        sys.stdout.write(orjson.dumps(data, option=orjson.OPT_INDENT_2).decode() + "\n")
        return
    typer.echo(f"{'tokens':>12}  {'files':>6}  path")
    typer.echo("\n".join(tree.lines(depth)))
    if excluded:
        typer.echo("left out: " + ", ".join(f"{n:,} {reason}" for reason, n in excluded.items()))


app.command("window")(window)
