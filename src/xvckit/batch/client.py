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
from collections.abc import Mapping
from dataclasses import dataclass, field

import aiohttp
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
    """On aiohttp, not httpx: httpx's pool looks at every open connection for each request,
    ~9 ms of CPU a request with a hundred open (bench/batch_run.py; the target is 5 ms an item)."""

    def __init__(
        self, where: Endpoint, dialect: Dialect, *, pool: int, max_attempts: int, timeout_s: float
    ) -> None:
        self.dialect = dialect
        self.max_attempts = max_attempts
        self._url = where.root + dialect.path
        self._headers = {
            **dialect.auth(where.key),
            "content-type": "application/json",
            "x-xvckit-priority": "batch",
            "user-agent": f"xvckit-batch/{__version__}",
        }
        self._pool = pool
        self._timeout = aiohttp.ClientTimeout(total=timeout_s, connect=10.0)
        self._session: aiohttp.ClientSession | None = None  # made in the loop that sends

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()

    def _http(self) -> aiohttp.ClientSession:
        if self._session is None:
            self._session = aiohttp.ClientSession(
                headers=self._headers, connector=aiohttp.TCPConnector(limit=self._pool), timeout=self._timeout
            )
        return self._session

    async def send(self, request: Request, gate: Gate) -> Outcome:
        error = "not sent"
        for attempt in range(1, self.max_attempts + 1):
            retry_after = None
            try:
                headers = {"idempotency-key": request.idempotency_key}
                async with self._http().post(self._url, data=request.body, headers=headers) as response:
                    status, answered, body = response.status, response.headers, await response.read()
            except (aiohttp.ClientError, TimeoutError) as exc:
                error = f"gateway unreachable: {type(exc).__name__}"
            else:
                if status == 200:
                    gate.answered(answered)
                    return self._answer(body, answered, attempt)
                error = f"{status}: {error_message(body, response.reason)}"
                retry_after = parse_retry_after(answered, time.time())
                if status == 429:
                    gate.throttled(retry_after)
                if status not in RETRYABLE:
                    return Outcome(error=error, fatal=status in FATAL, attempts=attempt)
            if attempt < self.max_attempts:
                await asyncio.sleep(backoff(attempt, retry_after))
        return Outcome(error=f"{error} (after {self.max_attempts} attempts)", attempts=self.max_attempts)

    def _answer(self, body: bytes, headers: Mapping[str, str], attempt: int) -> Outcome:
        try:
            text, usage = self.dialect.answer(orjson.loads(body))
        except (orjson.JSONDecodeError, ValueError, AttributeError) as exc:
            return Outcome(error=f"200 with a body that is not an answer: {exc}", attempts=attempt)
        replayed = headers.get("x-xvckit-cache") == REPLAYED
        return Outcome(text, usage, replayed, attempts=attempt)


def backoff(attempt: int, retry_after_s: float | None) -> float:
    """Full jitter, doubling per attempt up to the cap; never shorter than `retry-after`."""
    jitter = random.uniform(0, min(BACKOFF_CAP_S, BACKOFF_BASE_S * 2 ** (attempt - 1)))
    return max(jitter, retry_after_s or 0.0)


def error_message(body: bytes, reason: str | None) -> str:
    """The error's message in either dialect's shape, else the start of the body."""
    try:
        message = orjson.loads(body)["error"]["message"]
    except (orjson.JSONDecodeError, KeyError, TypeError):
        message = body.decode("utf-8", "replace")
    return " ".join(str(message).split())[:MAX_ERROR_CHARS] or (reason or "")
