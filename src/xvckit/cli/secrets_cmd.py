"""`xvckit secrets set|list|delete|import`: secrets encrypted at rest in the store.

A value is read from standard input or a hidden prompt, never from the command line, and no
command prints one."""

from __future__ import annotations

import json
import sys

import typer

from xvckit.cli.options import ConfigOption, DataDirOption, on_use
from xvckit.config import resolve_path
from xvckit.errors import UserError

audit = on_use("xvckit.store.audit")
secrets = on_use("xvckit.store.secrets")
stores = on_use("xvckit.store")

app = typer.Typer(
    help="Secrets encrypted at rest (AES-GCM); refer to them in xvckit.yaml as secret:NAME.",
    no_args_is_help=True,
)


@app.command("set")
def set_secret(
    name: str = typer.Argument(..., help="the secret's name, e.g. openai-prod"),
    config: ConfigOption = None,
    data_dir: DataDirOption = None,
    stray: list[str] | None = typer.Argument(None, hidden=True),
) -> None:
    """Store a secret; the value comes from standard input, or a hidden prompt on a terminal."""
    if stray:  # caught here so that click's usage error does not print the value back
        raise UserError(
            "secrets set takes the value from standard input or a hidden prompt, not from the command "
            "line (where shell history keeps it); nothing was stored"
        )
    secrets.check_name(name)
    if sys.stdin.isatty():
        value = typer.prompt(f"value of {name}", hide_input=True, confirmation_prompt=True)
    else:
        value = sys.stdin.read().removesuffix("\n").removesuffix("\r")
    _, store = stores.open_store(config, data_dir)
    try:
        box = secrets.SecretBox.for_store(store)
        created = secrets.put_secret(store, box, name, value, audit.default_actor())
    finally:
        store.close()
    typer.echo(
        f"{'stored' if created else 'replaced'} secret {name} (encrypted, key from {box.source}); "
        f"use it in xvckit.yaml as secret:{name}"
    )


@app.command("list")
def list_secrets(
    config: ConfigOption = None,
    data_dir: DataDirOption = None,
    as_json: bool = typer.Option(False, "--json", help="print JSON for scripts"),
) -> None:
    """The names of the stored secrets (never their values)."""
    _, store = stores.open_store(config, data_dir)
    try:
        found = secrets.list_secrets(store)
    finally:
        store.close()
    if as_json:
        typer.echo(json.dumps([info.__dict__ for info in found], indent=2))
    elif not found:
        typer.echo("(no secrets stored)")
    else:
        width = max(len(info.name) for info in found)
        for info in found:
            typer.echo(f"{info.name:<{width}}  updated {info.updated_at[:19].replace('T', ' ')} UTC")


@app.command("delete")
def delete_secret(
    name: str = typer.Argument(..., help="the secret to remove"),
    config: ConfigOption = None,
    data_dir: DataDirOption = None,
) -> None:
    """Remove a secret."""
    loaded, store = stores.open_store(config, data_dir)
    try:
        if not secrets.delete_secret(store, name, audit.default_actor()):
            raise UserError(f"no secret named {name!r} in the store")
    finally:
        store.close()
    typer.echo(f"deleted secret {name}")
    users = [
        f"providers[{i}].api_keys[{j}]"
        for i, provider in enumerate(loaded.providers)
        for j, key in enumerate(provider.api_keys)
        if key.get_secret_value() == f"{secrets.REF_PREFIX}{name}"
    ]
    if users:
        typer.echo(f"warning: the configuration still refers to it at {', '.join(users)}", err=True)


@app.command("import")
def import_keys(
    config: ConfigOption = None,
    data_dir: DataDirOption = None,
    as_json: bool = typer.Option(False, "--json", help="print JSON for scripts"),
) -> None:
    """Move literal provider keys from xvckit.yaml into the encrypted store.

    Each literal in providers[].api_keys becomes "secret:NAME" in place; comments and layout
    of the file are kept. env: and secret: entries are left as they are."""
    path = resolve_path(config)
    if path is None:
        raise UserError("no configuration to import from: pass --config FILE")
    _, store = stores.open_store(path, data_dir)
    try:
        box = secrets.SecretBox.for_store(store)
        result = secrets.import_literal_keys(path, store, box, audit.default_actor())
    finally:
        store.close()
    if as_json:
        moved = [{"field": field, "secret": name} for field, name in result.moved]
        typer.echo(json.dumps({"path": str(result.path), "moved": moved}, indent=2))
        return
    if not result.moved:
        typer.echo(f"{path}: no literal provider keys; nothing to do")
        return
    for field, name in result.moved:
        typer.echo(f"{field} -> secret:{name}")
    typer.echo(
        f"{path}: moved {len(result.moved)} key(s) into the store (encrypted, key from {box.source}); "
        "the file now refers to them by name"
    )
