"""Issue 23: the dashboard's rollups on SQLite and PostgreSQL. The ledger writer's stats (latency
and TTFT histograms, errors by type, cache hits and savings per hour, day and team) hold what the
raw rows hold: the migration that builds them from an existing ledger gives the same table, the
percentiles read back are within 5% of the exact ones, a row committed twice counts once and
retention removes them with the rows. The infrastructure series: sums, counts and maxima per
minute and hour, each span pruned on its own."""

from __future__ import annotations

import importlib.util
import random
from pathlib import Path

import numpy as np
import sqlalchemy as sa
from alembic.operations import Operations
from alembic.runtime.migration import MigrationContext

from xvckit.store import Store, infra, ledger_stats
from xvckit.store.ledger import DAY, HOUR, UsageRecord, prune_step, write_records

T0 = 1_767_225_600  # 2026-01-01T00:00:00Z
MIGRATION = next(Path(ledger_stats.__file__).parent.glob("migrations/versions/*_dashboard.py"))


def records(n: int = 1500, seed: int = 7) -> list[UsageRecord]:
    rng = random.Random(seed)
    out = []
    for i in range(n):
        roll = rng.random()
        status, error = (200, None)
        if roll < 0.05:
            status, error = 429, "rate_limit_error"
        elif roll < 0.08:
            status, error = 500, None  # counted as http_500
        elif roll < 0.1:
            status, error = 200, "client_gone"  # a stream cut after its 200
        hit = status == 200 and error is None and rng.random() < 0.1
        out.append(
            UsageRecord(
                request_id=f"r{seed}-{i}",
                endpoint="chat",
                ts=T0 + rng.random() * 3 * DAY,
                team_id=rng.choice([None, "team_a", "team_b"]),
                model=rng.choice(["gpt-4o", "claude-haiku-4-5"]),
                status=status,
                error_type=error,
                latency_ms=rng.lognormvariate(6, 1),
                ttft_ms=rng.lognormvariate(5, 0.7) if rng.random() < 0.6 else None,
                cache_hit=hit,
                cost_saved_usd=0.002 if hit else 0.0,
            )
        )
    return out


def stats_table(store: Store) -> list[tuple]:
    table = ledger_stats.usage_stats
    with store.engine.connect() as conn:
        rows = conn.execute(sa.select(table).order_by(*table.c)).all()
    return [(*row[:-1], round(row[-1], 6)) for row in rows]


def test_the_writers_stats_are_what_the_raw_rows_hold(store_url):
    store = Store.open(store_url)
    try:
        made = records()
        write_records(store, made[:700])
        write_records(store, made[700:])  # a second commit adds to the same buckets
        write_records(store, made[:50])  # already there: counted once
        written = stats_table(store)
        ok = [r for r in made if r.status < 400 and r.error_type is None and not r.cache_hit]
        with store.engine.connect() as conn:
            day = list(ledger_stats.read(conn, DAY, T0, T0 + 3 * DAY, None, ledger_stats.SERIES))
            team_hours = list(
                ledger_stats.read(conn, HOUR, T0, T0 + 3 * DAY, "team_a", [ledger_stats.LATENCY])
            )
        latency = {}
        for _bucket, series, label, count, _total in day:
            if series == ledger_stats.LATENCY:
                latency[int(label)] = latency.get(int(label), 0) + count
        exact = np.array([r.latency_ms for r in ok])
        for q in (0.5, 0.95, 0.99):
            order_statistic = np.quantile(exact, q, method="inverted_cdf")
            assert abs(ledger_stats.percentile(latency, q) / order_statistic - 1) <= 0.05
        assert sum(latency.values()) == len(ok)
        assert sum(c for *_, c, _t in team_hours) == sum(r.team_id == "team_a" for r in ok)
        errors = {}
        for _bucket, series, label, count, _total in day:
            if series == ledger_stats.ERROR:
                errors[label] = errors.get(label, 0) + count
        assert errors == {
            "rate_limit_error": sum(r.error_type == "rate_limit_error" for r in made),
            "http_500": sum(r.status == 500 for r in made),
            "client_gone": sum(r.error_type == "client_gone" for r in made),
        }
        saved = sum(t for _b, series, _l, _c, t in day if series == ledger_stats.CACHE)
        assert round(saved, 6) == round(sum(r.cost_saved_usd for r in made), 6)

        # the migration builds the same table from the raw rows of a ledger that had none
        with store.engine.begin() as conn:
            conn.execute(ledger_stats.usage_stats.delete())
            with Operations.context(MigrationContext.configure(conn)):
                _migration()._backfill(conn, ledger_stats.usage_stats)
        assert stats_table(store) == written
    finally:
        store.close()


def _migration():
    spec = importlib.util.spec_from_file_location("dashboard_migration", MIGRATION)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_a_provider_batchs_requests_stay_out_of_the_latency_bins(store_url):
    """Their latency fields are 0 (nobody waited for them): binned, they would pull every
    dashboard percentile down. They still count as requests, with their tokens and cost."""
    store = Store.open(store_url)
    try:
        answered = dict(status=200, team_id="team_a", input_tokens=10, cost_usd=0.5)
        write_records(
            store,
            [
                UsageRecord(request_id="live", endpoint="chat", ts=T0 + 1, latency_ms=800, **answered),
                *(UsageRecord(request_id=f"b{i}", endpoint="batch", ts=T0 + 2, **answered) for i in range(3)),
            ],
        )
        with store.engine.connect() as conn:
            day = list(ledger_stats.read(conn, DAY, T0, T0 + DAY, "team_a", ledger_stats.SERIES))
        latency = [(label, count) for _b, series, label, count, _t in day if series == ledger_stats.LATENCY]
        assert latency == [(ledger_stats.latency_label(800), 1)]
        requests = [(count, total) for _b, series, label, count, total in day if label == "requests"]
        assert requests == [(4, 2.0)]
    finally:
        store.close()


def test_retention_removes_stats_with_the_rows(store_url):
    store = Store.open(store_url)
    try:
        write_records(store, records(300))
        with store.engine.begin() as conn:
            while prune_step(conn, T0 + DAY, batch=500):
                pass
        buckets = {row[1] for row in stats_table(store)}
        assert buckets and min(buckets) >= T0 + DAY
    finally:
        store.close()


def test_infra_series_keep_sums_counts_and_maxima_per_span(store_url):
    store = Store.open(store_url)
    try:
        infra.add(store, T0 + 10, "gw-1", [("cpu_percent", "", 20.0), ("provider_up", "sim", 1.0)])
        infra.add(store, T0 + 70, "gw-1", [("cpu_percent", "", 60.0), ("provider_up", "sim", 0.0)])
        infra.add(store, T0 + 20, "gw-2", [("cpu_percent", "", 5.0)])
        minutes = infra.read(store, infra.MINUTE, T0, T0 + HOUR, ["cpu_percent"])
        assert minutes == [
            (T0, "gw-1", "cpu_percent", "", 1, 20.0, 20.0),
            (T0, "gw-2", "cpu_percent", "", 1, 5.0, 5.0),
            (T0 + 60, "gw-1", "cpu_percent", "", 1, 60.0, 60.0),
        ]
        hours = infra.read(store, infra.HOUR, T0, T0 + HOUR, ["cpu_percent", "provider_up"])
        assert sorted(hours) == [
            (T0, "gw-1", "cpu_percent", "", 2, 80.0, 60.0),
            (T0, "gw-1", "provider_up", "sim", 2, 1.0, 1.0),
            (T0, "gw-2", "cpu_percent", "", 1, 5.0, 5.0),
        ]
        # minutes kept an hour, hours a day: two hours later only the hour buckets are left
        deleted = infra.prune(store, T0 + 2 * HOUR, {infra.MINUTE: HOUR, infra.HOUR: DAY})
        assert deleted == 5
        assert infra.read(store, infra.MINUTE, T0, T0 + HOUR, ["cpu_percent"]) == []
        assert len(infra.read(store, infra.HOUR, T0, T0 + HOUR, ["cpu_percent", "provider_up"])) == 3
    finally:
        store.close()
