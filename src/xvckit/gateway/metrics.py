"""Prometheus metrics of the gateway, on a registry of its own (one per gateway)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from xvckit.gateway.exchange import Exchange

_LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300)
_OVERHEAD_BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1)


class Metrics:
    def __init__(self) -> None:
        self.registry = registry = CollectorRegistry(auto_describe=True)
        self.requests = Counter(
            "xvckit_requests", "Requests answered", ["model", "status", "team", "key"], registry=registry
        )
        self.latency = Histogram(
            "xvckit_request_seconds",
            "Total request time",
            ["model"],
            buckets=_LATENCY_BUCKETS,
            registry=registry,
        )
        self.ttft = Histogram(
            "xvckit_time_to_first_token_seconds",
            "Time to the first streamed bytes",
            ["model"],
            buckets=_LATENCY_BUCKETS,
            registry=registry,
        )
        self.overhead = Histogram(
            "xvckit_overhead_seconds",
            "Time spent in the gateway itself",
            buckets=_OVERHEAD_BUCKETS,
            registry=registry,
        )
        self.tokens = Counter("xvckit_tokens", "Tokens by kind", ["model", "kind"], registry=registry)
        self.cost = Counter("xvckit_cost_usd", "Cost in USD", ["model", "team"], registry=registry)
        self.in_flight = Gauge("xvckit_in_flight_requests", "Requests being served", registry=registry)
        self.upstream_errors = Counter(
            "xvckit_upstream_errors", "Upstream failures by type", ["provider", "type"], registry=registry
        )
        # labels() costs a lookup under a lock; the children are cached per label set
        self._request_children: dict[tuple, Counter] = {}
        self._model_children: dict[str, tuple[Histogram, Histogram]] = {}
        self.budget_remaining = Gauge(
            "xvckit_budget_remaining_usd", "Budget left this period", ["scope", "id"], registry=registry
        )

    def observe(self, ex: Exchange, cost_usd: float) -> None:
        model = ex.model or "-"
        team = ex.team_id or "-"
        labels = (model, ex.status, team, ex.key_id)
        counter = self._request_children.get(labels)
        if counter is None:
            counter = self._request_children[labels] = self.requests.labels(
                model, str(ex.status), team, ex.key_id or "-"
            )
        counter.inc()
        per_model = self._model_children.get(model)
        if per_model is None:
            per_model = self._model_children[model] = (self.latency.labels(model), self.ttft.labels(model))
        per_model[0].observe(ex.elapsed_s)
        if ex.ttft_ms is not None:
            per_model[1].observe(ex.ttft_ms / 1000)
        self.overhead.observe(ex.overhead_ms / 1000)
        usage = ex.usage
        for kind, value in (
            ("input", usage.input_tokens),
            ("output", usage.output_tokens),
            ("cached", usage.cached_tokens),
            ("cache_write", usage.cache_write_tokens),
        ):
            if value:
                self.tokens.labels(model, kind).inc(value)
        if cost_usd:
            self.cost.labels(model, team).inc(cost_usd)
        if ex.error and ex.error.startswith("upstream"):
            self.upstream_errors.labels(ex.provider or "-", ex.error).inc()

    def set_budgets(self, remaining: dict[str, float]) -> None:
        for scope, value in remaining.items():
            kind, ident = scope.split(":", 1)
            self.budget_remaining.labels(kind, ident).set(value)

    def render(self) -> bytes:
        return generate_latest(self.registry)
