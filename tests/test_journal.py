"""The ledger's journal: appended before the answer, committed by the writer process, taken
over after a kill, deleted once committed."""

from __future__ import annotations

import fcntl
import os
import signal
import subprocess
import sys
import textwrap
import time

import orjson

from xvckit.store import Store
from xvckit.store.journal import Journal, segment_journal, segment_owner
from xvckit.store.ledger import UsageRecord, ledger_request_ids, row_of
from xvckit.store.ledger_feed import _leftover_segments
from xvckit.store.ledger_writer import LEFTOVER_WAIT_S, JournalWriter


def locked(path) -> bool:
    fd = os.open(path, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)
    return False


def test_segments_rotate_and_only_the_current_one_is_locked(tmp_path):
    journal = Journal(tmp_path, segment_bytes=200)
    journal.open()
    for i in range(20):
        journal.append(("r", i, "chat"))
    segments = sorted(tmp_path.glob("segment-*.jsonl"))
    assert len(segments) > 1, "200-byte segments must rotate"
    assert [locked(p) for p in segments] == [False] * (len(segments) - 1) + [True]
    assert {segment_owner(p)[1] for p in segments} == {os.getpid()}
    assert {segment_journal(p) for p in segments} == {journal.owner}
    assert segments[-1].read_bytes().endswith(b"\0"), "the open segment's unused end is zeros"
    journal.close()
    assert not locked(segments[-1])
    assert journal.appended == sum(p.stat().st_size for p in segments), "closed segments are cut to length"
    assert all(line.startswith(b'["r",') for p in segments for line in p.read_bytes().splitlines())


def test_the_next_segment_waits_hidden_and_locked_until_needed_and_goes_at_close(tmp_path):
    journal = Journal(tmp_path, segment_bytes=200)
    journal.open()
    journal.append(("r", 0, "chat"))
    deadline = time.monotonic() + 10
    while not (spares := list(tmp_path.glob(".segment-*.new"))) and time.monotonic() < deadline:
        time.sleep(0.01)
    assert len(spares) == 1 and locked(spares[0]), "made ready, locked, under a hidden name"
    assert len(list(tmp_path.glob("segment-*.jsonl"))) == 1
    journal.close()
    assert list(tmp_path.glob(".segment-*")) == [], "the spare goes with the journal"


def test_a_line_larger_than_a_segment_gets_a_segment_of_its_own(tmp_path):
    journal = Journal(tmp_path, segment_bytes=200)
    journal.open()
    rows = [("small", 1), ("large", "x" * 1000), ("small", 2)]
    for row in rows:
        journal.append(row)
    journal.close()
    lines = [line for p in sorted(tmp_path.glob("segment-*.jsonl")) for line in p.read_bytes().splitlines()]
    assert [tuple(orjson.loads(line)) for line in lines] == rows
    assert list(tmp_path.glob(".segment-*")) == []


def test_a_living_gateways_segment_is_left_to_its_own_writer(tmp_path, store_url):
    store = Store.open(store_url)
    alive = Journal(tmp_path / "journal")
    alive.open()
    alive.append(row_of(UsageRecord("r1", "chat")))
    other = JournalWriter(store, tmp_path / "journal", owner=str(os.getpid() + 1))
    assert not other.step() and ledger_request_ids(store) == []
    alive.close()  # now its process has finished with it: any writer takes it
    assert other.step()
    assert ledger_request_ids(store) == ["r1"]
    other.close()
    store.close()


def test_a_torn_last_line_is_skipped(tmp_path, store_url, caplog):
    store = Store.open(store_url)
    journal = Journal(tmp_path / "journal")
    journal.open()
    journal.append(row_of(UsageRecord("whole", "chat")))
    journal.close()
    (segment,) = (tmp_path / "journal").glob("segment-*")
    with open(segment, "ab") as handle:
        handle.write(b'["torn", 1')  # a write cut short by a kill: never acknowledged
    JournalWriter(store, tmp_path / "journal", journal.owner).run(lambda: True)
    assert ledger_request_ids(store) == ["whole"]
    assert "torn last line" in caplog.text
    assert list((tmp_path / "journal").iterdir()) == []
    store.close()


def test_a_line_still_being_copied_is_not_taken_even_with_its_newline_stored(tmp_path, store_url):
    """An append is one copy into the map, whose bytes may land in any order: a reader that
    finds the newline stored before the middle of the line stops at the middle's zeros."""
    store = Store.open(store_url)
    journal = Journal(tmp_path / "journal")
    journal.open()
    journal.append(row_of(UsageRecord("whole", "chat")))
    (segment,) = (tmp_path / "journal").glob("segment-*")
    line = orjson.dumps(row_of(UsageRecord("copied", "chat")), option=orjson.OPT_APPEND_NEWLINE)
    middle = slice(len(line) // 3, 2 * len(line) // 3)
    gap = bytearray(line)
    gap[middle] = bytes(middle.stop - middle.start)
    with open(segment, "r+b", buffering=0) as handle:  # the same pages the journal's map holds
        handle.seek(journal.appended)
        handle.write(gap)
        writer = JournalWriter(store, tmp_path / "journal", journal.owner)
        writer.step()
        assert ledger_request_ids(store) == ["whole"]
        handle.seek(journal.appended + middle.start)
        handle.write(line[middle])  # the copy completes
    writer.step()
    assert sorted(ledger_request_ids(store)) == ["copied", "whole"]
    writer.close()
    journal.close()
    store.close()


GATEWAY = textwrap.dedent(
    """
    import asyncio, sys, time
    from pathlib import Path
    from xvckit.store import Ledger, Store, UsageRecord
    from xvckit.store.journal import Journal

    async def main():
        ledger = Ledger(Store.open(sys.argv[1]), Journal(Path(sys.argv[2])))
        ledger.start()
        ledger.record(UsageRecord("k-0", "chat", status=200).row())
        while ledger.committed < ledger.journal.appended:  # the writer is at work
            await asyncio.sleep(0.01)
        assert list(Path(sys.argv[2]).glob(".segment-*.new")), "the spare segment is made"
        for i in range(1, 25):
            ledger.record(UsageRecord(f"k-{i}", "chat", status=200).row())
        print(ledger._proc.pid, flush=True)
        await asyncio.sleep(3600)

    asyncio.run(main())
    """
)


def test_a_killed_gateways_writer_finishes_its_journal(tmp_path, store_url):
    """SIGKILL of the gateway alone: its writer sees it go, commits the rest and exits."""
    journal_dir = tmp_path / "journal"
    Store.open(store_url).close()
    gateway = subprocess.Popen(
        [sys.executable, "-c", GATEWAY, store_url, str(journal_dir)], stdout=subprocess.PIPE, text=True
    )
    writer_pid = int(gateway.stdout.readline())
    gateway.send_signal(signal.SIGKILL)
    gateway.wait()
    deadline = time.monotonic() + 20
    while _alive(writer_pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not _alive(writer_pid), "the writer must exit once its gateway is gone"
    store = Store.open(store_url)
    assert sorted(ledger_request_ids(store)) == sorted(f"k-{i}" for i in range(25))
    assert list(journal_dir.iterdir()) == []
    store.close()


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:  # our grandchild: a zombie until init reaps it counts as gone
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().split(") ", 1)[1][0] != "Z"
    except FileNotFoundError:
        return False


def test_two_writers_never_commit_a_row_twice(tmp_path, store_url):
    """Writers of two gateways on one journal directory: each orphan is taken by one."""
    store = Store.open(store_url)
    journal_dir = tmp_path / "journal"
    for start in range(0, 600, 100):
        journal = Journal(journal_dir, segment_bytes=4000)
        journal.open()
        for i in range(start, start + 100):
            journal.append(row_of(UsageRecord(f"r-{i}", "chat", input_tokens=1)))
        journal.close()
    team = [JournalWriter(store, journal_dir, owner=str(-1 - n)) for n in range(2)]
    while any([w.step() for w in team]):
        pass
    assert sorted(ledger_request_ids(store)) == sorted(f"r-{i}" for i in range(600))
    assert sum(w.records for w in team) == 600
    for w in team:
        w.close()
    store.close()


def test_a_segment_cut_off_before_its_rename_is_removed(tmp_path, store_url):
    """Killed between creating a segment and naming it: an empty hidden file, removed on start."""
    journal_dir = tmp_path / "journal"
    journal_dir.mkdir()
    (journal_dir / f".segment-{time.time_ns():020d}-1.jsonl.new").touch()
    store = Store.open(store_url)
    JournalWriter(store, journal_dir, str(os.getpid())).run(lambda: True)
    assert list(journal_dir.iterdir()) == []
    store.close()


def test_two_gateways_in_one_process_keep_apart(tmp_path, store_url):
    """Each journal's segments carry its own tag: a writer finishing its gateway's rows does
    not wait on another open journal of the same process (it did, LEFTOVER_WAIT_S at every
    stop), and that journal's open segment is no leftover to the second gateway's start."""
    store = Store.open(store_url)
    mine, theirs = Journal(tmp_path / "journal"), Journal(tmp_path / "journal")
    mine.open()
    theirs.open()
    mine.append(row_of(UsageRecord("mine", "chat")))
    theirs.append(row_of(UsageRecord("theirs", "chat")))
    assert _leftover_segments(tmp_path / "journal") == []
    mine.close()
    started = time.monotonic()
    JournalWriter(store, tmp_path / "journal", mine.owner).run(lambda: True)
    assert time.monotonic() - started < LEFTOVER_WAIT_S / 2
    assert ledger_request_ids(store) == ["mine"]  # theirs is still being written
    theirs.close()
    assert [segment_journal(p) for p in _leftover_segments(tmp_path / "journal")] == [theirs.owner]
    store.close()
