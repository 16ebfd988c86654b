"""The ledger's journal: appended before the answer, replayed after a kill, deleted once committed."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import textwrap

from xvckit.store import Store
from xvckit.store.journal import Journal, read_rows
from xvckit.store.ledger import Ledger, UsageRecord, ledger_request_ids


def test_segments_rotate_and_a_torn_line_is_skipped(tmp_path):
    journal = Journal(tmp_path, segment_bytes=200)
    journal.open()
    finished = [journal.append(("r", i, "chat")) for i in range(20)]
    rotated = [path for path in finished if path is not None]
    assert rotated, "200-byte segments must rotate"
    with open(rotated[0], "ab") as handle:
        handle.write(b'["torn", 1')  # a write cut short by a kill
    assert all(row[0] == "r" for row in read_rows(rotated[0]))
    journal.close()


def test_a_living_gateways_segment_is_not_an_orphan(tmp_path):
    alive = Journal(tmp_path)
    alive.open()
    alive.append(("r1", 1.0))
    assert Journal(tmp_path).orphans() == []


def test_killed_writer_is_replayed_once(tmp_path, store_url):
    """A process journals records and is SIGKILLed before its thread commits them: the next
    ledger replays them, and a second start finds nothing left to replay."""
    journal_dir = tmp_path / "journal"
    script = textwrap.dedent(f"""
        import asyncio, os, signal
        from pathlib import Path
        from xvckit.store import Store
        from xvckit.store.journal import Journal
        from xvckit.store.ledger import Ledger, UsageRecord
        async def main():
            journal = Journal(Path({str(journal_dir)!r}))
            ledger = Ledger(Store.open({store_url!r}), journal=journal, linger_s=60)
            ledger.start()
            for i in range(25):
                ledger.record(UsageRecord(f"k-{{i}}", "chat", status=200))
            os.kill(os.getpid(), signal.SIGKILL)
        asyncio.run(main())
    """)
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert proc.returncode == -9, proc.stderr
    store = Store.open(store_url)
    assert ledger_request_ids(store) == []

    async def restart() -> None:
        ledger = Ledger(store, journal=Journal(journal_dir))
        ledger.start()
        ledger.record(UsageRecord("after", "chat", status=200))
        await ledger.close()

    asyncio.run(restart())
    assert sorted(ledger_request_ids(store)) == sorted([f"k-{i}" for i in range(25)] + ["after"])
    assert os.listdir(journal_dir) == [], "committed segments must be deleted"
    asyncio.run(restart())
    assert len(ledger_request_ids(store)) == 26
    store.close()
