"""The window log (admission's windows, the pacer's lanes) against a plain list of
(time, weight): the same total and the same wait, also across the compaction of its arrays."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from xvckit.gateway.admission import WINDOW_S, SlidingWindow

steps = st.lists(
    st.tuples(st.floats(0, 30), st.integers(1, 50), st.integers(0, 80), st.booleans()),
    min_size=1,
    max_size=3000,
)


@settings(max_examples=60, deadline=None)
@given(steps, st.integers(50, 500))
def test_window_matches_a_plain_log(ops, limit):
    window = SlidingWindow(limit)
    log: list[list[float]] = []  # [time, weight] for every entry ever added
    now = 0.0
    for gap, weight, real, adjust in ops:
        now += gap
        live = [entry for entry in log if entry[0] + WINDOW_S > now]
        total = sum(w for _, w in live)
        wait = window.wait_for(weight, now)
        if total + weight <= limit or not live:
            assert wait == 0.0
        else:
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
    window = SlidingWindow(10**9)
    for i in range(200_000):
        window.add(i * 0.001, 1)  # 1,000 a second: 60,000 in any window
        window.wait_for(1, i * 0.001)
    assert window.total == 60_000
    assert len(window._stamps) < 130_000  # the expired front is dropped as it goes
