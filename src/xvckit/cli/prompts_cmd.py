"""`xvckit prompts ...`: the prompt library, in the store or (with --dir) in a repository's files."""

from __future__ import annotations

import sys
from dataclasses import replace
from pathlib import Path
from typing import Any

import typer

from xvckit.cli.options import ConfigOption, DataDirOption, JsonOption, on_use
from xvckit.cli.render import print_rows
from xvckit.errors import UserError

audit = on_use("xvckit.store.audit")
stores = on_use("xvckit.store")
library = on_use("xvckit.knowledge.prompts")
files = on_use("xvckit.knowledge.prompts_files")
stored = on_use("xvckit.knowledge.prompts_store")

app = typer.Typer(
    help="Prompts with immutable versions and labels that move (production, staging, ...).",
    no_args_is_help=True,
)

DirOption = typer.Option(
    None, "--dir", help="work on the prompt files in this folder (e.g. prompts/) instead of the store"
)
LIST_COLUMNS = ["name", "team", "versions", "labels", "model", "variables", "tags"]


def _prompt(name: str, folder: Path | None, config: Path | None, data_dir: Path | None):
    if folder is not None:
        return files.find(folder, name)
    _, store = stores.open_store(config, data_dir)
    try:
        return stored.get(store, name)
    finally:
        store.close()


@app.command("list")
def list_prompts(
    folder: Path | None = DirOption,
    team: str | None = typer.Option(None, "--team", help="only this team's prompts (the store)"),
    as_json: bool = JsonOption,
    config: ConfigOption = None,
    data_dir: DataDirOption = None,
) -> None:
    """The prompts, with their versions and labels."""
    if folder is not None:
        found = files.load_dir(folder)
    else:
        _, store = stores.open_store(config, data_dir)
        try:
            team_id = stores.keys.get_team(store, team).id if team else None
            found = stored.list_prompts(store, team_id)
        finally:
            store.close()
    rows = [p.summary() for p in found if team is None or folder is None or p.team == team]
    if not as_json:
        for row in rows:
            row["labels"] = [f"{label}={n}" for label, n in sorted(row["labels"].items())]
    print_rows(rows, LIST_COLUMNS, as_json=as_json)


@app.command()
def show(
    ref: str = typer.Argument(..., help="NAME, NAME@LABEL or NAME@VERSION (NAME alone: production)"),
    folder: Path | None = DirOption,
    as_json: bool = JsonOption,
    config: ConfigOption = None,
    data_dir: DataDirOption = None,
) -> None:
    """A prompt's version: template, variables, model and parameters, and the prompt's labels."""
    name, selector = library.parse_ref(ref)
    prompt = _prompt(name, folder, config, data_dir)
    version = prompt.resolve(selector)
    data = {"name": name, "team": prompt.team, "tags": list(prompt.tags), "labels": prompt.all_labels()}
    data |= version.public()
    if as_json:
        _print_json(data)
        return
    labels = ", ".join(f"{label}={n}" for label, n in sorted(data["labels"].items()))
    typer.echo(f"{name}@{version.version}  (labels: {labels}; team: {prompt.team or '-'})")
    for field in ("model", "parameters", "variables", "note"):
        if data[field]:
            typer.echo(f"{field}: {data[field]}")
    typer.echo("---")
    typer.echo(version.template, nl=not version.template.endswith("\n"))


@app.command()
def render(
    ref: str = typer.Argument(..., help="NAME, NAME@LABEL or NAME@VERSION (NAME alone: production)"),
    var: list[str] | None = typer.Option(None, "--var", metavar="NAME=VALUE", help="a variable's value"),
    vars_file: Path | None = typer.Option(
        None, "--vars", help="a JSON or YAML file of variables (--var wins over it)"
    ),
    folder: Path | None = DirOption,
    as_json: bool = JsonOption,
    config: ConfigOption = None,
    data_dir: DataDirOption = None,
) -> None:
    """Fill a prompt's template; every variable it takes must be given, and no other."""
    name, selector = library.parse_ref(ref)
    values = _read_vars(vars_file) | _pairs(var or [], "--var")
    version = _prompt(name, folder, config, data_dir).resolve(selector)
    text = library.render(name, version, values)
    if as_json:
        _print_json(
            {
                "prompt": f"{name}@{version.version}",
                "text": text,
                "model": version.model,
                "parameters": version.parameters,
            }
        )
    else:
        sys.stdout.write(text if text.endswith("\n") else text + "\n")


@app.command()
def add(
    name: str = typer.Argument(..., help="the prompt's name (made on its first version)"),
    template: Path = typer.Option(
        ..., "--template", "-t", help="the template file (Jinja2; '-': standard input)"
    ),
    model: str | None = typer.Option(None, "--model", help="the model it is written for"),
    param: list[str] | None = typer.Option(
        None, "--param", metavar="NAME=VALUE", help="a request parameter (temperature=0.2)"
    ),
    variables: str | None = typer.Option(
        None, "--variables", help="the variables it takes, comma-separated (checked against the template)"
    ),
    note: str | None = typer.Option(None, "--note", help="what changed"),
    label: list[str] | None = typer.Option(
        None, "--label", metavar="LABEL", help="point this label at the new version"
    ),
    team: str | None = typer.Option(None, "--team", help="the owning team (its keys render it)"),
    tag: list[str] | None = typer.Option(None, "--tag", metavar="TAG", help="a tag (a new prompt's)"),
    folder: Path | None = DirOption,
    as_json: bool = JsonOption,
    config: ConfigOption = None,
    data_dir: DataDirOption = None,
) -> None:
    """Add a new version of a prompt; earlier versions never change."""
    library.check_name(name)
    for each in label or []:
        library.check_label(each)
    text = sys.stdin.read() if str(template) == "-" else _read_text(template)
    names = [v.strip() for v in variables.split(",") if v.strip()] if variables is not None else None
    version = library.new_version(1, text, names, model, _pairs(param or [], "--param", typed=True), note)
    if folder is not None:
        version = _add_to_file(folder, name, version, team, tuple(tag or ()), label or [])
    else:
        _, store = stores.open_store(config, data_dir)
        try:
            version = stored.add_version(
                store,
                name,
                version,
                audit.default_actor(),
                team=team,
                tags=tuple(tag or ()),
                labels=tuple(label or ()),
            )
        finally:
            store.close()
    if as_json:
        _print_json({"name": name, "version": version.version, "labels": label or []})
    else:
        typer.echo(f"{name}@{version.version} added" + (f", labelled {', '.join(label)}" if label else ""))


def _add_to_file(folder: Path, name: str, version, team, tags, labels: list[str]):
    if not folder.is_dir():
        raise UserError(f"--dir {folder}: not a folder")
    if files.path_of(folder, name) is not None:
        prompt = files.find(folder, name)
        if team and prompt.team != team:
            raise UserError(f"prompt {name} belongs to team {prompt.team or '-'}, not {team}")
    else:
        prompt = library.Prompt(name, team, tags, [], {})
    version = replace(version, version=len(prompt.versions) + 1)
    prompt.versions.append(version)
    prompt.labels.update(dict.fromkeys(labels, version.version))
    files.save(folder, prompt)
    return version


@app.command("label")
def label_cmd(
    name: str = typer.Argument(..., help="the prompt"),
    label: str = typer.Argument(..., help="the label to move (production, staging, any)"),
    version: str = typer.Argument(..., help="a version number, or a label whose version it takes"),
    folder: Path | None = DirOption,
    config: ConfigOption = None,
    data_dir: DataDirOption = None,
) -> None:
    """Point a label at a version; requests naming the label get that version at once."""
    library.check_label(label)
    if folder is not None:
        prompt = files.find(folder, name)
        number = prompt.number(version)
        prompt.labels[label] = number
        files.save(folder, prompt)
    else:
        _, store = stores.open_store(config, data_dir)
        try:
            number = stored.set_label(store, name, label, version, audit.default_actor())
        finally:
            store.close()
    typer.echo(f"{name}:{label} -> version {number}")


@app.command()
def diff(
    name: str = typer.Argument(..., help="the prompt"),
    old: str = typer.Argument(..., help="a version or label"),
    new: str = typer.Argument("latest", help="a version or label (default: latest)"),
    folder: Path | None = DirOption,
    config: ConfigOption = None,
    data_dir: DataDirOption = None,
) -> None:
    """What changed between two versions: the template as a unified diff, then other fields."""
    library.check_name(name)
    sys.stdout.write(library.diff(_prompt(name, folder, config, data_dir), old, new))


@app.command()
def push(
    folder: Path = typer.Argument(Path("prompts"), help="the folder of prompt files"),
    as_json: bool = JsonOption,
    config: ConfigOption = None,
    data_dir: DataDirOption = None,
) -> None:
    """Copy a repository's prompt files into the store, for the gateway to serve: new versions
    are added, labels and owners set as the files say; a changed old version is refused."""
    found = files.load_dir(folder)
    _, store = stores.open_store(config, data_dir)
    try:
        rows = [stored.push(store, prompt, audit.default_actor()) for prompt in found]
    finally:
        store.close()
    print_rows(rows, ["name", "added", "labels"], as_json=as_json)


def _pairs(items: list[str], option: str, typed: bool = False) -> dict[str, Any]:
    """NAME=VALUE pairs; with `typed`, each value read as YAML (0.2 a number, true a bool)."""
    import yaml

    out: dict[str, Any] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise UserError(f"{option} {item!r}: write NAME=VALUE")
        out[key] = yaml.safe_load(value) if typed and value else value
    return out


def _read_vars(path: Path | None) -> dict[str, Any]:
    if path is None:
        return {}
    import yaml

    data = yaml.safe_load(_read_text(path))
    if not isinstance(data, dict):
        raise UserError(f"--vars {path}: must hold a mapping of variable names to values")
    return data


def _read_text(path: Path) -> str:
    try:
        return path.read_text()
    except (OSError, UnicodeDecodeError) as exc:
        raise UserError(f"{path}: cannot read: {getattr(exc, 'strerror', None) or exc}") from None


def _print_json(data: Any) -> None:
    import orjson

    sys.stdout.write(orjson.dumps(data, option=orjson.OPT_INDENT_2).decode() + "\n")
