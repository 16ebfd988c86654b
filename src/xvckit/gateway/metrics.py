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


class Metrics:
    def __init__(self) -> None:
        self.requests: defaultdict[tuple[str, str, str, str], int] = defaultdict(int)
        self.latency: dict[str, _Histogram] = {}
        self.ttft: dict[str, _Histogram] = {}
        self.overhead = _Histogram(_OVERHEAD_BUCKETS)
        self.tokens: defaultdict[tuple[str, str], int] = defaultdict(int)
        self.cost: defaultdict[tuple[str, str], float] = defaultdict(float)
        self.upstream_errors: defaultdict[tuple[str, str], int] = defaultdict(int)
        self.cache_hits: defaultdict[tuple[str], int] = defaultdict(int)
        self.cost_saved: defaultdict[tuple[str], float] = defaultdict(float)
        self.budget_remaining: dict[str, float] = {}
        self.in_flight = 0
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(self)

    def observe(self, ex: Exchange, cost_usd: float) -> None:
        model = ex.model or "-"
        team = ex.team_id or "-"
        self.requests[(model, str(ex.status), team, ex.key_id or "-")] += 1
        latency = self.latency.get(model)
        if latency is None:
            latency = self.latency[model] = _Histogram(_LATENCY_BUCKETS)
        latency.observe(ex.elapsed_s)
        if ex.ttft_ms is not None:
            ttft = self.ttft.get(model)
            if ttft is None:
                ttft = self.ttft[model] = _Histogram(_LATENCY_BUCKETS)
            ttft.observe(ex.ttft_ms / 1000)
        self.overhead.observe(ex.overhead_ms / 1000)
        usage = ex.usage
        if usage.input_tokens:
            self.tokens[(model, "input")] += usage.input_tokens
        if usage.output_tokens:
            self.tokens[(model, "output")] += usage.output_tokens
        if usage.cached_tokens:
            self.tokens[(model, "cached")] += usage.cached_tokens
        if usage.cache_write_tokens:
            self.tokens[(model, "cache_write")] += usage.cache_write_tokens
        if cost_usd:
            self.cost[(model, team)] += cost_usd
        if ex.error and ex.error.startswith("upstream"):
            self.upstream_errors[(ex.provider or "-", ex.error)] += 1
        if ex.cache_hit:
            self.cache_hits[(model,)] += 1
            if ex.cost_saved_usd:
                self.cost_saved[(model,)] += ex.cost_saved_usd

    def render(self, budget_remaining: dict[str, float], ledger_backlog_bytes: int | None) -> bytes:
        self.budget_remaining = budget_remaining
        self.ledger_backlog_bytes = ledger_backlog_bytes
        return generate_latest(self.registry)

    def collect(self) -> Iterator[Metric]:
        """The exposition, built at scrape time (prometheus_client's custom-collector protocol)."""
        requests = CounterMetricFamily(
            "xvckit_requests", "Requests answered", labels=["model", "status", "team", "key"]
        )
        for labels, value in list(self.requests.items()):
            requests.add_metric(labels, value)
        yield requests
        yield _histograms("xvckit_request_seconds", "Total request time", self.latency)
        yield _histograms("xvckit_time_to_first_token_seconds", "Time to the first streamed bytes", self.ttft)
        overhead = HistogramMetricFamily("xvckit_overhead_seconds", "Time spent in the gateway itself")
        overhead.add_metric([], self.overhead.buckets(), self.overhead.total)
        yield overhead
        yield _counter("xvckit_tokens", "Tokens by kind", ["model", "kind"], self.tokens)
        yield _counter("xvckit_cost_usd", "Cost in USD", ["model", "team"], self.cost)
        yield _counter(
            "xvckit_upstream_errors", "Upstream failures by type", ["provider", "type"], self.upstream_errors
        )
        yield _counter(
            "xvckit_cache_hits", "Answers replayed without an upstream call", ["model"], self.cache_hits
        )
        yield _counter("xvckit_cost_saved_usd", "Cost of the replayed answers", ["model"], self.cost_saved)
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


def _histograms(name: str, documentation: str, per_model: dict[str, _Histogram]) -> HistogramMetricFamily:
    family = HistogramMetricFamily(name, documentation, labels=["model"])
    for model, histogram in list(per_model.items()):
        family.add_metric([model], histogram.buckets(), histogram.total)
    return family
