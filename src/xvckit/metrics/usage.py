"""The gateway's ledger as the KPIs read it: one row per request in a time range, as columns.

What the ledger does not hold: the time a request waited in the gateway's pacing queue is part
of `upstream_ms` (the dispatcher's time, retries and pacing included), not a column of its own;
a KPI of queue waits needs that column (a migration) first.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from xvckit.store.database import Store

COLUMNS = (
    "endpoint",
    "ts",
    "key_id",
    "team_id",
    "model",
    "status",
    "error_type",
    "input_tokens",
    "output_tokens",
    "cached_tokens",
    "cache_write_tokens",
    "cost_usd",
    "latency_ms",
    "ttft_ms",
    "cache_hit",
)


@dataclass(frozen=True)
class Requests:
    ts: np.ndarray  # epoch seconds, ascending
    key: list[str | None]
    team: list[str | None]
    model: list[str | None]
    status: np.ndarray
    error: list[str | None]  # the error's type: the ledger's, else http_<status>; None: no error
    input: np.ndarray
    output: np.ndarray
    cached: np.ndarray
    cache_write: np.ndarray
    cost: np.ndarray
    latency: np.ndarray  # ms; NaN for a provider batch's request (nobody waited for it)
    ttft: np.ndarray  # ms; NaN where the answer was not streamed
    cache_hit: np.ndarray

    def __len__(self) -> int:
        return len(self.ts)

    def between(self, since: float, until: float) -> Requests:
        """The requests with since <= ts < until."""
        lo, hi = np.searchsorted(self.ts, [since, until], side="left")
        return Requests(*(getattr(self, column.name)[lo:hi] for column in fields(self)))

    def where(self, keep: np.ndarray) -> Requests:
        """The requests where `keep` (a boolean array) is true."""
        return Requests(*(_pick(getattr(self, column.name), keep) for column in fields(self)))


def _pick(column, keep: np.ndarray):
    if isinstance(column, np.ndarray):
        return column[keep]
    return [value for value, kept in zip(column, keep, strict=True) if kept]


def read(store: Store, since: float, until: float) -> Requests:
    """The requests with since <= ts < until (the store is imported here: a run without the
    ledger does not pay for SQLAlchemy)."""
    from xvckit.store.ledger import BATCH_ENDPOINT, is_error, ledger_rows

    rows = ledger_rows(store, since, until, COLUMNS)
    columns = list(zip(*rows, strict=True)) if rows else [()] * len(COLUMNS)
    (
        endpoint,
        ts,
        key,
        team,
        model,
        status,
        error,
        input_,
        output,
        cached,
        written,
        cost,
        latency,
        ttft,
        hit,
    ) = columns
    batch = [e == BATCH_ENDPOINT for e in endpoint]
    return Requests(
        ts=np.array(ts, dtype=float),
        key=list(key),
        team=list(team),
        model=list(model),
        status=np.array(status, dtype=np.int64),
        error=[
            (kind or f"http_{code}") if is_error(code, kind) else None
            for code, kind in zip(status, error, strict=True)
        ],
        input=np.array(input_, dtype=np.int64),
        output=np.array(output, dtype=np.int64),
        cached=np.array(cached, dtype=np.int64),
        cache_write=np.array(written, dtype=np.int64),
        cost=np.array(cost, dtype=float),
        latency=np.array([np.nan if b else t for t, b in zip(latency, batch, strict=True)], dtype=float),
        ttft=np.array([np.nan if t is None else t for t in ttft], dtype=float),
        cache_hit=np.array(hit, dtype=bool),
    )
