"""One item's request to the gateway, retried until it has an answer or cannot get one.

Every request carries `x-xvckit-priority: batch` (people at their keyboards on the same key go
first) and the item's `Idempotency-Key`, so a retry, or a re-run after the client died, is
answered from the gateway's record when the first try reached it: never paid twice.

Retried: connection errors and timeouts, 408, 409 (the first try still in flight), 429 and
5xx, with full-jitter backoff that waits at least the `retry-after` the gateway sent. Not
retried: other 4xx (the request is wrong); 401, 403 and 404 end the run (the key, the model
or the route is wrong for every item alike).
"""

from __future__ import annotations

import asyncio
import os
import random
import time
from dataclasses import dataclass, field

import httpx
import orjson

from xvckit import __version__
from xvckit.batch.pacing import Gate
from xvckit.batch.requests import Dialect, Request
from xvckit.errors import UserError
from xvckit.providers.ratelimit import parse_retry_after
from xvckit.providers.usage import Usage

RETRYABLE = frozenset({408, 409, 429, 500, 502, 503, 504, 529})
FATAL = frozenset({401, 403, 404})
BACKOFF_BASE_S = 1.0
BACKOFF_CAP_S = 60.0
MAX_ERROR_CHARS = 500
REPLAYED = "idempotent-replay"


@dataclass(slots=True)
class Outcome:
    text: str | None = None
    usage: Usage = field(default_factory=Usage)
    replayed: bool = False  # answered from the gateway's Idempotency-Key record
    error: str | None = None
    fatal: bool = False  # no other item can succeed either
    attempts: int = 0


@dataclass(frozen=True, slots=True)
class Endpoint:
    """Where a dialect's requests go and the key they carry (never stored or printed)."""

    root: str  # the gateway's root URL, without /v1
    key: str


def endpoint(dialect: Dialect, url: str | None, key: str | None) -> Endpoint:
    """`--gateway`/`--key`, else the dialect's environment variables (the SDKs' own), else
    XVCKIT_MASTER_KEY for the key."""
    prefix = "ANTHROPIC" if dialect.name == "anthropic" else "OPENAI"
    url = url or os.environ.get(f"{prefix}_BASE_URL")
    if not url:
        raise UserError(f"no gateway: pass --gateway URL or set {prefix}_BASE_URL")
    if not url.startswith(("http://", "https://")):
        raise UserError(f"--gateway {url}: not an http(s) URL")
    key = key or os.environ.get(f"{prefix}_API_KEY") or os.environ.get("XVCKIT_MASTER_KEY")
    if not key:
        raise UserError(f"no gateway key: pass --key or set {prefix}_API_KEY (or XVCKIT_MASTER_KEY)")
    root = url.rstrip("/").removesuffix("/v1")
    return Endpoint(root, key)


class GatewayClient:
    def __init__(
        self, where: Endpoint, dialect: Dialect, *, pool: int, max_attempts: int, timeout_s: float
    ) -> None:
        self.dialect = dialect
        self.max_attempts = max_attempts
        self.http = httpx.AsyncClient(
            base_url=where.root,
            headers={
                **dialect.auth(where.key),
                "content-type": "application/json",
                "x-xvckit-priority": "batch",
                "user-agent": f"xvckit-batch/{__version__}",
            },
            limits=httpx.Limits(max_connections=pool, max_keepalive_connections=pool),
            timeout=httpx.Timeout(timeout_s, connect=10.0, pool=None),
        )

    async def aclose(self) -> None:
        await self.http.aclose()

    async def send(self, request: Request, gate: Gate) -> Outcome:
        error = "not sent"
        for attempt in range(1, self.max_attempts + 1):
            retry_after = None
            try:
                response = await self.http.post(
                    self.dialect.path,
                    content=request.body,
                    headers={"idempotency-key": request.idempotency_key},
                )
            except httpx.TransportError as exc:
                error = f"gateway unreachable: {type(exc).__name__}"
            else:
                status = response.status_code
                if status == 200:
                    gate.answered(response.headers)
                    return self._answer(response, attempt)
                error = f"{status}: {error_message(response)}"
                retry_after = parse_retry_after(response.headers, time.time())
                if status == 429:
                    gate.throttled(retry_after)
                if status not in RETRYABLE:
                    return Outcome(error=error, fatal=status in FATAL, attempts=attempt)
            if attempt < self.max_attempts:
                await asyncio.sleep(backoff(attempt, retry_after))
        return Outcome(error=f"{error} (after {self.max_attempts} attempts)", attempts=self.max_attempts)

    def _answer(self, response: httpx.Response, attempt: int) -> Outcome:
        try:
            text, usage = self.dialect.answer(orjson.loads(response.content))
        except (orjson.JSONDecodeError, ValueError, AttributeError) as exc:
            return Outcome(error=f"200 with a body that is not an answer: {exc}", attempts=attempt)
        replayed = response.headers.get("x-xvckit-cache") == REPLAYED
        return Outcome(text, usage, replayed, attempts=attempt)


def backoff(attempt: int, retry_after_s: float | None) -> float:
    """Full jitter, doubling per attempt up to the cap; never shorter than `retry-after`."""
    jitter = random.uniform(0, min(BACKOFF_CAP_S, BACKOFF_BASE_S * 2 ** (attempt - 1)))
    return max(jitter, retry_after_s or 0.0)


def error_message(response: httpx.Response) -> str:
    """The error's message in either dialect's shape, else the start of the body."""
    try:
        body = orjson.loads(response.content)
        message = body["error"]["message"]
    except (orjson.JSONDecodeError, KeyError, TypeError):
        message = response.text
    return " ".join(str(message).split())[:MAX_ERROR_CHARS] or response.reason_phrase
