"""What the dashboard reads of the ledger: per UTC hour and day and per team, and for all
teams together (team ALL), requests, spend and tokens, latency and time-to-first-token
histograms, errors by type and response-cache hits with what they saved. The ledger writer adds
every committed row to it in the same transaction as the row and its rollup
(`ledger.commit_rows`), so a panel over any range reads a few rows per bucket (the usage rollup
has one per key and model), never raw rows.

Histograms: a latency in ms falls in bin `floor(ln(max(ms, 1)) / ln(GAMMA))`; a bin stands for
the geometric middle of its bounds, so a percentile read back is within ~5% of the exact one.
Latencies are those of the `api.latency_*` KPIs (metrics/kpis.py): successful requests that
went upstream (status below 400, no error type, not a response-cache hit).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence

import sqlalchemy as sa

from xvckit.store.schema import metadata

GAMMA = 1.1
_LN_GAMMA = math.log(GAMMA)
# the series: USAGE's labels are USAGE_LABELS (events: requests, or tokens; total: USD for
# requests); a histogram's are bin numbers; ERROR's error types; CACHE's models
USAGE, LATENCY, TTFT, ERROR, CACHE = "usage", "latency", "ttft", "error", "cache"
SERIES = (USAGE, LATENCY, TTFT, ERROR, CACHE)
USAGE_LABELS = ("requests", "input", "output", "cached")
ALL = "*"  # the team_id of the rows of every team together (a team's id is never '*')

# team_id is '' for requests of no team, ALL for all teams together.
usage_stats = sa.Table(
    "xvckit_usage_stats",
    metadata,
    sa.Column("span", sa.Integer, primary_key=True),  # 3600 or 86400
    sa.Column("bucket", sa.BigInteger, primary_key=True),  # epoch seconds, a multiple of span
    sa.Column("team_id", sa.String(64), primary_key=True),
    sa.Column("series", sa.String(16), primary_key=True),
    sa.Column("label", sa.String(128), primary_key=True),
    sa.Column("events", sa.BigInteger, nullable=False),
    sa.Column("total", sa.Double, nullable=False),  # USD (usage, cache saved), ms summed (histograms)
    sqlite_with_rowid=False,
)
KEY = ("span", "bucket", "team_id", "series", "label")
SUMS = ("events", "total")


def latency_bin(ms: float) -> int:
    return int(math.log(ms) / _LN_GAMMA) if ms > 1 else 0


_LABELS = tuple(str(n) for n in range(400))  # GAMMA**400 ms is some 10**16 ms: every latency


def latency_label(ms: float) -> str:
    """The bin's label as stored (the writer calls it twice a row: no str() each time)."""
    return _LABELS[latency_bin(ms)]


def bin_value(label: int) -> float:
    """The latency (ms) a bin stands for: the geometric middle of its bounds."""
    return GAMMA ** (label + 0.5) if label else 1.0


def percentile(bins: dict[int, int], q: float) -> float | None:
    """The q-quantile (0-1) of a histogram {bin: count}; None when it is empty."""
    total = sum(bins.values())
    if not total:
        return None
    rank, seen = q * total, 0
    for label in sorted(bins):
        seen += bins[label]
        if seen >= rank:
            return bin_value(label)
    return bin_value(max(bins))


def read(
    conn: sa.Connection,
    span: int,
    since: int,
    until: int,
    team_id: str | None,
    series: Sequence[str],
) -> Iterable[tuple[int, str, str, int, float]]:
    """(bucket, series, label, count, total) of [since, until), of one team or (None) of all."""
    table = usage_stats
    query = sa.select(table.c.bucket, table.c.series, table.c.label, table.c.events, table.c.total).where(
        table.c.span == span,
        table.c.bucket >= since,
        table.c.bucket < until,
        table.c.team_id == (ALL if team_id is None else team_id),
        table.c.series.in_(list(series)),
    )
    for bucket, kind, label, count, total in conn.execute(query):
        yield int(bucket), kind, label, int(count), float(total or 0.0)
