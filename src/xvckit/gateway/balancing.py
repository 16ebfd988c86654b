"""Choosing among several deployments of one model (the same model name routed to more
than one provider or account): by rate-limit headroom (default), by observed latency, by
price, or by configured weights. The order decides which is tried first; the rest are
the next candidates when one fails."""

from __future__ import annotations

import random

from xvckit.gateway.pacing import Pacer
from xvckit.gateway.routing import Deployment
from xvckit.providers.prices import PriceTable

EWMA_ALPHA = 0.2  # weight of the newest latency sample


class Balancer:
    def __init__(self, strategy: str, pacer: Pacer, prices: PriceTable) -> None:
        self.strategy = strategy
        self.pacer = pacer
        self.prices = prices
        self._latency: dict[str, float] = {}

    def order(self, deployments: list[Deployment]) -> list[Deployment]:
        if len(deployments) < 2:
            return deployments
        if self.strategy == "latency":
            # unmeasured deployments first (0.0), so every one gets measured
            return sorted(deployments, key=lambda d: self._latency.get(d.name, 0.0))
        if self.strategy == "cost":
            return sorted(deployments, key=self._price)
        if self.strategy == "weighted":
            first = random.choices(deployments, weights=[d.weight for d in deployments])[0]
            return [first, *(d for d in deployments if d is not first)]
        return sorted(deployments, key=self._headroom, reverse=True)

    def observe_latency(self, deployment: Deployment, seconds: float) -> None:
        """Time to the upstream's response headers, smoothed (only the latency order reads it)."""
        if self.strategy != "latency":
            return
        previous = self._latency.get(deployment.name)
        self._latency[deployment.name] = (
            seconds if previous is None else previous + EWMA_ALPHA * (seconds - previous)
        )

    def _headroom(self, deployment: Deployment) -> float:
        return max(self.pacer.headroom(lane) for lane in deployment.lanes())

    def _price(self, deployment: Deployment) -> float:
        price = self.prices.lookup(deployment.model)
        return price.input + price.output if price else float("inf")
