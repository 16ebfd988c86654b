"""The window log (admission's windows, the pacer's lanes) against a plain list of
(time, weight): the same total and the same wait, also across the compaction of its arrays."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from xvckit.gateway.admission import WINDOW_S, Scope
from xvckit.gateway.dialects import GatewayError
from xvckit.store.keys import Limits

steps = st.lists(
    st.tuples(st.floats(0, 30), st.integers(1, 50), st.integers(0, 80), st.booleans()),
    min_size=1,
    max_size=3000,
)


@settings(max_examples=60, deadline=None)
@given(steps, st.integers(50, 500))
def test_window_matches_a_plain_log(ops, limit):
    window = Scope("key:k")
    log: list[list[float]] = []  # [time, weight] for every entry ever added
    now = 0.0
    for gap, weight, real, adjust in ops:
        now += gap
        live = [entry for entry in log if entry[0] + WINDOW_S > now]
        total = sum(w for _, w in live)
        over = window.over(None, limit, weight, now)
        if total + weight <= limit or not live:
            assert over is None
        else:
            wait = over[0]
            excess, expected = total + weight - limit, WINDOW_S
            for stamp, w in live:
                excess -= w
                if excess <= 0:
                    expected = stamp + WINDOW_S - now
                    break
            assert abs(wait - expected) < 1e-6
        entry = window.add(now, weight)
        log.append([now, float(weight)])
        if adjust:
            window.adjust(entry, real)
            log[-1][1] = float(real)
        assert abs(window.total - sum(w for t, w in log if t + WINDOW_S > now)) < 1e-6


def test_many_entries_stay_compact():
    window = Scope("key:k")
    for i in range(200_000):
        window.add(i * 0.001, 1)  # 1,000 a second: 60,000 in any window
        window.over(10**9, 10**9, 1, i * 0.001)
    assert window.total == 60_000
    assert len(window._stamps) < 130_000  # the expired front is dropped as it goes


@settings(max_examples=60, deadline=None)
@given(st.lists(st.floats(0, 20), min_size=1, max_size=500), st.integers(1, 40))
def test_request_count_matches_a_plain_log(gaps, rpm):
    """The same log holds the requests per minute: the count, and when the oldest leave."""
    window = Scope("key:k")
    stamps: list[float] = []
    now = 0.0
    for gap in gaps:
        now += gap
        live = [t for t in stamps if t + WINDOW_S > now]
        over = window.over(rpm, None, 1, now)
        if len(live) < rpm:
            assert over is None
        else:
            assert abs(over[0] - (live[len(live) - rpm] + WINDOW_S - now)) < 1e-6
            assert over[1:] == (rpm, "requests per minute")
            continue  # refused: not logged
        window.add(now, 1)
        stamps.append(now)


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.tuples(st.sampled_from([0.0, 0.4, 1.0, 29.5, 59.6, 60.0]) | st.floats(0, 20), st.integers(1, 30)),
        min_size=1,
        max_size=400,
    ),
    st.integers(1, 20),
)
def test_reserve_refuses_exactly_what_a_plain_log_refuses(ops, rpm):
    """`reserve` drops expired entries lazily (at most a second late, or when a limit looks
    reached): it must admit and refuse exactly as a log that drops them at once."""
    scope = Scope("key:k")
    limits = Limits(rpm=rpm, tpm=rpm * 20)
    log: list[tuple[float, int]] = []
    now = 0.0
    for gap, tokens in ops:
        now += gap
        live = [(t, w) for t, w in log if t + WINDOW_S > now]
        fits = not live or (len(live) < rpm and sum(w for _, w in live) + tokens <= rpm * 20)
        try:
            scope.reserve(limits, "m", now, tokens, None)
        except GatewayError as refused:
            assert not fits and refused.status == 429
        else:
            assert fits
            log.append((now, tokens))
