"""The dashboard's tables: `xvckit_usage_stats` (per hour and day, per team and for all teams:
requests, spend, tokens, latency and TTFT histograms, errors by type, cache hits and savings;
the ledger writer keeps it from now on) filled
from the ledger's raw rows, a day at a time, and `xvckit_infra` (the sampled compute, provider
and pacing series). The bins and the rules are frozen here as store/ledger_stats.py has them;
tests/test_dashboard_store.py holds the two to the same answer.

Revision ID: 0004
Revises: 0003
"""

import math

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"

HOUR, DAY = 3600, 86400
_LN_GAMMA = math.log(1.1)


def upgrade() -> None:
    stats = op.create_table(
        "xvckit_usage_stats",
        sa.Column("span", sa.Integer, primary_key=True),
        sa.Column("bucket", sa.BigInteger, primary_key=True),
        sa.Column("team_id", sa.String(64), primary_key=True),
        sa.Column("series", sa.String(16), primary_key=True),
        sa.Column("label", sa.String(128), primary_key=True),
        sa.Column("events", sa.BigInteger, nullable=False),
        sa.Column("total", sa.Double, nullable=False),
        sqlite_with_rowid=False,
    )
    op.create_table(
        "xvckit_infra",
        sa.Column("span", sa.Integer, primary_key=True),
        sa.Column("bucket", sa.BigInteger, primary_key=True),
        sa.Column("host", sa.String(255), primary_key=True),
        sa.Column("series", sa.String(32), primary_key=True),
        sa.Column("label", sa.String(255), primary_key=True),
        sa.Column("samples", sa.BigInteger, nullable=False),
        sa.Column("total", sa.Double, nullable=False),
        sa.Column("maximum", sa.Double, nullable=False),
        sqlite_with_rowid=False,
    )
    _backfill(op.get_bind(), stats)


def _bin(ms: float) -> str:
    return str(int(math.log(ms) / _LN_GAMMA) if ms > 1 else 0)


def _backfill(conn: sa.Connection, stats: sa.Table) -> None:
    """The stats of the rows already in the ledger, one UTC day at a time (memory bounded by a
    day's groups), through the time index."""
    usage = sa.table(
        "xvckit_usage",
        *(
            sa.column(name)
            for name in (
                "ts",
                "team_id",
                "input_tokens",
                "output_tokens",
                "cached_tokens",
                "cost_usd",
                "model",
                "status",
                "error_type",
                "latency_ms",
                "ttft_ms",
                "cache_hit",
                "cost_saved_usd",
            )
        ),
    )
    first, last = conn.execute(sa.select(sa.func.min(usage.c.ts), sa.func.max(usage.c.ts))).one()
    if first is None:
        return
    day = int(first // DAY) * DAY
    while day <= last:
        hours: dict[tuple, list] = {}
        in_day = sa.select(*usage.c).where(usage.c.ts >= day, usage.c.ts < day + DAY)
        rows = conn.execute(in_day).yield_per(10_000)
        for ts, team, input_, output, cached, cost, model, status, error, latency, ttft, hit, saved in rows:
            hour, team = int(ts // HOUR) * HOUR, team or ""
            groups = [
                ("usage", "requests", 1, cost),
                ("usage", "input", input_, 0.0),
                ("usage", "output", output, 0.0),
                ("usage", "cached", cached, 0.0),
            ]
            if status >= 400 or error is not None:
                groups.append(("error", error or f"http_{status}", 1, 0.0))
            elif hit:
                groups.append(("cache", model or "", 1, saved or 0.0))
            else:
                groups.append(("latency", _bin(latency), 1, latency))
                if ttft is not None:
                    groups.append(("ttft", _bin(ttft), 1, ttft))
            for series, label, events, total in groups:
                for who in (team, "*"):
                    acc = hours.setdefault((hour, who, series, label), [0, 0.0])
                    acc[0] += events
                    acc[1] += total
        days: dict[tuple, list] = {}
        for (_hour, *names), (events, total) in hours.items():
            acc = days.setdefault((day, *names), [0, 0.0])
            acc[0] += events
            acc[1] += total
        out = [(HOUR, *group, *sums) for group, sums in hours.items()]
        out += [(DAY, *group, *sums) for group, sums in days.items()]
        if out:
            names = ("span", "bucket", "team_id", "series", "label", "events", "total")
            op.bulk_insert(stats, [dict(zip(names, row, strict=True)) for row in out])
        day += DAY
