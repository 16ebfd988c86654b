"""`xvckit db upgrade|current|history`: the store's schema, for operators.

Every command that opens a store upgrades it first; these say where a store stands and
upgrade one on purpose (before a rolling deploy, say)."""

from __future__ import annotations

import json

import typer

from xvckit.cli.options import ConfigOption, DataDirOption, JsonOption, on_use

stores = on_use("xvckit.store")
migrate = on_use("xvckit.store.migrate")
cfg = on_use("xvckit.config")

app = typer.Typer(help="The store's schema: upgrade, current revision, history.", no_args_is_help=True)


@app.command("upgrade")
def upgrade(config: ConfigOption = None, data_dir: DataDirOption = None) -> None:
    """Bring the store's schema to the newest revision (opening it does the same)."""
    url = cfg.load(config, data_dir=data_dir).storage.url
    before, after = _revisions(url, upgrade=True)
    if before == after:
        typer.echo(f"{stores.safe_url(url)}: at {after}, the newest revision")
    else:
        typer.echo(f"{stores.safe_url(url)}: upgraded from {before or 'unversioned'} to {after}")


@app.command("current")
def current(config: ConfigOption = None, data_dir: DataDirOption = None, as_json: bool = JsonOption) -> None:
    """The revision the store is at, and the newest one."""
    url = cfg.load(config, data_dir=data_dir).storage.url
    at, _ = _revisions(url, upgrade=False)
    head = migrate.head()
    if as_json:
        typer.echo(json.dumps({"store": stores.safe_url(url), "current": at, "head": head}))
    else:
        state = "up to date" if at == head else "behind: `xvckit db upgrade` (or any command) upgrades it"
        typer.echo(f"{stores.safe_url(url)}: {at or 'unversioned'} (newest {head}; {state})")


@app.command("history")
def history(as_json: bool = JsonOption) -> None:
    """The migration chain, oldest first."""
    chain = migrate.history()
    if as_json:
        typer.echo(json.dumps([{"id": r.id, "down": r.down, "doc": r.doc} for r in chain], indent=2))
        return
    for revision in chain:
        typer.echo(f"{revision.id}  {revision.doc}")


def _revisions(url: str, *, upgrade: bool) -> tuple[str | None, str | None]:
    """The store's revision before and after; `current` reads without opening (which upgrades)."""
    engine = stores.engine_for(url)
    try:
        before = migrate.current(engine)
        if upgrade:
            migrate.upgrade(engine)
        return before, migrate.current(engine)
    finally:
        engine.dispose()
