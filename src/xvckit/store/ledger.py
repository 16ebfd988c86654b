"""The usage ledger: one row per request, written by group commit, and the reports read from it.

Writing. The gateway appends each record to a journal and a writer process commits it
(store/ledger_feed.py, store/ledger_writer.py); `commit_rows` is the one way rows reach the
database. No record twice: `request_id` is unique and the insert is `ON CONFLICT DO NOTHING`;
only the rows that were really inserted (RETURNING on PostgreSQL, the change count on SQLite)
are added to the rollup, in the same transaction.

Reports. Every committed row is also added to `xvckit_usage_rollup`: per UTC hour and per UTC
day x key x team x model, the sums a report needs. A report over [since, until) reads whole
days from the day rollup, whole hours at the edges from the hour rollup, and the raw rows only
for the partial hours at the two ends: its cost grows with the days in the range times the
key x team x model combinations used, not with the number of requests (10M rows, 30 days:
~60 ms instead of ~3.4 s, bench/ledger_query.py). `usage_report_raw` aggregates the raw rows
and gives the same answer (the tests compare them, also on random records and ranges).

Retention. With `retention_days`, the writer process deletes rows older than that (the cutoff
rounded down to a UTC day, so rollup and raw rows go together; up to a day more is kept) in
batches of `prune_batch` raw rows or one rollup bucket, one short transaction each, only
while no record is waiting to be written, at most every `prune_interval_s`.
"""

from __future__ import annotations

import datetime as dt
import itertools
import math
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, fields
from typing import Annotated

import msgspec
import sqlalchemy as sa

from xvckit.store import ledger_stats
from xvckit.store.database import Store
from xvckit.store.ledger_stats import usage_stats
from xvckit.store.schema import metadata

HOUR = 3600
DAY = 86400
SPANS = (HOUR, DAY)
GROUPS = {"key": "key_id", "team": "team_id", "model": "model", "day": "day", "prompt": "prompt"}
PROMPT_CHARS = 120  # a prompt's name (at most 100 characters), '@' and its version number
SUMS = ("requests", "input_tokens", "output_tokens", "cached_tokens", "cost_usd", "errors")

usage = sa.Table(
    "xvckit_usage",
    metadata,
    sa.Column("id", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True, autoincrement=True),
    sa.Column("request_id", sa.String(128), nullable=False, unique=True),
    sa.Column("ts", sa.Double, nullable=False),  # epoch seconds when the request arrived
    sa.Column("endpoint", sa.String(32), nullable=False),
    sa.Column("key_id", sa.String(64)),
    sa.Column("team_id", sa.String(64)),
    sa.Column("model", sa.String(128)),
    sa.Column("deployment", sa.String(200)),
    sa.Column("status", sa.Integer, nullable=False),
    sa.Column("error_type", sa.String(64)),
    sa.Column("input_tokens", sa.BigInteger, nullable=False),
    sa.Column("output_tokens", sa.BigInteger, nullable=False),
    sa.Column("cached_tokens", sa.BigInteger, nullable=False),
    sa.Column("cache_write_tokens", sa.BigInteger, nullable=False),
    sa.Column("cost_usd", sa.Double, nullable=False),
    sa.Column("latency_ms", sa.Double, nullable=False),
    sa.Column("ttft_ms", sa.Double),
    sa.Column("upstream_ms", sa.Double, nullable=False),
    sa.Column("overhead_ms", sa.Double, nullable=False),
    sa.Column("retries", sa.Integer, nullable=False),
    sa.Column("cache_hit", sa.Boolean, nullable=False),
    sa.Column("client", sa.String(256)),
    sa.Column("cost_saved_usd", sa.Double, nullable=False, server_default="0"),
    # The caller's own `x-request-id`, which it may send again (a retry): `request_id` is the
    # gateway's, one per request.
    sa.Column("client_request_id", sa.String(128)),
    # The library prompt the gateway rendered into the request (`x-xvckit-prompt`): "name@version".
    sa.Column("prompt", sa.String(PROMPT_CHARS)),
    # Only the time index: every other index takes a random page per row written (a WAL page
    # each on SQLite). Per-key and per-team figures come from the rollup; budgets start on
    # whole days, so they never read raw rows.
    sa.Index("ix_xvckit_usage_ts", "ts"),
)

# key_id, team_id and model are '' where the record has none (NULL cannot be part of a key).
rollup = sa.Table(
    "xvckit_usage_rollup",
    metadata,
    sa.Column("span", sa.Integer, primary_key=True),  # 3600 or 86400
    sa.Column("bucket", sa.BigInteger, primary_key=True),  # epoch seconds, a multiple of span
    sa.Column("key_id", sa.String(64), primary_key=True),
    sa.Column("team_id", sa.String(64), primary_key=True),
    sa.Column("model", sa.String(128), primary_key=True),
    sa.Column("requests", sa.BigInteger, nullable=False),
    sa.Column("input_tokens", sa.BigInteger, nullable=False),
    sa.Column("output_tokens", sa.BigInteger, nullable=False),
    sa.Column("cached_tokens", sa.BigInteger, nullable=False),
    sa.Column("cache_write_tokens", sa.BigInteger, nullable=False),
    sa.Column("cost_usd", sa.Double, nullable=False),
    sa.Column("errors", sa.BigInteger, nullable=False),
    sqlite_with_rowid=False,
)

_ROLLUP_SUMS = (
    "requests",
    "input_tokens",
    "output_tokens",
    "cached_tokens",
    "cache_write_tokens",
    "cost_usd",
    "errors",
)
_ROLLUP_KEY = ("span", "bucket", "key_id", "team_id", "model")


@dataclass(slots=True)
class UsageRecord:
    request_id: str
    endpoint: str  # chat | embeddings | messages | count_tokens
    ts: float = field(default_factory=time.time)  # epoch seconds when the request arrived
    key_id: str | None = None
    team_id: str | None = None
    model: str | None = None  # what the client asked for
    deployment: str | None = None  # "provider/upstream-model"
    status: int = 0
    error_type: str | None = None
    input_tokens: int = 0
    output_tokens: int = 0
    cached_tokens: int = 0
    cache_write_tokens: int = 0
    cost_usd: float = 0.0
    latency_ms: float = 0.0
    ttft_ms: float | None = None
    upstream_ms: float = 0.0
    overhead_ms: float = 0.0
    retries: int = 0
    cache_hit: bool = False
    client: str | None = None  # user agent
    cost_saved_usd: float = 0.0  # what a cache hit would have cost upstream
    client_request_id: str | None = None  # the caller's `x-request-id`, if it sent one
    prompt: str | None = None  # "name@version" of the library prompt rendered into the request

    @property
    def is_error(self) -> bool:
        return is_error(self.status, self.error_type)

    def row(self) -> tuple:
        """The values in RAW_COLUMNS order, as they are (`clean_row` makes them storable)."""
        return tuple(getattr(self, name) for name in RAW_COLUMNS)


def is_error(status: int, error_type: str | None) -> bool:
    """What a report counts in `errors`: an HTTP error status, or any error type recorded
    (a stream that failed after its 200, a client that went away)."""
    return status >= 400 or error_type is not None


# The endpoint of rows a provider batch ran (gateway/batch_ledger.py): latency fields of 0, since
# nobody waited for them, so they stay out of latency and TTFT statistics.
BATCH_ENDPOINT = "batch"

_FIELDS = tuple(f.name for f in fields(UsageRecord))

# A row is a tuple in the order of these columns (the table's, without `id`).
RAW_COLUMNS = (
    "request_id",
    "ts",
    "endpoint",
    "key_id",
    "team_id",
    "model",
    "deployment",
    "status",
    "error_type",
    "input_tokens",
    "output_tokens",
    "cached_tokens",
    "cache_write_tokens",
    "cost_usd",
    "latency_ms",
    "ttft_ms",
    "upstream_ms",
    "overhead_ms",
    "retries",
    "cache_hit",
    "client",
    "cost_saved_usd",
    "client_request_id",
    "prompt",
)
assert set(RAW_COLUMNS) == {c.name for c in usage.columns} - {"id"} == set(_FIELDS)
_TS, _ENDPOINT, _KEY, _TEAM, _MODEL, _STATUS, _ERROR = (
    RAW_COLUMNS.index(n) for n in ("ts", "endpoint", "key_id", "team_id", "model", "status", "error_type")
)
_IN, _OUT, _CACHED, _WRITTEN, _COST = (
    RAW_COLUMNS.index(n)
    for n in ("input_tokens", "output_tokens", "cached_tokens", "cache_write_tokens", "cost_usd")
)
_LATENCY, _TTFT, _HIT, _SAVED = (
    RAW_COLUMNS.index(n) for n in ("latency_ms", "ttft_ms", "cache_hit", "cost_saved_usd")
)
_ROLLUP_COLUMNS = (*_ROLLUP_KEY, *_ROLLUP_SUMS)


def _text(value, limit: int) -> str | None:
    if value is None:
        return None
    if type(value) is not str:
        value = str(value)
    return value if len(value) <= limit else value[:limit]


def _number(value) -> float:
    return float(value) if value is not None and math.isfinite(value) else 0.0


def _padded(row: tuple) -> tuple:
    """A journaled row from before a column was added (at the end): the column's default."""
    return row if len(row) >= len(RAW_COLUMNS) else (*row, *_ADDED_DEFAULTS[len(row) - len(RAW_COLUMNS) :])


_ADDED_DEFAULTS = (0.0, None, None)  # cost_saved_usd, client_request_id, prompt


def row_of(record: UsageRecord) -> tuple:
    return clean_row(record.row())


def clean_row(row: Sequence) -> tuple:
    """A row as the database takes it: strings cut to their column, non-finite numbers as 0,
    so the database does not refuse a record for a value the gateway could not control.
    Raises TypeError or ValueError for a value of the wrong kind."""
    (
        request_id,
        ts,
        endpoint,
        key_id,
        team_id,
        model,
        deployment,
        status,
        error_type,
        input_tokens,
        output_tokens,
        cached_tokens,
        cache_write_tokens,
        cost_usd,
        latency_ms,
        ttft_ms,
        upstream_ms,
        overhead_ms,
        retries,
        cache_hit,
        client,
        cost_saved_usd,
        client_request_id,
        prompt,
    ) = _padded(tuple(row))
    return (
        _text(request_id, 128),
        _number(ts),
        _text(endpoint, 32),
        _text(key_id, 64),
        _text(team_id, 64),
        _text(model, 128),
        _text(deployment, 200),
        int(status or 0),
        _text(error_type, 64),
        int(input_tokens or 0),
        int(output_tokens or 0),
        int(cached_tokens or 0),
        int(cache_write_tokens or 0),
        _number(cost_usd),
        _number(latency_ms),
        float(ttft_ms) if ttft_ms is not None and math.isfinite(ttft_ms) else None,
        _number(upstream_ms),
        _number(overhead_ms),
        int(retries or 0),
        bool(cache_hit),
        _text(client, 256),
        _number(cost_saved_usd),
        _text(client_request_id, 128),
        _text(prompt, PROMPT_CHARS),
    )


def _storable_type(column: sa.Column):
    """What a value of `column` must be to go into the database as it is."""
    kind = column.type
    if isinstance(kind, sa.String):
        python = Annotated[str, msgspec.Meta(max_length=kind.length)]
    elif isinstance(kind, sa.Boolean):
        python = bool
    elif isinstance(kind, sa.Integer):
        python = int
    else:
        python = float
    return python | None if column.nullable else python


# Checks a journal line in C: ~0.6 us a row against ~1.6 for a decode and `clean_row`.
_storable_row = msgspec.json.Decoder(tuple[tuple(_storable_type(usage.c[name]) for name in RAW_COLUMNS)])


def decode_rows(data: bytes) -> list[tuple]:
    """Journal lines, every one of them in one call in C (~1 us a row less than a call per
    line); raises msgspec.DecodeError if any line is not JSON or needs `clean_row`: then
    decode them one by one with `decode_row`."""
    return _storable_row.decode_lines(data)


def decode_row(line: bytes) -> tuple:
    """A journal line (a JSON array in RAW_COLUMNS order) as the database takes it: as it is
    when every value already fits its column, else through `clean_row`. Raises ValueError
    (msgspec.DecodeError for a line that is not JSON) or TypeError."""
    try:
        return _storable_row.decode(line)
    except msgspec.ValidationError:
        return clean_row(msgspec.json.decode(line))


_PG_ARRAYS = {sa.Double: "float8[]", sa.BigInteger: "int8[]", sa.Integer: "int4[]", sa.Boolean: "bool[]"}


def _pg_array(column: sa.Column) -> str:
    for kind, name in _PG_ARRAYS.items():
        if isinstance(column.type, kind):
            return name
    return "text[]"


class _PgWriter:
    """PostgreSQL: one statement per table with one array parameter per column (`unnest`),
    so the statement text is constant (parsed once) whatever the batch size. The multi-row
    VALUES form costs psycopg a regex pass over thousands of placeholders per batch."""

    def __init__(self) -> None:
        arrays = ", ".join(f"%s::{_pg_array(usage.c[n])}" for n in RAW_COLUMNS)
        self.raw = (
            f"INSERT INTO {usage.name} ({', '.join(RAW_COLUMNS)}) SELECT * FROM unnest({arrays}) "
            "ON CONFLICT (request_id) DO NOTHING RETURNING request_id"
        )
        self.up = self._adding(rollup, _ROLLUP_KEY, _ROLLUP_SUMS)
        self.stats = self._adding(usage_stats, ledger_stats.KEY, ledger_stats.SUMS)

    @staticmethod
    def _adding(table: sa.Table, key: Sequence[str], sums: Sequence[str]) -> str:
        """Rows inserted, or added to the rows of the same key."""
        columns = (*key, *sums)
        arrays = ", ".join(f"%s::{_pg_array(table.c[n])}" for n in columns)
        updates = ", ".join(f"{n} = {table.name}.{n} + EXCLUDED.{n}" for n in sums)
        return (
            f"INSERT INTO {table.name} ({', '.join(columns)}) SELECT * FROM unnest({arrays}) "
            f"ON CONFLICT ({', '.join(key)}) DO UPDATE SET {updates}"
        )

    def insert(self, conn: sa.Connection, rows: list[tuple]) -> list[tuple]:
        added = {r[0] for r in conn.exec_driver_sql(self.raw, _columns(rows))}
        return rows if len(added) == len(rows) else [row for row in rows if row[0] in added]

    def upsert(self, conn: sa.Connection, rows: list[tuple]) -> None:
        conn.exec_driver_sql(self.up, _columns(rows))

    def upsert_stats(self, conn: sa.Connection, rows: list[tuple]) -> None:
        conn.exec_driver_sql(self.stats, _columns(rows))


def _columns(rows: list[tuple]) -> tuple[list, ...]:
    return tuple(list(column) for column in zip(*rows, strict=True))


class _SqliteWriter:
    """SQLite: the driver's own executemany (SQLAlchemy Core's multi-row INSERT ... RETURNING
    and upsert cost about 35 us a record more), of statements that insert ROWS_PER_STATEMENT
    rows each (a statement per row costs the driver ~0.7 us a row more: ~3.1 against ~2.4).

    Which rows were new is known without RETURNING: the insert counts the rows it added
    (`total_changes`); when that is the whole batch, every row is new, else the new rows are
    the ones with the highest ids, since SQLite gives each new row max(id) + 1 and no other
    connection can write inside this transaction."""

    def __init__(self) -> None:
        self.raw = _MultiRowInsert(usage.name, RAW_COLUMNS, "ON CONFLICT (request_id) DO NOTHING")
        self.up = self._adding(rollup, _ROLLUP_KEY, _ROLLUP_SUMS)
        self.stats = self._adding(usage_stats, ledger_stats.KEY, ledger_stats.SUMS)
        self.newest = f"SELECT request_id FROM {usage.name} ORDER BY id DESC LIMIT ?"

    def insert(self, conn: sa.Connection, rows: list[tuple]) -> list[tuple]:
        dbapi = conn.connection.dbapi_connection
        before = dbapi.total_changes
        cursor = dbapi.cursor()
        try:
            self.raw.run(cursor, rows)
            added = dbapi.total_changes - before
            if added == len(rows):
                return rows
            new = {r[0] for r in cursor.execute(self.newest, (added,))} if added else set()
            return [row for row in rows if row[0] in new]
        finally:
            cursor.close()

    @staticmethod
    def _adding(table: sa.Table, key: Sequence[str], sums: Sequence[str]) -> _MultiRowInsert:
        """Rows inserted, or added to the rows of the same key."""
        updates = ", ".join(f"{n} = {n} + excluded.{n}" for n in sums)
        return _MultiRowInsert(
            table.name, (*key, *sums), f"ON CONFLICT ({', '.join(key)}) DO UPDATE SET {updates}"
        )

    def upsert(self, conn: sa.Connection, rows: list[tuple]) -> None:
        self._run(conn, self.up, rows)

    def upsert_stats(self, conn: sa.Connection, rows: list[tuple]) -> None:
        self._run(conn, self.stats, rows)

    @staticmethod
    def _run(conn: sa.Connection, statement: _MultiRowInsert, rows: list[tuple]) -> None:
        cursor = conn.connection.dbapi_connection.cursor()
        try:
            statement.run(cursor, rows)
        finally:
            cursor.close()


ROWS_PER_STATEMENT = 50


class _MultiRowInsert:
    """`INSERT INTO table (columns) VALUES (...), (...), ... tail` of ROWS_PER_STATEMENT rows,
    and of one row for what is left over."""

    def __init__(self, table: str, columns: Sequence[str], tail: str) -> None:
        head = f"INSERT INTO {table} ({', '.join(columns)}) VALUES "
        one = f"({', '.join('?' * len(columns))})"
        self.single = f"{head}{one} {tail}"
        self.multi = f"{head}{', '.join([one] * ROWS_PER_STATEMENT)} {tail}"

    def run(self, cursor, rows: list[tuple]) -> None:
        whole = len(rows) - len(rows) % ROWS_PER_STATEMENT
        if whole:
            flat = itertools.chain.from_iterable
            cursor.executemany(
                self.multi,
                [tuple(flat(rows[i : i + ROWS_PER_STATEMENT])) for i in range(0, whole, ROWS_PER_STATEMENT)],
            )
        if whole < len(rows):
            cursor.executemany(self.single, rows[whole:])


def writer_for(dialect: str) -> _PgWriter | _SqliteWriter:
    return _PgWriter() if dialect == "postgresql" else _SqliteWriter()


def _rollup_rows(rows: Iterable[tuple]) -> list[tuple]:
    """The hour and day rollup rows of `rows`: the hours summed row by row, the days from the
    hours (a batch holds a few hours of a few thousand key x team x model groups)."""
    hours: dict[tuple, list] = {}
    for row in rows:
        group = (int(row[_TS] // HOUR) * HOUR, row[_KEY] or "", row[_TEAM] or "", row[_MODEL] or "")
        error = 1 if is_error(row[_STATUS], row[_ERROR]) else 0
        acc = hours.get(group)
        if acc is None:
            hours[group] = [1, row[_IN], row[_OUT], row[_CACHED], row[_WRITTEN], row[_COST], error]
        else:
            acc[0] += 1
            acc[1] += row[_IN]
            acc[2] += row[_OUT]
            acc[3] += row[_CACHED]
            acc[4] += row[_WRITTEN]
            acc[5] += row[_COST]
            acc[6] += error
    return _with_days(hours)


def stats_rows(rows: Sequence[tuple], rolled: Sequence[tuple] | None = None) -> list[tuple]:
    """The dashboard's hour and day rows of `rows` (store/ledger_stats.py), per team and for all
    teams: requests, spend and tokens from their rollup rows (`rolled`, `_rollup_rows(rows)`:
    summed by group, not by row), latency and TTFT bins of successful upstream answers (but a
    provider batch's), errors by
    type, cache hits and their savings."""
    hours: dict[tuple, list] = {}

    def add(group: tuple, total: float, events: int = 1) -> None:
        acc = hours.get(group)
        if acc is None:
            hours[group] = [events, total]
        else:
            acc[0] += events
            acc[1] += total

    teams: dict[tuple, list] = {}  # (hour, team) -> requests, input, output, cached, cost
    for span, hour, _key, team, _model, requests, input_, output, cached, _written, cost, _errors in (
        _rollup_rows(rows) if rolled is None else rolled
    ):
        if span == HOUR:
            sums = teams.get((hour, team))
            if sums is None:
                teams[(hour, team)] = [requests, input_, output, cached, cost]
            else:
                sums[0] += requests
                sums[1] += input_
                sums[2] += output
                sums[3] += cached
                sums[4] += cost
    usage = ledger_stats.USAGE
    for (hour, team), (requests, input_, output, cached, cost) in teams.items():
        hours[(hour, team, usage, "requests")] = [requests, cost]
        hours[(hour, team, usage, "input")] = [input_, 0.0]
        hours[(hour, team, usage, "output")] = [output, 0.0]
        hours[(hour, team, usage, "cached")] = [cached, 0.0]

    label = ledger_stats.latency_label
    latency_kind, ttft_kind = ledger_stats.LATENCY, ledger_stats.TTFT
    for row in rows:
        hour, team = int(row[_TS] // HOUR) * HOUR, row[_TEAM] or ""
        if row[_STATUS] >= 400 or row[_ERROR] is not None:
            add((hour, team, ledger_stats.ERROR, row[_ERROR] or f"http_{row[_STATUS]}"), 0.0)
        elif row[_HIT]:
            add((hour, team, ledger_stats.CACHE, row[_MODEL] or ""), row[_SAVED])
        elif row[_ENDPOINT] != BATCH_ENDPOINT:
            latency = row[_LATENCY]
            add((hour, team, latency_kind, label(latency)), latency)
            ttft = row[_TTFT]
            if ttft is not None:
                add((hour, team, ttft_kind, label(ttft)), ttft)
    for (hour, _team, *names), (events, total) in list(hours.items()):
        add((hour, ledger_stats.ALL, *names), total, events)
    return _with_days(hours)


def _with_days(hours: dict[tuple, list]) -> list[tuple]:
    """Rows of hour sums (their key starting with the hour) and of the days they add up to, in
    key order: concurrent writers (gateway replicas on PostgreSQL) lock rows in the same order,
    so they wait for each other instead of deadlocking."""
    days: dict[tuple, list] = {}
    for (hour, *names), sums in hours.items():
        acc = days.setdefault((hour // DAY * DAY, *names), [0] * len(sums))
        for i, value in enumerate(sums):
            acc[i] += value
    return sorted(
        [(HOUR, *group, *sums) for group, sums in hours.items()]
        + [(DAY, *group, *sums) for group, sums in days.items()]
    )


def commit_rows(conn: sa.Connection, rows: Sequence[tuple], writer=None) -> int:
    """Insert rows (as `decode_row` makes them) and their rollup in the caller's transaction;
    rows whose request id is already there, or earlier in `rows`, are skipped. Returns how
    many were new."""
    writer = writer or writer_for(conn.dialect.name)
    rows = list(rows)
    if len({row[0] for row in rows}) < len(rows):
        first: dict[str, tuple] = {}
        for row in rows:
            first.setdefault(row[0], row)
        rows = list(first.values())
    if not rows:
        return 0
    inserted = writer.insert(conn, rows)
    if inserted:
        rolled = _rollup_rows(inserted)
        writer.upsert(conn, rolled)
        writer.upsert_stats(conn, stats_rows(inserted, rolled))
    return len(inserted)


def transient(exc: BaseException) -> bool:
    """May a retry succeed? Locked database, lost connection, server down: yes. A value the
    database refuses: no."""
    if isinstance(exc, sa.exc.DBAPIError) and exc.connection_invalidated:
        return True
    if not isinstance(exc, sa.exc.SQLAlchemyError):
        return False  # a value `_row` could not convert
    return not isinstance(exc, sa.exc.DataError | sa.exc.IntegrityError)


def describe(exc: BaseException) -> str:
    """One line, no parameters (they could hold user data), no URL."""
    orig = getattr(exc, "orig", None)
    text = str(orig if orig is not None else exc).strip().splitlines()
    return f"{type(orig or exc).__name__}: {text[0] if text else ''}"[:300]


def prune_step(conn: sa.Connection, cutoff: float, batch: int = 1000) -> int:
    """Delete up to `batch` raw rows older than `cutoff` (epoch seconds, a multiple of a day),
    else one rollup or dashboard-stats bucket older than it. Returns rows deleted; 0 when nothing is left."""
    ids = sa.select(usage.c.id).where(usage.c.ts < cutoff).limit(batch).scalar_subquery()
    deleted = conn.execute(sa.delete(usage).where(usage.c.id.in_(ids))).rowcount
    if deleted:
        return deleted
    for table in (rollup, usage_stats):
        for span in SPANS:
            oldest = conn.execute(sa.select(sa.func.min(table.c.bucket)).where(table.c.span == span)).scalar()
            if oldest is not None and oldest < cutoff:
                return conn.execute(
                    sa.delete(table).where(table.c.span == span, table.c.bucket == oldest)
                ).rowcount
    return 0


def prune(store: Store, older_than_days: float, batch: int = 1000) -> int:
    """Delete what retention would delete, now, in batches (for the CLI and tests)."""
    cutoff = math.floor((time.time() - older_than_days * DAY) / DAY) * DAY
    total = 0
    while True:
        with store.engine.begin() as conn:
            deleted = prune_step(conn, cutoff, batch)
        if not deleted:
            return total
        total += deleted


def write_records(store: Store, records: Iterable[UsageRecord]) -> int:
    """Commit records in one transaction without the writer thread (tools, tests, imports)."""
    with store.engine.begin() as conn:
        return commit_rows(conn, [row_of(record) for record in records])


def ledger_request_ids(store: Store) -> list[str]:
    """Every request id in the ledger, in the order they were written."""
    with store.engine.connect() as conn:
        return list(conn.execute(sa.select(usage.c.request_id).order_by(usage.c.id)).scalars())


def ledger_records(store: Store, request_ids: Sequence[str] | None = None) -> list[UsageRecord]:
    """The records, as written (all of them, or those with the given request ids)."""
    query = sa.select(*(usage.c[name] for name in _FIELDS)).order_by(usage.c.id)
    if request_ids is not None:
        query = query.where(usage.c.request_id.in_(list(request_ids)))
    with store.engine.connect() as conn:
        return [UsageRecord(**row._mapping) for row in conn.execute(query)]


def ledger_rows(store: Store, since: float, until: float, columns: Sequence[str]) -> list[tuple]:
    """The raw rows with `since <= ts < until`, oldest first, only `columns` (names from
    RAW_COLUMNS): for what the rollups do not keep (percentiles, error types, times of day).
    Reads every row of the range through the time index: bound it."""
    unknown = [name for name in columns if name not in RAW_COLUMNS]
    if unknown:
        raise ValueError(f"not a ledger column: {unknown[0]!r}")
    query = (
        sa.select(*(usage.c[name] for name in columns))
        .where(usage.c.ts >= since, usage.c.ts < until)
        .order_by(usage.c.ts)
    )
    with store.engine.connect() as conn:
        return [tuple(row) for row in conn.execute(query)]


# reports


def _floor(value: float, span: int) -> int:
    return int(value // span) * span


def _ceil(value: float, span: int) -> int:
    start = int(value // span) * span
    return start if start >= value else start + span


def _plan(since: float | None, until: float | None) -> tuple[list, list]:
    """Split [since, until) into rollup pieces (span, first bucket, end) with whole buckets
    only, and raw pieces (start, end) that each lie inside one hour. None is unbounded."""
    rolled: list[tuple[int, int | None, int | None]] = []
    raw: list[tuple[float, float]] = []
    day0 = None if since is None else _ceil(since, DAY)
    day1 = None if until is None else _floor(until, DAY)
    if day0 is None or day1 is None or day0 < day1:
        rolled.append((DAY, day0, day1))
        edges = []
        if since is not None and since < day0:
            edges.append((since, day0))
        if until is not None and day1 < until:
            edges.append((day1, until))
    elif since < until:
        edges = [(since, until)]
    else:
        edges = []
    for start, end in edges:
        hour0, hour1 = _ceil(start, HOUR), _floor(end, HOUR)
        if hour0 < hour1:
            rolled.append((HOUR, hour0, hour1))
            pieces = [(start, hour0), (hour1, end)]
        else:  # less than one whole hour: split where an hour starts inside
            pieces = [(start, hour0), (hour0, end)] if start < hour0 < end else [(start, end)]
        raw.extend((a, b) for a, b in pieces if a < b)
    return rolled, raw


def _day(bucket: float) -> str:
    return dt.datetime.fromtimestamp(_floor(bucket, DAY), dt.UTC).strftime("%Y-%m-%d")


def _sums(table: sa.Table, rolled: bool) -> list:
    if rolled:
        return [sa.func.sum(table.c[name]) for name in SUMS]
    return [
        sa.func.count(),
        sa.func.sum(table.c.input_tokens),
        sa.func.sum(table.c.output_tokens),
        sa.func.sum(table.c.cached_tokens),
        sa.func.sum(table.c.cost_usd),
        sa.func.sum(sa.case((sa.or_(table.c.status >= 400, table.c.error_type.is_not(None)), 1), else_=0)),
    ]


def _filters(table: sa.Table, key_id: str | None, team_id: str | None) -> list:
    where = []
    if key_id is not None:
        where.append(table.c.key_id == key_id)
    if team_id is not None:
        where.append(table.c.team_id == team_id)
    return where


class _Totals:
    def __init__(self) -> None:
        self.groups: dict = {}

    def add(self, group, values: Sequence) -> None:
        acc = self.groups.get(group)
        if acc is None:
            acc = self.groups[group] = [0, 0, 0, 0, 0.0, 0]
        for i, value in enumerate(values):
            if value is not None:
                acc[i] += value

    def rows(self, by: str | None) -> list[dict]:
        if by is None:
            acc = self.groups.get(None, [0, 0, 0, 0, 0.0, 0])
            return [_as_row({}, acc)]
        column = GROUPS[by]
        out = [_as_row({column: group}, acc) for group, acc in self.groups.items()]
        if by == "day":
            out.sort(key=lambda row: row["day"])
        else:
            out.sort(
                key=lambda row: (-row["cost_usd"], -row["requests"], row[column] is None, row[column] or "")
            )
        return out


def _as_row(row: dict, acc: Sequence) -> dict:
    row.update(
        requests=int(acc[0]),
        input_tokens=int(acc[1]),
        output_tokens=int(acc[2]),
        cached_tokens=int(acc[3]),
        cost_usd=round(float(acc[4]), 9),  # sums of floats: drop the noise below a nano-dollar
        errors=int(acc[5]),
    )
    return row


def _check(by: str | None, since: float | None, until: float | None) -> None:
    if by is not None and by not in GROUPS:
        raise ValueError(f"unknown grouping {by!r}: use one of {', '.join(GROUPS)}")
    for name, value in (("since", since), ("until", until)):
        if value is not None and not math.isfinite(value):
            raise ValueError(f"{name} must be a finite time")


def usage_report(
    store: Store,
    by: str | None,
    since: float | None,
    until: float | None = None,
    key_id: str | None = None,
    team_id: str | None = None,
) -> list[dict]:
    """Totals over [since, until) (epoch seconds; None is unbounded), one row per group
    (`by`: key, team, model, day (UTC), prompt (`name@version`), or None for one totals row).
    Each row has the group value (`key_id`, `team_id`, `model` or `prompt` (None where the
    records had none) or `day` as YYYY-MM-DD) and requests, input_tokens, output_tokens,
    cached_tokens, cost_usd, errors; by prompt also mean_latency_ms."""
    _check(by, since, until)
    if by == "prompt":
        return _by_prompt(store, since, until, key_id, team_id)
    rolled, raw = _plan(since, until)
    totals = _Totals()
    column = GROUPS.get(by or "")
    with store.engine.connect() as conn:
        for span, first, end in rolled:
            where = [rollup.c.span == span, *_filters(rollup, key_id, team_id)]
            if first is not None:
                where.append(rollup.c.bucket >= first)
            if end is not None:
                where.append(rollup.c.bucket < end)
            if by is None:
                group = []
            elif by == "day":
                group = [rollup.c.bucket]
            else:
                group = [rollup.c[column]]
            query = sa.select(*group, *_sums(rollup, True)).where(*where)
            if group:
                query = query.group_by(*group)
            for row in conn.execute(query):
                if by is None:
                    totals.add(None, row)
                elif by == "day":
                    totals.add(_day(row[0]), row[1:])
                else:
                    totals.add(row[0] or None, row[1:])
        for start, end in raw:
            where = [usage.c.ts >= start, usage.c.ts < end, *_filters(usage, key_id, team_id)]
            group = [usage.c[column]] if by not in (None, "day") else []
            query = sa.select(*group, *_sums(usage, False)).where(*where)
            if group:
                query = query.group_by(*group)
            for row in conn.execute(query):
                if not row[len(group)]:
                    continue  # no rows in this piece
                if by is None:
                    totals.add(None, row)
                elif by == "day":
                    totals.add(_day(start), row)  # a raw piece lies inside one hour
                else:
                    totals.add(row[0] or None, row[1:])
    return totals.rows(by)


def usage_report_raw(
    store: Store,
    by: str | None,
    since: float | None,
    until: float | None = None,
    key_id: str | None = None,
    team_id: str | None = None,
) -> list[dict]:
    """The same report as `usage_report`, aggregated from the raw rows only (slow on a big
    ledger; for tests and benchmarks)."""
    _check(by, since, until)
    where = _raw_where(since, until, key_id, team_id)
    if by is None:
        group = []
    elif by == "day":
        if store.engine.dialect.name == "postgresql":
            group = [sa.cast(sa.func.floor(usage.c.ts / DAY), sa.BigInteger)]
        else:
            group = [sa.cast(usage.c.ts / DAY, sa.Integer)]
    else:
        group = [usage.c[GROUPS[by]]]
    query = sa.select(*group, *_sums(usage, False)).where(*where)
    if group:
        query = query.group_by(*group)
    totals = _Totals()
    with store.engine.connect() as conn:
        for row in conn.execute(query):
            if by is None:
                if row[0]:
                    totals.add(None, row)
            elif by == "day":
                totals.add(_day(row[0] * DAY), row[1:])
            else:
                totals.add(row[0], row[1:])
    return totals.rows(by)


def _raw_where(since: float | None, until: float | None, key_id: str | None, team_id: str | None) -> list:
    where = _filters(usage, key_id, team_id)
    if since is not None:
        where.append(usage.c.ts >= since)
    if until is not None:
        where.append(usage.c.ts < until)
    return where


def _by_prompt(
    store: Store, since: float | None, until: float | None, key_id: str | None, team_id: str | None
) -> list[dict]:
    """One row per prompt version (None: the requests that named none), with the mean latency
    of its requests (a provider batch's have none), from the raw rows of the range: the rollups
    keep no prompt."""
    timed = sa.case((usage.c.endpoint != BATCH_ENDPOINT, usage.c.latency_ms))
    query = (
        sa.select(usage.c.prompt, *_sums(usage, False), sa.func.avg(timed))
        .where(*_raw_where(since, until, key_id, team_id))
        .group_by(usage.c.prompt)
    )
    totals, latency = _Totals(), {}
    with store.engine.connect() as conn:
        for row in conn.execute(query):
            totals.add(row[0], row[1:-1])
            latency[row[0]] = row[-1]
    rows = totals.rows("prompt")
    for row in rows:
        row["mean_latency_ms"] = round(float(latency[row["prompt"]] or 0.0), 1)
    return rows
