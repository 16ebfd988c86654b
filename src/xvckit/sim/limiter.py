"""Requests- and tokens-per-minute limits over a true sliding window, one per API key.

A fixed-bucket counter would let a client send twice its limit across a bucket edge; the
gateway's pacing must be tested against the stricter, honest window. Requests admitted within
the same 10 ms are kept as one entry, so memory stays bounded (6,000 entries a key) however
high the limits, at the cost of expiring a request up to 10 ms early. Refused requests do not
count against the limit (the simulator's choice; OpenAI documents that they do, which would
make `retry-after` unreliable). A request's tokens are its input plus the output it will get,
known up front since the simulator decides the reply before sending it.

Providers may enforce a per-minute limit over a shorter window (OpenAI: "60,000 requests/minute
may be enforced as 1,000 requests/second"; Anthropic: 60 RPM "may be enforced as 1 request per
second"). `window_s` below 60 does that: at most limit * window_s / 60 (at least 1) in any
`window_s`. The headers keep the per-minute view the providers document (the limit a minute,
what is left of it over the last minute), and `reset` is, as documented, the time until the
limit is back to its initial state, which under short-window enforcement is within `window_s`;
a 429's `retry-after` is when the enforced window has room again.
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
    """`rpm` / `tpm` of 0 mean no limit of that kind; `window_s` (1..60): the window they are
    enforced over (None: the whole minute)."""

    def __init__(
        self, rpm: int, tpm: int, clock: Callable[[], float] = time.monotonic, window_s: float | None = None
    ) -> None:
        if window_s is not None and not 1 <= window_s <= WINDOW_S:
            raise ValueError(f"the enforcement window must be 1 to {WINDOW_S:g} seconds, not {window_s}")
        self.rpm = rpm
        self.tpm = tpm
        self._clock = clock
        self._windows: dict[bytes, _Window] = {}
        self._span = WINDOW_S if window_s is None else window_s
        self._enforced: dict[bytes, _Window] | None = None if self._span == WINDOW_S else {}
        self._caps = (_share(rpm, self._span), _share(tpm, self._span))

    @property
    def active(self) -> bool:
        return bool(self.rpm or self.tpm)

    def reset(self) -> None:
        self._windows.clear()
        if self._enforced is not None:
            self._enforced.clear()

    def admit(self, key: bytes, tokens: int) -> Verdict:
        now = self._clock()
        window = _window(self._windows, key, now, WINDOW_S)
        enforced, span = window, WINDOW_S
        rpm, tpm = self.rpm, self.tpm
        if self._enforced is not None:
            enforced, span = _window(self._enforced, key, now, self._span), self._span
            rpm, tpm = self._caps
        if rpm and enforced.requests >= rpm:
            wait = _free_in(enforced, 1, enforced.requests + 1 - rpm, now, span)
            return self._refuse(window, now, "requests", self.rpm, window.requests, 1, wait)
        if tpm and enforced.tokens + tokens > tpm:
            wait = None if tokens > tpm else _free_in(enforced, 2, enforced.tokens + tokens - tpm, now, span)
            return self._refuse(window, now, "tokens", self.tpm, window.tokens, tokens, wait)
        _count(window, now, tokens)
        if enforced is not window:
            _count(enforced, now, tokens)
        return Verdict(self._limits(window, now, None))

    def snapshot(self, key: bytes, retry_after_s: float | None = None) -> RateLimits:
        """The limits as they stand for `key`, e.g. for a 429 forced by a test."""
        now = self._clock()
        return self._limits(_window(self._windows, key, now, WINDOW_S), now, retry_after_s)

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
        # Both limits are back to full when the newest admitted request (the newest of both
        # windows) leaves the enforced window.
        reset = max(0.0, window.slots[-1][0] + self._span - now) if window.slots else 0.0
        return RateLimits(
            requests=Limit(self.rpm, max(0, self.rpm - window.requests), reset) if self.rpm else None,
            tokens=Limit(self.tpm, max(0, self.tpm - window.tokens), reset) if self.tpm else None,
            retry_after_s=retry_after_s,
        )


def _share(limit: int, window_s: float) -> int:
    """What a per-minute limit allows in `window_s` (at least 1; 0: no limit)."""
    return max(1, int(limit * window_s / WINDOW_S)) if limit else 0


def _window(windows: dict[bytes, _Window], key: bytes, now: float, span: float) -> _Window:
    window = windows.get(key)
    if window is None:
        window = windows[key] = _Window()
    slots = window.slots
    horizon = now - span
    while slots and slots[0][0] <= horizon:
        _, requests, tokens = slots.popleft()
        window.requests -= requests
        window.tokens -= tokens
    return window


def _count(window: _Window, now: float, tokens: int) -> None:
    slots = window.slots
    if slots and now - slots[-1][0] < SLOT_S:
        slots[-1][1] += 1
        slots[-1][2] += tokens
    else:
        slots.append([now, 1, tokens])
    window.requests += 1
    window.tokens += tokens


def _free_in(window: _Window, field: int, excess: int, now: float, span: float) -> float:
    """Seconds until `excess` requests (field 1) or tokens (field 2) have left the window."""
    for slot in window.slots:
        excess -= slot[field]
        if excess <= 0:
            return slot[0] + span - now
    return 0.0
