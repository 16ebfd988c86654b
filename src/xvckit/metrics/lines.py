"""Follow-up commits: a commit that changes or removes lines another commit added less than
a day before (a review correction).

The tracker keeps, per path, the line ranges each recent commit added, in the coordinates of
the file as the history read so far leaves it. Each later change to the path is checked
against them (its hunks' old lines) and then moves them as its hunks move lines (git's -U0
hunk headers: `@@ -old,len +new,len @@`). Commits come in history order (parents first); on
branches that ran side by side the coordinates are those of whichever came last, so a match
there is approximate.
"""

from __future__ import annotations

DAY = 86400

# a hunk: (old start, old length, new start, new length), as git's -U0 header gives them
Hunk = tuple[int, int, int, int]
# a range a commit added: [start, end) lines, the commit's author time, the commit's index
Added = tuple[int, int, int, int]


class Tracker:
    def __init__(self, ranges: dict[str, list[Added]] | None = None) -> None:
        self.ranges: dict[str, list[Added]] = ranges if ranges is not None else {}

    def change(self, path: str, hunks: list[Hunk], when: int, commit: int) -> bool:
        """Apply one commit's hunks (in file order) to `path`; True when they change lines
        another commit added within a day before `when`."""
        spans = [(*_old_span(hunk), hunk[3] - hunk[1]) for hunk in hunks]
        floor = when - DAY
        follow_up = False
        moved: list[Added] = []
        for start, end, added_at, by in self.ranges.get(path, ()):
            if added_at <= floor:
                continue  # a day or more before
            shift = 0
            for old_start, old_end, delta in spans:
                if end <= old_start:
                    break
                if start < old_start:
                    moved.append((start + shift, old_start + shift, added_at, by))
                    start = old_start
                if start < old_end:  # lines of the range this hunk replaces
                    follow_up = follow_up or by != commit
                    start = old_end
                shift += delta
            if start < end:
                moved.append((start + shift, end + shift, added_at, by))
        moved.extend((new, new + size, when, commit) for _, _, new, size in hunks if size)
        if moved:
            self.ranges[path] = moved
        else:
            self.ranges.pop(path, None)
        return follow_up

    def rename(self, old: str, new: str) -> None:
        if old in self.ranges:
            self.ranges[new] = self.ranges.pop(old)

    def delete(self, path: str) -> None:
        self.ranges.pop(path, None)

    def expire(self, now: int) -> None:
        """Forget ranges older than a day before `now` (paths not touched since keep theirs
        until this runs)."""
        for path in list(self.ranges):
            kept = [r for r in self.ranges[path] if r[2] > now - DAY]
            if kept:
                self.ranges[path] = kept
            else:
                del self.ranges[path]


def _old_span(hunk: Hunk) -> tuple[int, int]:
    """The old lines a hunk replaces, [start, end); an insertion (length 0) goes after line
    `start`, so its empty span sits at start + 1."""
    start, size = hunk[0], hunk[1]
    return (start, start + size) if size else (start + 1, start + 1)
