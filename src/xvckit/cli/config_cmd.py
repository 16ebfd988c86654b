"""`xvckit config init|check`."""

from __future__ import annotations

from pathlib import Path

import typer

from xvckit import config as cfg
from xvckit.cli.options import ConfigOption, DataDirOption, output_file
from xvckit.config.loader import refuse_gateway_keys

app = typer.Typer(help="Write and validate xvckit.yaml.", no_args_is_help=True)


@app.command()
def init(
    path: Path = typer.Argument(Path("xvckit.yaml"), callback=output_file, help="where to write the example"),
    force: bool = typer.Option(False, "--force", help="overwrite an existing file"),
) -> None:
    """Write a commented example configuration."""
    if path.exists() and not force:
        raise cfg.ConfigError(f"{path} exists; pass --force to overwrite it")
    path.write_text(cfg.EXAMPLE_PATH.read_text())
    typer.echo(f"wrote {path}; edit it, then run: xvckit config check --config {path}")


@app.command()
def check(config: ConfigOption = None, data_dir: DataDirOption = None) -> None:
    """Validate the configuration and what it refers to (`secret:` keys in the store, doctor
    thresholds), every problem on a line of its own; no secret is printed."""
    from xvckit.cli.gateway_cmd import where

    loaded = cfg.load(config, required=True, data_dir=data_dir)
    path = cfg.resolve_path(config)
    resolved, problems = _with_secrets(loaded)
    problems += _threshold_problems(loaded)
    if problems:
        raise cfg.ConfigError("\n".join(f"{path}: {problem}" for problem in problems))
    master = loaded.admin.master_key
    refuse_gateway_keys(resolved, master.get_secret_value() if master else None, str(path))
    typer.echo(
        f"ok: {path}: {len(loaded.providers)} provider(s), "
        f"{len(loaded.models)} model route(s), {where(loaded)}"
    )


def _with_secrets(config: cfg.Config) -> tuple[cfg.Config, list[str]]:
    """The config with its `secret:NAME` keys decrypted, or the references that name no stored
    secret or that this machine's key cannot open (the store is opened only for a reference)."""
    from xvckit.store.secrets import REF_PREFIX

    refs = [
        (f"providers[{i}].api_keys[{j}]", key.get_secret_value().removeprefix(REF_PREFIX))
        for i, provider in enumerate(config.providers)
        for j, key in enumerate(provider.api_keys)
        if key.get_secret_value().startswith(REF_PREFIX)
    ]
    if not refs:
        return config, []
    from xvckit.store import Store
    from xvckit.store.secrets import SecretBox, SecretError, get_secret, resolve_secret_refs

    store = Store.configured(config)
    try:
        try:
            box = SecretBox.for_store(store)
        except SecretError as exc:
            return config, [str(exc)]
        problems = []
        for field, name in refs:
            try:
                get_secret(store, box, name)
            except SecretError as exc:
                problems.append(f"{field}: {exc}")
        return (config if problems else resolve_secret_refs(config, store, box)), problems
    finally:
        store.close()


def _threshold_problems(config: cfg.Config) -> list[str]:
    """`doctor.thresholds` entries that name no threshold or do not fit theirs."""
    if not config.doctor.thresholds:
        return []
    from xvckit.doctor.thresholds import with_overrides
    from xvckit.errors import UserError

    problems = []
    for key, override in config.doctor.thresholds.items():
        try:
            with_overrides({key: override})
        except UserError as exc:
            problems.append(str(exc))
    return problems
