"""The local pacer in virtual time, against the simulator's own sliding-window limiter.

`run_virtual` runs a coroutine on an event loop whose clock only moves when every task is
waiting: a minute of traffic takes milliseconds and the same run gives the same figures.
"""

from __future__ import annotations

import asyncio
import heapq
import json
import math
import random
import selectors
import statistics
import subprocess
import sys
import time
from collections.abc import Coroutine
from pathlib import Path

import pytest
import tiktoken
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from xvckit.gateway.pacing import (
    WINDOW_S,
    Lane,
    LaneDisabled,
    NeverFits,
    Pacer,
    QueueTimeout,
    header_map,
)
from xvckit.gateway.token_estimate import (
    DEFAULT_OUTPUT_TOKENS,
    EXACT_CHARS,
    count_text,
    encoding_name,
    estimate_parts,
)
from xvckit.providers.ratelimit import Limit, RateLimits, anthropic_headers, openai_headers
from xvckit.sim.limiter import Limiter

LANE = Lane("openai", 0, "gpt-4o-mini")
OTHER = Lane("openai", 1, "gpt-4o-mini")


class _VirtualSelector(selectors.DefaultSelector):
    """Never blocks: a wait for the next timer moves the virtual clock to it instead."""

    def __init__(self) -> None:
        super().__init__()
        self.now = 0.0

    def select(self, timeout: float | None = None):
        ready = super().select(0)
        if ready or timeout == 0:
            return ready
        if timeout is None:
            raise RuntimeError("virtual time: every task waits and no timer is set (a deadlock)")
        self.now += timeout
        return []


class VirtualLoop(asyncio.SelectorEventLoop):
    def __init__(self) -> None:
        self._virtual = _VirtualSelector()
        super().__init__(self._virtual)

    def time(self) -> float:
        return self._virtual.now


def run_virtual(make: Coroutine):
    loop = VirtualLoop()
    try:
        return loop.run_until_complete(make)
    finally:
        loop.close()


def virtual_pacer(**kwargs) -> Pacer:
    """A pacer in virtual time; unless told otherwise, for a provider known to enforce its
    limits over the whole minute (the short-window tests learn it: `enforced_over_s=None`)."""
    loop = asyncio.get_running_loop()
    kwargs.setdefault("enforced_over_s", WINDOW_S)
    return Pacer(clock=loop.time, **kwargs)


def max_in_window(times: list[float], window: float = 60.0, weights: list[int] | None = None) -> int:
    """The most (requests, or weight) any half-open window (t - window, t] holds (an entry
    leaves when `stamp + window <= t`, as the pacer computes it: `t - window` can round the
    other way by one unit in the last place)."""
    order = sorted(range(len(times)), key=times.__getitem__)
    weights = weights or [1] * len(times)
    most = total = start = 0
    for end in range(len(order)):
        total += weights[order[end]]
        while times[order[start]] + window <= times[order[end]]:
            total -= weights[order[start]]
            start += 1
        most = max(most, total)
    return most


# --- the benchmark case: 600 requests, 64 connections, 300 RPM over a sliding 60 s window ----


async def paced_load(
    requests: int,
    connections: int,
    rpm: int | None,
    *,
    latency: float = 0.5,
    jitter: float = 0.05,
    guard_s: float = 1.0,
    tpm: int | None = None,
    provider_rpm: int = 300,
    provider_tpm: int = 0,
    tokens: int = 10,
    actual_tokens: int | None = None,
    seed: int = 1,
    provider_window: float = 60.0,
    enforced_over_s: float | None = WINDOW_S,
) -> dict:
    """Clients on `connections` connections send `requests` calls through the pacer to a provider
    enforcing its limits with the simulator's limiter; each call reaches the provider after a
    random dispatch delay of up to `jitter` s and takes `latency` s. The pacer learns from the
    headers the provider sends back. Calls refused upstream are retried (as the gateway will).
    `provider_window`: the window the provider enforces its per-minute limits over;
    `enforced_over_s`: what the pacer is told of it (None: it learns)."""
    loop = asyncio.get_running_loop()
    pacer = virtual_pacer(guard_s=guard_s, enforced_over_s=enforced_over_s)
    if rpm or tpm:
        pacer.configure(LANE, rpm, tpm)
    provider = Limiter(provider_rpm, provider_tpm, clock=loop.time, window_s=provider_window)
    rng = random.Random(seed)
    arrivals: list[float] = []
    arrival_tokens: list[int] = []
    refused = 0
    pending = list(range(requests))

    async def call() -> None:
        nonlocal refused
        while True:
            grant = await pacer.acquire(LANE, tokens, priority=0, deadline=600)
            await asyncio.sleep(rng.uniform(0, jitter))
            used = actual_tokens if actual_tokens is not None else tokens
            verdict = provider.admit(b"key", used)
            headers = openai_headers(verdict.limits)
            if verdict.refused:
                refused += 1
                pacer.observe(LANE, 429, headers, grant)
                continue
            arrivals.append(loop.time())
            arrival_tokens.append(used)
            pacer.observe(LANE, 200, headers, grant)
            await asyncio.sleep(latency)
            pacer.settle(grant, used)
            return

    async def connection() -> None:
        while pending:
            pending.pop()
            await call()

    start = loop.time()
    await asyncio.gather(*(connection() for _ in range(connections)))
    return {
        "makespan": loop.time() - start,
        "refused": refused,
        "max_in_window": max_in_window(arrivals),
        "max_tokens_in_window": max_in_window(arrivals, weights=arrival_tokens),
        "calls": len(arrivals) + refused,
        "enforced_over_s": pacer.snapshot()[0]["enforced_over_s"],
    }


def ideal_makespan(
    requests: int, connections: int, limit: int, latency: float, window: float = 60.0
) -> float:
    """The least any client can take: full windows of `limit` calls back to back, the last one's
    calls sent as fast as `connections` connections allow."""
    windows = math.ceil(requests / limit) - 1
    last = requests - windows * limit
    return windows * window + math.ceil(min(last, limit) / connections) * latency


def test_benchmark_case_no_429_and_makespan_near_ideal():
    result = run_virtual(paced_load(600, 64, 300))
    ideal = ideal_makespan(600, 64, 300, 0.5)
    print(f"\n600 calls / 64 connections / 300 RPM: {result}, ideal {ideal:.1f} s")
    assert result["refused"] == 0
    assert result["max_in_window"] <= 300
    assert result["makespan"] <= 1.10 * ideal
    # against the even-spacing (GCRA, no burst) schedule, which needs about 120 s
    assert result["makespan"] < 0.6 * (599 * 60 / 300)


def ideal_under_window(requests: int, connections: int, rpm: int, latency: float, window: float) -> float:
    """The least any client can take when the provider allows rpm * window / 60 calls in any
    `window` seconds: each call starts as soon as a connection is free and the window has room."""
    share = max(1, int(rpm * window / 60))
    free = [0.0] * connections
    starts: list[float] = []
    for index in range(requests):
        start = heapq.heappop(free)
        if index >= share:
            start = max(start, starts[index - share] + window)
        starts.append(start)
        heapq.heappush(free, start + latency)
    return max(starts) + latency


@pytest.mark.parametrize("rpm", [300, None], ids=["configured", "learned"])
@pytest.mark.parametrize("window", [1.0, 10.0, 60.0])
def test_short_enforcement_windows(window, rpm):
    """The provider enforces 300 RPM over 1, 10 or 60 s; the pacer is not told which. It starts
    smooth and widens only to what the provider's headers show: no call is refused upstream,
    and the makespan stays within 10% of what the enforced window allows (the issue's targets:
    at most 1% refused, within 10%). Told nothing and sent a minute's burst, the provider with
    a 1 s window refused 58 of the first 64 calls."""
    result = run_virtual(paced_load(600, 64, rpm, provider_window=window, enforced_over_s=None))
    ideal = ideal_under_window(600, 64, 300, 0.5, window)
    print(f"\nenforced over {window:g} s: {result}, ideal {ideal:.1f} s")
    assert result["refused"] <= 0.01 * result["calls"]
    assert result["makespan"] <= 1.10 * ideal
    assert result["enforced_over_s"] == window  # learned from the first successes' `reset`


def test_a_minute_burst_against_a_short_window_is_refused():
    """The case the learning exists for: told the provider enforces over the whole minute
    (the pacer before short windows), a 1 s window refuses most of the first burst."""
    result = run_virtual(paced_load(600, 64, 300, provider_window=1.0, enforced_over_s=60.0))
    assert result["refused"] > 0.05 * result["calls"]


def test_429_with_room_in_the_minute_narrows_the_window():
    """A provider whose headers do not show its window: a 429 while its per-minute count has
    room halves the window the pacer assumes, which never widens to the failed one again."""

    async def scenario():
        pacer = virtual_pacer(enforced_over_s=None)
        pacer.configure(LANE, 600, None)
        minute = {"x-ratelimit-limit-requests": "600", "x-ratelimit-remaining-requests": "590"}
        pacer.observe(LANE, 200, {**minute, "x-ratelimit-reset-requests": "60s"}, None)
        assert pacer.snapshot()[0]["enforced_over_s"] == 60.0
        grant = await pacer.acquire(LANE, 1)
        pacer.observe(LANE, 429, {**minute, "x-ratelimit-reset-requests": "1s", "retry-after": "1"}, grant)
        assert pacer.snapshot()[0]["enforced_over_s"] == 30.0
        pacer.observe(LANE, 200, {**minute, "x-ratelimit-reset-requests": "60s"}, None)
        assert pacer.snapshot()[0]["enforced_over_s"] == 30.0  # 60 s failed: not again
        pacer.observe(LANE, 200, {**minute, "x-ratelimit-reset-requests": "45s"}, None)
        assert pacer.snapshot()[0]["enforced_over_s"] == 45.0
        exhausted = {**minute, "x-ratelimit-remaining-requests": "0", "retry-after": "1"}
        pacer.observe(LANE, 429, exhausted, grant)  # the minute itself was used up: no lesson
        assert pacer.snapshot()[0]["enforced_over_s"] == 45.0

    run_virtual(scenario())


def test_limit_learned_from_headers_alone():
    """No rpm configured: the first responses teach the pacer the limit; at most the first
    burst (before any header came back) can overrun it, and here it cannot."""
    result = run_virtual(paced_load(600, 64, None))
    assert result["refused"] == 0
    assert result["makespan"] <= 1.10 * ideal_makespan(600, 64, 300, 0.5)


def test_learning_under_a_larger_first_burst():
    """400 connections against 300 RPM, nothing configured: the first 400 go out before any
    header is back, so 100 are refused once; every one is retried after the cooldown and the
    rest of the run sees no refusal."""
    result = run_virtual(paced_load(900, 400, None, latency=0.5))
    assert result["refused"] <= 100
    assert result["max_in_window"] <= 300


def test_guard_covers_dispatch_jitter():
    """Without the guard, requests reach the provider up to 50 ms after their grant, and a
    request granted the moment an old one leaves our window may arrive before that old one
    (which itself arrived late) leaves the provider's: refusals. The guard removes them."""
    unguarded = run_virtual(paced_load(600, 64, 300, guard_s=0.0))
    guarded = run_virtual(paced_load(600, 64, 300, guard_s=0.25))
    assert unguarded["refused"] > 0
    assert guarded["refused"] == 0


def test_tokens_per_minute_with_settle():
    """A tpm-bound lane: estimates (input + max_tokens) are settled to the real count, which
    frees room for the calls queued behind them; the provider never refuses."""
    result = run_virtual(
        paced_load(
            300,
            32,
            None,
            tpm=20_000,
            provider_rpm=0,
            provider_tpm=20_000,
            tokens=1_000,
            actual_tokens=400,
        )
    )
    assert result["refused"] == 0
    assert result["max_tokens_in_window"] <= 20_000
    # 300 calls x 400 real tokens = 120,000 tokens = 6 windows of 20,000: settling lets ~2.5x
    # as many calls through as the estimates alone would
    assert result["makespan"] < 7 * 61


def test_underestimated_tokens_scale_up_after_the_first_calls():
    """Calls using 20% more tokens than estimated (a tokenizer that counts differently): only
    calls granted before the first settle can overrun the provider's tpm; after that the
    lane scales its estimates up and the provider refuses nothing more."""
    result = run_virtual(
        paced_load(
            300,
            32,
            None,
            tpm=20_000,
            provider_rpm=0,
            provider_tpm=20_000,
            tokens=1_000,
            actual_tokens=1_200,
        )
    )
    assert result["refused"] <= 8
    assert result["max_tokens_in_window"] <= 20_000
    assert result["makespan"] < 1.1 * ideal_makespan(300, 32, 20_000 // 1_200, 0.5)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    rpm=st.integers(1, 30),
    tpm=st.one_of(st.none(), st.integers(100, 3000)),
    calls=st.lists(
        st.tuples(st.floats(0, 200), st.integers(0, 400), st.integers(0, 2)), min_size=1, max_size=80
    ),
)
def test_no_window_ever_holds_more_than_the_limit(rpm, tpm, calls):
    """Random arrivals, sizes and priorities: every call is admitted, and no 60 s window of
    admissions holds more than rpm calls or tpm (estimated) tokens."""

    async def scenario():
        loop = asyncio.get_running_loop()
        pacer = virtual_pacer(guard_s=0.0)
        pacer.configure(LANE, rpm, tpm)
        admitted: list[tuple[float, int]] = []

        async def one(at: float, tokens: int, priority: int) -> None:
            await asyncio.sleep(at)
            fitting = min(tokens, tpm) if tpm else tokens  # a call over the tpm is refused (NeverFits)
            grant = await pacer.acquire(LANE, fitting, priority, deadline=10_000)
            admitted.append((loop.time(), grant.tokens))

        await asyncio.gather(*(one(*c) for c in calls))
        return admitted

    admitted = run_virtual(scenario())
    assert len(admitted) == len(calls)
    times = [t for t, _ in admitted]
    assert max_in_window(times) <= rpm
    if tpm:
        assert max_in_window(times, weights=[w for _, w in admitted]) <= tpm


# --- queueing -------------------------------------------------------------------------------


def test_priority_then_fifo():
    async def scenario():
        pacer = virtual_pacer(guard_s=0.0)
        pacer.configure(LANE, 1, None)
        order: list[str] = []
        await pacer.acquire(LANE, 1, 0, deadline=1000)

        async def call(name: str, priority: int, delay: float) -> None:
            await asyncio.sleep(delay)
            await pacer.acquire(LANE, 1, priority, deadline=1000)
            order.append(name)

        await asyncio.gather(
            call("batch-1", 0, 0.1),
            call("batch-2", 0, 0.2),
            call("interactive-1", 10, 0.3),
            call("interactive-2", 10, 0.4),
            call("batch-3", 0, 0.5),
        )
        return order

    assert run_virtual(scenario()) == ["interactive-1", "interactive-2", "batch-1", "batch-2", "batch-3"]


def test_admission_times_follow_the_window():
    async def scenario():
        loop = asyncio.get_running_loop()
        pacer = virtual_pacer(guard_s=0.5)
        pacer.configure(LANE, 2, None)
        times = []
        for _ in range(5):
            grant = await pacer.acquire(LANE, 1, 0, deadline=1000)
            times.append(loop.time())
            assert grant.waited_s == pytest.approx(times[-1] - grant.admitted_at + grant.waited_s)
        return times

    assert run_virtual(scenario()) == pytest.approx([0, 0, 60.5, 60.5, 121.0], abs=1e-3)


def test_queue_timeout_at_once_when_waiting_is_pointless():
    async def scenario():
        loop = asyncio.get_running_loop()
        pacer = virtual_pacer(guard_s=0.0)
        pacer.configure(LANE, 1, None)
        await pacer.acquire(LANE, 1, 0, deadline=5)
        with pytest.raises(QueueTimeout) as caught:
            await pacer.acquire(LANE, 1, 0, deadline=5)
        return loop.time(), caught.value

    elapsed, error = run_virtual(scenario())
    assert elapsed == 0  # no waiting
    assert error.retry_after_s == pytest.approx(60)
    assert "longer than 5.0 s" in str(error)


def test_expected_wait_counts_the_calls_ahead():
    """rpm 2: two calls in the window and three queued at priority 0. A fourth batch call
    would go out two windows on (120 s); an interactive one only waits for the first slot."""

    async def scenario():
        pacer = virtual_pacer(guard_s=0.0)
        pacer.configure(LANE, 2, None)
        for _ in range(2):
            await pacer.acquire(LANE, 1, 0, deadline=1000)
        queued = [asyncio.ensure_future(pacer.acquire(LANE, 1, 0, deadline=1000)) for _ in range(3)]
        await asyncio.sleep(0)
        with pytest.raises(QueueTimeout) as batch:
            await pacer.acquire(LANE, 1, 0, deadline=100)
        interactive = await pacer.acquire(LANE, 1, 1, deadline=100)
        grants = await asyncio.gather(*queued)
        return batch.value.retry_after_s, interactive.admitted_at, [g.admitted_at for g in grants]

    batch_wait, interactive_at, queued_at = run_virtual(scenario())
    assert batch_wait == pytest.approx(120)
    assert interactive_at == pytest.approx(60, abs=1e-3)
    assert queued_at == pytest.approx([60, 120, 120], abs=1e-3)


def test_queue_timeout_when_overtaken_while_queued():
    """A batch call expects 60 s and queues with a 61 s deadline; an interactive call then
    takes the slot ahead of it, so at 61 s it gives up with the time it would still need."""

    async def scenario():
        loop = asyncio.get_running_loop()
        pacer = virtual_pacer(guard_s=0.0)
        pacer.configure(LANE, 1, None)
        await pacer.acquire(LANE, 1, 0, deadline=100)
        batch = asyncio.ensure_future(pacer.acquire(LANE, 1, 0, deadline=61))
        await asyncio.sleep(1)
        interactive = await pacer.acquire(LANE, 1, 5, deadline=100)
        with pytest.raises(QueueTimeout) as caught:
            await batch
        return loop.time(), interactive.admitted_at, caught.value

    gave_up, interactive_at, error = run_virtual(scenario())
    assert interactive_at == pytest.approx(60, abs=1e-3)
    assert gave_up == pytest.approx(61, abs=1e-3)
    assert error.retry_after_s == pytest.approx(59, abs=1e-3)
    assert "deadline passed" in error.reason


def test_cancelled_waiter_leaves_the_queue():
    async def scenario():
        pacer = virtual_pacer(guard_s=0.0)
        pacer.configure(LANE, 1, None)
        await pacer.acquire(LANE, 1, 0, deadline=1000)
        first = asyncio.ensure_future(pacer.acquire(LANE, 1, 0, deadline=1000))
        await asyncio.sleep(1)
        second = asyncio.ensure_future(pacer.acquire(LANE, 1, 0, deadline=1000))
        await asyncio.sleep(1)
        first.cancel()
        grant = await second
        return grant.admitted_at, pacer.snapshot()[0]["queued"]

    admitted_at, queued = run_virtual(scenario())
    assert admitted_at == pytest.approx(60, abs=1e-3)
    assert queued == 0


def test_call_larger_than_the_tpm_is_refused_at_once():
    """Queued, it would hold every call behind it for a whole window (issue 19, hole 7)."""

    async def scenario():
        loop = asyncio.get_running_loop()
        pacer = virtual_pacer(guard_s=0.0)
        pacer.configure(LANE, None, 1000)
        await pacer.acquire(LANE, 300, 0, deadline=1000)
        with pytest.raises(NeverFits, match="5000 tokens, more than the limit of 1000"):
            pacer.try_acquire(LANE, 5000, 0)
        with pytest.raises(NeverFits):
            await pacer.acquire(LANE, 5000, 0, deadline=1000)
        return loop.time(), await pacer.acquire(LANE, 700, 0, deadline=1000)

    refused_at, grant = run_virtual(scenario())
    assert refused_at == 0 and grant.admitted_at == 0


def test_settle_frees_tokens_for_the_queue():
    async def scenario():
        loop = asyncio.get_running_loop()
        pacer = virtual_pacer(guard_s=0.0)
        pacer.configure(LANE, None, 1000)
        first = await pacer.acquire(LANE, 800, 0, deadline=1000)
        waiting = asyncio.ensure_future(pacer.acquire(LANE, 500, 0, deadline=1000))
        await asyncio.sleep(2)
        assert not waiting.done()
        pacer.settle(first, 300)
        second = await waiting
        pacer.settle(first, 5)  # a second settle changes nothing
        return loop.time(), second, pacer.snapshot()[0]["tokens_in_window"]

    at, second, in_window = run_virtual(scenario())
    assert at == pytest.approx(2, abs=1e-3)
    assert second.waited_s == pytest.approx(2, abs=1e-3)
    assert in_window == 800


def test_settle_after_the_window_changes_nothing():
    async def scenario():
        pacer = virtual_pacer(guard_s=0.0)
        pacer.configure(LANE, None, 1000)
        grant = await pacer.acquire(LANE, 800, 0, deadline=1000)
        await asyncio.sleep(61)
        pacer.settle(grant, 50)
        return pacer.snapshot()[0]["tokens_in_window"]

    assert run_virtual(scenario()) == 0


# --- learning -------------------------------------------------------------------------------


def test_learns_limits_from_openai_headers():
    async def scenario():
        pacer = virtual_pacer()
        headers = openai_headers(RateLimits(Limit(500, 499, 0.12), Limit(200_000, 199_000, 0.3)))
        pacer.observe(LANE, 200, headers)
        learned = pacer.limits(LANE)
        pacer.configure(LANE, 100, 1_000_000)  # lower rpm wins; a higher configured tpm does not
        mixed = pacer.limits(LANE)
        return learned, mixed

    learned, mixed = run_virtual(scenario())
    assert learned == (500, 200_000)
    assert mixed == (100, 200_000)


def test_learns_limits_from_anthropic_headers_as_a_dict():
    async def scenario():
        pacer = virtual_pacer()
        pairs = anthropic_headers(RateLimits(Limit(50, 49, 1.0), Limit(40_000, 39_000, 1.0)), time.time())
        pacer.observe(LANE, 200, {k.decode(): v.decode() for k, v in pairs})
        return pacer.limits(LANE)

    assert run_virtual(scenario()) == (50, 40_000)


def test_429_retry_after_cools_the_lane_down():
    async def scenario():
        loop = asyncio.get_running_loop()
        pacer = virtual_pacer()
        pacer.configure(LANE, 100, None)
        pacer.observe(LANE, 429, [(b"Retry-After", b"7")])
        cooling = pacer.headroom(LANE)
        grant = await pacer.acquire(LANE, 1, 0, deadline=30)
        with pytest.raises(QueueTimeout):  # a second 429: 40 s is more than this caller waits
            pacer.observe(LANE, 429, {"retry-after": "40"})
            await pacer.acquire(LANE, 1, 0, deadline=30)
        return cooling, grant.admitted_at, loop.time()

    cooling, admitted_at, now = run_virtual(scenario())
    assert cooling == 0.0
    assert admitted_at == pytest.approx(7, abs=1e-3)
    assert now == pytest.approx(7, abs=1e-3)


def test_429_without_retry_after_waits_for_the_exhausted_reset():
    async def scenario():
        pacer = virtual_pacer()
        pacer.observe(LANE, 429, openai_headers(RateLimits(Limit(60, 0, 2.5), Limit(10_000, 9000, 0.1))))
        grant = await pacer.acquire(LANE, 1, 0, deadline=30)
        pacer.observe(OTHER, 429, [])  # nothing to go by: a short default rest
        other = await pacer.acquire(OTHER, 1, 0, deadline=30)
        return grant.admitted_at, other.admitted_at - grant.admitted_at

    reset, default = run_virtual(scenario())
    assert reset == pytest.approx(2.5, abs=1e-3)
    assert default == pytest.approx(1.0, abs=1e-3)


def test_usage_the_provider_counted_elsewhere_is_held_against_the_lane():
    """Another client of the same key used 6 of 10 requests: the provider's `remaining` shows
    it, and the pacer leaves that room alone for a window."""

    async def scenario():
        pacer = virtual_pacer(guard_s=0.0)
        pacer.configure(LANE, 10, None)
        grant = await pacer.acquire(LANE, 1, 0, deadline=1000)
        pacer.observe(LANE, 200, openai_headers(RateLimits(Limit(10, 3, 60.0))), grant)  # 7 used, 1 ours
        quick = []
        for _ in range(4):
            g = await pacer.acquire(LANE, 1, 0, deadline=1000)
            quick.append(g.admitted_at)
        return quick, pacer.headroom(LANE)

    quick, headroom = run_virtual(scenario())
    assert quick[:3] == [0, 0, 0]
    assert quick[3] == pytest.approx(60, abs=1e-3)
    assert headroom == pytest.approx(0.9)  # 60 s on, all but the last of ours are gone, and the 6


def test_header_map_keeps_only_rate_limit_headers():
    found = header_map(
        [(b"Content-Type", b"json"), (b"X-RateLimit-Limit-Requests", b"5"), (b"retry-after", b"1")]
    )
    assert found == {"x-ratelimit-limit-requests": "5", "retry-after": "1"}


# --- key pools ------------------------------------------------------------------------------


def test_headroom_orders_keys_and_disable_takes_one_out():
    async def scenario():
        pacer = virtual_pacer()
        third = Lane("openai", 2, "gpt-4o-mini")
        for lane in (LANE, OTHER, third):
            pacer.configure(lane, 10, 10_000)
        for _ in range(5):
            await pacer.acquire(LANE, 100, 0, deadline=10)
        await pacer.acquire(OTHER, 4000, 0, deadline=10)  # tokens are the tighter share here
        shares = [pacer.headroom(lane) for lane in (LANE, OTHER, third)]
        best = pacer.best([LANE, OTHER, third])
        pacer.disable(third, "401 from upstream: invalid api key")
        after = pacer.best([LANE, OTHER, third])
        with pytest.raises(LaneDisabled):
            await pacer.acquire(third, 1, 0, deadline=10)
        return shares, best, after, pacer.disabled(), pacer.headroom(third)

    shares, best, after, disabled, out = run_virtual(scenario())
    assert shares == pytest.approx([0.5, 0.6, 1.0])
    assert best == Lane("openai", 2, "gpt-4o-mini")
    assert after == OTHER
    assert disabled == {Lane("openai", 2, "gpt-4o-mini"): "401 from upstream: invalid api key"}
    assert out == 0.0


def test_disable_fails_the_calls_queued_on_the_key():
    async def scenario():
        pacer = virtual_pacer()
        pacer.configure(LANE, 1, None)
        await pacer.acquire(LANE, 1, 0, deadline=100)
        queued = asyncio.ensure_future(pacer.acquire(LANE, 1, 0, deadline=100))
        await asyncio.sleep(1)
        pacer.disable(LANE, "403 from upstream")
        with pytest.raises(LaneDisabled):
            await queued
        pacer.enable(LANE)
        return pacer.disabled()

    assert run_virtual(scenario()) == {}


def test_configure_rejects_non_positive_limits():
    with pytest.raises(ValueError, match="rpm must be positive"):
        Pacer().configure(LANE, 0, None)


# --- token estimates ------------------------------------------------------------------------


def test_encoding_by_model():
    assert encoding_name("gpt-4o-mini") == "o200k_base"
    assert encoding_name("openai/gpt-4.1") == "o200k_base"
    assert encoding_name("o3-mini") == "o200k_base"
    assert encoding_name("gpt-5") == "o200k_base"
    assert encoding_name("gpt-4-turbo") == "cl100k_base"
    assert encoding_name("claude-sonnet-4-5") == "cl100k_base"


@pytest.mark.usefixtures("tiktoken_encodings")  # exact counts
def test_estimate_counts_openai_messages_and_output():
    encoder = tiktoken.get_encoding("o200k_base")
    body = {
        "model": "gpt-4o",
        "messages": [
            {"role": "system", "content": "You are terse."},
            {"role": "user", "content": [{"type": "text", "text": "Sum 2 and 3."}]},
            {
                "role": "assistant",
                "tool_calls": [{"function": {"name": "add", "arguments": '{"a": 2, "b": 3}'}}],
            },
            {"role": "tool", "content": "5"},
        ],
        "max_completion_tokens": 50,
    }
    text = "\n".join(["You are terse.", "Sum 2 and 3.", "add", '{"a": 2, "b": 3}', "5"])
    expected = len(encoder.encode_ordinary(text)) + 4 * 4 + 3 + 50
    assert estimate_parts(body, "gpt-4o") == (expected - 50, 50)
    del body["max_completion_tokens"]
    assert estimate_parts(body, "gpt-4o") == (expected - 50, DEFAULT_OUTPUT_TOKENS)


@pytest.mark.usefixtures("tiktoken_encodings")  # exact counts
def test_estimate_counts_anthropic_system_tools_and_blocks():
    body = {
        "model": "claude-sonnet-4-5",
        "max_tokens": 100,
        "system": [{"type": "text", "text": "Be brief. " * 20}],
        "tools": [{"name": "weather", "input_schema": {"type": "object", "properties": {"city": {}}}}],
        "messages": [
            {"role": "user", "content": "Weather in Paris?"},
            {
                "role": "assistant",
                "content": [{"type": "tool_use", "name": "weather", "input": {"city": "Paris"}}],
            },
            {
                "role": "user",
                "content": [{"type": "tool_result", "content": [{"type": "text", "text": "Sunny"}]}],
            },
            {
                "role": "user",
                "content": [{"type": "image", "source": {"type": "base64", "data": "AAAA" * 1000}}],
            },
        ],
    }
    estimate = sum(estimate_parts(body, "claude-sonnet-4-5"))
    # the image's base64 is not text: it costs a fixed amount, not 4,000 characters' worth
    assert 765 + 100 + 60 < estimate < 765 + 100 + 200


@pytest.mark.usefixtures("tiktoken_encodings")  # exact counts
def test_estimate_for_embeddings_has_no_output():
    assert estimate_parts({"input": "hello world"}, "text-embedding-3-small") == (2, 0)


@pytest.mark.usefixtures("tiktoken_encodings")  # exact counts
def test_long_text_is_sampled_within_a_few_per_cent():
    source = Path(__file__).read_text()
    text = (source * (400_000 // len(source) + 1))[:400_000]
    exact = len(tiktoken.get_encoding("cl100k_base").encode_ordinary(text))
    estimate = count_text(text, "claude-sonnet-4-5")
    assert abs(estimate - exact) / exact < 0.08
    assert count_text(text[:EXACT_CHARS], "gpt-4o") == len(
        tiktoken.get_encoding("o200k_base").encode_ordinary(text[:EXACT_CHARS])
    )


_PRELOAD_PROBE = """
import json, time
from xvckit.gateway import token_estimate
started = time.perf_counter()
thread = token_estimate.preload(["gpt-4o", "claude-sonnet-4-5"])
returned_s = time.perf_counter() - started
thread.join()
started = time.perf_counter()
counts = [token_estimate.count_text("hello world", m) for m in ("gpt-4o", "claude-sonnet-4-5")]
first_count_s = time.perf_counter() - started
print(json.dumps({"returned_s": returned_s, "first_count_s": first_count_s, "counts": counts}))
"""


def test_preload_loads_encoders_off_the_caller(tiktoken_encodings):
    """Loading an encoder takes 0.2-0.6 s; the gateway preloads them in a thread as it starts,
    so its first requests do not wait on the event loop. A fresh interpreter, since this
    process has them loaded already."""
    probe = subprocess.run(
        [sys.executable, "-c", _PRELOAD_PROBE], capture_output=True, text=True, timeout=60, check=True
    )
    result = json.loads(probe.stdout)
    assert result["returned_s"] < 0.05, "preload waited for the loading"
    assert result["first_count_s"] < 0.05, "the first count still loaded an encoder"
    assert result["counts"] == [2, 2]


def test_estimate_cost():
    """Per-call cost, printed (the figures in token_estimate's docs); bounded loosely here."""
    source = Path(__file__).read_text()
    bodies = {
        "short chat": {"messages": [{"role": "user", "content": "Write a haiku about queues."}]},
        f"{EXACT_CHARS // 1000} KB": {"messages": [{"role": "user", "content": (source * 10)[:EXACT_CHARS]}]},
        "1 MB": {"messages": [{"role": "user", "content": (source * 100)[:1_000_000]}]},
    }
    estimate_parts(bodies["short chat"], "gpt-4o")  # loads the encoder
    costs = {}
    for name, body in bodies.items():
        runs = []
        for _ in range(30):
            start = time.perf_counter()
            estimate_parts(body, "gpt-4o")
            runs.append(time.perf_counter() - start)
        costs[name] = statistics.median(runs)
    print("\nestimate_parts: " + ", ".join(f"{k} {v * 1e6:.0f} µs" for k, v in costs.items()))
    assert costs["1 MB"] < 0.01


def test_acquire_cost():
    """The fast path (room in the window): one admission, measured per call and printed."""

    async def scenario():
        pacer = Pacer()
        pacer.configure(LANE, 10_000_000, 10_000_000_000)
        for _ in range(1000):
            await pacer.acquire(LANE, 100, 0, deadline=1)
        start = time.perf_counter()
        for _ in range(20_000):
            grant = await pacer.acquire(LANE, 100, 0, deadline=1)
            pacer.settle(grant, 90)
        return (time.perf_counter() - start) / 20_000

    per_call = asyncio.run(scenario())
    print(f"\nlocal acquire + settle: {per_call * 1e6:.1f} µs")
    assert per_call < 0.001


async def test_a_provider_without_rate_limit_headers_costs_no_window():
    """No limit configured and none in the answers: calls are not remembered (memory and CPU
    stay flat at any rate), until a header or a 429 gives the pacer something to pace by."""
    pacer = Pacer()
    lane = Lane("p", 0, "m")
    pacer.observe(lane, 200, {}, await pacer.acquire(lane, 10))
    for _ in range(500):
        pacer.settle(await pacer.acquire(lane, 10), 5)
    assert pacer.snapshot()[0]["requests_in_window"] <= 1
    pacer.observe(lane, 200, {"x-ratelimit-limit-requests": "100", "x-ratelimit-remaining-requests": "99"})
    await pacer.acquire(lane, 10)
    assert pacer.snapshot()[0]["requests_in_window"] >= 1
    await pacer.aclose()


@pytest.mark.parametrize("reset", ["nan", "inf", "1e400", "-5"])
def test_a_hostile_reset_header_teaches_nothing(reset):
    """An upstream's non-finite or negative `reset` neither raises nor changes the window."""

    async def scenario():
        pacer = virtual_pacer(enforced_over_s=None)
        headers = {
            "x-ratelimit-limit-requests": "100",
            "x-ratelimit-remaining-requests": "50",
            "x-ratelimit-reset-requests": reset,
        }
        pacer.observe(LANE, 200, headers, None)
        assert pacer.snapshot()[0]["enforced_over_s"] == 1.0

    run_virtual(scenario())


def test_the_snapshot_counts_calls_that_waited_and_their_waits():
    """What the infrastructure monitor samples (metrics/infra.py): calls admitted at once count
    nothing; each call that queued counts once, with the time it waited."""

    async def scenario():
        pacer = virtual_pacer(guard_s=0.5)
        pacer.configure(LANE, 2, None)
        for _ in range(3):
            await pacer.acquire(LANE, 1, 0, deadline=1000)
        return next(row for row in pacer.snapshot() if row["lane"] == str(LANE))

    lane = run_virtual(scenario())
    assert lane["waits"] == 1 and lane["waited_s"] == pytest.approx(60.5, abs=1e-3)
