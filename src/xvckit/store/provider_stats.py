"""What the usage ledger says about each provider: how often it answered, how fast, and how
many requests a minute it let through. `xvckit doctor` reads it for uptime and API tier; the
gateway's learned rate limits live only in its memory, so the ledger is the lasting record.

Cache hits never reached a provider and are left out. A request counts against the provider
when the provider failed it: a 5xx (its own, or the gateway's 502/504 for an unreachable,
timed-out or disconnecting upstream, or 503 for an open circuit), except the gateway's own
"no usable upstream key". A 429 is the provider's limit, not an outage: counted apart.
"""

from __future__ import annotations

import statistics
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass

import sqlalchemy as sa

from xvckit.store.database import Store
from xvckit.store.ledger import usage

_NOT_THE_PROVIDER = ("no_upstream_key",)


@dataclass(frozen=True, slots=True)
class ProviderStats:
    requests: int
    failed: int  # the provider's fault (see the module docstring)
    rate_limited: int  # answered 429
    peak_rpm: int  # most requests answered (status < 400) in one minute
    median_upstream_ms: float | None  # of the latest answered requests
    sampled: int  # how many requests that median is of


def provider_stats(
    store: Store, providers: Sequence[str], since: float, sample: int = 500
) -> dict[str, ProviderStats]:
    """Figures per provider name since `since` (epoch seconds); providers with no requests
    are left out."""
    failed = sa.and_(
        usage.c.status >= 500, sa.func.coalesce(usage.c.error_type, "").not_in(_NOT_THE_PROVIDER)
    )
    answered = usage.c.status < 400
    recent = [usage.c.ts >= since, usage.c.deployment.is_not(None), usage.c.cache_hit.is_(False)]
    totals: dict[str, list[int]] = defaultdict(lambda: [0, 0, 0])
    per_minute: dict[tuple[str, int], int] = defaultdict(int)
    with store.engine.connect() as conn:
        # The minute of each request: PostgreSQL rounds a cast to an integer, SQLite truncates.
        if conn.dialect.name == "postgresql":
            minute = sa.func.floor(usage.c.ts / 60)
        else:
            minute = sa.cast(usage.c.ts / 60, sa.BigInteger)
        counts = sa.select(
            usage.c.deployment,
            sa.func.count(),
            sa.func.sum(sa.case((failed, 1), else_=0)),
            sa.func.sum(sa.case((usage.c.status == 429, 1), else_=0)),
        ).where(*recent)
        for deployment, requests, failures, limited in conn.execute(counts.group_by(usage.c.deployment)):
            name = _provider_of(deployment, providers)
            if name is not None:
                for i, value in enumerate((requests, failures, limited)):
                    totals[name][i] += int(value or 0)
        minutes = sa.select(usage.c.deployment, minute, sa.func.count()).where(*recent, answered)
        for deployment, bucket, count in conn.execute(minutes.group_by(usage.c.deployment, minute)):
            name = _provider_of(deployment, providers)
            if name is not None:
                per_minute[name, bucket] += count
        found = {}
        for name, (requests, failures, limited) in totals.items():
            latest = (
                sa.select(usage.c.upstream_ms)
                .where(*recent, answered, usage.c.deployment.startswith(f"{name}/", autoescape=True))
                .order_by(usage.c.ts.desc())
                .limit(sample)
            )
            times = [row[0] for row in conn.execute(latest)]
            found[name] = ProviderStats(
                requests=requests,
                failed=failures,
                rate_limited=limited,
                peak_rpm=max((n for (p, _), n in per_minute.items() if p == name), default=0),
                median_upstream_ms=statistics.median(times) if times else None,
                sampled=len(times),
            )
    return found


def _provider_of(deployment: str, providers: Sequence[str]) -> str | None:
    """The provider of a "provider/upstream-model" deployment (the longest name that fits,
    should one provider's name be a prefix of another's)."""
    fitting = [name for name in providers if deployment.startswith(f"{name}/")]
    return max(fitting, key=len) if fitting else None
