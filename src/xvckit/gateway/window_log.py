"""A sliding-window log: weighted entries, each counting for `span` seconds after its stamp.

Kept in two vectors of unboxed floats rather than an object per entry: a window holds every
request of the last minute, hundreds of thousands at a few thousand requests a second, which
as objects cost megabytes (the pacer's grants: ~100 MiB at 7,700 req/s) and the garbage
collector's time. The vectors are mypyc's `vec[float]` (librt): compiled, appending to one or
setting an item is a store, where an `array("d")` took a method call and an argument parse
(an add and an adjust: ~45 ns against ~250-330). An entry is named by its position since the
log was made, so a caller can correct its weight later (`adjust`) while it is still in the
window.
"""

from __future__ import annotations

from librt.vecs import append, pop, vec


class WindowLog:
    __slots__ = ("_dropped", "_head", "_stamps", "_weights", "count", "span", "total")

    def __init__(self, span: float) -> None:
        self.span = span
        self.count = 0  # the entries in the window
        self.total = 0.0  # and their weights
        self._stamps: vec[float] = vec[float]()
        self._weights: vec[float] = vec[float]()
        self._head = 0  # the first entry still in the window
        self._dropped = 0  # entries removed from the front of the vectors

    def expire(self, now: float) -> None:
        """Forget the entries whose span is over."""
        stamps, head, span = self._stamps, self._head, self.span
        size = len(stamps)
        while head < size and stamps[head] + span <= now:
            self.total -= self._weights[head]
            head += 1
        self.count = size - head
        if head == size:
            self.total = 0.0  # no rounding drift left behind
        if head > 1024 and head * 2 > size:
            self._stamps = stamps[head:]
            self._weights = self._weights[head:]
            self._dropped += head
            head = 0
        self._head = head

    def add(self, stamp: float, weight: float) -> int:
        """Log an entry (stamps in order); returns its name for `adjust`."""
        self._stamps = append(self._stamps, stamp)
        self._weights = append(self._weights, weight)
        self.total += weight
        self.count += 1
        return self._dropped + self._head + self.count - 1

    def remove_last(self) -> None:
        """Take back the entry `add` made last."""
        self._stamps = pop(self._stamps)[0]
        self._weights, weight = pop(self._weights)
        self.total -= weight
        self.count -= 1

    def adjust(self, entry: int, weight: float) -> bool:
        """Give an entry its real weight; False if it has left the window (nothing to do)."""
        i = entry - self._dropped
        if i < self._head:
            return False
        self.total += weight - self._weights[i]
        self._weights[i] = weight
        return True

    def entries(self):
        """(name, stamp, weight) of each entry in the window, oldest first."""
        for i in range(self._head, len(self._stamps)):
            yield self._dropped + i, self._stamps[i], self._weights[i]

    def leaves_at(self, count: int) -> float:
        """When the `count`-th oldest entry (1-based, at most `self.count`) leaves the window."""
        return self._stamps[self._head + count - 1] + self.span

    def freed_at(self, weight: float) -> float | None:
        """When the oldest entries will have taken at least `weight` out of the window with
        them; None if all of them together weigh less."""
        weights = self._weights
        for i in range(self._head, len(weights)):
            weight -= weights[i]
            if weight <= 0:
                return self._stamps[i] + self.span
        return None

    def _first_after(self, stamp: float) -> int:
        """The position of the first entry in the window stamped after `stamp` (binary search)."""
        stamps = self._stamps
        low, high = self._head, len(stamps)
        while low < high:
            middle = (low + high) // 2
            if stamps[middle] <= stamp:
                low = middle + 1
            else:
                high = middle
        return low

    def recent(self, since: float) -> tuple[int, float]:
        """The entries stamped after `since` and their weight: what a shorter window holds."""
        start = self._first_after(since)
        weights = self._weights
        total = 0.0
        for i in range(start, len(weights)):
            total += weights[i]
        return len(weights) - start, total

    def recent_reached(self, since: float, excess: float, by_weight: bool) -> float | None:
        """The stamp of the entry at which the oldest entries stamped after `since` add up to
        `excess` (in number, or in weight); None if all of them together do not."""
        weights = self._weights
        for i in range(self._first_after(since), len(weights)):
            excess -= weights[i] if by_weight else 1.0
            if excess <= 0:
                return self._stamps[i]
        return None
