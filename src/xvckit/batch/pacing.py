"""How many requests a run keeps in flight.

A fixed number (`--concurrency N`), or `auto`: additive increase, multiplicative decrease,
read from what the gateway answers. The gateway already paces each deployment under its
provider's limits, holding a request in its queue until there is room; what the client
decides is only how many to hand it at once:

- slow start: one more slot per fast answer (doubling per round trip) until the first sign of
  congestion, then one more per `limit` fast answers;
- a fast answer is one the gateway did not queue: the time it spent before calling upstream
  (`x-xvckit-overhead-ms`, which includes its queue wait) under QUEUED_MS;
- hold (no growth) when the gateway queued the answer, or the provider's rate-limit headers
  show less than LOW_REMAINING of the request limit left: more in flight would only wait;
- shrink by DECREASE when the gateway queued the answer longer than LONG_QUEUE_MS, and halve
  on a 429 (then no new request until its `retry-after` has passed); at most once per round of
  `limit` answers, so one burst of refusals counts once.

Remaining requests near zero is not a reason to shrink: a gateway pacing at a provider's limit
keeps it near zero by design, and shrinking then would starve a run whose answers are slow.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Mapping

from xvckit.providers.ratelimit import parse_anthropic_headers, parse_openai_headers

QUEUED_MS = 250.0
LONG_QUEUE_MS = 5_000.0
LOW_REMAINING = 0.05
DECREASE = 0.8
AUTO_START = 4
AUTO_MAX = 128
MAX_CONCURRENCY = 256


class Gate:
    """In-flight slots with a limit that may change while requests wait for one."""

    def __init__(self, limit: int, adaptive: bool, ceiling: int = AUTO_MAX) -> None:
        self.limit = float(limit)
        self.adaptive = adaptive
        self.ceiling = ceiling
        self.in_flight = 0
        self.slow_start = adaptive
        self.paused_until = 0.0
        self._answers = 0
        self._last_decrease = -(10**9)
        self._changed = asyncio.Condition()
        self.closed = False

    @property
    def slots(self) -> int:
        return max(1, int(self.limit))

    async def acquire(self) -> bool:
        """Wait for a slot (and for a 429's pause to end); False once the gate is closed."""
        async with self._changed:
            while True:
                if self.closed:
                    return False
                wait = self.paused_until - time.monotonic()
                if wait <= 0 and self.in_flight < self.slots:
                    self.in_flight += 1
                    return True
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._changed.wait(), wait if wait > 0 else None)

    async def release(self) -> None:
        async with self._changed:
            self.in_flight -= 1
            self._changed.notify_all()

    async def close(self) -> None:
        async with self._changed:
            self.closed = True
            self._changed.notify_all()

    async def wait_change(self) -> None:
        """Until a slot is released or the gate closes."""
        async with self._changed:
            await self._changed.wait()

    def answered(self, headers: Mapping[str, str]) -> None:
        """Learn from a successful answer's headers."""
        self._answers += 1
        if not self.adaptive:
            return
        queued_ms = _float(headers.get("x-xvckit-overhead-ms"))
        if queued_ms >= LONG_QUEUE_MS:
            self._decrease(DECREASE)
        elif queued_ms >= QUEUED_MS or _little_left(headers):
            self.slow_start = False
        else:
            self.limit = min(self.ceiling, self.limit + (1 if self.slow_start else 1 / self.limit))

    def throttled(self, retry_after_s: float | None) -> None:
        """A 429: halve, and send nothing new until `retry_after_s` has passed."""
        self._answers += 1
        if retry_after_s:
            self.paused_until = max(self.paused_until, time.monotonic() + retry_after_s)
        if self.adaptive:
            self._decrease(0.5)

    def _decrease(self, factor: float) -> None:
        self.slow_start = False
        if self._answers - self._last_decrease < self.slots:
            return
        self._last_decrease = self._answers
        self.limit = max(1.0, self.limit * factor)


def _float(value: str | None) -> float:
    try:
        return float(value) if value is not None else 0.0
    except ValueError:
        return 0.0


def _little_left(headers: Mapping[str, str]) -> bool:
    now = time.time()
    for limits in (parse_openai_headers(headers, now), parse_anthropic_headers(headers, now)):
        requests = limits.requests
        if (
            requests is not None
            and requests.limit > 0
            and requests.remaining < requests.limit * LOW_REMAINING
        ):
            return True
    return False
