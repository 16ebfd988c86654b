"""The ledger's write-ahead journal: each usage row is appended to a local file before the
client gets its last bytes, and committed to the database in large batches afterwards.

An append is a copy into the segment file mapped into memory (MAP_SHARED): no system call
(a `write()` per request cost ~7% of the gateway's CPU), and in the kernel's page cache
from that moment, so it survives the gateway being killed with SIGKILL (not a power cut;
the database commit that follows moments later is the durable copy). The unused end of a
segment reads as zero bytes until the segment is closed and cut to its length, and a JSON
line holds no zero byte: a reader stops at the first zero and takes whole lines only, so it
never takes a line whose copy was cut short (whatever order the copy stored its bytes in,
its newline included). Each process appends to segment files of its own, each locked with
`flock` from before it is visible under its name until the process moves on to the next
one, closes or dies. The ledger writer (store/ledger_writer.py) commits the rows and
deletes a segment once it is unlocked and committed to its end, whichever process wrote it.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import mmap
import os
import sys
import time
from pathlib import Path

import orjson

SEGMENT_BYTES = 8 << 20
# Linux 5.14+: fault a segment's pages in, writable, a chunk at a time ahead of the appends.
# Left to the first write of each page (~16 rows), the faults cost the gateway ~0.6 us a row:
# an append's copy into the map took 1.4 us instead of 0.9. A chunk takes ~0.2 ms (a whole
# segment at once held the event loop ~7 ms). Python 3.11's mmap module does not name it.
_MADV_POPULATE_WRITE = getattr(mmap, "MADV_POPULATE_WRITE", 23 if sys.platform == "linux" else None)
POPULATE_BYTES = 256 << 10


def journal_dir(data_dir: Path, store_url: str) -> Path:
    """One directory per store, so a journal is never replayed into another database."""
    return data_dir / "journal" / hashlib.sha256(store_url.encode()).hexdigest()[:16]


def segment_owner(path: Path) -> tuple[int, int]:
    """(start time in ns, pid) from a segment's name: the order of segments and who wrote it."""
    _, started, pid = path.stem.split("-")[:3]
    return int(started), int(pid)


class Journal:
    """The appending side: one process's segments, and how many bytes it has written."""

    def __init__(self, directory: Path, segment_bytes: int = SEGMENT_BYTES) -> None:
        self.directory = directory
        self.segment_bytes = segment_bytes
        self.appended = 0  # bytes, over every segment of this process
        self._fd = -1
        self._map: mmap.mmap | None = None
        self._size = 0  # of the segment's map
        self._used = 0  # the segment's bytes written
        self._populated = 0  # the map's bytes faulted in
        self._started: dict[int, int] = {}  # segment start ns -> `appended` when it started

    def open(self) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        self._start_segment(self.segment_bytes)

    def append(self, row: tuple) -> None:
        line = orjson.dumps(row, option=orjson.OPT_APPEND_NEWLINE)
        size = len(line)
        start = self._used
        end = start + size
        if end > self._populated:
            if end > self._size:
                self._close_segment()  # unlocks it: the ledger writer finishes and deletes it
                self._start_segment(max(self.segment_bytes, size))
                start, end = 0, size
            self._populate(end)
        self._map[start:end] = line
        self._used = end
        self.appended += size

    def close(self) -> None:
        if self._fd >= 0:
            self._close_segment()

    def committed(self, started_ns: int, offset: int) -> int | None:
        """The bytes of this journal committed when the writer reports `offset` in the segment
        that started at `started_ns` (None for a segment that is not this journal's)."""
        start = self._started.get(started_ns)
        if start is None:
            return None
        for older in [ns for ns in self._started if ns < started_ns]:
            del self._started[older]
        return start + offset

    def _start_segment(self, size: int) -> None:
        """Locked before it gets its name, so a writer never takes a new segment for one
        whose process has finished with it."""
        started = time.time_ns()
        name = f"segment-{started:020d}-{os.getpid()}.jsonl"
        hidden = self.directory / f".{name}.new"
        self._fd = os.open(hidden, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o600)
        fcntl.flock(self._fd, fcntl.LOCK_EX)
        os.ftruncate(self._fd, size)
        self._map = mmap.mmap(self._fd, size)
        os.rename(hidden, self.directory / name)
        self._started[started] = self.appended
        self._size = size
        self._used = 0
        self._populated = 0

    def _populate(self, end: int) -> None:
        """Fault in the map's pages up to the chunk that holds `end`."""
        stop = min(self._size, (end // POPULATE_BYTES + 1) * POPULATE_BYTES)
        if _MADV_POPULATE_WRITE is not None:
            with contextlib.suppress(OSError):  # an older kernel: each page faults in when first written
                self._map.madvise(_MADV_POPULATE_WRITE, self._populated, stop - self._populated)
        self._populated = stop

    def _close_segment(self) -> None:
        self._map.close()
        os.ftruncate(self._fd, self._used)
        os.close(self._fd)
        self._fd = -1
