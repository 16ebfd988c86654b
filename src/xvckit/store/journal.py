"""The ledger's write-ahead journal: each usage row is appended to a local file before the
client gets its last bytes, and committed to the database in large batches afterwards.

An append is one `write()` to a file opened O_APPEND: a few microseconds, and in the
kernel's page cache, so it survives the gateway being killed with SIGKILL (not a power
cut; the database commit that follows moments later is the durable copy). Each process
appends to segment files of its own, locked with `flock` while it lives; a segment whose
rows are all committed is deleted. On start, segments that no living process holds are
replayed into the database (rows already there are skipped: request ids are unique).
"""

from __future__ import annotations

import fcntl
import hashlib
import logging
import os
import time
from pathlib import Path

import orjson

log = logging.getLogger("xvckit.ledger")

SEGMENT_BYTES = 8 << 20


def journal_dir(data_dir: Path, store_url: str) -> Path:
    """One directory per store, so a journal is never replayed into another database."""
    return data_dir / "journal" / hashlib.sha256(store_url.encode()).hexdigest()[:16]


class Journal:
    def __init__(self, directory: Path, segment_bytes: int = SEGMENT_BYTES) -> None:
        self.directory = directory
        self.segment_bytes = segment_bytes
        self._fd = -1
        self._path: Path | None = None
        self._size = 0
        self._orphan_fds: list[tuple[Path, int]] = []

    def orphans(self) -> list[Path]:
        """Segments left by processes that are gone, oldest first; they stay locked by us
        until `release` so two starting gateways do not replay the same one."""
        self.directory.mkdir(parents=True, exist_ok=True)
        found = []
        for path in sorted(self.directory.glob("segment-*.jsonl")):
            fd = os.open(path, os.O_RDONLY)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)  # a living gateway's segment
                continue
            found.append((path, fd))
        self._orphan_fds = found
        return [path for path, _ in found]

    def release(self, path: Path) -> None:
        """An orphan was replayed: delete it."""
        for candidate, fd in list(self._orphan_fds):
            if candidate == path:
                path.unlink(missing_ok=True)
                os.close(fd)
                self._orphan_fds.remove((candidate, fd))

    def open(self) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        self._start_segment()

    def append(self, row: tuple) -> Path | None:
        """Append one row; returns the previous segment's path when this append started a
        new one (delete it once everything before it is committed)."""
        line = orjson.dumps(row) + b"\n"
        os.write(self._fd, line)
        self._size += len(line)
        if self._size < self.segment_bytes:
            return None
        finished = self._path
        os.close(self._fd)
        self._start_segment()
        return finished

    def close(self) -> Path | None:
        """Stop appending; returns the last segment's path (delete it once it is committed)."""
        if self._fd < 0:
            return None
        os.close(self._fd)
        self._fd = -1
        return self._path

    def _start_segment(self) -> None:
        name = f"segment-{time.time_ns():020d}-{os.getpid()}.jsonl"
        self._path = self.directory / name
        self._fd = os.open(self._path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_EXCL, 0o600)
        fcntl.flock(self._fd, fcntl.LOCK_EX)
        self._size = 0


def read_rows(path: Path) -> list[tuple]:
    """The rows of a segment; a torn last line (killed mid-write, so never acknowledged to a
    client) is skipped."""
    rows = []
    with open(path, "rb") as handle:
        for number, line in enumerate(handle, 1):
            try:
                rows.append(tuple(orjson.loads(line)))
            except orjson.JSONDecodeError:
                log.warning("usage ledger: skipped an unreadable line %d of %s", number, path.name)
    return rows
