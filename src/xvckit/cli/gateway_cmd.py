"""`xvckit up` and `xvckit gateway serve`."""

from __future__ import annotations

from pathlib import Path

import typer

from xvckit import config as cfg
from xvckit.cli.options import ConfigOption, DataDirOption, check_port

app = typer.Typer(help="The OpenAI- and Anthropic-compatible gateway.", no_args_is_help=True)

HostOption = typer.Option(None, "--host", help="address to listen on (default: gateway.host)")
PortOption = typer.Option(
    None, "--port", "-p", callback=check_port, help="port to listen on (default: gateway.port; 0: any free)"
)
LogOption = typer.Option("info", "--log-level", help="debug, info (one line per request), warning")


@app.command()
def serve(
    config: ConfigOption = None,
    host: str | None = HostOption,
    port: int | None = PortOption,
    data_dir: DataDirOption = None,
    log_level: str = LogOption,
) -> None:
    """Serve the gateway with the given configuration."""
    from xvckit import asgi, stack  # the server's imports cost a second; other commands skip them

    loaded = cfg.load(config, required=True, data_dir=data_dir)
    stack.setup_logging(log_level)
    key, source = stack.master_key(loaded)
    server = stack.gateway_server(loaded, key, host, port, source=str(cfg.resolve_path(config)))
    typer.echo(f"# xvckit gateway on {server.url} ({where(loaded)}; master key from {source})")
    asgi.run(server)


def up(
    config: ConfigOption = None,
    host: str | None = HostOption,
    port: int | None = PortOption,
    data_dir: DataDirOption = None,
    log_level: str = LogOption,
) -> None:
    """Start the gateway on the embedded store, with a simulator if no provider is configured."""
    from xvckit import asgi, stack

    loaded = cfg.load(config, data_dir=data_dir)
    stack.setup_logging(log_level)
    key, source = stack.master_key(loaded)
    servers = []
    notes = []
    if not loaded.providers:
        sim = stack.simulator_server()
        servers.append(sim)
        loaded = stack.with_simulator(loaded, sim.url)
        notes.append(
            f"no provider configured: answering from the built-in simulator at {sim.url} "
            "(add providers to xvckit.yaml for real models)"
        )
    gateway = stack.gateway_server(
        loaded, key, host, port, source=str(cfg.resolve_path(config) or "defaults")
    )
    servers.append(gateway)
    lines = [
        f"# xvckit gateway on {gateway.url}, {where(loaded)}",
        *(f"# {note}" for note in notes),
        *stack.export_lines(gateway.url, key, source),
        "# Ctrl-C stops the gateway after in-flight requests finish.",
    ]
    typer.echo("\n".join(lines))
    asgi.run(*servers)


def where(config: cfg.Config) -> str:
    """The store and the data folder as they are on disk: real paths (no `~`, no variable), a
    database URL without its password."""
    from xvckit.config.schema import data_dir_of
    from xvckit.store import safe_url

    url = config.storage.url
    folder = data_dir_of(url)
    store = folder / Path(url).name if folder else safe_url(url)
    return f"store {store}, data folder {config.storage.data_dir}"
