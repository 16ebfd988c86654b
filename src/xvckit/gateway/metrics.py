"""Prometheus metrics of the gateway.

The hot path only adds to plain dicts and lists (a few hundred nanoseconds a request);
the exposition is built from them when /metrics is scraped. prometheus_client's own
metric objects take a lock and a label lookup per update, which cost the gateway ~8% of
its CPU per request.
"""

from __future__ import annotations

from bisect import bisect_left
from collections import defaultdict
from collections.abc import Iterator

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric

from xvckit.gateway.exchange import Exchange

_LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300)
_OVERHEAD_BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1)


class _Histogram:
    __slots__ = ("bounds", "counts", "total")

    def __init__(self, bounds: tuple[float, ...]) -> None:
        self.bounds = bounds
        self.counts = [0] * (len(bounds) + 1)  # the last one is +Inf
        self.total = 0.0

    def observe(self, value: float) -> None:
        self.counts[bisect_left(self.bounds, value)] += 1
        self.total += value

    def buckets(self) -> list[tuple[str, int]]:
        running = 0
        out = []
        for bound, count in zip((*map(str, self.bounds), "+Inf"), self.counts, strict=True):
            running += count
            out.append((bound, running))
        return out


class _PerModel:
    """One model's counters (attributes, not tuple-keyed dicts: fewer objects per request)."""

    __slots__ = ("cache_hits", "cost_saved", "latency", "tokens", "ttft")

    def __init__(self) -> None:
        self.latency = _Histogram(_LATENCY_BUCKETS)
        self.ttft = _Histogram(_LATENCY_BUCKETS)
        self.tokens = [0, 0, 0, 0]  # in _TOKEN_KINDS order
        self.cache_hits = 0
        self.cost_saved = 0.0


_TOKEN_KINDS = ("input", "output", "cached", "cache_write")


class Metrics:
    def __init__(self) -> None:
        self.requests: defaultdict[tuple[str, int, str | None, str | None], int] = defaultdict(int)
        self.models: dict[str, _PerModel] = {}
        self.overhead = _Histogram(_OVERHEAD_BUCKETS)
        self.cost: defaultdict[tuple[str, str | None], float] = defaultdict(float)
        self.upstream_errors: defaultdict[tuple[str, str], int] = defaultdict(int)
        self.budget_remaining: dict[str, float] = {}
        self.in_flight = 0
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(self)

    def observe(self, ex: Exchange, cost_usd: float) -> None:
        model = ex.model or "-"
        self.requests[(model, ex.status, ex.team_id, ex.key_id)] += 1
        stats = self.models.get(model)
        if stats is None:
            stats = self.models[model] = _PerModel()
        stats.latency.observe(ex.elapsed_s)
        if ex.ttft_ms is not None:
            stats.ttft.observe(ex.ttft_ms / 1000)
        self.overhead.observe(ex.overhead_ms / 1000)
        usage, tokens = ex.usage, stats.tokens
        tokens[0] += usage.input_tokens
        tokens[1] += usage.output_tokens
        tokens[2] += usage.cached_tokens
        tokens[3] += usage.cache_write_tokens
        if cost_usd:
            self.cost[(model, ex.team_id)] += cost_usd
        if ex.error and ex.error.startswith("upstream"):
            self.upstream_errors[(ex.provider or "-", ex.error)] += 1
        if ex.cache_hit:
            stats.cache_hits += 1
            stats.cost_saved += ex.cost_saved_usd

    def render(self, budget_remaining: dict[str, float], ledger_backlog_bytes: int | None) -> bytes:
        self.budget_remaining = budget_remaining
        self.ledger_backlog_bytes = ledger_backlog_bytes
        return generate_latest(self.registry)

    def collect(self) -> Iterator[Metric]:
        """The exposition, built at scrape time (prometheus_client's custom-collector protocol)."""
        requests = CounterMetricFamily(
            "xvckit_requests", "Requests answered", labels=["model", "status", "team", "key"]
        )
        for (model, status, team, key), value in list(self.requests.items()):
            requests.add_metric([model, str(status), team or "-", key or "-"], value)
        yield requests
        models = list(self.models.items())
        yield _histograms("xvckit_request_seconds", "Total request time", [(m, s.latency) for m, s in models])
        yield _histograms(
            "xvckit_time_to_first_token_seconds",
            "Time to the first streamed bytes",
            [(m, s.ttft) for m, s in models],
        )
        overhead = HistogramMetricFamily("xvckit_overhead_seconds", "Time spent in the gateway itself")
        overhead.add_metric([], self.overhead.buckets(), self.overhead.total)
        yield overhead
        tokens = CounterMetricFamily("xvckit_tokens", "Tokens by kind", labels=["model", "kind"])
        for model, stats in models:
            for kind, value in zip(_TOKEN_KINDS, stats.tokens, strict=True):
                if value:
                    tokens.add_metric([model, kind], value)
        yield tokens
        cost = {(model, team or "-"): value for (model, team), value in list(self.cost.items())}
        yield _counter("xvckit_cost_usd", "Cost in USD", ["model", "team"], cost)
        yield _counter(
            "xvckit_upstream_errors", "Upstream failures by type", ["provider", "type"], self.upstream_errors
        )
        hits = {(model,): stats.cache_hits for model, stats in models if stats.cache_hits}
        yield _counter("xvckit_cache_hits", "Answers replayed without an upstream call", ["model"], hits)
        saved = {(model,): stats.cost_saved for model, stats in models if stats.cost_saved}
        yield _counter("xvckit_cost_saved_usd", "Cost of the replayed answers", ["model"], saved)
        in_flight = GaugeMetricFamily("xvckit_in_flight_requests", "Requests being served")
        in_flight.add_metric([], self.in_flight)
        yield in_flight
        budgets = GaugeMetricFamily(
            "xvckit_budget_remaining_usd", "Budget left this period", labels=["scope", "id"]
        )
        for scope, value in self.budget_remaining.items():
            budgets.add_metric(scope.split(":", 1), value)
        yield budgets
        if self.ledger_backlog_bytes is not None:
            backlog = GaugeMetricFamily(
                "xvckit_ledger_backlog_bytes", "Usage records journaled, not yet in the database"
            )
            backlog.add_metric([], self.ledger_backlog_bytes)
            yield backlog


def _counter(name: str, documentation: str, labels: list[str], values: dict) -> CounterMetricFamily:
    family = CounterMetricFamily(name, documentation, labels=labels)
    for key, value in list(values.items()):
        family.add_metric(key, value)
    return family


def _histograms(
    name: str, documentation: str, per_model: list[tuple[str, _Histogram]]
) -> HistogramMetricFamily:
    family = HistogramMetricFamily(name, documentation, labels=["model"])
    for model, histogram in per_model:
        if any(histogram.counts):  # a model with no streamed answer has no TTFT
            family.add_metric([model], histogram.buckets(), histogram.total)
    return family
