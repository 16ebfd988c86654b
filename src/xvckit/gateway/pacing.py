"""Pacing: admit upstream calls under each deployment's requests- and tokens-per-minute limits.

A *lane* is one deployment: (provider, upstream key index, upstream model). Each lane has a
limit in requests per minute and one in tokens per minute, configured (`rpm:` / `tpm:`) or
learned from the provider's `x-ratelimit-*` / `anthropic-ratelimit-*` headers. The gateway
asks for a grant right before each upstream call, tells the pacer what the provider
answered, and settles the real token count afterwards:

    grant = await pacer.acquire(lane, sum(estimate_parts(body, model)), priority, deadline=30.0)
    response = await upstream(...)                       # sent at once after the grant
    pacer.observe(lane, response.status, response.headers, grant)
    ...
    pacer.settle(grant, usage.input_tokens + usage.output_tokens)

Algorithm: a sliding-window log, the same shape as the strictest provider limit (a true 60 s
sliding window, which the simulator enforces). Every admitted call is an entry that counts
against its lane for `window_s + guard_s` after admission, weighing one request and its
tokens. A call is admitted when the entries still in the window leave room for one more
request and for its tokens. So:

- No window of the provider's sees more than the limit: an entry counts here `guard_s`
  longer than at the provider, which covers the time from the grant to the request's arrival
  upstream (connection pick-up, writing, network). Admission that conforms to the sliding
  window also conforms to a token bucket of the same limit (capacity L, refill L/60 s), the
  other way providers count.
- The whole limit is usable, and at once: a burst of L calls goes out immediately, and each
  later call as soon as the oldest entry leaves the window. That is the fastest schedule the
  limit allows: 600 calls at 300 RPM take one window plus the calls' own time (about 64 s
  with 64 connections and 0.5 s calls; ideal 62.5 s). Evenly spaced emission (GCRA with
  interval 60/L) is safe but takes (N-1)*60/L s, 120 s for the same load; a GCRA burst
  tolerance large enough to close that gap lets up to 2L calls into one sliding window. The
  limit is not shaved to 98-99% either: at exact multiples that costs a whole window (600
  calls at 297 RPM need three windows, not two); the guard time is the conservative part.

Waiting: a call that does not fit queues, higher priority first and first-come-first-served
within a priority (the head blocks the rest: a large call is not starved by small ones). One
pump task per busy lane sleeps until the head fits or the earliest queued deadline. A call
whose expected wait (behind every call queued ahead of it, a window per full limit) already
exceeds its deadline fails at once with `QueueTimeout(retry_after_s)`; so does one still
queued when its deadline passes (e.g. overtaken by higher priorities). A call whose estimate
is more than the lane's whole tokens-per-minute limit could never fit: it fails at once with
`NeverFits` (queued, it would hold every call behind it until the window emptied), and so
does a queued one whose lane learns a limit below it.

Learning (`observe`): the limits in the headers lower (never raise) the configured ones. The
provider's `remaining` tells of usage the pacer did not make (another client of the same key,
a replica without shared state): when the provider counts more than the pacer had admitted
when it granted that call (beyond a small slack), the difference is held against the lane
until the provider's reset (at most a window). A 429 makes the lane cool down until its
`retry-after` (else the reset of the exhausted limit, else `DEFAULT_COOLDOWN_S`): nothing is
admitted on it until then. `settle` corrects a call's tokens while it is in the window, and
when calls use more tokens than estimated the lane scales its estimates up (EWMA, never down
past 1).

Short windows: a provider may enforce its per-minute limit over a shorter window (OpenAI: "60,000
requests/minute may be enforced as 1,000 requests/second"; Anthropic: 60 RPM as 1 a second), and
then a minute's burst fails. So each lane also keeps its calls within `limit * burst_s / 60` over
any `burst_s` (plus a guard of 5%, at least 50 ms), and `burst_s` is learned: it starts at
`SMOOTH_S` (1 s: the limit spread evenly over the minute, which every provider accepts) and
widens only to what the provider shows it accepts: after a successful call, the `reset` of its
requests limit (the time until the limit is back to its initial state) is at most the window
the provider enforces over, so `burst_s` rises to it (a true 60 s window reads ~60 s at once,
and the whole minute's burst is usable again). A 429 while the provider's own per-minute count
had room means a shorter window than `burst_s`: it halves, and never widens to the window that
failed again. `enforced_over_s` (a known window) turns learning off. A lane with no limit
known yet sends one call and waits for its answer (up to `SCOUT_S`) before sending more: a
burst sent blind into a 1 s window is mostly refused. A call that gets no answer (`unanswered`:
refused, reset, timed out) ends the wait too.

Key pools: `headroom(lane)` (0..1 after what is in the window and queued; 0 while cooling or
disabled) and `best(lanes)`; `disable(lane, reason)` takes a key out after a 401/403.

Everything here runs on the event loop and never awaits between checking a window and
reserving in it. Times come from `clock` and waits go through `sleep` (both injectable; the
tests run the pacer in virtual time). Cost of an admission with room: about 5-10 µs
(`tests/test_pacing.py::test_acquire_cost`). `RedisPacer` (pacing_redis.py) keeps the
windows in Redis so that replicas share them.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import logging
import math
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import NamedTuple

from xvckit.gateway.window_log import WindowLog
from xvckit.providers.ratelimit import Limit, RateLimits, parse_anthropic_headers, parse_openai_headers

log = logging.getLogger("xvckit.gateway.pacing")

WINDOW_S = 60.0
GUARD_S = 1.0  # how much longer than the provider an entry counts here (see the module docs)
DEFAULT_COOLDOWN_S = 1.0  # after a 429 that names no wait
REQUEST_SLACK = 0.02  # share of a limit the provider may count beyond ours before we believe it
TOKEN_SLACK = 0.05
SCALE_WEIGHT = 0.2  # of each settled call in the lane's estimate correction
SMOOTH_S = 1.0  # the shortest window a per-minute limit is documented to be enforced over
SCOUT_S = 5.0  # longest wait for the first answer of a lane with no limit known
_EPSILON = 1e-6

Headers = Mapping[str, str] | Iterable[tuple[bytes, bytes]]


class Lane(NamedTuple):
    """One deployment: a provider, one of its upstream keys (by index, never the key), a model.
    A tuple, not a frozen dataclass: the pacer looks its state up by lane a few times a
    request, and a tuple hashes in C where a dataclass calls its Python `__hash__`."""

    provider: str
    key: int
    model: str

    def __str__(self) -> str:
        return f"{self.provider}#{self.key}/{self.model}"


@dataclass(slots=True, eq=False)
class Grant:
    """An admitted call: it counts against its lane until `expires_at` (pacer clock)."""

    lane: Lane
    tokens: int  # counted against the lane's tpm; `settle` sets the real count
    estimate: int  # as given to `acquire`
    priority: int
    admitted_at: float
    expires_at: float
    waited_s: float  # time spent queued
    seen_requests: int = 0  # the lane's requests in the window just after admission (this one included)
    seen_tokens: int = 0
    seen_admitted: int = 0  # the lane's admissions ever, just after this one (see `Pacer._ours`)
    seen_admitted_tokens: int = 0
    ref: str | None = None  # the shared entry (RedisPacer), None for a local one
    settled: bool = False
    entry: int = -1  # its entry in the lane's local window (-1: none)


class QueueTimeout(Exception):
    """Waiting would be pointless: answer 429 with `retry-after: retry_after_s` (rounded up)."""

    def __init__(self, lane: Lane, retry_after_s: float, reason: str) -> None:
        self.lane = lane
        self.retry_after_s = max(0.0, retry_after_s)
        self.reason = reason
        super().__init__(f"{lane}: {reason}; retry in {self.retry_after_s:.1f} s")


class NeverFits(Exception):
    """The call's estimate is more than the lane's tokens-per-minute limit: it can never fit."""

    def __init__(self, lane: Lane, tokens: int, tpm: int) -> None:
        self.lane = lane
        self.tokens = tokens
        self.tpm = tpm
        super().__init__(f"{lane}: {tokens} tokens, more than the limit of {tpm} a minute")


class LaneDisabled(Exception):
    """The lane's upstream key was taken out (401/403); route to another key."""

    def __init__(self, lane: Lane, reason: str) -> None:
        self.lane = lane
        self.reason = reason
        super().__init__(f"{lane} is disabled: {reason}")


class _Waiter:
    __slots__ = ("counted", "deadline_at", "future", "gone", "priority", "queued_at", "seq", "tokens")

    def __init__(
        self,
        priority: int,
        seq: int,
        tokens: int,
        queued_at: float,
        deadline_at: float,
        future: asyncio.Future,
    ) -> None:
        self.priority = priority
        self.seq = seq
        self.tokens = tokens
        self.queued_at = queued_at
        self.deadline_at = deadline_at
        self.future = future
        self.gone = False  # left the queue (admitted, failed or cancelled); skipped in the heaps
        self.counted = 0  # its tokens as the queue's totals count them

    def __lt__(self, other: _Waiter) -> bool:
        return (-self.priority, self.seq) < (-other.priority, other.seq)


@dataclass(slots=True, eq=False)
class _LaneState:
    lane: Lane
    window: WindowLog  # the admitted calls still counted: stamp = admission, weight = tokens
    rpm_set: int | None = None  # configured
    tpm_set: int | None = None
    rpm_seen: int | None = None  # learned from headers
    tpm_seen: int | None = None
    rpm: int | None = None  # in force: the lower of the two (`limits_changed` keeps it)
    tpm: int | None = None
    ext_requests: int = 0  # counted by the provider, not admitted here; until ext_until
    ext_tokens: int = 0
    ext_until: float = 0.0
    admitted: int = 0  # admissions ever, and their tokens (estimates)
    admitted_tokens: int = 0
    waits: int = 0  # calls admitted after a wait in the queue, ever, and their waits summed
    waited_s: float = 0.0
    cool_until: float = 0.0
    scale: float = 1.0  # real tokens / estimate, when above 1 (EWMA over settled calls)
    disabled: str | None = None
    silent: bool = False  # the provider answers without rate-limit headers (and no limit is set)
    burst_s: float = SMOOTH_S  # the window the provider enforces its limits over, as far as known
    burst_ceiling: float = math.inf  # a 429 showed the provider's window is shorter than this
    burst_fixed: bool = False  # burst_s is known (configured), not learned
    scouting_until: float = 0.0  # a first call is out on a lane with no limit known
    queue: list[_Waiter] = field(default_factory=list)  # heap: priority, then arrival
    deadlines: list[tuple[float, int, _Waiter]] = field(default_factory=list)  # heap
    queued: dict[int, list[int]] = field(default_factory=dict)  # priority -> [waiters, tokens]
    shared_refs: dict[int, str] = field(default_factory=dict)  # RedisPacer: local entries it shared
    live: int = 0  # waiters still waiting
    pump: asyncio.Task | None = None
    timer: asyncio.Task | None = None
    wake_at: float = math.inf

    @property
    def requests(self) -> int:
        """Admitted calls in the window."""
        return self.window.count

    @property
    def tokens(self) -> int:
        return int(self.window.total)

    def limits_changed(self) -> None:
        """Work out the limits in force once, when they change, not at each call."""
        self.rpm = _lower(self.rpm_set, self.rpm_seen)
        self.tpm = _lower(self.tpm_set, self.tpm_seen)


def _lower(configured: int | None, learned: int | None) -> int | None:
    if configured is None:
        return learned
    if learned is None:
        return configured
    return min(configured, learned)


_RATE_LIMIT_HEADERS = (b"x-ratelimit-", b"anthropic-ratelimit-", b"retry-after")


def header_map(headers: Headers) -> Mapping[str, str]:
    """The rate-limit headers of a response as a lower-case mapping (raw ASGI/aiohttp pairs too).
    Names are tested as bytes (one C call per header: this runs on every response)."""
    if not isinstance(headers, list) and isinstance(headers, Mapping):  # the ABC check is slow
        return headers
    found: dict[str, str] = {}
    for name, value in headers:
        if type(name) is not bytes:  # str pairs (aiohttp's items())
            name = str(name).encode("latin-1")
        name = name.lower()
        if name.startswith(_RATE_LIMIT_HEADERS):
            found[name.decode("latin-1")] = (
                value.decode("latin-1") if isinstance(value, bytes) else str(value)
            )
    return found


def parse_limits(headers: Mapping[str, str], wall_now: float) -> RateLimits:
    """Either provider's rate-limit headers (Anthropic's when any of theirs is present)."""
    if (
        headers.get("anthropic-ratelimit-requests-limit") is not None
        or headers.get("anthropic-ratelimit-tokens-limit") is not None
    ):
        return parse_anthropic_headers(headers, wall_now)
    return parse_openai_headers(headers, wall_now)


class Pacer:
    """The local, in-process pacer; `RedisPacer` shares the same state across replicas."""

    _max_pause = math.inf  # a pump looks again at least this often (shared state changes elsewhere)

    def __init__(
        self,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[object]] = asyncio.sleep,
        window_s: float = WINDOW_S,
        guard_s: float = GUARD_S,
        wall_clock: Callable[[], float] = time.time,
        enforced_over_s: float | None = None,
    ) -> None:
        self.clock = clock
        self.enforced_over_s = enforced_over_s  # every lane's provider window, when known
        self._sleep = sleep
        self.window_s = window_s
        self.guard_s = guard_s
        self._wall = wall_clock
        self._lanes: dict[Lane, _LaneState] = {}
        self._seq = itertools.count()

    # --- configuration ------------------------------------------------------------------------

    def configure(
        self, lane: Lane, rpm: int | None, tpm: int | None, enforced_over_s: float | None = None
    ) -> None:
        """Set the lane's configured limits (None: not configured; learned limits apply) and
        the window the provider enforces them over, if known (None: learned)."""
        for name, value in (("rpm", rpm), ("tpm", tpm)):
            if value is not None and value <= 0:
                raise ValueError(f"{lane}: {name} must be positive, not {value}")
        state = self._state(lane)
        state.rpm_set, state.tpm_set = rpm, tpm
        if enforced_over_s is not None:
            self._known_window(state, enforced_over_s)
        state.limits_changed()
        self._poke(state)

    def limits(self, lane: Lane) -> tuple[int | None, int | None]:
        """The (rpm, tpm) in force on the lane."""
        state = self._state(lane)
        return state.rpm, state.tpm

    def disable(self, lane: Lane, reason: str) -> None:
        """Take a lane out (its key answered 401/403): queued and later calls get `LaneDisabled`."""
        state = self._state(lane)
        if state.disabled is None:
            log.warning("upstream key %s taken out: %s", lane, reason)
        state.disabled = reason
        self._fail_all(state, LaneDisabled(lane, reason))

    def enable(self, lane: Lane) -> None:
        self._state(lane).disabled = None

    def disabled(self) -> dict[Lane, str]:
        """Lanes taken out, with the reason given (no secrets: a lane names its key by index)."""
        return {lane: s.disabled for lane, s in self._lanes.items() if s.disabled is not None}

    # --- admission ----------------------------------------------------------------------------

    def try_acquire(self, lane: Lane, tokens: int, priority: int = 0) -> Grant | None:
        """`acquire` without waiting (no coroutine: most calls fit at once): the grant when the
        call fits now and nothing is queued on the lane, else None, and then `acquire`."""
        state = self._state(lane)
        if state.disabled is not None or state.live:
            return None
        if too_large := _never_fits(state, tokens):
            raise too_large
        now = self.clock()
        found = self._attempt_local(state, max(0, int(tokens)), priority, now, now)
        return found if isinstance(found, Grant) else None

    async def acquire(self, lane: Lane, tokens: int, priority: int = 0, deadline: float = 60.0) -> Grant:
        """Wait until the call fits the lane's limits and reserve it.

        `tokens`: the estimate (`estimate_parts`, summed); `priority`: higher goes first (FIFO within
        one); `deadline`: the longest the caller will wait, in seconds from now. Raises
        `QueueTimeout` at once when the expected wait is longer, or when the deadline passes
        while queued; `LaneDisabled` when the lane is (or gets) disabled; `NeverFits` when the
        call is more than the lane's tokens-per-minute limit.
        """
        state = self._state(lane)
        if state.disabled is not None:
            raise LaneDisabled(lane, state.disabled)
        tokens = max(0, int(tokens))
        if too_large := _never_fits(state, tokens):
            raise too_large
        now = self.clock()
        if not state.live:
            grant = await self._attempt(state, tokens, priority, now, now)
            if isinstance(grant, Grant):
                return grant
            now = self.clock()
        waiter = await self._enqueue(state, tokens, priority, now, deadline)
        if waiter.future.done():
            return _waited(state, waiter.future.result())
        try:
            return _waited(state, await waiter.future)
        except asyncio.CancelledError:
            if not waiter.future.done() or waiter.future.cancelled():
                self._drop(state, waiter)
            raise

    async def _enqueue(
        self, state: _LaneState, tokens: int, priority: int, now: float, deadline: float
    ) -> _Waiter:
        loop = asyncio.get_running_loop()
        waiter = _Waiter(priority, next(self._seq), tokens, now, now + deadline, loop.create_future())
        expected = await self._queue_wait(state, waiter, now, newcomer=True)
        if expected > deadline:
            raise QueueTimeout(
                state.lane, expected, f"the queue would take {expected:.1f} s, longer than {deadline:.1f} s"
            )
        heapq.heappush(state.queue, waiter)
        heapq.heappush(state.deadlines, (waiter.deadline_at, waiter.seq, waiter))
        counts = state.queued.setdefault(priority, [0, 0])
        counts[0] += 1
        waiter.counted = self._counted(state, tokens)
        counts[1] += waiter.counted
        state.live += 1
        if state.pump is None:
            state.pump = loop.create_task(self._pump(state), name=f"pacer {state.lane}")
        elif waiter.deadline_at < state.wake_at or state.queue[0] is waiter:
            self._poke(state)
        return waiter

    def _drop(self, state: _LaneState, waiter: _Waiter) -> None:
        """Forget a waiter that left the queue (its entries in the heaps are skipped later)."""
        if waiter.gone:
            return
        waiter.gone = True
        counts = state.queued[waiter.priority]
        counts[0] -= 1
        counts[1] -= waiter.counted
        state.live -= 1

    async def _pump(self, state: _LaneState) -> None:
        """Admit queued calls as they fit; fail the ones whose deadline passed."""
        try:
            while state.live:
                now = self.clock()
                await self._expire_deadlines(state, now)
                wait = await self._drain(state, now)
                if not state.live:
                    break
                while state.deadlines and state.deadlines[0][2].gone:
                    heapq.heappop(state.deadlines)
                next_deadline = state.deadlines[0][0] - now if state.deadlines else math.inf
                pause = max(0.0, min(wait, next_deadline, self._max_pause)) + _EPSILON
                state.wake_at = now + pause
                state.timer = asyncio.ensure_future(self._sleep(pause))
                await asyncio.wait({state.timer})
                state.timer = None
                state.wake_at = math.inf
        finally:
            state.pump = None
            if state.timer is not None:
                state.timer.cancel()
                state.timer = None

    async def _drain(self, state: _LaneState, now: float) -> float:
        """Admit heads while they fit; the wait until the head fits, or 0 with an empty queue."""
        while state.queue:
            head = state.queue[0]
            if head.gone or head.future.done():
                heapq.heappop(state.queue)
                continue
            if too_large := _never_fits(state, head.tokens):  # the lane learned a lower limit
                heapq.heappop(state.queue)
                self._drop(state, head)
                head.future.set_exception(too_large)
                continue
            grant = await self._attempt(state, head.tokens, head.priority, now, head.queued_at)
            if not isinstance(grant, Grant):
                return grant
            if state.queue and state.queue[0] is head:  # else a newcomer went ahead while we awaited:
                heapq.heappop(state.queue)  # the head, marked gone below, is skipped when it surfaces
            self._drop(state, head)
            if not head.future.done():
                head.future.set_result(grant)
            now = self.clock()
        return 0.0

    async def _expire_deadlines(self, state: _LaneState, now: float) -> None:
        while state.deadlines and (state.deadlines[0][0] <= now or state.deadlines[0][2].gone):
            _, _, waiter = heapq.heappop(state.deadlines)
            if waiter.gone or waiter.future.done():
                continue
            self._drop(state, waiter)
            expected = await self._queue_wait(state, waiter, now, newcomer=False)
            if waiter.future.done():
                continue
            waiter.future.set_exception(
                QueueTimeout(state.lane, expected, "the deadline passed while queued for the rate limit")
            )

    def _poke(self, state: _LaneState) -> None:
        """Make the lane's pump look again now (a limit rose, tokens were freed, a new head)."""
        if state.timer is not None:
            state.timer.cancel()

    def _fail_all(self, state: _LaneState, error: Exception) -> None:
        for waiter in state.queue:
            if not waiter.gone and not waiter.future.done():
                self._drop(state, waiter)
                waiter.future.set_exception(error)
        state.queue.clear()
        state.deadlines.clear()
        self._poke(state)

    # --- the window ---------------------------------------------------------------------------

    async def _attempt(
        self, state: _LaneState, tokens: int, priority: int, now: float, queued_at: float
    ) -> Grant | float:
        """Reserve now if the call fits (its grant), else the seconds until it should fit."""
        return self._attempt_local(state, tokens, priority, now, queued_at)

    async def _queue_wait(self, state: _LaneState, waiter: _Waiter, now: float, newcomer: bool) -> float:
        return self._expected_wait(state, waiter, now, newcomer)

    def _attempt_local(
        self, state: _LaneState, tokens: int, priority: int, now: float, queued_at: float
    ) -> Grant | float:
        if state.silent and state.cool_until <= now and self._rpm_tpm(state) == (None, None):
            # nothing to count against (see `_unlimited`): no window to expire or wait on
            return self._unlimited(state, self._counted(state, tokens), tokens, priority, now, queued_at)
        self._expire(state, now)
        counted = self._counted(state, tokens)
        wait = self._wait(state, 1, counted, now)
        if wait > 0:
            return wait
        grant = Grant(state.lane, counted, tokens, priority, now, now + state.window.span, now - queued_at)
        grant.entry = state.window.add(now, counted)
        self._scout(state, now)
        state.admitted += 1
        state.admitted_tokens += counted
        grant.seen_requests = state.requests
        grant.seen_tokens = state.tokens
        grant.seen_admitted = state.admitted
        grant.seen_admitted_tokens = state.admitted_tokens
        return grant

    def _known_window(self, state: _LaneState, seconds: float) -> None:
        """The provider is known to enforce the lane's limits over `seconds`: nothing to learn."""
        state.burst_s, state.burst_fixed = min(self.window_s, seconds), True

    def _scout(self, state: _LaneState, now: float) -> None:
        """After the first call of a lane with no limit known, wait for its answer."""
        if not (state.burst_fixed or state.silent or self._rpm_tpm(state) != (None, None)):
            state.scouting_until = max(state.scouting_until, now + SCOUT_S)

    def _unlimited(
        self, state: _LaneState, counted: int, tokens: int, priority: int, now: float, queued_at: float
    ) -> Grant:
        """A lane with no limit, whose provider sends no rate-limit headers to learn one from,
        keeps no window: remembering every call for a minute cost ~60 MB and a fifth of the
        gateway's CPU at 3,000 requests/s. Counting resumes when a limit is configured or
        a header or a 429 appears."""
        return Grant(state.lane, counted, tokens, priority, now, now, now - queued_at, settled=True)

    def _rpm_tpm(self, state: _LaneState) -> tuple[int | None, int | None]:
        return state.rpm, state.tpm

    def _counted(self, state: _LaneState, tokens: int) -> int:
        """The tokens a call is held to: the estimate, scaled up when the lane's calls have been
        using more than estimated; a call that scaling (or a degraded replica's share of the
        limit) makes larger than the tpm waits for an empty window instead of forever."""
        if state.scale > 1.0:
            tokens = math.ceil(tokens * state.scale)
        tpm = self._rpm_tpm(state)[1]
        return min(tokens, tpm) if tpm else tokens

    def _expire(self, state: _LaneState, now: float) -> None:
        state.window.expire(now)
        if state.ext_until and state.ext_until <= now:
            state.ext_requests = state.ext_tokens = 0
            state.ext_until = 0.0

    def _wait(self, state: _LaneState, requests: int, tokens: int, now: float) -> float:
        """Seconds until `requests` more calls with `tokens` in all fit (0: now).

        Beyond what the current entries free, each further full limit takes one more
        window: the estimate a queued call's expected wait is based on.
        """
        wait = max(0.0, state.cool_until - now)
        rpm, tpm = self._rpm_tpm(state)
        span = self.window_s + self.guard_s
        if rpm:
            wait = max(wait, self._window_wait(state, rpm, state.ext_requests, requests, now, span, False))
        if tpm and tokens:
            wait = max(wait, self._window_wait(state, tpm, state.ext_tokens, tokens, now, span, True))
        if state.burst_s < self.window_s and (rpm or tpm):
            wait = max(wait, self._burst_wait(state, rpm, tpm, requests, tokens, now))
        elif state.scouting_until > now and not (rpm or tpm or state.burst_fixed):
            wait = max(wait, state.scouting_until - now)
        return wait

    def _burst_wait(
        self, state: _LaneState, rpm: int | None, tpm: int | None, requests: int, tokens: int, now: float
    ) -> float:
        """Seconds until the calls fit the share of the limits the provider allows in `burst_s`."""
        span = state.burst_s
        held = burst_held(span)
        since = now - held
        wait = 0.0
        share = span / self.window_s  # of the limits' window (60 s; shorter in tests)
        if rpm:
            wait = _recent_wait(state.window, _share(rpm, share), requests, since, held, now, False)
        if tpm and tokens:
            # one call larger than the share waits for an empty window, not for several
            limit = _share(tpm, share) if requests > 1 else max(_share(tpm, share), tokens)
            wait = max(wait, _recent_wait(state.window, limit, tokens, since, held, now, True))
        return wait

    @staticmethod
    def _window_wait(
        state: _LaneState, limit: int, external: int, need: int, now: float, span: float, by_tokens: bool
    ) -> float:
        used = state.tokens if by_tokens else state.requests
        extra = 0.0
        if external and used + external + need > limit:
            # Usage the provider reported but we did not make: gone at ext_until at the latest.
            if need > limit - external:
                extra = max(0.0, state.ext_until - now)
            else:
                limit -= external
        rounds, need = _rounds(need, limit)
        free = limit - used
        if need <= free:
            return extra + rounds * span
        excess = need - free
        window = state.window
        if by_tokens:
            freed = window.freed_at(excess)
        else:
            freed = window.leaves_at(excess) if excess <= window.count else None
        if freed is not None:
            return extra + rounds * span + max(0.0, freed - now)
        return extra + (rounds + 1) * span

    def _expected_wait(self, state: _LaneState, waiter: _Waiter, now: float, newcomer: bool = False) -> float:
        """How long `waiter` should expect to queue (see `_ahead`)."""
        self._expire(state, now)
        requests, tokens = self._ahead(state, waiter, newcomer)
        return self._wait(state, requests, tokens, now)

    def _ahead(self, state: _LaneState, waiter: _Waiter, newcomer: bool) -> tuple[int, int]:
        """Requests and tokens that must be admitted up to and including `waiter`: every call
        queued at a higher priority, and those of its own that came before it (a newcomer is
        behind all of its own priority)."""
        requests = 1
        tokens = waiter.counted or self._counted(state, waiter.tokens)
        for priority, (count, queued_tokens) in state.queued.items():
            if priority > waiter.priority:
                requests += count
                tokens += queued_tokens
        if newcomer:
            count, queued_tokens = state.queued.get(waiter.priority, (0, 0))
            requests += count
            tokens += queued_tokens
        elif state.queued.get(waiter.priority, [0])[0]:
            for other in state.queue:  # the same priority: only those ahead of it
                if other.priority == waiter.priority and not other.gone and other.seq < waiter.seq:
                    requests += 1
                    tokens += other.counted
        return requests, tokens

    # --- after the call -----------------------------------------------------------------------

    def settle(self, grant: Grant, actual_tokens: int) -> None:
        """Count the call's real tokens instead of the estimate (while it is still in the window)."""
        if grant.settled:
            return
        grant.settled = True
        state = self._state(grant.lane)
        actual = max(0, int(actual_tokens))
        if grant.estimate > 0 and (actual > grant.estimate or state.scale > 1.0):
            state.scale = max(1.0, state.scale + SCALE_WEIGHT * (actual / grant.estimate - state.scale))
        self._settle_entry(state, grant, actual, self.clock())
        grant.tokens = actual

    def _settle_entry(self, state: _LaneState, grant: Grant, actual: int, now: float) -> None:
        self._expire(state, now)
        counted = state.window.adjust(grant.entry, actual)  # anew, while still in the window
        if counted and actual < grant.tokens and state.live:
            self._poke(state)

    def observe(self, lane: Lane, status: int, headers: Headers, grant: Grant | None = None) -> None:
        """Learn from a response: limits, usage the provider counted that we did not, 429 waits.

        Pass the call's `grant` when there is one: the provider's `remaining` is then compared
        with what the pacer had admitted when it granted that call (otherwise with now).
        """
        found = header_map(headers)
        state = self._state(lane)
        self._end_scouting(state)
        if not found:
            if status == 429:
                self._cool(lane, DEFAULT_COOLDOWN_S)
            elif status < 400:
                self._state(lane).silent = True
            return
        limits = parse_limits(found, self._wall())
        state.silent = False
        now = self.clock()
        self._learn(state, limits, grant, now)
        if not state.burst_fixed:
            self._learn_window(state, limits, status, grant)
        if status == 429:
            self._cool(lane, _cooldown(limits))

    def unanswered(self, lane: Lane) -> None:
        """A call on `lane` got no answer (refused, reset, timed out): a first call's scouting
        ends, or every retry to a dead provider would wait out SCOUT_S for nothing."""
        self._end_scouting(self._state(lane))

    def _end_scouting(self, state: _LaneState) -> None:
        if state.scouting_until:
            state.scouting_until = 0.0
            self._poke(state)

    def _learn_window(self, state: _LaneState, limits: RateLimits, status: int, grant: Grant | None) -> None:
        """Widen `burst_s` to the window a success shows; narrow it after a 429 that the
        provider's per-minute count does not explain (see "Short windows")."""
        if status == 429:
            if grant is not None and _minute_had_room(limits):
                state.burst_ceiling = state.burst_s
                narrower = max(SMOOTH_S, state.burst_s / 2)
                if narrower < state.burst_s:
                    log.info("%s: 429 with room in the minute: pacing over %.1f s", state.lane, narrower)
                state.burst_s = narrower
            return
        limit = limits.requests or limits.tokens
        if limit is None or not (limit.reset_s and math.isfinite(limit.reset_s)):
            return  # none shown (or a hostile nan / inf)
        shown = min(self.window_s, math.ceil(limit.reset_s * 10 - 1e-6) / 10)  # 9.9995 s -> 10 s
        if state.burst_s < shown < state.burst_ceiling:
            state.burst_s = shown
            log.info("%s: the provider enforces its limits over %.1f s or more", state.lane, shown)
            self._poke(state)

    def _learn(self, state: _LaneState, limits: RateLimits, grant: Grant | None, now: float) -> None:
        raised = False
        if limits.requests is not None and limits.requests.limit > 0:
            raised |= state.rpm_seen is not None and limits.requests.limit > state.rpm_seen
            state.rpm_seen = limits.requests.limit
        if limits.tokens is not None and limits.tokens.limit > 0:
            raised |= state.tpm_seen is not None and limits.tokens.limit > state.tpm_seen
            state.tpm_seen = limits.tokens.limit
        state.limits_changed()
        if raised:
            self._poke(state)
        self._check_external(state, limits, grant, now)

    def _check_external(self, state: _LaneState, limits: RateLimits, grant: Grant | None, now: float) -> None:
        """Hold usage the provider counted beyond ours against the lane, or clear it."""
        ours = self._ours(state, grant, now)
        if ours is None:
            return
        ext_requests = _external(limits.requests, ours[0], REQUEST_SLACK)
        ext_tokens = _external(limits.tokens, ours[1], TOKEN_SLACK)
        if ext_requests or ext_tokens:
            if not state.ext_until:
                log.info(
                    "%s: the provider counts %d requests / %d tokens this pacer did not admit",
                    state.lane,
                    ext_requests,
                    ext_tokens,
                )
            reset = max(_reset(limits.requests), _reset(limits.tokens))
            self._set_external(
                state, ext_requests, ext_tokens, min(self.window_s, reset or self.window_s), now
            )
        elif state.ext_until and (limits.requests is not None or limits.tokens is not None):
            self._set_external(state, 0, 0, 0.0, now)
            self._poke(state)

    def _ours(self, state: _LaneState, grant: Grant | None, now: float) -> tuple[int, int] | None:
        """The most of our calls the provider can have counted with this one: (requests, tokens).

        Those in the window when the call was granted, plus every call granted since (one
        granted later may arrive first). Without a grant: what is in the window now.
        """
        if grant is not None:
            return (
                grant.seen_requests + state.admitted - grant.seen_admitted,
                grant.seen_tokens + state.admitted_tokens - grant.seen_admitted_tokens,
            )
        self._expire(state, now)
        return state.requests, state.tokens

    def _set_external(
        self, state: _LaneState, requests: int, tokens: int, seconds: float, now: float
    ) -> None:
        """Hold `requests` / `tokens` the provider counted beyond ours against the lane (0: none)."""
        state.ext_requests, state.ext_tokens = requests, tokens
        state.ext_until = now + seconds if requests or tokens else 0.0

    def _cool(self, lane: Lane, seconds: float) -> None:
        state = self._state(lane)
        until = self.clock() + seconds
        if until > state.cool_until:
            state.cool_until = until
            log.info("%s cools down for %.1f s after a 429", lane, seconds)

    # --- key pools ----------------------------------------------------------------------------

    def headroom(self, lane: Lane) -> float:
        """0..1: the share of the lane's tighter limit left after what is in the window and
        queued; 0 while disabled or cooling down, 1 with no limit known."""
        state = self._state(lane)
        now = self.clock()
        if state.disabled is not None or state.cool_until > now:
            return 0.0
        self._expire(state, now)
        return self._headroom(state, state.requests, state.tokens)

    def _headroom(self, state: _LaneState, requests: int, tokens: int) -> float:
        rpm, tpm = self._rpm_tpm(state)
        queued_requests = sum(c for c, _ in state.queued.values())
        queued_tokens = sum(t for _, t in state.queued.values())
        share = 1.0
        if rpm:
            share = min(share, (rpm - requests - state.ext_requests - queued_requests) / rpm)
        if tpm:
            share = min(share, (tpm - tokens - state.ext_tokens - queued_tokens) / tpm)
        return max(0.0, share)

    def best(self, lanes: Sequence[Lane]) -> Lane | None:
        """The enabled lane with the most headroom (ties: the first given); None if all are out."""
        if len(lanes) == 1:  # the common case: one key, nothing to compare
            return None if self._state(lanes[0]).disabled is not None else lanes[0]
        chosen, most = None, -1.0
        for lane in lanes:
            if self._state(lane).disabled is not None:
                continue
            share = self.headroom(lane)
            if share > most:
                chosen, most = lane, share
        return chosen

    def snapshot(self) -> list[dict]:
        """Each known lane's limits and state, for metrics and the admin API."""
        now = self.clock()
        rows = []
        for lane, state in self._lanes.items():
            self._expire(state, now)
            rpm, tpm = self._rpm_tpm(state)
            rows.append(
                {
                    "lane": str(lane),
                    "rpm": rpm,
                    "tpm": tpm,
                    "requests_in_window": state.requests,
                    "tokens_in_window": state.tokens,
                    "queued": state.live,
                    "cooling_s": max(0.0, state.cool_until - now),
                    "enforced_over_s": state.burst_s,
                    "disabled": state.disabled,
                    "waits": state.waits,
                    "waited_s": state.waited_s,
                }
            )
        return rows

    async def aclose(self) -> None:
        """Stop the pumps; calls still queued get `QueueTimeout`."""
        for state in self._lanes.values():
            self._fail_all(state, QueueTimeout(state.lane, 1.0, "the gateway is shutting down"))
            if state.pump is not None:
                state.pump.cancel()

    def _state(self, lane: Lane) -> _LaneState:
        state = self._lanes.get(lane)
        if state is None:
            state = self._lanes[lane] = _LaneState(lane, WindowLog(self.window_s + self.guard_s))
            if self.enforced_over_s is not None:
                self._known_window(state, self.enforced_over_s)
        return state


def _waited(state: _LaneState, grant: Grant) -> Grant:
    """A grant that came through the queue, counted for the infrastructure monitor."""
    state.waits += 1
    state.waited_s += grant.waited_s
    return grant


def _never_fits(state: _LaneState, tokens: int) -> NeverFits | None:
    """The error for a call more than the lane's whole tokens-per-minute limit (the limit in
    force, not a degraded replica's share of it: that one passes), else None."""
    if state.tpm and tokens > state.tpm:
        return NeverFits(state.lane, tokens, state.tpm)
    return None


def _external(limit: Limit | None, ours: int, slack: float) -> int:
    """What the provider counts beyond `ours`, if more than the slack allows; else 0."""
    if limit is None or limit.limit <= 0:
        return 0
    extra = (limit.limit - limit.remaining) - ours
    return extra if extra > max(1.0, slack * limit.limit) else 0


def _reset(limit: Limit | None) -> float:
    return limit.reset_s or 0.0 if limit is not None else 0.0


def _cooldown(limits: RateLimits) -> float:
    """How long a lane rests after a 429: retry-after, else the exhausted limit's reset."""
    if limits.retry_after_s is not None:
        return limits.retry_after_s
    resets = [
        limit.reset_s
        for limit in (limits.requests, limits.tokens, limits.input_tokens, limits.output_tokens)
        if limit is not None and limit.remaining <= 0 and limit.reset_s
    ]
    return min(max(resets), WINDOW_S) if resets else DEFAULT_COOLDOWN_S


def burst_held(span: float) -> float:
    """How long a call counts against a `span` window here: 5% longer, at least 50 ms (the
    time from the grant to the provider varies)."""
    return span + max(0.05, 0.05 * span)


def _share(limit: int, share: float) -> int:
    """What a limit allows in a `share` of its window (at least one call)."""
    return max(1, int(limit * share + 1e-9))


def _rounds(need: int, limit: int) -> tuple[int, int]:
    """`need` as whole windows ahead of the last one (each full limit takes one more window)
    and what is left for the last: 250 at a limit of 100 is (2, 50)."""
    if need <= limit:
        return 0, need
    rounds, rest = divmod(need - 1, limit)
    return rounds, rest + 1


def _recent_wait(
    window: WindowLog, limit: int, need: int, since: float, held: float, now: float, by_weight: bool
) -> float:
    """Seconds until `need` more (calls, or tokens) fit `limit` among the entries stamped after
    `since`; each full limit beyond the first takes one more `held`."""
    rounds, need = _rounds(need, limit)
    count, weight = window.recent(since)
    free = limit - (weight if by_weight else count)
    if need <= free:
        return rounds * held
    stamp = window.recent_reached(since, need - free, by_weight)
    if stamp is None:
        return (rounds + 1) * held
    return rounds * held + max(0.0, stamp + held - now)


def _minute_had_room(limits: RateLimits) -> bool:
    """A 429 whose own headers say the minute's limits were not used up."""
    shown = [limit for limit in (limits.requests, limits.tokens) if limit is not None]
    return bool(shown) and all(limit.remaining > 0 for limit in shown)
