"""The Redis plumbing the response cache and the idempotency store share: one client, and the
bookkeeping of falling back to local state when Redis is not there.

The same contract as `RedisPacer` (pacing_redis.py): a call that fails with a Redis or network
error marks the link `degraded` (the reason, for /readyz and logs; a warning is logged once per
outage) and the caller carries on with its local state. While degraded, callers do not try
Redis on the request path; every `retry_s` a background probe PINGs it, runs the owner's
`on_recover` (e.g. to hand over what was kept locally meanwhile), and clears `degraded`.

A client made here from a URL fails fast: `timeout_s` for connecting and for each reply, and
one retry without backoff, so an unreachable Redis costs a request at most about 2 x
`timeout_s` once, and nothing after that until the probe finds it back. A client passed in is
used as it is (it must not decode responses: values are binary).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable

from redis.asyncio import Redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import RedisError

# What "Redis is unavailable" looks like: redis-py's errors, socket errors, timeouts.
ERRORS = (RedisError, OSError, TimeoutError)


def connect(redis: str | Redis, timeout_s: float) -> tuple[Redis, bool]:
    """A client for `redis` (a URL or a client), and whether it was made here (and is ours to close)."""
    if isinstance(redis, Redis):
        return redis, False
    client = Redis.from_url(
        redis,
        socket_timeout=timeout_s,
        socket_connect_timeout=timeout_s,
        retry=Retry(NoBackoff(), 1),
    )
    return client, True


class RedisLink:
    """A Redis client and whether it may be used now.

    link = RedisLink(url, what="response cache", log=log)
    if link.local():                  # degraded: serve from local state (and probe when due)
        ...
    try:
        await link.redis.get(...)
    except ERRORS as exc:
        link.fail(exc)                # degraded from now on; serve this call locally too
    """

    def __init__(
        self,
        redis: str | Redis,
        *,
        what: str,
        log: logging.Logger,
        timeout_s: float = 0.25,
        retry_s: float = 2.0,
        clock: Callable[[], float] = time.monotonic,
        on_recover: Callable[[], Awaitable[object]] | None = None,
    ) -> None:
        self.redis, self._owned = connect(redis, timeout_s)
        self.what = what
        self.clock = clock
        self._log = log
        self._timeout_s = timeout_s
        self._retry_s = retry_s
        self._on_recover = on_recover
        self._degraded: str | None = None
        self._probe_at = 0.0
        self._probing = False
        self._tasks: set[asyncio.Task] = set()

    @property
    def degraded(self) -> str | None:
        """Why the owner runs on local state (for /readyz and logs), or None while Redis serves."""
        return self._degraded

    def fail(self, exc: BaseException) -> None:
        """A Redis call failed: run locally until a probe finds Redis back."""
        first_line = str(exc).splitlines()[0] if str(exc) else ""
        reason = f"Redis unavailable ({type(exc).__name__}: {first_line})"
        if self._degraded is None:
            self._log.warning("%s on local state: %s", self.what, reason)
        self._degraded = reason
        self._probe_at = self.clock() + self._retry_s

    def local(self) -> bool:
        """True while degraded; starts a background probe of Redis when one is due."""
        if self._degraded is None:
            return False
        if not self._probing and self.clock() >= self._probe_at:
            self._probing = True
            self.spawn(self._probe())
        return True

    async def _probe(self) -> None:
        try:
            await asyncio.wait_for(self.redis.ping(), self._timeout_s * 4)
            if self._on_recover is not None:
                await self._on_recover()
        except ERRORS as exc:
            self.fail(exc)
        else:
            self._log.warning("%s shares state through Redis again (was: %s)", self.what, self._degraded)
            self._degraded = None
        finally:
            self._probing = False

    def spawn(self, work: Awaitable[object]) -> None:
        """Run `work` in the background; `aclose` waits for it."""
        task = asyncio.ensure_future(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def aclose(self) -> None:
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._owned:
            await self.redis.aclose()
