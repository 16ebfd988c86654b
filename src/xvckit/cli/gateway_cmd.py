"""`xvckit up` and `xvckit gateway serve`."""

from __future__ import annotations

from pathlib import Path

import typer

from xvckit import config as cfg
from xvckit.cli.options import ConfigOption

app = typer.Typer(help="The OpenAI- and Anthropic-compatible gateway.", no_args_is_help=True)

HostOption = typer.Option(None, "--host", help="address to listen on (default: gateway.host)")
PortOption = typer.Option(None, "--port", "-p", help="port to listen on (default: gateway.port)")
LogOption = typer.Option("info", "--log-level", help="debug, info (one line per request), warning")


@app.command()
def serve(
    config: ConfigOption = None,
    host: str | None = HostOption,
    port: int | None = PortOption,
    log_level: str = LogOption,
) -> None:
    """Serve the gateway with the given configuration."""
    from xvckit import asgi, stack  # the server's imports cost a second; other commands skip them
    from xvckit.store import safe_url

    loaded = cfg.load(config, required=True)
    stack.setup_logging(log_level)
    key, source = stack.master_key(loaded)
    server = stack.gateway_server(loaded, key, host, port, source=str(cfg.resolve_path(config)))
    store = safe_url(loaded.storage.url)
    typer.echo(f"# xvckit gateway on {server.url} (store {store}; master key from {source})")
    asgi.run(server)


def up(
    config: ConfigOption = None,
    host: str | None = HostOption,
    port: int | None = PortOption,
    data_dir: Path | None = typer.Option(
        None,
        "--data-dir",
        help="keep the SQLite store, keys and journal here (default: $XDG_DATA_HOME/xvckit)",
    ),
    log_level: str = LogOption,
) -> None:
    """Start the gateway on the embedded store, with a simulator if no provider is configured."""
    from xvckit import asgi, stack
    from xvckit.store import safe_url

    loaded = cfg.load(config)
    if data_dir is not None:
        store_url = f"sqlite:///{data_dir.expanduser().resolve()}/xvckit.db"
        loaded = loaded.model_copy(update={"storage": loaded.storage.model_copy(update={"url": store_url})})
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
        f"# xvckit gateway on {gateway.url}, store {safe_url(loaded.storage.url)}",
        *(f"# {note}" for note in notes),
        *stack.export_lines(gateway.url, key, source),
        "# Ctrl-C stops the gateway after in-flight requests finish.",
    ]
    typer.echo("\n".join(lines))
    asgi.run(*servers)
