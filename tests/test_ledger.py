"""The usage ledger: group commit, no record twice, crash safety, failures, reports from the
rollup equal to the raw aggregation, retention, and `xvckit usage`."""

from __future__ import annotations

import asyncio
import csv
import io
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable

import msgspec
import orjson
import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from xvckit.gateway.exchange import Exchange
from xvckit.providers.usage import Usage
from xvckit.store import Ledger, LedgerClosed, Store
from xvckit.store import ledger as L
from xvckit.store import ledger_writer as W
from xvckit.store.journal import Journal
from xvckit.store.ledger import (
    DAY,
    HOUR,
    UsageRecord,
    ledger_records,
    ledger_request_ids,
    usage_report,
    usage_report_raw,
    write_records,
)
from xvckit.store.ledger_writer import JournalWriter
from xvckit.timespec import parse_moment

BASE = 1_795_000_000 - 1_795_000_000 % DAY  # a UTC midnight in 2026
BYS = [None, "key", "team", "model", "day"]
SUMS = ("requests", "input_tokens", "output_tokens", "cached_tokens", "cost_usd", "errors")


@pytest.fixture
def store(store_url):
    opened = Store.open(store_url)
    yield opened
    opened.close()


def record(n: int, **fields) -> UsageRecord:
    values = {
        "request_id": f"req-{n}",
        "endpoint": "chat",
        "key_id": f"k{n % 3}",
        "team_id": f"t{n % 2}",
        "model": "gpt-4o",
        "status": 200,
        "input_tokens": 100 + n,
        "output_tokens": 10,
        "cached_tokens": n % 7,
        "cost_usd": 0.001 * (n % 5),
    }
    values.update(fields)
    return UsageRecord(**values)


def clear(store: Store) -> None:
    with store.engine.begin() as conn:
        conn.execute(sa.delete(L.usage))
        conn.execute(sa.delete(L.rollup))


def assert_same(got: list[dict], want: list[dict]) -> None:
    assert len(got) == len(want), (got, want)
    for a, b in zip(got, want, strict=True):
        assert {k: v for k, v in a.items() if k != "cost_usd"} == {
            k: v for k, v in b.items() if k != "cost_usd"
        }
        assert a["cost_usd"] == pytest.approx(b["cost_usd"], rel=1e-9, abs=1e-9)


# writing


@pytest.fixture
def jdir(tmp_path):
    """A journal directory of its own (the SQLite store's files are in tmp_path)."""
    path = tmp_path / "journal"
    path.mkdir()
    return path


def journal_of(directory, records, segment_bytes=8 << 20) -> Journal:
    """Records appended as the gateway does, then closed (so a writer may finish the segments)."""
    journal = Journal(directory, segment_bytes=segment_bytes)
    journal.open()
    for r in records:
        journal.append(L.row_of(r))
    journal.close()
    return journal


def drain(store: Store, directory, **options) -> JournalWriter:
    """Run a writer in this process until the journal is committed and deleted."""
    writer = JournalWriter(store, directory, str(os.getpid()), **options)
    writer.run(lambda: True)
    writer.close()
    return writer


def test_the_gateways_row_is_in_the_ledgers_column_order():
    """The gateway builds its row as a plain tuple (the hot path); every value in its column."""
    ex = Exchange("req-order", "messages", arrived=BASE + 1.5, client="cli/1", key_id="k", team_id="t")
    ex.client_request_id = "trace-7"
    ex.model, ex.deployment, ex.status, ex.error = "m", "p/u", 529, "overloaded"
    ex.usage = Usage(input_tokens=11, output_tokens=12, cached_tokens=13, cache_write_tokens=14)
    ex.ttft_ms, ex.upstream_ms, ex.overhead_ms, ex.retries = 2.5, 3.5, 0.5, 2
    ex.cache_hit, ex.cost_saved_usd = True, 0.75
    record = UsageRecord(**dict(zip(L.RAW_COLUMNS, ex.ledger_row(0.25), strict=True)))
    expected = UsageRecord(
        request_id="req-order",
        endpoint="messages",
        ts=BASE + 1.5,
        key_id="k",
        team_id="t",
        model="m",
        deployment="p/u",
        status=529,
        error_type="overloaded",
        input_tokens=11,
        output_tokens=12,
        cached_tokens=13,
        cache_write_tokens=14,
        cost_usd=0.25,
        latency_ms=record.latency_ms,  # the time since the request arrived: not fixed
        ttft_ms=2.5,
        upstream_ms=3.5,
        overhead_ms=0.5,
        retries=2,
        cache_hit=True,
        client="cli/1",
        cost_saved_usd=0.75,
        client_request_id="trace-7",
    )
    assert record == expected and record.latency_ms >= 0


def test_group_commit_in_large_batches(store, jdir):
    records = [record(n) for n in range(200)]
    journal_of(jdir, records)
    writer = drain(store, jdir)
    assert sorted(ledger_request_ids(store)) == sorted(r.request_id for r in records)
    assert (writer.records, writer.commits) == (200, 1)
    assert usage_report(store, None, None)[0]["requests"] == 200
    assert os.listdir(jdir) == [], "committed segments are deleted"


def test_duplicates_are_ignored_in_a_batch_and_across_batches(store, jdir):
    journal_of(jdir, [record(1)] * 5 + [record(2)])
    journal_of(jdir, [record(1, input_tokens=999_999)])
    writer = drain(store, jdir)
    assert sorted(ledger_request_ids(store)) == ["req-1", "req-2"]
    assert writer.records == 2
    total = usage_report(store, None, None)[0]
    assert total["requests"] == 2
    assert total["input_tokens"] == 101 + 102  # the second req-1 changed nothing
    # a batch with old and new ids: only the new ones are written and rolled up
    assert write_records(store, [record(4), record(2), record(5), record(1)]) == 2
    assert sorted(ledger_request_ids(store)) == ["req-1", "req-2", "req-4", "req-5"]
    total = usage_report(store, None, None)[0]
    assert (total["requests"], total["input_tokens"]) == (4, 101 + 102 + 104 + 105)
    assert_same(usage_report(store, "key", None), usage_report_raw(store, "key", None))


def test_a_batch_of_several_statements_writes_each_new_row_once(store):
    """SQLite inserts ROWS_PER_STATEMENT rows a statement: old ids, repeats and new rows on
    both sides of a statement's end, and a remainder shorter than a statement."""
    n = L.ROWS_PER_STATEMENT
    old = [record(i) for i in range(0, 2 * n + 7, 3)]
    assert write_records(store, old) == len(old)
    batch = [record(i) for i in range(2 * n + 7)]
    batch[n + 1 : n + 1] = [record(n - 1, input_tokens=7), record(2, input_tokens=7)]
    batch.append(record(2 * n + 6, input_tokens=7))
    new = [i for i in range(2 * n + 7) if i % 3]
    assert write_records(store, batch) == len(new)
    assert sorted(ledger_request_ids(store)) == sorted(f"req-{i}" for i in range(2 * n + 7))
    total = usage_report(store, None, None)[0]
    assert (total["requests"], total["input_tokens"]) == (2 * n + 7, sum(100 + i for i in range(2 * n + 7)))
    assert_same(usage_report(store, "key", None), usage_report_raw(store, "key", None))


async def test_every_field_round_trips_through_the_writer_process(store, jdir):
    full = UsageRecord(
        request_id="req-full",
        endpoint="messages",
        ts=BASE + 12.345,
        key_id="key-a",
        team_id="team-a",
        model="claude-sonnet-4-5",
        deployment="anthropic/claude-sonnet-4-5-20250929",
        status=529,
        error_type="overloaded_error",
        input_tokens=1200,
        output_tokens=34,
        cached_tokens=1000,
        cache_write_tokens=100,
        cost_usd=0.0123,
        latency_ms=812.5,
        ttft_ms=120.25,
        upstream_ms=800.0,
        overhead_ms=0.75,
        retries=2,
        cache_hit=True,
        client="claude-cli/1.0",
        prompt="review@12",
    )
    bare = UsageRecord(request_id="req-bare", endpoint="chat", ts=BASE + 1, latency_ms=float("nan"))
    ledger = Ledger(store, Journal(jdir))
    ledger.start()
    ledger.record(full.row())
    ledger.record(bare.row())
    await ledger.flush()
    assert ledger.backlog_bytes == 0
    got = {r.request_id: r for r in ledger_records(store)}
    assert got["req-full"] == full
    assert got["req-bare"].latency_ms == 0.0  # not a number: stored as 0, not refused
    assert got["req-bare"].ttft_ms is None and got["req-bare"].key_id is None
    await ledger.close()


async def test_close_commits_everything_recorded(store, jdir):
    ledger = Ledger(store, Journal(jdir, segment_bytes=2000))  # several segments
    ledger.start()
    for n in range(100):
        ledger.record(record(n).row())
    await ledger.close()
    assert len(ledger_request_ids(store)) == 100
    assert os.listdir(jdir) == []
    with pytest.raises(LedgerClosed):
        ledger.record(record(101).row())


async def test_a_writer_that_dies_is_started_again(store, jdir, monkeypatch):
    monkeypatch.setattr("xvckit.store.ledger_feed.RESTART_DELAY_S", 0.05)
    ledger = Ledger(store, Journal(jdir))
    ledger.start()
    ledger.record(record(1).row())
    await ledger.flush()
    ledger._proc.kill()  # a crash of the writer, not of the gateway
    ledger.record(record(2).row())
    await asyncio.wait_for(ledger.flush(), 20)
    assert ledger.restarts == 1 and ledger.writer_running
    await ledger.close()
    assert sorted(ledger_request_ids(store)) == ["req-1", "req-2"]


async def test_a_writer_that_cannot_start_is_retried_with_growing_delays(store, jdir, monkeypatch):
    monkeypatch.setattr("xvckit.store.ledger_feed.RESTART_DELAY_S", 0.05)
    monkeypatch.setattr(
        "xvckit.store.ledger_feed.WRITER_COMMAND", [sys.executable, "-c", "raise SystemExit(3)"]
    )
    ledger = Ledger(store, Journal(jdir))
    ledger.start()
    ledger.record(record(1).row())
    await asyncio.sleep(1.0)  # restarts 0.05, 0.1, 0.2, 0.4 s apart: not one every 0.05 s
    assert 1 <= ledger.restarts <= 6
    await ledger.close(timeout_s=1)
    assert ledger_request_ids(store) == []  # kept in the journal for a writer that works
    drain(store, jdir)
    assert ledger_request_ids(store) == ["req-1"]


async def test_a_writer_that_exits_before_it_reads_its_settings_is_started_again(store, jdir, monkeypatch):
    """Its stdin is closed before the gateway has written to it: a broken pipe, not an error."""
    monkeypatch.setattr("xvckit.store.ledger_feed.RESTART_DELAY_S", 0.05)
    monkeypatch.setattr(
        "xvckit.store.ledger_feed.WRITER_COMMAND", [sys.executable, "-c", "raise SystemExit(3)"]
    )

    def slow_dumps(value) -> bytes:  # the writer is gone by the time its settings are written
        time.sleep(0.5)
        return orjson.dumps(value)

    monkeypatch.setattr(
        "xvckit.store.ledger_feed.orjson", type("Slow", (), {"dumps": staticmethod(slow_dumps)})
    )
    ledger = Ledger(store, Journal(jdir))
    ledger.start()
    deadline = time.monotonic() + 10
    while ledger.restarts < 2 and time.monotonic() < deadline:  # the restart's pipe breaks too
        await asyncio.sleep(0.05)
    assert ledger.restarts >= 2
    await ledger.close(timeout_s=1)


def flaky_commits(monkeypatch, fail: Callable[[], bool], error: Exception) -> None:
    real = W.commit_rows

    def commit(conn, rows, writer=None):
        if fail():
            raise error
        return real(conn, rows, writer)

    monkeypatch.setattr(W, "commit_rows", commit)


def test_commit_failures_are_retried_without_losing_or_doubling(store, jdir, monkeypatch, caplog):
    left = [3]

    def fail() -> bool:
        left[0] -= 1
        return left[0] >= 0

    secret = {"secret": "sk-xyz"}
    flaky_commits(
        monkeypatch, fail, sa.exc.OperationalError("INSERT ...", secret, Exception("database is locked"))
    )
    journal_of(jdir, [record(n) for n in range(50)], segment_bytes=3000)
    drain(store, jdir)
    assert sorted(ledger_request_ids(store)) == sorted(f"req-{n}" for n in range(50))
    assert usage_report(store, None, None)[0]["requests"] == 50
    assert "commit failed, retrying" in caplog.text and "database back" in caplog.text
    assert "sk-xyz" not in caplog.text


def test_a_database_that_stays_down_leaves_the_rows_in_the_journal(store, jdir, monkeypatch):
    flaky_commits(
        monkeypatch, lambda: True, sa.exc.OperationalError("INSERT", {}, Exception("server closed"))
    )
    monkeypatch.setattr(W.time, "sleep", lambda s: None)
    journal_of(jdir, [record(1)])
    drain(store, jdir)  # gives up after its retries, as a stopping gateway's writer does
    assert ledger_request_ids(store) == []
    monkeypatch.undo()
    drain(store, jdir)  # the next start
    assert ledger_request_ids(store) == ["req-1"]


def test_a_record_the_database_refuses_is_dropped_alone(store, jdir, caplog):
    journal_of(jdir, [record(1), record(2, endpoint=None), record(3)])  # endpoint is NOT NULL
    writer = drain(store, jdir)
    assert sorted(ledger_request_ids(store)) == ["req-1", "req-3"]
    assert writer.dropped == 1
    assert "req-2 refused by the database" in caplog.text


def test_a_journaled_value_of_the_wrong_kind_drops_that_record_alone(store, jdir, caplog):
    journal = Journal(jdir)
    journal.open()
    journal.append(record(1).row())
    journal.append(record(2, input_tokens="many").row())
    journal.append(record(3, latency_ms=float("inf")).row())
    journal.close()
    drain(store, jdir)
    assert sorted(ledger_request_ids(store)) == ["req-1", "req-3"]
    assert "dropped a record" in caplog.text


def test_a_line_to_clean_in_a_batch_keeps_every_row_of_it(store, jdir):
    """The batch is decoded one line at a time once a line needs `clean_row`: nothing is lost."""
    journal = Journal(jdir)
    journal.open()
    journal.append(record(1, latency_ms=1.5).row())
    journal.append(record(2, endpoint="x" * 40, latency_ms=float("nan")).row())
    journal.append(record(3, latency_ms=2.5).row())
    journal.close()
    drain(store, jdir)
    with store.engine.connect() as conn:
        rows = conn.execute(sa.select(L.usage.c.request_id, L.usage.c.endpoint, L.usage.c.latency_ms)).all()
    assert sorted(rows) == [("req-1", "chat", 1.5), ("req-2", "x" * 32, 0.0), ("req-3", "chat", 2.5)]


def test_a_batch_decodes_to_its_lines_decoded_one_by_one():
    lines = [orjson.dumps(record(n, cached_tokens=n, ttft_ms=n or None).row()) for n in range(5)]
    assert L.decode_rows(b"\n".join(lines) + b"\n") == [L.decode_row(line) for line in lines]
    with pytest.raises(msgspec.DecodeError):
        L.decode_rows(lines[0] + b"\n" + orjson.dumps(_with(endpoint="x" * 40)) + b"\n")


def _storable_value(column: sa.Column):
    kind = column.type
    if isinstance(kind, sa.String):
        value = st.text(max_size=kind.length)
    elif isinstance(kind, sa.Boolean):
        value = st.booleans()
    elif isinstance(kind, sa.Integer):
        value = st.integers(-(2**40), 2**40)
    else:
        value = st.floats(allow_nan=False, allow_infinity=False) | st.integers(-(2**40), 2**40)
    return value | st.none() if column.nullable else value


ODD_VALUES = (
    st.none()
    | st.text(min_size=30, max_size=300)
    | st.floats()
    | st.integers(-(2**63), 2**63 - 1)
    | st.booleans()
)


@st.composite
def journal_rows(draw):
    """Rows as the gateway journals them, with up to two values it should not have written."""
    row = [draw(_storable_value(L.usage.c[name])) for name in L.RAW_COLUMNS]
    for index in draw(st.lists(st.integers(0, len(row) - 1), max_size=2)):
        row[index] = draw(ODD_VALUES)
    return tuple(row)


STORABLE = record(1).row()


def _with(**values) -> tuple:
    return tuple(values.get(name, value) for name, value in zip(L.RAW_COLUMNS, STORABLE, strict=True))


@settings(max_examples=300, deadline=None)
@given(journal_rows())
@example(STORABLE)
@example(_with(endpoint="x" * 40))  # longer than its column: cut
@example(_with(status=True, retries=2.0))  # not ints
@example(_with(cache_hit=1))  # not a bool
@example(_with(latency_ms=float("nan"), ttft_ms=float("inf")))  # journaled as null
def test_a_journal_line_decodes_to_what_clean_row_makes_of_it(row):
    """The writer's check in C takes a line as it is only when `clean_row` would not change it."""
    line = orjson.dumps(row)
    try:
        expected = L.clean_row(orjson.loads(line))
    except (TypeError, ValueError) as exc:
        with pytest.raises(type(exc)):
            L.decode_row(line)
        return
    got = L.decode_row(line)
    assert got == expected
    assert [type(v) for v in got] == [type(v) for v in expected]


def test_a_journal_line_of_an_older_gateway_gets_the_defaults_of_the_columns_added_since():
    """A journal left by a gateway from before `cost_saved_usd`, `client_request_id` and
    `prompt` (an upgrade after a crash) still commits: the missing columns take their defaults."""
    for missing in (1, 2, 3):
        got = L.decode_row(orjson.dumps(STORABLE[:-missing]))
        assert got == (*STORABLE[:-missing], *(0.0, None, None)[-missing:])


CRASH_WRITER = textwrap.dedent(
    """
    import asyncio, sys
    from pathlib import Path
    from xvckit.store import Ledger, Store, UsageRecord
    from xvckit.store.journal import Journal

    async def main():
        ledger = Ledger(Store.open(sys.argv[1]), Journal(Path(sys.argv[2]), segment_bytes=20_000))
        ledger.start()
        n = 0
        while True:
            ledger.record(UsageRecord(request_id=f"crash-{n}", endpoint="chat", input_tokens=n).row())
            sys.stdout.write(f"crash-{n}\\n")
            sys.stdout.flush()
            n += 1
            if n % 8 == 0:
                await asyncio.sleep(0)

    asyncio.run(main())
    """
)


def test_sigkill_of_gateway_and_writer_loses_no_acknowledged_record(store_url, jdir):
    """Every record whose `record()` returned is in the ledger after the gateway and its writer
    are SIGKILLed and the next start replays the journal, and none twice."""
    Store.open(store_url).close()  # tables exist before the writer starts
    proc = subprocess.Popen(
        [sys.executable, "-c", CRASH_WRITER, store_url, str(jdir)],
        stdout=subprocess.PIPE,
        text=True,
        bufsize=1,
        start_new_session=True,
    )
    acked = []
    try:
        while len(acked) < 2000:
            line = proc.stdout.readline()
            assert line, "the writer process ended early"
            acked.append(line.strip())
        os.killpg(proc.pid, signal.SIGKILL)  # the gateway and its writer process
        rest = proc.stdout.read()
    finally:
        proc.kill()
        proc.wait()
    acked += [line for line in rest.split("\n")[:-1] if line]  # the last piece may be cut short
    store = Store.open(store_url)
    try:
        drain(store, jdir)
        ids = ledger_request_ids(store)
        assert len(ids) == len(set(ids))
        missing = set(acked) - set(ids)
        assert not missing, f"{len(missing)} acknowledged records lost"
        assert usage_report(store, None, None)[0]["requests"] == len(ids)
        assert os.listdir(jdir) == []
    finally:
        store.close()


# reports


def spread_records() -> list[UsageRecord]:
    """Records over four days, some on bucket edges, some without key/team/model, errors."""
    out = []
    offsets = [
        0,
        1,
        HOUR - 0.001,
        HOUR,
        DAY - 0.001,
        DAY,
        DAY + 5 * HOUR + 0.5,
        2 * DAY + 59,
        3 * DAY + 23 * HOUR,
    ]
    for n, offset in enumerate(offsets + [o + 1800 for o in offsets]):
        out.append(
            record(
                n,
                ts=BASE + offset,
                key_id=None if n % 4 == 3 else f"k{n % 3}",
                team_id=None if n % 5 == 4 else f"t{n % 2}",
                model=["gpt-4o", "claude-sonnet-4-5", None][n % 3],
                status=[200, 200, 429, 500, 200][n % 5],
                error_type="client_disconnected" if n % 7 == 6 else None,
            )
        )
    return out


RANGES = [
    (None, None),
    (BASE, None),
    (None, BASE + 2 * DAY),
    (BASE + 0.5, BASE + 3 * DAY + 0.5),
    (BASE + HOUR, BASE + DAY),
    (BASE + 1800, BASE + 1800 + 7 * HOUR),
    (BASE + DAY - 1, BASE + DAY + 1),
    (BASE + 0.9, BASE + 1.1),
    (BASE + 2 * DAY, BASE + 2 * DAY),
    (BASE + 4 * DAY, None),
]


def test_reports_from_the_rollup_equal_the_raw_aggregation(store):
    write_records(store, spread_records())
    for by in BYS:
        for since, until in RANGES:
            for key_id, team_id in ((None, None), ("k2", "t0")):
                got = usage_report(store, by, since, until, key_id=key_id, team_id=team_id)
                want = usage_report_raw(store, by, since, until, key_id=key_id, team_id=team_id)
                assert_same(got, want)


def test_report_rows_have_the_documented_shape(store):
    write_records(store, spread_records())
    total = usage_report(store, None, BASE, BASE + DAY)
    assert list(total[0]) == list(SUMS)
    assert total[0]["requests"] == 9
    assert total[0]["errors"] == 3  # 429, 500, 429
    by_day = usage_report(store, "day", None, None)
    assert [row["day"] for row in by_day] == ["2026-11-18", "2026-11-19", "2026-11-20", "2026-11-21"]
    by_key = usage_report(store, "key", None, None)
    assert {row["key_id"] for row in by_key} == {"k0", "k1", "k2", None}
    assert usage_report(store, "team", BASE + 10 * DAY, None) == []
    assert usage_report(store, None, BASE + 10 * DAY, None)[0]["requests"] == 0
    with pytest.raises(ValueError):
        usage_report(store, "week", None, None)


times = st.integers(-DAY * 1000, 5 * DAY * 1000).map(lambda ms: BASE + ms / 1000)
edges = st.integers(-2, 6 * 24).map(lambda hours: float(BASE + hours * HOUR))
bounds = st.one_of(st.none(), times, edges)
records_strategy = st.lists(
    st.builds(
        dict,
        ts=st.one_of(times, edges),
        key_id=st.sampled_from([None, "k1", "k2"]),
        team_id=st.sampled_from([None, "t1"]),
        model=st.sampled_from([None, "gpt-4o", "o3"]),
        status=st.sampled_from([0, 200, 429, 500]),
        error_type=st.sampled_from([None, None, "timeout"]),
        input_tokens=st.integers(0, 10**6),
        output_tokens=st.integers(0, 10**5),
        cached_tokens=st.integers(0, 1000),
        cost_usd=st.integers(0, 10**6).map(lambda micro: micro / 1e6),
    ),
    max_size=30,
)


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    rows=records_strategy,
    since=bounds,
    until=bounds,
    by=st.sampled_from(BYS),
    key_id=st.sampled_from([None, "k1"]),
)
def test_property_rollup_report_equals_raw(store, rows, since, until, by, key_id):
    clear(store)
    write_records(
        store, [UsageRecord(request_id=f"h{n}", endpoint="chat", **row) for n, row in enumerate(rows)]
    )
    got = usage_report(store, by, since, until, key_id=key_id)
    assert_same(got, usage_report_raw(store, by, since, until, key_id=key_id))
    # and both equal a count done here in Python
    inside = [
        row
        for row in rows
        if (since is None or row["ts"] >= since)
        and (until is None or row["ts"] < until)
        and (key_id is None or row["key_id"] == key_id)
    ]
    assert sum(row["requests"] for row in got) == len(inside)
    assert sum(row["errors"] for row in got) == sum(
        1 for row in inside if row["status"] >= 400 or row["error_type"] is not None
    )


# retention


def test_retention_prunes_old_rows_in_batches(store, jdir):
    now = time.time()
    old = [record(n, ts=now - 10 * DAY + n) for n in range(25)]
    recent = [record(100 + n, ts=now - n) for n in range(5)]
    write_records(store, old + recent)
    journal_of(jdir, [record(200, ts=now)])
    writer = JournalWriter(store, jdir, str(os.getpid()), retention_days=3, prune_batch=4)
    deadline = time.monotonic() + 10
    writer.run(lambda: usage_report(store, None, None)[0]["requests"] <= 6 or time.monotonic() > deadline)
    writer.close()
    assert sorted(ledger_request_ids(store)) == sorted([r.request_id for r in recent] + ["req-200"])
    assert writer.pruned >= 25
    assert_same(usage_report(store, None, None), usage_report_raw(store, None, None))
    assert_same(usage_report(store, "day", None), usage_report_raw(store, "day", None))


# time arguments


def test_parse_moment():
    now = 1_800_000_000.0
    assert parse_moment("7d", now) == now - 7 * DAY
    assert parse_moment("24h", now) == now - DAY
    assert parse_moment("30m", now) == now - 1800
    assert parse_moment("2w", now) == now - 14 * DAY
    assert parse_moment("2026-11-01", now) == 1_793_491_200
    assert parse_moment("2026-11-01T12:00", now) == 1_793_491_200 + 12 * HOUR
    assert parse_moment("2026-11-01T12:00+02:00", now) == 1_793_491_200 + 10 * HOUR
    assert parse_moment("2026-11-01T12:00:00Z", now) == 1_793_491_200 + 12 * HOUR
    for bad in ("yesterday", "7x", "", "-3d"):
        with pytest.raises(ValueError):
            parse_moment(bad, now)


# the command


def run_cli(capsys, tmp_path, store_url, *args: str) -> tuple[int, str, str]:
    from xvckit.cli import main

    config = tmp_path / "xvckit.yaml"
    config.write_text(f"storage:\n  url: {store_url}\n")
    argv = sys.argv
    sys.argv = ["xvckit", "usage", "--config", str(config), *args]
    try:
        main()
        code = 0
    except SystemExit as exc:
        code = exc.code or 0
    finally:
        sys.argv = argv
    out, err = capsys.readouterr()
    return code, out, err


def test_usage_command_formats(store, store_url, capsys, tmp_path):
    now = time.time()
    write_records(
        store,
        [record(n, ts=now - n * HOUR, team_id=["red", "blue", None][n % 3]) for n in range(30)]
        + [record(99, ts=now - 40 * DAY, team_id="red")],
    )
    code, out, _ = run_cli(capsys, tmp_path, store_url, "--by", "team", "--since", "30d", "--json")
    assert code == 0
    rows = json.loads(out)
    assert {row.pop("team_name") for row in rows} == {None}  # names of teams the store has not
    assert_same(rows, usage_report_raw(store, "team", now - 30 * DAY - 60, None))
    assert {row["team_id"] for row in rows} == {"red", "blue", None}
    assert sum(row["requests"] for row in rows) == 30

    code, out, _ = run_cli(capsys, tmp_path, store_url, "--by", "day", "--since", "2d", "--csv")
    assert code == 0
    table = list(csv.DictReader(io.StringIO(out)))
    assert list(table[0]) == ["day", *SUMS]
    assert sum(int(row["requests"]) for row in table) == 30

    code, out, _ = run_cli(capsys, tmp_path, store_url, "--by", "model")
    assert code == 0
    assert "gpt-4o" in out and "requests" in out and "31" in out

    code, out, _ = run_cli(capsys, tmp_path, store_url, "--json")
    assert json.loads(out)[0]["requests"] == 31


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--since", "yesterday"), "--since: cannot read 'yesterday'"),
        (("--since", "1d", "--until", "2d"), "is not after --since"),
        (("--json", "--csv"), "choose one"),
    ],
)
def test_usage_command_bad_input_is_one_line_and_exit_2(capsys, tmp_path, args, message):
    code, _, err = run_cli(capsys, tmp_path, f"sqlite:///{tmp_path}/x.db", *args)
    assert code == 2
    assert message in err
    assert len(err.strip().splitlines()) == 1
    assert "Traceback" not in err
