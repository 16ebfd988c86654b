"""The run journal: one SQLite file (WAL) in the run's folder, one row per item request.

Rows are keyed by the SHA-256 of the rendered request, so a re-run finds what it already did
and does only the rest: an item whose file changed renders another request, another key. A
row moves pending -> sending -> answered -> done, or to failed; rows the current plan no
longer has are `stale` (kept, not counted). A provider batch (`--mode provider-batch`) is a row
of `provider_batches`, open until its results are collected, its requests `sending` meanwhile.
Every change is its own transaction, committed before the next step (WAL; synchronous=NORMAL,
which loses nothing a killed process committed, only what an OS crash had not yet written out).

`answered` is recorded before the sink writes outputs, so a crash in between costs no second
request: the re-run hands the stored answer to the sink again. A row left `sending` was in
flight when the process died; the re-run sends it again with the same Idempotency-Key and
the gateway answers it from its record.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import orjson

from xvckit.batch.requests import Request
from xvckit.providers.usage import Usage

PENDING, SENDING, ANSWERED, DONE, FAILED, STALE = "pending", "sending", "answered", "done", "failed", "stale"
STATES = (PENDING, SENDING, ANSWERED, DONE, FAILED)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS items (
    hash TEXT PRIMARY KEY,
    item_id TEXT NOT NULL,
    seq INTEGER NOT NULL,
    state TEXT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    input_tokens INTEGER NOT NULL DEFAULT 0,
    output_tokens INTEGER NOT NULL DEFAULT 0,
    cached_tokens INTEGER NOT NULL DEFAULT 0,
    cost_usd REAL,
    replayed INTEGER NOT NULL DEFAULT 0,
    answer TEXT,
    error TEXT,
    output TEXT,
    updated REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS items_by_item ON items (item_id);
CREATE TABLE IF NOT EXISTS provider_batches (
    id TEXT PRIMARY KEY,
    api TEXT NOT NULL,
    open INTEGER NOT NULL DEFAULT 1,
    status TEXT NOT NULL,
    counts TEXT,
    hashes TEXT NOT NULL,
    created REAL NOT NULL,
    updated REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS edits (
    path TEXT PRIMARY KEY,
    existed INTEGER NOT NULL,
    after_sha TEXT,
    item_hash TEXT NOT NULL,
    undone INTEGER NOT NULL DEFAULT 0
);
"""


@dataclass(frozen=True, slots=True)
class Row:
    hash: str
    item_id: str
    seq: int
    state: str
    attempts: int
    input_tokens: int
    output_tokens: int
    cost_usd: float | None
    replayed: bool
    answer: str | None
    error: str | None
    output: dict | None


@dataclass(frozen=True, slots=True)
class ProviderBatch:
    """A batch the run submitted to the provider's batch API; `open` until its results are in."""

    id: str
    api: str  # openai | anthropic
    status: str  # as the provider last said
    counts: dict | None  # its request counts, as the provider last said
    hashes: list[str]  # the requests in it
    open: bool
    created: float


_ROW_COLUMNS = (
    "hash, item_id, seq, state, attempts, input_tokens, output_tokens, cost_usd, replayed,"
    " answer, error, output"
)


class Journal:
    def __init__(self, path: Path) -> None:
        self.path = path
        self.db = sqlite3.connect(path, isolation_level=None, timeout=10, check_same_thread=False)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=NORMAL")
        self.db.executescript(_SCHEMA)

    def close(self) -> None:
        self.db.close()

    # --- run metadata ------------------------------------------------------------------------

    def get(self, key: str, default=None):
        row = self.db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return orjson.loads(row[0]) if row else default

    def set(self, key: str, value) -> None:
        self.db.execute(
            "INSERT INTO meta (key, value) VALUES (?, ?)"
            " ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            (key, orjson.dumps(value).decode()),
        )

    # --- items -------------------------------------------------------------------------------

    def plan(self, requests: Iterable[Request]) -> dict[str, str]:
        """Record the run's requests (new ones pending) and mark rows no longer planned
        stale; return each planned request's state."""
        now = time.time()
        with self._transaction():
            self.db.execute("CREATE TEMP TABLE IF NOT EXISTS planned (hash TEXT PRIMARY KEY)")
            self.db.execute("DELETE FROM planned")
            for r in requests:
                self.db.execute("INSERT OR IGNORE INTO planned VALUES (?)", (r.hash,))
                self.db.execute(
                    "INSERT INTO items (hash, item_id, seq, state, input_tokens, updated)"
                    " VALUES (?, ?, ?, ?, ?, ?)"
                    " ON CONFLICT (hash) DO UPDATE SET item_id = excluded.item_id, seq = excluded.seq,"
                    " state = CASE WHEN items.state = 'stale' THEN"
                    "   CASE WHEN items.answer IS NULL THEN 'pending' ELSE 'answered' END"
                    " ELSE items.state END",
                    (r.hash, r.item_id, r.seq, PENDING, r.input_tokens, now),
                )
            self.db.execute(
                "UPDATE items SET state = ?, updated = ? WHERE hash NOT IN (SELECT hash FROM planned)"
                " AND state != ?",
                (STALE, now, STALE),
            )
            states = dict(
                self.db.execute("SELECT i.hash, i.state FROM items i JOIN planned p ON p.hash = i.hash")
            )
        return states

    def sending(self, key: str) -> None:
        self.db.execute(
            "UPDATE items SET state = ?, attempts = attempts + 1, updated = ? WHERE hash = ?",
            (SENDING, time.time(), key),
        )

    def answered(self, key: str, text: str, usage: Usage, cost_usd: float | None, replayed: bool) -> None:
        self.db.execute(
            "UPDATE items SET state = ?, answer = ?, input_tokens = ?, output_tokens = ?, cached_tokens = ?,"
            " cost_usd = ?, replayed = ?, error = NULL, updated = ? WHERE hash = ?",
            (
                ANSWERED,
                text,
                usage.input_tokens,
                usage.output_tokens,
                usage.cached_tokens,
                cost_usd,
                int(replayed),
                time.time(),
                key,
            ),
        )

    def done(self, key: str, output: dict | None) -> None:
        self.db.execute(
            "UPDATE items SET state = ?, output = ?, error = NULL, updated = ? WHERE hash = ?",
            (DONE, orjson.dumps(output).decode() if output is not None else None, time.time(), key),
        )

    def failed(self, key: str, error: str) -> None:
        self.db.execute(
            "UPDATE items SET state = ?, error = ?, updated = ? WHERE hash = ?",
            (FAILED, error, time.time(), key),
        )

    def output_failed(self, key: str, error: str) -> None:
        """The answer is kept (`answered`): the next run writes its outputs without asking again."""
        self.db.execute("UPDATE items SET error = ?, updated = ? WHERE hash = ?", (error, time.time(), key))

    def unsent(self, key: str) -> None:
        """Back to pending: stopped before it was sent (cost cap, cancel)."""
        self.db.execute("UPDATE items SET state = ?, updated = ? WHERE hash = ?", (PENDING, time.time(), key))

    def rows(self, states: tuple[str, ...] = STATES) -> Iterator[Row]:
        marks = ",".join("?" * len(states))
        query = f"SELECT {_ROW_COLUMNS} FROM items WHERE state IN ({marks}) ORDER BY seq, item_id"
        for values in self.db.execute(query, states):
            *head, replayed, answer, error, output = values
            yield Row(*head, bool(replayed), answer, error, orjson.loads(output) if output else None)

    def row(self, key: str) -> Row | None:
        values = self.db.execute(f"SELECT {_ROW_COLUMNS} FROM items WHERE hash = ?", (key,)).fetchone()
        if values is None:
            return None
        *head, replayed, answer, error, output = values
        return Row(*head, bool(replayed), answer, error, orjson.loads(output) if output else None)

    def totals(self) -> dict:
        """Counts per state and the spend and tokens of the planned (not stale) rows."""
        counts = dict.fromkeys(STATES, 0)
        for state, n in self.db.execute(
            "SELECT state, COUNT(*) FROM items WHERE state != ? GROUP BY state", (STALE,)
        ):
            counts[state] = n
        cost, tokens_in, tokens_out, replayed = self.db.execute(
            "SELECT COALESCE(SUM(cost_usd), 0),"
            " COALESCE(SUM(CASE WHEN answer IS NOT NULL THEN input_tokens END), 0),"
            " COALESCE(SUM(output_tokens), 0), COALESCE(SUM(replayed), 0) FROM items WHERE state != ?",
            (STALE,),
        ).fetchone()
        return {
            "items": sum(counts.values()),
            "states": counts,
            "cost_usd": cost,
            "input_tokens": tokens_in,
            "output_tokens": tokens_out,
            "replayed": replayed,
        }

    # --- provider batches (`--mode provider-batch`) --------------------------------------------

    def batch_submitted(self, batch_id: str, api: str, status: str, hashes: list[str]) -> None:
        """A batch the provider took: its requests are in flight (`sending`) until it ends."""
        now = time.time()
        with self._transaction():
            self.db.execute(
                "INSERT INTO provider_batches (id, api, status, hashes, created, updated)"
                " VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (id) DO NOTHING",
                (batch_id, api, status, orjson.dumps(hashes).decode(), now, now),
            )
            for key in hashes:
                self.db.execute(
                    "UPDATE items SET state = ?, attempts = attempts + 1, updated = ? WHERE hash = ?",
                    (SENDING, now, key),
                )

    def batch_status(self, batch_id: str, status: str, counts: dict | None, ended: bool = False) -> None:
        self.db.execute(
            "UPDATE provider_batches SET status = ?, counts = ?, open = ?, updated = ? WHERE id = ?",
            (status, orjson.dumps(counts).decode(), int(not ended), time.time(), batch_id),
        )

    def provider_batches(self, open_only: bool = False) -> list[ProviderBatch]:
        query = "SELECT id, api, status, counts, hashes, open, created FROM provider_batches"
        query += " WHERE open = 1" if open_only else ""
        return [
            ProviderBatch(
                ident,
                api,
                status,
                orjson.loads(counts or "null"),
                orjson.loads(hashes),
                bool(is_open),
                created,
            )
            for ident, api, status, counts, hashes, is_open, created in self.db.execute(
                query + " ORDER BY created"
            )
        ]

    # --- edits (for undo) --------------------------------------------------------------------

    def edited(self, path: str) -> tuple[bool, str | None] | None:
        """(existed before the run, sha of what the run last wrote) for a file the run changed."""
        row = self.db.execute(
            "SELECT existed, after_sha FROM edits WHERE path = ? AND undone = 0", (path,)
        ).fetchone()
        return (bool(row[0]), row[1]) if row else None

    def record_edit(self, path: str, existed: bool, after_sha: str | None, item_hash: str) -> None:
        """A file the run changed: whether it existed first is kept from its first change."""
        self.db.execute(
            "INSERT INTO edits (path, existed, after_sha, item_hash) VALUES (?, ?, ?, ?)"
            " ON CONFLICT (path) DO UPDATE SET after_sha = excluded.after_sha,"
            " item_hash = excluded.item_hash,"
            " existed = CASE WHEN edits.undone = 1 THEN excluded.existed ELSE edits.existed END, undone = 0",
            (path, int(existed), after_sha, item_hash),
        )

    def edits(self) -> list[tuple[str, bool, str | None]]:
        return [
            (path, bool(existed), after)
            for path, existed, after in self.db.execute(
                "SELECT path, existed, after_sha FROM edits WHERE undone = 0 ORDER BY path"
            )
        ]

    def undone(self, path: str) -> None:
        self.db.execute("UPDATE edits SET undone = 1 WHERE path = ?", (path,))

    def _transaction(self):
        return _Transaction(self.db)


class _Transaction:
    def __init__(self, db: sqlite3.Connection) -> None:
        self.db = db

    def __enter__(self) -> None:
        self.db.execute("BEGIN IMMEDIATE")

    def __exit__(self, kind, *_exc) -> None:
        self.db.execute("COMMIT" if kind is None else "ROLLBACK")
