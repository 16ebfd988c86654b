"""What `xvckit up` and `xvckit gateway serve` start: store, gateway, and, when no
provider is configured, the simulator behind the gateway so everything works offline."""

from __future__ import annotations

import logging
import os
import secrets
import sys
from pathlib import Path

from xvckit.asgi import Server
from xvckit.config import Config, from_mapping
from xvckit.errors import UserError
from xvckit.gateway import Gateway
from xvckit.http_server import HttpServer
from xvckit.store import Store, audit, local_dir
from xvckit.store.secrets import resolve_secret_refs

log = logging.getLogger("xvckit")

MASTER_KEY_FILE = "master.key"
SIM_CONTROL_HEADERS = ("x-sim-fail", "x-sim-output-tokens", "x-sim-latency-ms")


def data_dir(config: Config) -> Path:
    return local_dir(config.storage.url)


def master_key(config: Config) -> tuple[str, str]:
    """The admin key and where it came from: config or environment, else a key generated
    once and kept 0600 beside the database, so tools keep working across restarts."""
    if config.admin.master_key is not None:
        return config.admin.master_key.get_secret_value(), "XVCKIT_MASTER_KEY / admin.master_key"
    path = data_dir(config) / MASTER_KEY_FILE
    if path.exists():
        return path.read_text().strip(), str(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    key = "xvc-master-" + secrets.token_urlsafe(32)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(key + "\n")
    return key, str(path)


def with_simulator(config: Config, sim_url: str) -> Config:
    """The config plus a simulated OpenAI and Anthropic provider answering every model."""
    data = config.model_dump(mode="python")
    data["admin"] = {}  # already resolved by the caller; SecretStr does not round-trip
    controls = list(SIM_CONTROL_HEADERS)
    data["providers"] = [
        {
            "name": "sim-openai",
            "kind": "openai",
            "base_url": f"{sim_url}/v1",
            "api_keys": ["sim"],
            "forward_headers": controls,
        },
        {
            "name": "sim-anthropic",
            "kind": "anthropic",
            "base_url": sim_url,
            "api_keys": ["sim"],
            "forward_headers": controls,
        },
    ]
    data["models"] = [
        *(
            {"name": name, "provider": "sim-openai"}
            for name in ("gpt-4o", "gpt-4o-mini", "text-embedding-3-small")
        ),
        *(
            {"name": name, "provider": "sim-anthropic"}
            for name in ("claude-sonnet-4-6", "claude-opus-4-7", "claude-haiku-4-5")
        ),
        {"name": "claude-*", "provider": "sim-anthropic"},
        {"name": "*", "provider": "sim-openai"},
    ]
    return from_mapping(data, source="built-in simulator")


def bind(
    app, host: str, port: int, shutdown_grace_s: float | None = None, server: type = HttpServer
) -> HttpServer | Server:
    try:
        return server(app, host, port, shutdown_grace_s=shutdown_grace_s)
    except OSError as exc:
        raise UserError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None


def gateway_server(
    config: Config, key: str, host: str | None = None, port: int | None = None, source: str = "defaults"
) -> HttpServer:
    """The gateway on its store, with `secret:` keys decrypted and the load audited."""
    store = Store.open(config.storage.url)
    config = resolve_secret_refs(config, store)
    detail = {"providers": [p.name for p in config.providers], "models": [m.name for m in config.models]}
    audit.append(store, "gateway", "config.load", source, detail)
    gateway = Gateway(config, key, store)
    settings = config.gateway
    return bind(
        gateway,
        host or settings.host,
        settings.port if port is None else port,
        shutdown_grace_s=settings.shutdown_grace_s,
    )


def simulator_server() -> Server:
    from xvckit.sim import SimApp, SimSettings

    return bind(SimApp(SimSettings()), "127.0.0.1", 0, server=Server)


def export_lines(gateway_url: str, key: str) -> list[str]:
    """What a user pastes so the SDKs, Claude Code, Cursor and aider use the gateway."""
    return [
        f"export OPENAI_BASE_URL={gateway_url}/v1",
        f"export OPENAI_API_KEY={key}",
        f"export ANTHROPIC_BASE_URL={gateway_url}",
        f"export ANTHROPIC_API_KEY={key}",
    ]


def setup_logging(level: str) -> None:
    logging.basicConfig(stream=sys.stderr, level=level.upper(), format="%(asctime)s %(name)s %(message)s")
