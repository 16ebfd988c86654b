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

A segment's pages are made ready in the kernel before any row goes there: its file is created,
locked, sized, mapped and every page faulted in, writable, by a thread while the segment
before it fills (on ext4 ~3 us a page: in the keys bench an append took ~1.2 us with its
share of that, ~1.0 us without).
Until it is needed it waits under a hidden name, which the writer removes if the process
dies first.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import itertools
import mmap
import os
import sys
import time
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import orjson

SEGMENT_BYTES = 8 << 20
# Linux 5.14+: fault a segment's pages in, writable, before its first row (left to the first
# write of each page, the faults cost an append ~0.6 us a row). Python 3.11's mmap module does
# not name it.
_MADV_POPULATE_WRITE = getattr(mmap, "MADV_POPULATE_WRITE", 23 if sys.platform == "linux" else None)
_spares = itertools.count()
_open_journals: set[str] = set()  # this process's open journals, by owner name


class _Segment:
    """A segment file, locked and mapped, with its pages ready; hidden until `name`d."""

    __slots__ = ("fd", "map", "path", "size")

    def __init__(self, directory: Path, size: int) -> None:
        self.path = directory / f".segment-spare-{os.getpid()}-{next(_spares)}.new"
        self.fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            fcntl.flock(self.fd, fcntl.LOCK_EX)
            os.ftruncate(self.fd, size)
            self.map = mmap.mmap(self.fd, size)
        except BaseException:
            os.close(self.fd)
            self.path.unlink(missing_ok=True)
            raise
        self.size = size
        if _MADV_POPULATE_WRITE is not None:
            with contextlib.suppress(OSError):  # an older kernel: each page faults in when first written
                self.map.madvise(_MADV_POPULATE_WRITE)

    def name(self, started_ns: int, owner: str) -> None:
        """Make it visible to the writer: locked since before it had this name, so a writer
        never takes a new segment for one whose process has finished with it."""
        visible = self.path.with_name(f"segment-{started_ns:020d}-{owner}.jsonl")
        os.rename(self.path, visible)
        self.path = visible

    def close(self, used: int) -> None:
        """Cut to its rows and unlock it: the ledger writer finishes it and deletes it."""
        self.map.close()
        os.ftruncate(self.fd, used)
        os.close(self.fd)

    def discard(self) -> None:
        """Remove a segment that was never named."""
        self.map.close()
        os.close(self.fd)
        self.path.unlink(missing_ok=True)


def journal_dir(data_dir: Path, store_url: str) -> Path:
    """One directory per store, so a journal is never replayed into another database."""
    return data_dir / "journal" / hashlib.sha256(store_url.encode()).hexdigest()[:16]


def segment_journal(path: Path) -> str:
    """The journal that wrote a segment: "<pid>-<tag>" (a name from before tags: "<pid>")."""
    return path.stem.split("-", 2)[2]


def is_open(owner: str) -> bool:
    """Whether a journal of this process with that owner name is open (gateways in one
    process, as tests and `xvckit up` run them, each have their own)."""
    return owner in _open_journals


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
        self._segment: _Segment | None = None
        self._map: mmap.mmap | None = None  # the segment's, read by every append
        self._size = 0  # of the segment's map
        self._used = 0  # the segment's bytes written
        self._started: dict[int, int] = {}  # segment start ns -> `appended` when it started
        self._preparer: ThreadPoolExecutor | None = None
        self._spare: Future[_Segment] | None = None  # the next segment, being made ready
        # in the segments' names: the process and this journal, so a writer tells its
        # gateway's segments from another gateway's in the same process
        self.owner = f"{os.getpid()}-{os.urandom(4).hex()}"

    def open(self) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        _open_journals.add(self.owner)
        self._preparer = ThreadPoolExecutor(1, thread_name_prefix="journal-segments")
        self._switch_to(_Segment(self.directory, self.segment_bytes))

    def append(self, row: tuple) -> None:
        line = orjson.dumps(row, option=orjson.OPT_APPEND_NEWLINE)
        size = len(line)
        start = self._used
        end = start + size
        if end > self._size:
            self._switch_to(self._next_segment(size))
            start, end = 0, size
        self._map[start:end] = line
        self._used = end
        self.appended += size

    def close(self) -> None:
        if self._segment is not None:
            self._segment.close(self._used)
            self._segment = self._map = None
        spare, self._spare = _made(self._spare), None
        if spare is not None:
            spare.discard()
        if self._preparer is not None:
            self._preparer.shutdown()
            self._preparer = None
        _open_journals.discard(self.owner)

    def committed(self, started_ns: int, offset: int) -> int | None:
        """The bytes of this journal committed when the writer reports `offset` in the segment
        that started at `started_ns` (None for a segment that is not this journal's)."""
        start = self._started.get(started_ns)
        if start is None:
            return None
        for older in [ns for ns in self._started if ns < started_ns]:
            del self._started[older]
        return start + offset

    def _next_segment(self, size: int) -> _Segment:
        """The spare, or a segment made now if there is none, it failed, or a line is larger."""
        spare, self._spare = _made(self._spare), None
        if spare is not None and spare.size >= size:
            return spare
        if spare is not None:
            spare.discard()
        return _Segment(self.directory, max(self.segment_bytes, size))

    def _switch_to(self, segment: _Segment) -> None:
        """Name the new segment, let go of the one before, and have the next one made ready."""
        started = time.time_ns()
        segment.name(started, self.owner)
        if self._segment is not None:
            self._segment.close(self._used)
        self._started[started] = self.appended
        self._segment, self._map, self._size, self._used = segment, segment.map, segment.size, 0
        self._spare = self._preparer.submit(_Segment, self.directory, self.segment_bytes)


def _made(spare: Future[_Segment] | None) -> _Segment | None:
    """The spare segment once ready; None if there is none or it could not be made (the
    caller makes one itself, and that error, if it recurs, is raised)."""
    try:
        return spare.result() if spare is not None else None
    except OSError:
        return None
