"""What a simulator route receives and returns, the dialect that shapes a provider's refusals,
and the services the simulator offers its routes."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Any, Protocol

from xvckit.providers.ratelimit import RateLimits
from xvckit.sim.batch_store import BatchStore
from xvckit.sim.catalog import Catalog
from xvckit.sim.kept import KeptConversations
from xvckit.sim.limiter import Verdict
from xvckit.sim.settings import SimSettings

Headers = list[tuple[bytes, bytes]]


class Dialect(Protocol):
    """One provider's way of authenticating, identifying and refusing requests."""

    request_id_header: bytes
    server_errors: tuple[bytes, ...]  # statuses a random failure picks from

    def api_key(self, headers: dict[bytes, bytes]) -> bytes | None: ...

    def error(
        self, status: int, message: str, request_id: str, code: str | None = None, param: str | None = None
    ) -> bytes: ...

    def auth_error(self, missing: bool, request_id: str) -> bytes: ...

    def model_not_found(self, model: str, request_id: str) -> bytes:
        """The 404 body for a model this provider does not serve."""
        ...

    def status_error(self, status: int, request_id: str) -> bytes:
        """The body this provider sends with `status` when nothing more specific applies."""
        ...

    def rate_limited(self, verdict: Verdict, model: str, request_id: str) -> bytes: ...

    def rate_limit_headers(self, limits: RateLimits) -> Headers: ...


@dataclass(slots=True)
class Reply:
    status: int
    parts: list[bytes]  # one body, or the events of a stream
    stream: bool = False
    tokens: int = 0  # output tokens generated: sent at the simulator's output speed


@dataclass(slots=True)
class Request:
    dialect: Dialect
    headers: dict[bytes, bytes]
    request_id: str
    api_key: bytes = b""
    json: dict[str, Any] = field(default_factory=dict)  # the parsed body; empty for a GET
    body: bytes = b""  # the body as sent, for a route that parses it itself (`Route.raw_body`)
    out_headers: Headers = field(default_factory=list)  # added to whatever reply is sent

    def control(self, name: bytes) -> int | None:
        """A numeric `x-sim-*` control header, or None when absent or not a number."""
        value = self.headers.get(name)
        return int(value) if value is not None and value.isdigit() else None

    def fail(self, status: int, message: str, code: str | None = None, param: str | None = None) -> Reply:
        return Reply(status, [self.dialect.error(status, message, self.request_id, code, param)])


class Simulator(Protocol):
    """What the simulator does for its routes."""

    settings: SimSettings
    catalog: Catalog
    kept: KeptConversations  # the Responses API's stored conversations
    batches: BatchStore  # the batch APIs' files and batches

    def unknown_model(self, req: Request, model: str) -> Reply | None:
        """The 404 to send if the simulator does not serve `model`, else None."""
        ...

    def admit(self, req: Request, model: str, tokens: int) -> Reply | None:
        """None when the rate limits let `tokens` through, else the 429 to send."""
        ...

    async def delay(self, req: Request, share: float = 1.0) -> None:
        """Wait `share` of the time to first token (the request's `x-sim-latency-ms` whole)."""
        ...

    def new_id(self, prefix: str) -> str: ...


Handler = Callable[[Simulator, Request], Awaitable[Reply]]


@dataclass(frozen=True, slots=True)
class Route:
    name: str  # the label in the simulator's statistics
    dialect: Dialect
    handler: Handler
    raw_body: bool = False  # not JSON: the route reads `Request.body` itself (a file upload)


def phrase(status: int) -> str:
    """The reason phrase of a status ("Not Found"); 529, which HTTP does not name, is "Overloaded"."""
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Overloaded" if status == 529 else "Error"


def bearer_token(headers: dict[bytes, bytes]) -> bytes | None:
    """The token of an `Authorization: Bearer <token>` header."""
    value = headers.get(b"authorization")
    if value is None or value[:7].lower() != b"bearer ":
        return None
    return value[7:].strip() or None
