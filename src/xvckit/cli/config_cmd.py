"""`xvckit config init|check`."""

from __future__ import annotations

from pathlib import Path

import typer

from xvckit import config as cfg
from xvckit.cli.options import ConfigOption
from xvckit.config.loader import refuse_gateway_keys

app = typer.Typer(help="Write and validate xvckit.yaml.", no_args_is_help=True)


@app.command()
def init(
    path: Path = typer.Argument(Path("xvckit.yaml"), help="where to write the example"),
    force: bool = typer.Option(False, "--force", help="overwrite an existing file"),
) -> None:
    """Write a commented example configuration."""
    if path.exists() and not force:
        raise cfg.ConfigError(f"{path} exists; pass --force to overwrite it")
    path.write_text(cfg.EXAMPLE_PATH.read_text())
    typer.echo(f"wrote {path}; edit it, then run: xvckit config check --config {path}")


@app.command()
def check(config: ConfigOption = None) -> None:
    """Validate the configuration and summarise it (no secret is printed)."""
    loaded = cfg.load(config, required=True)
    path = cfg.resolve_path(config)
    master = loaded.admin.master_key
    refuse_gateway_keys(loaded, master.get_secret_value() if master else None, str(path))
    typer.echo(
        f"ok: {path}: {len(loaded.providers)} provider(s), "
        f"{len(loaded.models)} model route(s), storage {loaded.storage.url.split(':', 1)[0]}"
    )
