"""Prometheus metrics of the gateway.

The hot path only adds to plain dicts and lists (a few hundred nanoseconds a request);
the exposition is built from them when /metrics is scraped. prometheus_client's own
metric objects take a lock and a label lookup per update, which cost the gateway ~8% of
its CPU per request.

Label values come from the configuration and the store only: a model is labelled by its
configured name, or by the pattern of the glob route that served it, never by the name a
client sent (a client may send a megabyte of it, a different one each time). The
exposition is rendered in a thread from a copy taken on the event loop.
"""

from __future__ import annotations

import asyncio
from bisect import bisect_left
from collections import defaultdict
from collections.abc import Iterable, Iterator

from prometheus_client import generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric

from xvckit.config import ModelRoute
from xvckit.gateway.exchange import Exchange

_LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300)
_OVERHEAD_BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1)
OTHER = "other"  # the label of a model name no route matches
NO_MODEL = "-"  # a request that failed before its model was known
# Client model names whose label is remembered: short ones, and only so many of them.
_REMEMBERED_NAME_CHARS = 200
_REMEMBERED_NAMES = 10_000


class _Histogram:
    __slots__ = ("bounds", "counts", "total")

    def __init__(self, bounds: tuple[float, ...]) -> None:
        self.bounds = bounds
        self.counts = [0] * (len(bounds) + 1)  # the last one is +Inf
        self.total = 0.0

    def observe(self, value: float) -> None:
        self.counts[bisect_left(self.bounds, value)] += 1
        self.total += value

    def copy(self) -> _Histogram:
        copied = _Histogram(self.bounds)
        copied.counts, copied.total = self.counts[:], self.total
        return copied

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

    def copy(self) -> _PerModel:
        copied = _PerModel()
        copied.latency, copied.ttft, copied.tokens = self.latency.copy(), self.ttft.copy(), self.tokens[:]
        copied.cache_hits, copied.cost_saved = self.cache_hits, self.cost_saved
        return copied


_TOKEN_KINDS = ("input", "output", "cached", "cache_write")


class Metrics:
    def __init__(self, routes: Iterable[ModelRoute] = ()) -> None:
        self.requests: defaultdict[tuple[str, int, str | None, str | None], int] = defaultdict(int)
        self.models: dict[str, _PerModel] = {}
        self.overhead = _Histogram(_OVERHEAD_BUCKETS)
        self.cost: defaultdict[tuple[str, str | None], float] = defaultdict(float)
        self.upstream_errors: defaultdict[tuple[str, str], int] = defaultdict(int)
        self.in_flight = 0
        routes = list(routes)
        self._globs = [route for route in routes if route.is_glob]
        # requested name -> label: every exact route, and the glob-routed names seen (bounded)
        self._labels = {route.name: route.name for route in routes if not route.is_glob}

    def model_label(self, model: str | None) -> str:
        """The label a requested model is counted under: its exact route's name, else the
        pattern of the first glob route that matches it (as the router tries them), else `other`."""
        if model is None:
            return NO_MODEL
        label = self._labels.get(model)
        if label is None:
            label = next((route.name for route in self._globs if route.matches(model)), OTHER)
            if len(model) <= _REMEMBERED_NAME_CHARS and len(self._labels) < _REMEMBERED_NAMES:
                self._labels[model] = label
        return label

    def observe(self, ex: Exchange, cost_usd: float) -> None:
        model = self._labels.get(ex.model)  # type: ignore[arg-type]  # None is no key: model_label's
        if model is None:
            model = self.model_label(ex.model)
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

    async def exposition(
        self,
        budget_remaining: dict[str, float],
        ledger_backlog_bytes: int | None,
        extra: Iterable[Metric] = (),
    ) -> bytes:
        """The text exposition, with `extra` families (the gateway's extensions'). Only the copy
        is made on the event loop (its size bounded by the routes, keys and teams); the text is
        built in a thread."""
        snapshot = _Snapshot(self, budget_remaining, ledger_backlog_bytes, extra)
        return await asyncio.to_thread(generate_latest, snapshot)  # type: ignore[arg-type]


class _Snapshot:
    """The counters at one moment, and the exposition made from them (prometheus_client's
    collector protocol: `generate_latest` calls `collect`)."""

    def __init__(
        self,
        metrics: Metrics,
        budget_remaining: dict[str, float],
        ledger_backlog_bytes: int | None,
        extra: Iterable[Metric] = (),
    ) -> None:
        self.extra = list(extra)
        self.requests = dict(metrics.requests)
        self.models = [(model, stats.copy()) for model, stats in metrics.models.items()]
        self.overhead = metrics.overhead.copy()
        self.cost = dict(metrics.cost)
        self.upstream_errors = dict(metrics.upstream_errors)
        self.in_flight = metrics.in_flight
        self.budget_remaining = budget_remaining
        self.ledger_backlog_bytes = ledger_backlog_bytes

    def collect(self) -> Iterator[Metric]:
        requests = CounterMetricFamily(
            "xvckit_requests", "Requests answered", labels=["model", "status", "team", "key"]
        )
        for (model, status, team, key), value in self.requests.items():
            requests.add_metric([model, str(status), team or "-", key or "-"], value)
        yield requests
        models = self.models
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
        cost = {(model, team or "-"): value for (model, team), value in self.cost.items()}
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
        yield from self.extra


def _counter(name: str, documentation: str, labels: list[str], values: dict) -> CounterMetricFamily:
    family = CounterMetricFamily(name, documentation, labels=labels)
    for key, value in values.items():
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
