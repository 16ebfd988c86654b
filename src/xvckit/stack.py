"""What `xvckit up` and `xvckit gateway serve` start: store, gateway, and, when no
provider is configured, the simulator behind the gateway so everything works offline."""

from __future__ import annotations

import ipaddress
import logging
import os
import secrets
import ssl
import sys

from xvckit.asgi import Server
from xvckit.config import Config, from_mapping
from xvckit.config.loader import MASTER_KEY_ENV, refuse_gateway_keys
from xvckit.config.schema import Tls, master_key_problem
from xvckit.errors import UserError
from xvckit.gateway import Gateway
from xvckit.gateway.extensions import Extensions, Mount
from xvckit.http_server import HttpServer
from xvckit.store import Store, audit
from xvckit.store.secrets import resolve_secret_refs

log = logging.getLogger("xvckit")

MASTER_KEY_FILE = "master.key"
CONFIG_MASTER_KEY = "admin.master_key"
SIM_CONTROL_HEADERS = ("x-sim-fail", "x-sim-output-tokens", "x-sim-latency-ms")


def master_key(config: Config) -> tuple[str, str]:
    """The admin key and where it came from: $XVCKIT_MASTER_KEY or the config, else a key
    generated once and kept 0600 in the data folder, so tools keep working across restarts."""
    if config.admin.master_key is not None:
        key = config.admin.master_key.get_secret_value()
        return key, MASTER_KEY_ENV if os.environ.get(MASTER_KEY_ENV) == key else CONFIG_MASTER_KEY
    path = config.storage.data_dir / MASTER_KEY_FILE
    if path.exists():
        key = path.read_text().strip()
        problem = master_key_problem(key)
        if problem:
            raise UserError(f"{path}: {problem}")
        return key, str(path)
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
            "responses_api": True,  # it serves /v1/responses as OpenAI does
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


def bind(app, host: str, port: int, server: type = HttpServer, **options) -> HttpServer | Server:
    try:
        return server(app, host, port, **options)
    except OSError as exc:
        raise UserError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None


def gateway_server(
    config: Config, key: str, host: str | None = None, port: int | None = None, source: str = "defaults"
) -> HttpServer:
    """The gateway on its store, with `secret:` keys decrypted, none of them one of the
    gateway's own keys, and the load audited."""
    settings = config.gateway
    ssl_context = tls_context(settings.tls)
    store = Store.configured(config)
    config = resolve_secret_refs(config, store)
    refuse_gateway_keys(config, key, source)
    detail = {"providers": [p.name for p in config.providers], "models": [m.name for m in config.models]}
    audit.append(store, "gateway", "config.load", source, detail)
    host = host or settings.host
    if ssl_context is None and not is_loopback(host):
        log.warning(
            "listening on %s without TLS: keys and prompts cross the network in clear text; "
            "set gateway.tls or put a TLS proxy in front (docs/scaling.md)",
            host,
        )
    return bind(
        gateway_app(config, key, store),
        host,
        settings.port if port is None else port,
        shutdown_grace_s=settings.shutdown_grace_s,
        ssl_context=ssl_context,
        body_timeout_s=settings.body_timeout_s,
        body_min_rate=settings.body_min_rate_kb_s * 1024,
        max_connections_per_client=settings.max_connections_per_client,
    )


def knowledge_extensions(store: Store) -> Extensions:
    """The team's prompt library (`/v1/xvckit/prompts`, `x-xvckit-prompt`) and its MCP server
    over streamable HTTP (`/mcp`), served by the gateway behind its keys."""
    from xvckit.knowledge.mcp_server import CALLER_SCOPE_KEY, http_app
    from xvckit.knowledge.serving import Knowledge

    app, sessions = http_app(store)
    return Extensions(Knowledge(store), [Mount("/mcp", app, CALLER_SCOPE_KEY, sessions.run)])


def gateway_app(config: Config, key: str, store: Store) -> Gateway:
    """The gateway with everything other rooms serve through it: the knowledge routes, the
    dashboard at /ui (`gateway.dashboard`), the infrastructure monitor (`monitor`) and the
    repository KPIs (`metrics.repo`), the last two also on /metrics."""
    from xvckit.metrics.infra import Monitor
    from xvckit.metrics.live import RepositoryKpis
    from xvckit.web import CALLER, Dashboard

    knowledge = knowledge_extensions(store)
    monitor = Monitor(store, config.providers, config.monitor)
    kpis = RepositoryKpis(config.metrics)
    mounts = list(knowledge.mounts)
    if config.gateway.dashboard:
        mounts.append(Mount("/ui", Dashboard(store, kpis), CALLER, public=Dashboard.public))
    gateway = Gateway(config, key, store, Extensions(knowledge.prompts, mounts, [monitor, kpis]))
    monitor.pacing = gateway.pacer.snapshot
    return gateway


def tls_context(tls: Tls | None) -> ssl.SSLContext | None:
    """The server side of HTTPS, TLS 1.2 or later; None for plain HTTP."""
    if tls is None:
        return None
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    try:
        context.load_cert_chain(tls.cert_file.expanduser(), tls.key_file.expanduser(), password=_no_password)
    except (OSError, ssl.SSLError) as exc:
        raise UserError(
            f"gateway.tls: cannot load {tls.cert_file} with {tls.key_file}: {exc.strerror or exc}"
        ) from None
    return context


def _no_password() -> bytes:
    """An encrypted key would make OpenSSL prompt on the terminal, which a service has not."""
    raise UserError("gateway.tls.key_file: the key is encrypted; give an unencrypted one (mode 0600)")


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def simulator_server() -> Server:
    from xvckit.sim import SimApp, SimSettings

    return bind(SimApp(SimSettings()), "127.0.0.1", 0, server=Server)


def export_lines(gateway_url: str, key: str, source: str) -> list[str]:
    """What a user pastes so the SDKs, Claude Code, Cursor and aider use the gateway. A key the
    user supplied is referred to by its variable, never printed: only one generated here is."""
    value = f'"${MASTER_KEY_ENV}"'
    if source == MASTER_KEY_ENV:
        intro = f"the master key is ${MASTER_KEY_ENV} ({key_hint(key)}); paste these lines into your shell:"
    elif source == CONFIG_MASTER_KEY:
        intro = f"the master key is {source} ({key_hint(key)}): set {MASTER_KEY_ENV} to it, then paste:"
    else:
        intro = f"the key below is the master key (from {source}); paste these lines into your shell:"
        value = key
    return [
        f"# {intro}",
        f"export OPENAI_BASE_URL={gateway_url}/v1",
        f"export OPENAI_API_KEY={value}",
        f"export ANTHROPIC_BASE_URL={gateway_url}",
        f"export ANTHROPIC_API_KEY={value}",
    ]


def key_hint(key: str) -> str:
    """Enough of a key to tell which one it is; nothing of a short, hand-chosen one."""
    return f"{key[:8]}..." if len(key) >= 32 else f"{len(key)} characters"


def setup_logging(level: str) -> None:
    logging.basicConfig(stream=sys.stderr, level=level.upper(), format="%(asctime)s %(name)s %(message)s")
