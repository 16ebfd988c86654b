"""The gateway's infrastructure series (xvckit.metrics.infra samples them): compute, provider
probes and pacing, per host, kept as per-minute and per-hour buckets of samples (how many, their
sum and their largest), each span with its own retention. A sample is added to both buckets
at once, so a chart over any range reads at most a few hundred buckets per series."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import sqlalchemy as sa

from xvckit.store.database import Store
from xvckit.store.schema import metadata

MINUTE, HOUR = 60, 3600
SPANS = (MINUTE, HOUR)

infra = sa.Table(
    "xvckit_infra",
    metadata,
    sa.Column("span", sa.Integer, primary_key=True),  # 60 or 3600
    sa.Column("bucket", sa.BigInteger, primary_key=True),  # epoch seconds, a multiple of span
    sa.Column("host", sa.String(255), primary_key=True),  # the gateway replica that sampled
    sa.Column("series", sa.String(32), primary_key=True),  # e.g. cpu_percent, probe_ms
    sa.Column("label", sa.String(255), primary_key=True),  # '' or a provider, a pacing lane
    sa.Column("samples", sa.BigInteger, nullable=False),
    sa.Column("total", sa.Double, nullable=False),
    sa.Column("maximum", sa.Double, nullable=False),
    sqlite_with_rowid=False,
)

Sample = tuple[str, str, float]  # series, label, value


def add(store: Store, ts: float, host: str, values: Iterable[Sample]) -> None:
    """Add one sampling's values (taken at `ts`) to their minute and hour buckets."""
    rows = [
        {
            "span": span,
            "bucket": int(ts // span) * span,
            "host": host[:255],
            "series": series,
            "label": label[:255],
            "samples": 1,
            "total": value,
            "maximum": value,
        }
        for series, label, value in values
        for span in SPANS
    ]
    if not rows:
        return
    with store.engine.begin() as conn:
        if conn.dialect.name == "postgresql":
            from sqlalchemy.dialects.postgresql import insert

            larger = sa.func.greatest
        else:
            from sqlalchemy.dialects.sqlite import insert

            larger = sa.func.max
        statement = insert(infra)
        new = statement.excluded
        conn.execute(
            statement.on_conflict_do_update(
                index_elements=[infra.c[name] for name in ("span", "bucket", "host", "series", "label")],
                set_={
                    "samples": infra.c.samples + new.samples,
                    "total": infra.c.total + new.total,
                    "maximum": larger(infra.c.maximum, new.maximum),
                },
            ),
            rows,
        )


def read(
    store: Store, span: int, since: float, until: float, series: Sequence[str]
) -> list[tuple[int, str, str, str, int, float, float]]:
    """(bucket, host, series, label, samples, total, maximum) of [since, until), oldest first."""
    query = (
        sa.select(
            infra.c.bucket,
            infra.c.host,
            infra.c.series,
            infra.c.label,
            infra.c.samples,
            infra.c.total,
            infra.c.maximum,
        )
        .where(
            infra.c.span == span,
            infra.c.bucket >= int(since // span) * span,
            infra.c.bucket < until,
            infra.c.series.in_(list(series)),
        )
        .order_by(infra.c.bucket)
    )
    with store.engine.connect() as conn:
        return [tuple(row) for row in conn.execute(query)]  # type: ignore[misc]


def prune(store: Store, now: float, keep_s: dict[int, float]) -> int:
    """Delete the buckets of each span older than its retention (seconds); rows deleted."""
    deleted = 0
    with store.engine.begin() as conn:
        for span, seconds in keep_s.items():
            cutoff = int((now - seconds) // span) * span
            deleted += conn.execute(
                sa.delete(infra).where(infra.c.span == span, infra.c.bucket < cutoff)
            ).rowcount
    return deleted
