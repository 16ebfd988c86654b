"""Requests- and tokens-per-minute limits over a true 60 s sliding window, one per API key.

A fixed-bucket counter would let a client send twice its limit across a bucket edge; the
gateway's pacing must be tested against the stricter, honest window. Requests admitted within
the same 10 ms are kept as one entry, so memory stays bounded (6,000 entries a key) however
high the limits, at the cost of expiring a request up to 10 ms early. Refused requests do not
count against the limit (the simulator's choice; OpenAI documents that they do, which would
make `retry-after` unreliable). A request's tokens are its input plus the output it will get,
known up front since the simulator decides the reply before sending it.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

from xvckit.providers.ratelimit import Limit, RateLimits

WINDOW_S = 60.0
SLOT_S = 0.01


@dataclass(frozen=True, slots=True)
class Verdict:
    limits: RateLimits  # as the headers show it; `retry_after_s` set when refused
    refused: str | None = None  # "requests" or "tokens"
    limit: int = 0  # of the refused kind, for the error message
    used: int = 0
    requested: int = 0

    @property
    def too_large(self) -> bool:
        """The request alone exceeds the token limit: waiting will not help."""
        return self.refused == "tokens" and self.requested > self.limit


class _Window:
    __slots__ = ("requests", "slots", "tokens")

    def __init__(self) -> None:
        self.slots: deque[list] = deque()  # [start, requests, tokens], oldest first
        self.requests = 0
        self.tokens = 0


class Limiter:
    """`rpm` / `tpm` of 0 mean no limit of that kind."""

    def __init__(self, rpm: int, tpm: int, clock: Callable[[], float] = time.monotonic) -> None:
        self.rpm = rpm
        self.tpm = tpm
        self._clock = clock
        self._windows: dict[bytes, _Window] = {}

    @property
    def active(self) -> bool:
        return bool(self.rpm or self.tpm)

    def reset(self) -> None:
        self._windows.clear()

    def admit(self, key: bytes, tokens: int) -> Verdict:
        now = self._clock()
        window = self._window(key, now)
        if self.rpm and window.requests >= self.rpm:
            wait = self._free_in(window, 1, window.requests + 1 - self.rpm, now)
            return self._refuse(window, now, "requests", self.rpm, window.requests, 1, wait)
        if self.tpm and window.tokens + tokens > self.tpm:
            wait = (
                None
                if tokens > self.tpm
                else self._free_in(window, 2, window.tokens + tokens - self.tpm, now)
            )
            return self._refuse(window, now, "tokens", self.tpm, window.tokens, tokens, wait)
        slots = window.slots
        if slots and now - slots[-1][0] < SLOT_S:
            slots[-1][1] += 1
            slots[-1][2] += tokens
        else:
            slots.append([now, 1, tokens])
        window.requests += 1
        window.tokens += tokens
        return Verdict(self._limits(window, now, None))

    def snapshot(self, key: bytes, retry_after_s: float | None = None) -> RateLimits:
        """The limits as they stand for `key`, e.g. for a 429 forced by a test."""
        now = self._clock()
        return self._limits(self._window(key, now), now, retry_after_s)

    def _window(self, key: bytes, now: float) -> _Window:
        window = self._windows.get(key)
        if window is None:
            window = self._windows[key] = _Window()
        slots = window.slots
        horizon = now - WINDOW_S
        while slots and slots[0][0] <= horizon:
            _, requests, tokens = slots.popleft()
            window.requests -= requests
            window.tokens -= tokens
        return window

    @staticmethod
    def _free_in(window: _Window, field: int, excess: int, now: float) -> float:
        """Seconds until `excess` requests (field 1) or tokens (field 2) have left the window."""
        for slot in window.slots:
            excess -= slot[field]
            if excess <= 0:
                return slot[0] + WINDOW_S - now
        return 0.0

    def _refuse(
        self,
        window: _Window,
        now: float,
        kind: str,
        limit: int,
        used: int,
        requested: int,
        wait: float | None,
    ) -> Verdict:
        return Verdict(self._limits(window, now, wait), kind, limit, used, requested)

    def _limits(self, window: _Window, now: float, retry_after_s: float | None) -> RateLimits:
        # Both limits are back to full when the newest admitted request leaves the window.
        reset = window.slots[-1][0] + WINDOW_S - now if window.slots else 0.0
        return RateLimits(
            requests=Limit(self.rpm, max(0, self.rpm - window.requests), reset) if self.rpm else None,
            tokens=Limit(self.tpm, max(0, self.tpm - window.tokens), reset) if self.tpm else None,
            retry_after_s=retry_after_s,
        )
