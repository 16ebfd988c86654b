"""The `xvckit.yaml` schema: what a user may write, validated before anything starts."""

from __future__ import annotations

import fnmatch
import os
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator

from xvckit.errors import UserError

MIN_MASTER_KEY = 32  # characters: a key a person types from memory is guessable


def default_data_dir() -> Path:
    """The XDG data directory, as every tool on the desktop keeps its data: $XDG_DATA_HOME/xvckit,
    else ~/.local/share/xvckit. Read when asked, not at import, so a variable set later counts;
    a relative XDG_DATA_HOME is ignored, as the XDG spec says."""
    base = os.environ.get("XDG_DATA_HOME", "")
    if not os.path.isabs(base):
        return Path.home() / ".local" / "share" / "xvckit"
    problem = folder_problem(Path(base))
    if problem:
        raise UserError(f"XDG_DATA_HOME={base}: {problem}")
    return Path(base) / "xvckit"


def folder_problem(path: Path) -> str | None:
    """Why `path` cannot be (or become) a folder: it or a parent is a file."""
    for folder in (path, *path.parents):
        if folder.exists():
            return None if folder.is_dir() else f"{folder} is a file, not a folder"
    return None


def full_path(path: str | os.PathLike[str]) -> Path:
    """`path` as it is on disk: `~` expanded, absolute, no `..` (symlinks kept)."""
    return Path(os.path.abspath(Path(path).expanduser()))


def data_dir_of(url: str) -> Path | None:
    """The folder of a SQLite database (None for another database)."""
    if url.startswith("sqlite:///"):
        return full_path(url.removeprefix("sqlite:///")).parent
    return None


def master_key_problem(key: str) -> str | None:
    if len(key) < MIN_MASTER_KEY:
        return (
            f"too short ({len(key)} characters; at least {MIN_MASTER_KEY}): make one with "
            "python -c 'import secrets; print(\"xvc-master-\" + secrets.token_urlsafe(32))'"
        )
    return None


def _http(value: str) -> str:
    """An absolute http(s) URL. No user:password: the HTTP client cannot send them, so every
    request would fail while /readyz said ready (a key belongs in `api_keys` or `headers`)."""
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError("must be an http:// or https:// URL with a host")
    if parts.username is not None or parts.password is not None:
        raise ValueError("must not hold user:password; put the key in api_keys or headers")
    if parts.port == 0:  # .port itself raises ValueError when out of range or not a number
        raise ValueError("port 0 is not a port to connect to")
    return value


class Strict(BaseModel):
    """Unknown keys are typos: reject them instead of silently ignoring them."""

    model_config = ConfigDict(extra="forbid")


class Tls(Strict):
    """HTTPS served by the gateway itself (TLS 1.2 or later), so keys never cross a network in clear."""

    cert_file: Path = Field(description="PEM certificate, its chain after it")
    key_file: Path = Field(description="PEM private key of the certificate")


class GatewaySettings(Strict):
    host: str = "127.0.0.1"
    port: int = Field(4141, ge=0, le=65535)
    max_body_mb: float = Field(32, gt=0, description="request bodies above this get 413")
    connect_timeout_s: float = Field(10, gt=0)
    read_timeout_s: float = Field(600, gt=0, description="longest silence from an upstream")
    shutdown_grace_s: float = Field(30, ge=0, description="how long Ctrl-C waits for in-flight requests")
    queue_timeout_s: float = Field(
        120, gt=0, description="longest wait for rate-limit room before a 429 (over a minute: a full window)"
    )
    max_attempts: int = Field(3, ge=1, le=10, description="upstream calls per request, retries included")
    retry_budget: float = Field(0.2, ge=0, le=1, description="retries as a share of requests, at most")
    retry_base_s: float = Field(0.25, gt=0, description="backoff before the first retry (doubles, jittered)")
    retry_cap_s: float = Field(8, gt=0, description="longest backoff between two attempts")
    upstream_deadline_s: float = Field(
        1800, gt=0, description="longest one upstream call may take, to its last byte (streams too): 504"
    )
    max_upstream_head_kb: float = Field(64, gt=0, description="largest upstream response head: 502")
    max_upstream_body_mb: float = Field(64, ge=1, description="largest unstreamed upstream answer: 502")
    max_upstream_event_mb: float = Field(
        4, gt=0, description="largest single event of an upstream stream: the stream ends in an error event"
    )
    body_timeout_s: float = Field(
        30, gt=0, description="time for a request body after its head, +1 s per body_min_rate_kb_s KiB: 408"
    )
    body_min_rate_kb_s: float = Field(
        8, gt=0, description="each this many KiB of request body received add 1 s to body_timeout_s"
    )
    max_connections_per_client: int = Field(
        256, ge=0, description="open connections per client address, more get 503 (0: no cap; behind a proxy)"
    )
    routing: Literal["headroom", "latency", "cost", "weighted"] = Field(
        "headroom", description="how to order several deployments of one model name"
    )
    batch_sweep_s: float = Field(
        300,
        ge=0,
        description="how often to read the provider batches whose results are not in the ledger yet, so one"
        " nobody reads after it ends is ledgered too (0: only when read)",
    )
    tls: Tls | None = Field(None, description="serve HTTPS with this certificate; None: plain HTTP")
    dashboard: bool = Field(True, description="serve the dashboard at /ui (admin and team-admin keys)")


class Provider(Strict):
    name: str = Field(min_length=1)
    kind: Literal["openai", "anthropic"]
    base_url: str
    api_keys: list[SecretStr] = Field(default_factory=list)
    key_header: Literal["authorization", "api-key", "x-api-key"] | None = Field(
        None, description="how the upstream wants its key; default per kind (Azure: api-key)"
    )
    headers: dict[str, str] = Field(default_factory=dict, description="sent on every upstream call")
    query: dict[str, str] = Field(default_factory=dict, description="e.g. {api-version: ...} for Azure")
    rpm: int | None = Field(None, gt=0, description="requests per minute allowed per upstream key")
    tpm: int | None = Field(None, gt=0, description="tokens per minute allowed per upstream key")
    forward_headers: list[str] = Field(
        default_factory=list, description="client request headers passed on to this upstream (e.g. X-Title)"
    )
    responses_api: bool | None = Field(
        None,
        description="whether it serves POST /responses itself (default: only api.openai.com); "
        "else /v1/responses is translated to chat completions",
    )

    @field_validator("base_url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        return _http(value).rstrip("/")

    @property
    def upstream_key_header(self) -> str:
        if self.key_header:
            return self.key_header
        return "x-api-key" if self.kind == "anthropic" else "authorization"


class ModelRoute(Strict):
    name: str = Field(min_length=1, description="what clients ask for; globs allowed")
    provider: str
    model: str | None = Field(None, description="upstream id; defaults to the name asked for")
    rpm: int | None = Field(None, gt=0, description="requests per minute for this model, per upstream key")
    tpm: int | None = Field(None, gt=0, description="tokens per minute for this model, per upstream key")
    fallbacks: list[str] = Field(default_factory=list, description="models to try when this one fails")
    weight: float = Field(1.0, gt=0, description="share of traffic under `gateway.routing: weighted`")
    cache: Literal["off", "on", "deterministic"] = Field(
        "off", description="exact response cache: on, off, or for requests with temperature 0"
    )

    @property
    def is_glob(self) -> bool:
        return any(ch in self.name for ch in "*?[")

    def matches(self, requested: str) -> bool:
        return fnmatch.fnmatchcase(requested, self.name) if self.is_glob else requested == self.name


class Storage(Strict):
    """The database, and the data folder of the files kept outside it."""

    url: str = Field(description="sqlite:///PATH or postgresql://...; default: xvckit.db in data_dir")
    data_dir: Path = Field(
        description="secret.key, master.key, the ledger journal, audit heads; "
        "default: the SQLite database's folder, else $XDG_DATA_HOME/xvckit"
    )

    @model_validator(mode="before")
    @classmethod
    def _defaults(cls, data: Any) -> Any:
        """Filled in when a configuration is loaded, not at import."""
        if not isinstance(data, dict):
            return data
        url, folder = data.get("url"), data.get("data_dir")
        if folder is None:
            folder = (data_dir_of(url) if isinstance(url, str) else None) or default_data_dir()
        if url is None:
            url = f"sqlite:///{full_path(folder)}/xvckit.db"
        return {**data, "url": url, "data_dir": folder}

    @field_validator("url")
    @classmethod
    def _known_scheme(cls, value: str) -> str:
        if not value.startswith(("sqlite://", "postgresql://", "postgresql+psycopg://")):
            raise ValueError("must be sqlite:///PATH or postgresql://...")
        return value

    @field_validator("data_dir")
    @classmethod
    def _a_folder(cls, value: Path) -> Path:
        value = full_path(value)
        problem = folder_problem(value)
        if problem:
            raise ValueError(problem)
        return value


class LedgerSettings(Strict):
    enabled: bool = Field(True, description="one record per request; off only for benchmarks")
    retention_days: float | None = Field(None, gt=0, description="prune older records; None keeps all")


class MonitorSettings(Strict):
    """The gateway's infrastructure monitoring: compute, provider probes and pacing, sampled
    into the store and exported on /metrics."""

    interval_s: float = Field(60, ge=0, description="seconds between samples; 0: off")
    probe_timeout_s: float = Field(5, gt=0, description="longest wait for one provider probe")
    minute_retention_days: float = Field(2, gt=0, description="how long per-minute buckets are kept")
    hour_retention_days: float = Field(90, gt=0, description="how long per-hour buckets are kept")


class MetricsSettings(Strict):
    """The repository KPIs (`xvckit metrics`) that the dashboard and /metrics show, measured
    in the background: none without `repo`."""

    repo: Path | None = Field(None, description="the git repository; None: no repository KPIs")
    junit: list[str] = Field(default_factory=list, description="JUnit XML globs")
    coverage: list[str] = Field(default_factory=list, description="Cobertura / coverage.py XML globs")
    incidents: Path | None = Field(None, description="incidents: YAML or CSV")
    period_days: float = Field(30, gt=0, le=366, description="the period measured, against as long before")
    refresh_s: float = Field(600, ge=10, description="seconds between two measurements")


class Price(Strict):
    """USD per million tokens."""

    input: float = Field(ge=0)
    output: float = Field(ge=0)
    cache_read: float | None = Field(None, ge=0)
    cache_write: float | None = Field(None, ge=0)


class CacheSettings(Strict):
    """The exact response cache (used per model or per request with `x-xvckit-cache: on`)."""

    ttl_s: float = Field(3600, gt=0, description="how long an answer is kept")
    max_mb: float = Field(64, gt=0, description="memory for entries in each gateway (Redis: its maxmemory)")
    max_entry_mb: float = Field(1, gt=0, description="larger answers are not cached")


class ResponsesSettings(Strict):
    """Responses API answers kept for `previous_response_id` and GET /v1/responses/{id}."""

    ttl_s: float = Field(30 * 86400, gt=0, description="how long a stored response is kept (OpenAI: 30 days)")
    max_mb: float = Field(256, gt=0, description="memory for them in each gateway (Redis: its maxmemory)")


class Redis(Strict):
    url: str = Field(description="redis://host:port/db; shares pacing state between gateway replicas")
    replicas: int = Field(
        1,
        ge=1,
        le=1000,
        description="gateways sharing it: while it is away, each holds 1/replicas of every limit",
    )


class ThresholdOverride(Strict):
    """A doctor threshold's bounds: numbers, [numbers] for a sysctl triple, or [words]."""

    minimum: float | list[float] | list[str] | None = None
    optimal: float | list[float] | list[str] | None = None


class DoctorSettings(Strict):
    """`xvckit doctor`: how long and how much it measures; thresholds overridable by check."""

    deadline_s: float = Field(15, gt=0, description="the whole doctor, bandwidth excluded")
    probes: int = Field(5, ge=1, le=50, description="latency probes per provider endpoint")
    probe_timeout_s: float = Field(3, gt=0, description="longest wait for one probe or request")
    bandwidth_url: str | None = Field(
        "https://speed.cloudflare.com/__down?bytes=25000000", description="downloaded; null: no test"
    )
    bandwidth_upload_url: str | None = Field(
        "https://speed.cloudflare.com/__up", description="POSTed to; null: no upload test"
    )
    bandwidth_max_mb: float = Field(25, gt=0, description="per direction, at most")
    bandwidth_max_s: float = Field(8, gt=0, description="per direction, at most")
    ping_count: int = Field(10, ge=1, le=100, description="ICMP echoes per provider host")
    history_days: float = Field(7, gt=0, description="ledger history read for uptime and API tier")
    disk_check_mb: float = Field(64, gt=0, description="written by the sequential-write check")
    thresholds: dict[str, ThresholdOverride] = Field(
        default_factory=dict, description="by threshold id (`xvckit doctor --json` lists them)"
    )

    @field_validator("bandwidth_url", "bandwidth_upload_url")
    @classmethod
    def _http_url(cls, value: str | None) -> str | None:
        return None if value is None else _http(value)


class ContextSettings(Strict):
    """`xvckit context`: the guide's budget split (20k core / 60k working / 20k buffer of 100k)."""

    window: int = Field(100_000, gt=0, description="context size when neither --budget nor --model is given")
    core: float = Field(0.2, ge=0, le=1, description="share for guidance files (AGENTS.md, README, ...)")
    working: float = Field(0.6, gt=0, le=1, description="share for the task: outline and code")
    buffer: float = Field(0.2, ge=0, lt=1, description="share kept free for the response")
    encoding: str = Field("o200k_base", description="tiktoken encoding when no --model says otherwise")
    outline_share: float = Field(
        0.1, ge=0, le=1, description="of the working part: the task-independent repository outline"
    )
    core_files: list[str] = Field(
        default_factory=lambda: ["AGENTS.md", "CLAUDE.md", "CONVENTIONS.md", "CONTRIBUTING.md", "README*"],
        description="globs of top-level files packed as core context, in this order",
    )
    max_file_kb: int = Field(512, gt=0, description="larger files are left out of the index")
    exclude: list[str] = Field(default_factory=list, description="globs of paths never packed")

    @model_validator(mode="after")
    def _shares_add_up(self) -> ContextSettings:
        if abs(self.core + self.working + self.buffer - 1) > 1e-6:
            raise ValueError("core + working + buffer must add up to 1")
        return self


class Admin(Strict):
    master_key: SecretStr | None = None

    @field_validator("master_key")
    @classmethod
    def _long_enough(cls, value: SecretStr | None) -> SecretStr | None:
        problem = value and master_key_problem(value.get_secret_value())
        if problem:
            raise ValueError(problem)
        return value


class Config(Strict):
    gateway: GatewaySettings = Field(default_factory=GatewaySettings)
    providers: list[Provider] = Field(default_factory=list)
    models: list[ModelRoute] = Field(default_factory=list)
    storage: Storage = Field(default_factory=Storage)
    ledger: LedgerSettings = Field(default_factory=LedgerSettings)
    prices: dict[str, Price] = Field(default_factory=dict, description="override the built-in price table")
    admin: Admin = Field(default_factory=Admin)
    cache: CacheSettings = Field(default_factory=CacheSettings)
    responses: ResponsesSettings = Field(default_factory=ResponsesSettings)
    context: ContextSettings = Field(default_factory=ContextSettings)
    redis: Redis | None = None
    doctor: DoctorSettings = Field(default_factory=DoctorSettings)
    monitor: MonitorSettings = Field(default_factory=MonitorSettings)
    metrics: MetricsSettings = Field(default_factory=MetricsSettings)

    @model_validator(mode="after")
    def _references_resolve(self) -> Config:
        """Every broken reference, one a line (the loader lists each as an error of its own)."""
        names = [p.name for p in self.providers]
        problems = []
        dupes = {n for n in names if names.count(n) > 1}
        if dupes:
            problems.append(f"providers: duplicate name(s) {sorted(dupes)}")
        for i, route in enumerate(self.models):
            for j, fallback in enumerate(route.fallbacks):
                if not any(other.matches(fallback) for other in self.models):
                    problems.append(f"models[{i}].fallbacks[{j}]: no model route matches {fallback!r}")
            if route.provider not in names:
                problems.append(
                    f"models[{i}].provider: unknown provider {route.provider!r} "
                    f"(known: {', '.join(names) or 'none'})"
                )
        if problems:
            raise ValueError("\n".join(problems))
        return self

    def provider(self, name: str) -> Provider:
        return next(p for p in self.providers if p.name == name)
