"""What the gateway knows about one request; when it is over: the ledger record, the
metrics and the access log line.

Every request but the health probes (`/healthz`, `/readyz`) gets one access log line, proxied
or not (`log_answer`: unknown routes, the model list, /metrics, admin), refusals included: its
id, method, path, status and user agent, so a failing tool can be found in the log. What a
client chose (path, user agent, model name) is cut to a bound and printed escaped when it holds
anything but printable characters without spaces: a newline or a space could forge a line or a
field. The query string, headers and bodies are never printed: keys do not reach the log."""

from __future__ import annotations

import itertools
import logging
import os
import time
from dataclasses import dataclass, field

from xvckit.gateway.admission import Ticket
from xvckit.gateway.dispatch import Attempt
from xvckit.gateway.responses_api import ResponsesCall
from xvckit.gateway.routing import Deployment
from xvckit.providers import Usage

access_log = logging.getLogger("xvckit.access")

_VALID_ID = frozenset(b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.:")
MAX_PATH_CHARS = 256  # of a path in the log (the rest is cut, marked "...")
MAX_AGENT_CHARS = 200  # of a user agent, in the log and the ledger


_PROCESS_TAG = f"{int.from_bytes(os.urandom(3)):06x}"
_sequence = itertools.count(int.from_bytes(os.urandom(2)))


def request_id() -> str:
    """The gateway's id of a request: time-ordered, so the ledger's unique index grows at its
    end instead of touching a random page per row; a per-process random tag and a counter keep
    ids from two gateways apart."""
    return f"req_{time.time_ns() // 1000:014x}{_PROCESS_TAG}{next(_sequence) & 0xFFFF:04x}"


def client_request_id(incoming: bytes | None) -> str | None:
    """A caller's sane `x-request-id`, answered with and recorded so traces join up. Not the
    ledger's key: a caller may send the same one again (its retry is another request)."""
    if incoming and len(incoming) <= 128 and all(b in _VALID_ID for b in incoming):
        return incoming.decode()
    return None


@dataclass(slots=True)
class Exchange:
    request_id: str
    endpoint: str
    path: str = ""  # the path the client posted to
    arrived: float = field(default_factory=time.time)
    started: float = field(default_factory=time.perf_counter)
    client: str | None = None
    key_id: str | None = None
    team_id: str | None = None
    model: str | None = None
    provider: str | None = None
    upstream_model: str | None = None
    deployment: str | None = None  # "provider/upstream_model"
    stream: bool = False
    status: int = 0
    error: str | None = None
    usage: Usage = field(default_factory=Usage)
    ticket: Ticket | None = None
    attempt: Attempt | None = None
    retries: int = 0
    upstream_started: float | None = None
    upstream_ms: float = 0.0
    ttft_ms: float | None = None
    overhead_ms: float = 0.0
    cache_hit: bool = False
    cost_saved_usd: float = 0.0
    cost_usd: float = 0.0  # set when the request is settled
    client_request_id: str | None = None
    authenticated: bool = False  # its key was accepted (False: no key, or one refused)
    input_estimate: int = 0  # the input tokens estimated before the call (charged for a broken stream)
    max_tokens_capped: int | None = None  # the output limit the caller's budget cut the request to
    responded: bool = False  # the response head went out
    finished: bool = False  # settled, ledgered and counted (once)
    responses: ResponsesCall | None = None  # a Responses API request: its translation and keeping
    prompt: str | None = None  # the library prompt rendered into it (x-xvckit-prompt): "name@version"

    @property
    def trace_id(self) -> str:
        """The id the caller sees (`x-request-id`, error bodies): its own, else the gateway's."""
        return self.client_request_id or self.request_id

    @property
    def elapsed_s(self) -> float:
        return time.perf_counter() - self.started

    def served_by(self, deployment: Deployment) -> None:
        """The deployment that answers: the routed one, then the one whose attempt answered."""
        self.provider, self.upstream_model, self.deployment = (
            deployment.provider.name,
            deployment.model,
            deployment.name,
        )

    def overhead_header(self) -> tuple[bytes, bytes]:
        return (b"x-xvckit-overhead-ms", f"{self.overhead_ms:.3f}".encode())

    def ledger_row(self, cost_usd: float) -> tuple:
        """The request's usage record, in the ledger's RAW_COLUMNS order."""
        u = self.usage
        return (
            self.request_id,
            self.arrived,
            self.endpoint,
            self.key_id,
            self.team_id,
            self.model,
            self.deployment,
            self.status,
            self.error,
            u.input_tokens,
            u.output_tokens,
            u.cached_tokens,
            u.cache_write_tokens,
            cost_usd,
            self.elapsed_s * 1000,
            self.ttft_ms,
            self.upstream_ms,
            self.overhead_ms,
            self.retries,
            self.cache_hit,
            self.client,
            self.cost_saved_usd,
            self.client_request_id,
            self.prompt,
        )

    def log(self) -> None:
        """The access log line of a proxied request (every one, refusals included)."""
        if access_log.isEnabledFor(logging.INFO):
            u = self.usage
            access_log.info(
                "%s POST %s %s model=%s provider=%s key=%s status=%d stream=%s in=%d out=%d cached=%d "
                "total_ms=%.1f ttft_ms=%s overhead_ms=%.3f%s%s ua=%s",
                self.request_id,
                _bounded(self.path, MAX_PATH_CHARS),
                self.endpoint,
                _escaped(self.model),
                self.provider,
                self.key_id or ("master" if self.authenticated else "anonymous"),
                self.status,
                self.stream,
                u.input_tokens,
                u.output_tokens,
                u.cached_tokens,
                self.elapsed_s * 1000,
                "-" if self.ttft_ms is None else f"{self.ttft_ms:.1f}",
                self.overhead_ms,
                f" error={self.error}" if self.error else "",
                f" client_id={self.client_request_id}" if self.client_request_id else "",
                _bounded(self.client, MAX_AGENT_CHARS),
            )


def user_agent(headers: dict[bytes, bytes]) -> str | None:
    """The request's user agent (its first MAX_AGENT_CHARS characters), None when it sent none."""
    return headers.get(b"user-agent", b"").decode("latin-1")[:MAX_AGENT_CHARS] or None


def log_answer(
    method: str, path: str, status: int, request_id: str, client_id: str | None, headers: dict[bytes, bytes]
) -> None:
    """The access log line of a request the proxy does not handle: no model, key or cost."""
    if access_log.isEnabledFor(logging.INFO):
        access_log.info(
            "%s %s %s status=%d%s ua=%s",
            request_id,
            _bounded(method, 16),
            _bounded(path, MAX_PATH_CHARS),
            status,
            f" client_id={client_id}" if client_id else "",
            _bounded(user_agent(headers), MAX_AGENT_CHARS),
        )


def _escaped(value: str | None) -> str | None:
    if value is None or (value.isprintable() and " " not in value):
        return value
    return ascii(value)


def _bounded(value: str | None, limit: int) -> str:
    """`value` for a log field: at most `limit` characters of it, escaped; "-" for none."""
    if not value:
        return "-"
    text = _escaped(value[:limit])
    return f"{text}..." if len(value) > limit else text
