"""The gateway's side of the usage ledger: append each record to the journal, run the writer
process that commits it (store/ledger_writer.py), and know how far behind that writer is.

`record` is the hot path: one `write()` to a local file, safe from a SIGKILL when it
returns. The database gets the row moments later, from the writer; a writer that exits
unexpectedly is started again (its journal is on disk, so nothing waits in memory).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import subprocess
import sys
import time
from pathlib import Path

import orjson

from xvckit.store.database import Store
from xvckit.store.journal import Journal, is_open, segment_journal, segment_owner

log = logging.getLogger("xvckit.ledger")

LEFTOVER_COMMIT_WAIT_S = 10.0  # how long a budget read waits for the rows a dead gateway left
RESTART_DELAY_S = 1.0  # doubled for each writer that dies within STEADY_S of its start, up to 60 s
STEADY_S = 30.0
WRITER_COMMAND = [sys.executable, "-m", "xvckit.store.ledger_writer"]


class LedgerClosed(Exception):
    """`record` after `close`."""


class Ledger:
    def __init__(self, store: Store, journal: Journal, *, retention_days: float | None = None) -> None:
        self.store = store
        self.journal = journal
        self.retention_days = retention_days
        self.committed = 0  # journal bytes the writer has committed
        self.restarts = 0
        self._started_at = 0.0
        self._quick_deaths = 0  # writers in a row that died soon after their start
        self._proc: subprocess.Popen | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._pending = b""
        self._waiters: list[tuple[int, asyncio.Future]] = []
        self._closing = False
        self._exited: asyncio.Future | None = None
        self._leftovers: list[Path] = []  # segments of dead gateways found at start

    @property
    def backlog_bytes(self) -> int:
        """Journaled by this gateway, not yet in the database."""
        return max(0, self.journal.appended - self.committed)

    @property
    def writer_running(self) -> bool:
        return self._proc is not None and self._exited is not None and not self._exited.done()

    def start(self) -> None:
        """Open the journal and start the writer; call from inside the running event loop."""
        if self._loop is not None:
            return
        self._loop = asyncio.get_running_loop()
        self._leftovers = _leftover_segments(self.journal.directory)
        self.journal.open()
        self._spawn()

    async def leftovers_committed(self) -> None:
        """Return once the segments that dead gateways left in the journal (found at start) are
        in the database, or after LEFTOVER_COMMIT_WAIT_S: a budget read from the ledger must count
        them. The writer takes them over as it starts and deletes each once committed."""
        deadline = time.monotonic() + LEFTOVER_COMMIT_WAIT_S
        while self._leftovers:
            self._leftovers = [path for path in self._leftovers if path.exists()]
            if not self._leftovers:
                return
            if time.monotonic() > deadline:
                log.warning(
                    "usage ledger: %d segment(s) of a stopped gateway not yet committed", len(self._leftovers)
                )
                self._leftovers = []
                return
            await asyncio.sleep(0.02)

    def record(self, row: tuple) -> None:
        """Journal a row in RAW_COLUMNS order (`UsageRecord.row()`); the writer cleans it."""
        if self._closing:
            raise LedgerClosed("the usage ledger is closed")
        self.journal.append(row)

    async def flush(self) -> None:
        """Return once everything recorded so far is in the database."""
        target = self.journal.appended
        if self.committed >= target:
            return
        future = self._loop.create_future()
        self._waiters.append((target, future))
        await future

    async def close(self, timeout_s: float = 30.0) -> None:
        """Stop appending, let the writer commit the rest and exit. A writer still busy after
        `timeout_s` (database down) is stopped: the journal keeps its rows for the next start."""
        if self._closing:
            return
        self._closing = True
        self.journal.close()
        if self._proc is None:
            return
        with contextlib.suppress(OSError):
            self._proc.stdin.close()
        try:
            await asyncio.wait_for(asyncio.shield(self._exited), timeout_s)
        except TimeoutError:
            log.error("usage ledger: writer still busy after %.0f s; the journal keeps the rest", timeout_s)
            self._proc.kill()
            await self._exited

    def _spawn(self) -> None:
        self._started_at = time.monotonic()
        self._proc = subprocess.Popen(
            WRITER_COMMAND,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            close_fds=True,
        )
        settings = {
            "url": self.store.url,
            "directory": str(self.journal.directory),
            "owner": self.journal.owner,
            "retention_days": self.retention_days,
        }
        # Not argv: the URL may hold a password. A writer that died at once closed the pipe: its
        # exit is seen on its stdout like any other, and it is started again.
        with contextlib.suppress(BrokenPipeError):
            self._proc.stdin.write(orjson.dumps(settings) + b"\n")
            self._proc.stdin.flush()
        self._exited = self._loop.create_future()
        fd = self._proc.stdout.fileno()
        os.set_blocking(fd, False)
        self._loop.add_reader(fd, self._on_output, self._proc)

    def _on_output(self, proc: subprocess.Popen) -> None:
        try:
            data = os.read(proc.stdout.fileno(), 65536)
        except BlockingIOError:
            return
        if not data:
            self._on_exit(proc)
            return
        lines = (self._pending + data).split(b"\n")
        self._pending = lines.pop()
        for line in lines:
            started, offset = map(int, line.split())
            committed = self.journal.committed(started, offset)
            if committed is not None:
                self.committed = max(self.committed, committed)
        self._wake()

    def _wake(self) -> None:
        waiting = []
        for target, future in self._waiters:
            if target <= self.committed:
                if not future.done():
                    future.set_result(None)
            else:
                waiting.append((target, future))
        self._waiters = waiting

    def _on_exit(self, proc: subprocess.Popen) -> None:
        self._loop.remove_reader(proc.stdout.fileno())
        proc.stdout.close()
        code = proc.wait()
        self._pending = b""
        self._exited.set_result(code)
        if self._closing:
            if code:
                log.error("usage ledger: the writer exited with status %s", code)
            return
        self.restarts += 1
        with contextlib.suppress(OSError):
            proc.stdin.close()
        quick = time.monotonic() - self._started_at < STEADY_S
        self._quick_deaths = self._quick_deaths + 1 if quick else 0
        delay = min(60.0, RESTART_DELAY_S * 2 ** max(0, self._quick_deaths - 1))
        log.error("usage ledger: the writer exited with status %s; starting it again in %.1f s", code, delay)
        self._loop.call_later(delay, self._restart)

    def _restart(self) -> None:
        if not self._closing:
            self._spawn()


def _leftover_segments(directory: Path) -> list[Path]:
    """Journal segments whose process is gone (or was an earlier process with this one's pid),
    not another running gateway's (in another process or this one)."""
    leftovers = []
    for path in directory.glob("segment-*.jsonl"):
        try:
            _, pid = segment_owner(path)
            if pid == os.getpid():
                if is_open(segment_journal(path)):  # another gateway's in this process
                    continue
            else:
                os.kill(pid, 0)  # raises if there is no such process
                continue
        except ProcessLookupError:
            pass
        except (ValueError, PermissionError):  # not a segment name; another user's process
            continue
        leftovers.append(path)
    return leftovers
