"""The ledger's database writer: a process of its own that commits the journal.

The gateway appends each usage row to a journal segment (store/journal.py) and never waits
on the database. This process reads the segments, commits their rows in large batches with
their rollups (`ledger.commit_rows`), and deletes a segment once its process has finished
with it (the segment is unlocked) and every row of it is committed.

Why a process and not a thread: in a thread the commits shared the GIL with the event loop;
at ~4,500 requests/s the thread committed ~1,700 rows/s and its backlog grew in the
gateway's memory (+58 MiB in 25 s). Here the backlog is bytes on disk, the writer runs at a
lower priority than the gateway, and the gateway reports how far behind it is.

Which segments: those of its own gateway's journal (the owner, named in each segment's name
with its process id and a tag of its own, so two gateways in one process are told apart) in
order, read while they are still being written; and any segment no living process holds
(left by a stopped or killed gateway, or by an earlier writer), taken with `flock` so two
writers never share one. Rows already in the database are skipped (request ids are unique), so
reading a segment again after a crash writes nothing twice.

With the gateway: stdin carries the settings as one JSON line and then nothing; its end
(the gateway closed it, or died) means "finish the owner's segments and exit". After each
commit of the owner's rows, stdout gets a line `<segment start ns> <offset>`: everything of
that segment before the offset is in the database.
"""

from __future__ import annotations

import contextlib
import fcntl
import gc
import logging
import math
import os
import signal
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import msgspec
import orjson
import sqlalchemy as sa

from xvckit.store.database import Store
from xvckit.store.journal import segment_journal, segment_owner
from xvckit.store.ledger import (
    DAY,
    commit_rows,
    decode_row,
    decode_rows,
    describe,
    prune_step,
    transient,
    writer_for,
)

log = logging.getLogger("xvckit.ledger")

BATCH_BYTES = 4 << 20  # ~20,000 rows a transaction at most (an open segment reads as zeros past its end)
IDLE_S = 0.02
# After a pass of n rows (not a full batch), let rows gather for LINGER_S * n / LINGER_ROWS,
# at least IDLE_S, at most LINGER_S: above LINGER_ROWS rows a second that settles at one
# commit a second. Each commit also upserts the hour and day rollups of every key in it, so
# larger commits cost less per row (1,000 keys: 14.8 us a row at 1,750-row commits, 10.7 at
# 7,000); at lower rates a row reaches the database within about IDLE_S. Rows wait in the
# journal meanwhile.
LINGER_S = 1.0
LINGER_ROWS = 1000
LEFTOVER_WAIT_S = 5.0  # after the gateway is gone, how long to wait for its segments to unlock


@dataclass(slots=True)
class _Segment:
    path: Path
    fd: int
    started: int
    owner: str  # the journal that wrote it ("<pid>-<tag>")
    offset: int = 0
    final: bool = False  # unlocked by its process and locked by this writer: nothing more comes


class JournalWriter:
    """Commits the rows of a journal directory; `run` is the process's loop, `step` one pass."""

    def __init__(
        self,
        store: Store,
        directory: Path,
        owner: str,
        *,
        progress: Callable[[int, int], None] | None = None,
        retention_days: float | None = None,
        prune_interval_s: float = 300.0,
        prune_batch: int = 1000,
        batch_bytes: int = BATCH_BYTES,
    ) -> None:
        self.store = store
        self.directory = directory
        self.owner = owner  # the gateway's journal: its segments are read as they grow
        self.progress = progress or (lambda started, offset: None)
        self.retention_days = retention_days
        self.prune_interval_s = prune_interval_s
        self.prune_batch = prune_batch
        self.batch_bytes = batch_bytes
        self.commits = 0  # transactions that wrote rows
        self.records = 0  # rows written (duplicates not counted)
        self.dropped = 0  # rows the database refused
        self.pruned = 0  # rows deleted by retention
        self._segments: dict[Path, _Segment] = {}
        self._writer = writer_for(store.engine.dialect.name)
        self._conn: sa.Connection | None = None
        self._next_prune = 0.0
        self._full = False  # the last pass read a whole batch somewhere: more is waiting

    def run(self, stopping: Callable[[], bool]) -> None:
        """Commit until `stopping()` and the owner's segments are all committed; a database
        that is down is retried with backoff (rows wait on disk, nothing is dropped)."""
        self._remove_stillborn()
        failures = 0
        gone_since = math.inf
        while True:
            stop = stopping()  # before the pass, so the pass sees what the owner closed
            records = self.records
            try:
                worked = self.step()
            except Exception as exc:
                if not transient(exc):
                    raise
                self._conn = _discard(self._conn)
                if not failures:
                    log.error("usage ledger: commit failed, retrying: %s", describe(exc))
                failures += 1
                if stop and failures > 40:  # ~30 s: leave the rest on disk for the next start
                    log.error("usage ledger: database still down; the journal keeps the rows")
                    return
                time.sleep(min(0.05 * 2 ** min(failures, 5), 1.0))
                continue
            if failures:
                log.warning("usage ledger: database back after %d failed attempt(s)", failures)
                failures = 0
            if worked:
                if not stop and not self._full:
                    rows = self.records - records
                    time.sleep(max(IDLE_S, LINGER_S * min(1.0, rows / LINGER_ROWS)))
                continue
            if stop:
                gone_since = min(gone_since, time.monotonic())
                if not self._owner_segments() or time.monotonic() - gone_since > LEFTOVER_WAIT_S:
                    self._remove_stillborn()  # the spare segment of an owner that was killed
                    return
            self._prune()
            time.sleep(IDLE_S)

    def step(self) -> bool:
        """One pass over the journal: commit one batch of each segment that has new rows
        (of the owner's, only the oldest: its progress is reported in order). True if any
        row was read or a segment finished."""
        worked = False
        owner_seen = False
        self._full = False
        for path in sorted(self.directory.glob("segment-*.jsonl")):
            segment = self._segments.get(path) or self._take(path)
            if segment is None:
                continue
            if segment.owner == self.owner:
                if owner_seen:
                    continue
                owner_seen = True
            worked |= self._advance(segment)
        return worked

    def _remove_stillborn(self) -> None:
        """A segment is created under a hidden name and renamed once locked and needed; a
        process killed in between leaves a hidden file, unlocked (empty, or a spare segment)."""
        for path in self.directory.glob(".segment-*.new"):
            fd = os.open(path, os.O_RDONLY)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                path.unlink(missing_ok=True)
            except BlockingIOError:
                pass  # being created right now
            finally:
                os.close(fd)

    def close(self) -> None:
        for segment in self._segments.values():
            os.close(segment.fd)
        self._segments.clear()
        self._conn = _discard(self._conn)

    def _take(self, path: Path) -> _Segment | None:
        """The owner's segments are read while they grow; another process's only once no
        one holds it."""
        try:
            started, _ = segment_owner(path)
            fd = os.open(path, os.O_RDONLY)
        except (ValueError, FileNotFoundError):
            return None
        segment = _Segment(path, fd, started, segment_journal(path))
        if segment.owner != self.owner and not self._lock(segment):
            os.close(fd)
            return None
        self._segments[path] = segment
        return segment

    def _lock(self, segment: _Segment) -> bool:
        """Take the segment if its process has finished with it, and it is still there."""
        try:
            fcntl.flock(segment.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False
        try:
            segment.final = os.stat(segment.path).st_ino == os.fstat(segment.fd).st_ino
        except FileNotFoundError:
            segment.final = False  # another writer finished and deleted it
        return segment.final

    def _advance(self, segment: _Segment) -> bool:
        final = segment.final or self._lock(segment)  # before reading: then the read sees all
        if not final and os.pread(segment.fd, 1, segment.offset) in (b"", b"\0"):
            return False  # nothing new: one byte read, not a batch of the zeros past the end
        data = os.pread(segment.fd, self.batch_bytes, segment.offset)
        unused = data.find(b"\0")  # the end of a segment still being written is zeros
        if unused >= 0:
            data = data[:unused]
        self._full |= len(data) == self.batch_bytes
        end = data.rfind(b"\n") + 1
        if end:
            self._commit(_rows(data[:end], segment.path))
            segment.offset += end
            if segment.owner == self.owner:
                self.progress(segment.started, segment.offset)
            return True
        if not final:
            return False
        if data:
            log.warning("usage ledger: skipped a torn last line of %s", segment.path.name)
        segment.path.unlink(missing_ok=True)
        os.close(segment.fd)
        del self._segments[segment.path]
        return True

    def _owner_segments(self) -> list[Path]:
        return [p for p in self.directory.glob("segment-*.jsonl") if segment_journal(p) == self.owner]

    def _commit(self, rows: list[tuple]) -> None:
        """One transaction; if the database refuses the batch (not a passing failure), row
        by row, dropping and logging only the rows it refuses."""
        try:
            self._commit_batch(rows)
        except Exception as exc:
            if transient(exc):
                raise
            self._conn = _discard(self._conn)
            for row in rows:
                try:
                    self._commit_batch([row])
                except Exception as exc:
                    if transient(exc):
                        raise
                    self._conn = _discard(self._conn)
                    self.dropped += 1
                    log.error(
                        "usage ledger: record %s refused by the database, dropped: %s",
                        str(row[0])[:128],
                        describe(exc),
                    )

    def _commit_batch(self, rows: list[tuple]) -> None:
        if self._conn is None:
            self._conn = self.store.engine.connect()
        with self._conn.begin():
            written = commit_rows(self._conn, rows, self._writer)
        self.commits += 1
        self.records += written

    def _prune(self) -> None:
        """One retention step if it is time; more steps follow while the journal is idle."""
        if self.retention_days is None or time.monotonic() < self._next_prune:
            return
        cutoff = math.floor((time.time() - self.retention_days * DAY) / DAY) * DAY
        try:
            if self._conn is None:
                self._conn = self.store.engine.connect()
            with self._conn.begin():
                deleted = prune_step(self._conn, cutoff, self.prune_batch)
        except Exception as exc:
            self._conn = _discard(self._conn)
            log.warning("usage ledger: retention step failed, will retry: %s", describe(exc))
            self._next_prune = time.monotonic() + min(self.prune_interval_s, 30.0)
            return
        self.pruned += deleted
        if not deleted:
            self._next_prune = time.monotonic() + self.prune_interval_s


def _rows(data: bytes, path: Path) -> list[tuple]:
    """The journal's lines as clean rows (the gateway journals values as they are: cleaning
    them is the writer's work, off the request path)."""
    try:
        return decode_rows(data)
    except msgspec.DecodeError:
        pass  # a line to clean or to skip somewhere in the batch: line by line
    rows = []
    for line in data.splitlines():
        try:
            rows.append(decode_row(line))
        except msgspec.DecodeError:
            log.warning("usage ledger: skipped an unreadable line of %s", path.name)
        except (TypeError, ValueError) as exc:
            log.error("usage ledger: dropped a record of %s: %s", path.name, type(exc).__name__)
    return rows


def _discard(conn: sa.Connection | None) -> None:
    if conn is not None:
        with contextlib.suppress(Exception):
            conn.invalidate()
        with contextlib.suppress(Exception):
            conn.close()
    return None


def main() -> None:
    """The process: settings from stdin, progress to stdout, logs to stderr."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches the gateway, which closes stdin
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    logging.basicConfig(stream=sys.stderr, level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    # The gateway's requests come first; the backlog waits on disk. At nice 10 a writer that
    # shares a busy core still gets ~10% of it (~20,000 rows a second); at nice 5 its bursts
    # took more from the gateway (keys bench: ~90% against ~92% of the gateway without it).
    with contextlib.suppress(OSError):
        os.nice(10)
    # A batch's rows (~20,000 tuples) live until it is committed, so collections of the young
    # generation while it is decoded free nothing: every 50,000 allocations rather than 700
    # (-0.3 us a row of ~5).
    gc.set_threshold(50_000)
    settings = orjson.loads(sys.stdin.buffer.readline())
    ended = threading.Event()
    threading.Thread(target=lambda: (sys.stdin.buffer.read(), ended.set()), daemon=True).start()

    def progress(started: int, offset: int) -> None:
        with contextlib.suppress(OSError):  # the gateway is gone: nobody to tell
            sys.stdout.write(f"{started} {offset}\n")
            sys.stdout.flush()

    store = Store.open(settings["url"])
    writer = JournalWriter(
        store,
        Path(settings["directory"]),
        settings["owner"],
        progress=progress,
        retention_days=settings.get("retention_days"),
    )
    try:
        writer.run(ended.is_set)
    finally:
        writer.close()
        store.close()


if __name__ == "__main__":
    main()
