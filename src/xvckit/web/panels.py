"""The dashboard's panels as JSON, read from rollups only: the dashboard stats (requests, spend,
tokens, latency histograms, errors by type, cache hits and savings per hour or day, per team and
for all teams: store/ledger_stats.py), the usage rollup for spend by team, key and model, and the
infrastructure series (store/infra.py). No panel reads a raw ledger row: its cost grows with the
range's buckets, not with the requests in it (bench/dashboard_panels.py times each on a
10-million-row ledger).

`team` is the only filter: None for every team (an admin's view), else one team's numbers
(a team-admin's, or an admin who picked one); the caller's right to it is checked before."""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from xvckit.store import Store, infra, keys, ledger_stats
from xvckit.store.doctor_runs import list_runs
from xvckit.store.ledger import usage_report

HOUR, DAY = 3600, 86400
QUANTILES = (0.5, 0.95, 0.99)
TOP = 10  # keys and models shown by name in the spend charts; the rest is "other"
DOCTOR_RUNS = 50
HEADLINE = (  # the repository KPIs the overview shows as cards
    "velocity.features_per_day",
    "velocity.commits_per_day",
    "quality.fixes_per_feature",
    "ci.coverage",
    "docs.completeness",
)
# the repository report's categories the delivery panel shows: the repository's own figures
# (the report is made without the ledger: the API panels read the rollups, per team)
DELIVERY = ("velocity", "quality", "ci", "docs", "incidents", "dora")


@dataclass(frozen=True)
class Window:
    """[since, until) in whole buckets of `span` seconds, the current one included."""

    since: int
    until: int
    span: int

    @classmethod
    def last(cls, seconds: float, now: float, hourly_up_to: float = 7 * DAY) -> Window:
        span = HOUR if seconds <= hourly_up_to else DAY
        until = (int(now // span) + 1) * span
        return cls(until - math.ceil(seconds / span) * span, until, span)

    def previous(self) -> Window:
        return Window(2 * self.since - self.until, self.since, self.span)

    def buckets(self) -> list[int]:
        return list(range(self.since, self.until, self.span))


def _series(window: Window, values: dict[int, float], digits: int = 6) -> list[float | None]:
    return [round(values[b], digits) if b in values else None for b in window.buckets()]


def _times(window: Window) -> list[int]:
    return [b * 1000 for b in window.buckets()]  # milliseconds: what JavaScript's Date takes


@dataclass
class _Stats:
    usage: dict[int, list[float]]  # bucket -> [requests, errors, cost, input, output, cached]
    latency: dict[int, dict[int, int]]  # bucket -> bin -> count
    ttft: dict[int, dict[int, int]]
    errors: dict[str, dict[int, int]]  # type -> bucket -> count
    hits: dict[int, int]
    saved: dict[int, float]


_USAGE_AT = {"requests": 0, "input": 3, "output": 4, "cached": 5}


def _stats(conn: sa.Connection, window: Window, team: str | None) -> _Stats:
    found = _Stats({}, defaultdict(dict), defaultdict(dict), defaultdict(dict), {}, {})
    for bucket, kind, label, count, total in ledger_stats.read(
        conn, window.span, window.since, window.until, team, ledger_stats.SERIES
    ):
        if kind == ledger_stats.USAGE:
            row = found.usage.setdefault(bucket, [0.0] * 6)
            row[_USAGE_AT[label]] = count
            if label == "requests":
                row[2] = total
        elif kind == ledger_stats.LATENCY:
            found.latency[bucket][int(label)] = count
        elif kind == ledger_stats.TTFT:
            found.ttft[bucket][int(label)] = count
        elif kind == ledger_stats.ERROR:
            found.errors[label][bucket] = count
            found.usage.setdefault(bucket, [0.0] * 6)[1] += count
        else:
            found.hits[bucket] = found.hits.get(bucket, 0) + count
            found.saved[bucket] = found.saved.get(bucket, 0.0) + total
    return found


def _merged(histograms: dict[int, dict[int, int]]) -> dict[int, int]:
    merged: dict[int, int] = defaultdict(int)
    for bins in histograms.values():
        for label, count in bins.items():
            merged[label] += count
    return merged


def _trend(value: float | None, previous: float | None, better: str | None) -> dict[str, Any]:
    change = None if value is None or previous is None else value - previous
    trend = None if change is None else "flat" if abs(change) < 1e-12 else "up" if change > 0 else "down"
    assessment = None
    if trend is not None and better is not None:
        assessment = (
            "same" if trend == "flat" else "better" if (trend == "up") == (better == "higher") else "worse"
        )
    return {"previous": previous, "change": change, "trend": trend, "assessment": assessment}


def _card(
    card_id: str, name: str, unit: str, better: str | None, value, previous, spark: list
) -> dict[str, Any]:
    return {
        "id": card_id,
        "name": name,
        "unit": unit,
        "better": better,
        "value": value,
        "spark": spark,
    } | _trend(value, previous, better)


def _share(part: float, whole: float) -> float | None:
    return part / whole if whole else None


def _quantile(bins: dict[int, int], q: float) -> float | None:
    value = ledger_stats.percentile(bins, q)
    return None if value is None else round(value, 1)


def overview(store: Store, window: Window, team: str | None, kpis: list[dict] | None) -> dict[str, Any]:
    """KPI cards: this window against the one before it, with a sparkline per bucket; the
    repository's headline KPIs when a report is there."""
    with store.engine.connect() as conn:
        now_stats, old_stats = _stats(conn, window, team), _stats(conn, window.previous(), team)
    now_usage, old_usage = now_stats.usage, old_stats.usage

    def total(usage: dict[int, list[float]], i: int) -> float:
        return sum(row[i] for row in usage.values())

    def per_bucket(i: int) -> list[float | None]:
        return _series(window, {b: row[i] for b, row in now_usage.items()})

    requests, old_requests = total(now_usage, 0), total(old_usage, 0)
    latency, old_latency = _merged(now_stats.latency), _merged(old_stats.latency)
    saved, old_saved = sum(now_stats.saved.values()), sum(old_stats.saved.values())
    cards = [
        _card("requests", "requests", "count", None, requests, old_requests, per_bucket(0)),
        _card(
            "error_rate",
            "error rate",
            "share",
            "lower",
            _share(total(now_usage, 1), requests),
            _share(total(old_usage, 1), old_requests),
            _series(window, {b: row[1] / row[0] for b, row in now_usage.items() if row[0]}),
        ),
    ]
    for q, better in ((0.5, "lower"), (0.95, "lower")):
        cards.append(
            _card(
                f"latency_p{int(q * 100)}",
                f"latency p{int(q * 100)}",
                "ms",
                better,
                _quantile(latency, q),
                _quantile(old_latency, q),
                _series(
                    window, {b: ledger_stats.percentile(bins, q) for b, bins in now_stats.latency.items()}, 1
                ),
            )
        )
    cards += [
        _card("spend", "spend", "usd", None, total(now_usage, 2), total(old_usage, 2), per_bucket(2)),
        _card(
            "cache_saved",
            "saved by the response cache",
            "usd",
            "higher",
            saved,
            old_saved,
            _series(window, now_stats.saved),
        ),
        _card(
            "output_per_input",
            "output tokens per input token",
            "ratio",
            "higher",
            _share(total(now_usage, 4), total(now_usage, 3)),
            _share(total(old_usage, 4), total(old_usage, 3)),
            _series(window, {b: row[4] / row[3] for b, row in now_usage.items() if row[3]}),
        ),
    ]
    for kpi in kpis or ():
        if kpi["id"] in HEADLINE:
            cards.append(
                _card(kpi["id"], kpi["name"], kpi["unit"], kpi["better"], kpi["value"], kpi["previous"], [])
            )
    return {"window": _window(window), "times": _times(window), "cards": cards}


def api(store: Store, window: Window, team: str | None, caller_team: str | None) -> dict[str, Any]:
    """Latency and TTFT percentiles per bucket, requests and errors by type, pacing waits, cache
    hits and savings, spend by team (admins), key and model."""
    with store.engine.connect() as conn:
        stats = _stats(conn, window, team)
    usage = stats.usage
    latency = {
        f"p{int(q * 100)}": _series(
            window, {b: ledger_stats.percentile(bins, q) for b, bins in stats.latency.items()}, 1
        )
        for q in QUANTILES
    }
    ttft = {
        f"p{int(q * 100)}": _series(
            window, {b: ledger_stats.percentile(bins, q) for b, bins in stats.ttft.items()}, 1
        )
        for q in QUANTILES[:2]
    }
    spend = {
        by: _named(store, usage_report(store, by, window.since, window.until, team_id=team), by, caller_team)
        for by in (("key", "model") if team is not None else ("team", "key", "model"))
    }
    return {
        "window": _window(window),
        "times": _times(window),
        "latency_ms": latency,
        "ttft_ms": ttft,
        "requests": _series(window, {b: row[0] for b, row in usage.items()}),
        "errors": {kind: _series(window, counts) for kind, counts in sorted(stats.errors.items())},
        "cache": {"hits": _series(window, stats.hits), "saved_usd": _series(window, stats.saved)},
        "pacing": _pacing(store, window),
        "spend": spend,
    }


def _named(store: Store, rows: list[dict], by: str, caller_team: str | None) -> list[dict]:
    """A spend breakdown with names, the top TOP by cost and the rest as one `other` row."""
    column = {"key": "key_id", "team": "team_id", "model": "model"}[by]
    names: dict[str | None, str] = {}
    if by == "key":
        names = {k.id: k.name for k in keys.list_keys(store, caller_team)}
    elif by == "team":
        names = {t.id: t.name for t in keys.list_teams(store)}
    out = []
    for row in rows[:TOP]:
        ident = row[column]
        name = names.get(ident, ident) if by != "model" else ident
        out.append({"name": name or "(none)", "cost_usd": row["cost_usd"], "requests": row["requests"]})
    rest = rows[TOP:]
    if rest:
        out.append(
            {
                "name": f"other ({len(rest)})",
                "cost_usd": round(sum(r["cost_usd"] for r in rest), 9),
                "requests": sum(r["requests"] for r in rest),
            }
        )
    return out


def _infra_window(window: Window) -> tuple[int, float, float]:
    """The infrastructure span for a window: minutes up to a day, else hours."""
    span = infra.MINUTE if window.until - window.since <= DAY + window.span else infra.HOUR
    return span, window.since, window.until


def _pacing(store: Store, window: Window) -> dict[str, Any]:
    """Calls that waited in pacing queues and how long, all lanes and replicas, per bucket of
    the window (sampled by the infrastructure monitor)."""
    waits: dict[int, float] = defaultdict(float)
    seconds: dict[int, float] = defaultdict(float)
    for bucket, _host, series, _label, _samples, total, _maximum in infra.read(
        store, infra.HOUR, window.since, window.until, ("pacing_waits", "pacing_wait_s")
    ):
        target = waits if series == "pacing_waits" else seconds
        target[bucket // window.span * window.span] += total
    return {"waits": _series(window, waits), "wait_s": _series(window, seconds, 3)}


def infrastructure(store: Store, window: Window) -> dict[str, Any]:
    """Compute per host, provider reachability and probe times, doctor history."""
    span, since, until = _infra_window(window)
    rows = infra.read(
        store,
        span,
        since,
        until,
        (
            "cpu_percent",
            "memory_percent",
            "load1",
            "disk_read_bytes_s",
            "disk_write_bytes_s",
            "net_recv_bytes_s",
            "net_sent_bytes_s",
            "provider_up",
            "probe_ms",
        ),
    )
    compute: dict[str, dict[str, dict[int, float]]] = defaultdict(lambda: defaultdict(dict))
    providers: dict[str, dict[str, dict[int, list[float]]]] = defaultdict(lambda: defaultdict(dict))
    for bucket, host, series, label, samples, total, _maximum in rows:
        if series in ("provider_up", "probe_ms"):
            acc = providers[label][series].setdefault(bucket, [0.0, 0.0])
            acc[0] += samples
            acc[1] += total
        else:
            compute[series][host][bucket] = total / samples
    times = list(range(int(since // span) * span, int(until), span))
    out_compute = {
        series: {host: [_round(values.get(b)) for b in times] for host, values in hosts.items()}
        for series, hosts in compute.items()
    }
    out_providers = []
    for name, series in sorted(providers.items()):
        up = series.get("provider_up", {})
        probes = series.get("probe_ms", {})
        samples = sum(s for s, _ in up.values())
        out_providers.append(
            {
                "name": name,
                "availability": _share(sum(t for _, t in up.values()), samples),
                "probes": int(samples),
                "probe_ms": [_round(probes[b][1] / probes[b][0]) if b in probes else None for b in times],
                "up": [_round(up[b][1] / up[b][0]) if b in up else None for b in times],
            }
        )
    return {
        "window": _window(window),
        "times": [t * 1000 for t in times],
        "compute": out_compute,
        "providers": out_providers,
        "doctor": [_doctor_row(run) for run in list_runs(store, DOCTOR_RUNS)],
    }


def _doctor_row(run: dict) -> dict[str, Any]:
    statuses = {k: int(v) for k, v in (run.get("statuses") or {}).items()}
    judged = sum(n for status, n in statuses.items() if status != "unknown")
    return {
        "at": float(run.get("started_at") or 0) * 1000,
        "host": run.get("host"),
        "band": (run.get("velocity_band") or {}).get("band"),
        "bottleneck": (run.get("bottleneck") or {}).get("id"),
        "checks_met_share": _share(statuses.get("minimum", 0) + statuses.get("optimal", 0), judged),
    }


def delivery(document: dict | None, problem: str | None) -> dict[str, Any]:
    """The repository report's KPIs of the DELIVERY categories."""
    if document is None:
        return {"available": False, "problem": problem, "categories": {}}
    categories: dict[str, list[dict]] = {name: [] for name in DELIVERY}
    for kpi in document["kpis"]:
        if kpi["category"] in categories:
            categories[kpi["category"]].append(kpi)
    return {
        "available": True,
        "problem": problem,
        "period": document["period"],
        "previous_period": document["previous_period"],
        "generated_at": document["generated_at"],
        "categories": categories,
    }


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 3)


def _window(window: Window) -> dict[str, int]:
    return {"since": window.since, "until": window.until, "span": window.span}
