"""Retry policy pieces: which failures to retry, full-jitter backoff, a retry budget, and a
circuit breaker per deployment. Pure bookkeeping on the event loop; no I/O."""

from __future__ import annotations

import random
import time
from collections import deque

# Worth another attempt: timeouts, conflicts, rate limits, server errors, Anthropic's overload.
RETRYABLE_STATUS = frozenset({408, 409, 429, 500, 502, 503, 504, 529})


def backoff_s(attempt: int, base_s: float, cap_s: float, retry_after_s: float | None = None) -> float:
    """Full jitter (uniform in [0, min(cap, base * 2^attempt)]), but never sooner than the
    provider's `retry-after`."""
    delay = random.uniform(0.0, min(cap_s, base_s * 2**attempt))
    return max(delay, retry_after_s or 0.0)


class RetryBudget:
    """Retries may add at most `ratio` extra upstream calls over the last `window_s`
    (plus `floor` retries at any time, so a quiet gateway can still retry): a failing
    provider gets a bounded amount of extra load, never a retry storm."""

    def __init__(self, ratio: float, floor: int = 3, window_s: float = 10.0, clock=time.monotonic) -> None:
        self.ratio = ratio
        self.floor = floor
        self.window_s = window_s
        self._clock = clock
        self._requests: deque[float] = deque()
        self._retries: deque[float] = deque()

    def request(self) -> None:
        self._requests.append(self._clock())

    def try_spend(self) -> bool:
        now = self._clock()
        for stamps in (self._requests, self._retries):
            while stamps and stamps[0] < now - self.window_s:
                stamps.popleft()
        if len(self._retries) >= self.floor + self.ratio * len(self._requests):
            return False
        self._retries.append(now)
        return True


class CircuitBreaker:
    """Per deployment: after `threshold` failures in a row it opens for `cooldown_s` (calls go
    to a fallback at once); then one trial call decides whether it closes again."""

    def __init__(self, threshold: int = 5, cooldown_s: float = 30.0, clock=time.monotonic) -> None:
        self.threshold = threshold
        self.cooldown_s = cooldown_s
        self._clock = clock
        self._failures: dict[str, int] = {}
        self._open_until: dict[str, float] = {}

    def allows(self, name: str) -> bool:
        until = self._open_until.get(name)
        if until is None:
            return True
        if self._clock() < until:
            return False
        self._open_until[name] = self._clock() + self.cooldown_s  # half-open: this call is the trial
        return True

    def success(self, name: str) -> None:
        self._failures.pop(name, None)
        self._open_until.pop(name, None)

    def failure(self, name: str) -> None:
        count = self._failures.get(name, 0) + 1
        self._failures[name] = count
        if count >= self.threshold:
            self._open_until[name] = self._clock() + self.cooldown_s

    def open_circuits(self) -> list[str]:
        now = self._clock()
        return [name for name, until in self._open_until.items() if until > now]
