"""Getting one answer from the providers: pace under their limits, pick the upstream key
with most headroom, retry what is worth retrying (with backoff, inside the request's
deadline and the retry budget), take a key that is refused out of the pool, and fall back
to the next model when a deployment keeps failing or its circuit is open."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

from xvckit.asgi import Scope
from xvckit.config import GatewaySettings
from xvckit.gateway.balancing import Balancer
from xvckit.gateway.dialects import GatewayError
from xvckit.gateway.http1 import Response, Upstream
from xvckit.gateway.pacing import Grant, Lane, LaneDisabled, NeverFits, Pacer, QueueTimeout, header_map
from xvckit.gateway.resilience import RETRYABLE_STATUS, CircuitBreaker, RetryBudget, backoff_s
from xvckit.gateway.routing import Deployment, Router
from xvckit.gateway.upstream import Upstreams, failure
from xvckit.providers.ratelimit import parse_retry_after

log = logging.getLogger("xvckit.gateway")


@dataclass(slots=True)
class Attempt:
    """The upstream call whose answer goes back to the client."""

    deployment: Deployment
    response: Response
    lane: Lane
    grant: Grant
    retries: int
    body: bytes | None = None  # already read (an error body the dispatcher had to look into)


_OVERFLOW_MARKERS = (b"context_length_exceeded", b"prompt is too long", b"maximum context length")


def context_overflow(error_body: bytes) -> bool:
    """Does an upstream's 400/413 say the request is too long for the model? (OpenAI: code
    `context_length_exceeded`; Anthropic: "prompt is too long"): a fallback may still fit it."""
    lowered = error_body.lower()
    return any(marker in lowered for marker in _OVERFLOW_MARKERS)


class Dispatcher:
    def __init__(
        self,
        upstreams: Upstreams,
        router: Router,
        pacer: Pacer,
        balancer: Balancer,
        settings: GatewaySettings,
    ) -> None:
        self.upstreams = upstreams
        self.router = router
        self.pacer = pacer
        self.balancer = balancer
        self.settings = settings
        self.breaker = CircuitBreaker()
        self.budget = RetryBudget(settings.retry_budget)
        self._lanes_of: dict[str, list[Lane]] = {}

    async def call(
        self,
        scope: Scope,
        requested: str,
        request_for: Callable[[Deployment], tuple[str, bytes]],
        tokens: int,
        priority: int,
        cross_dialect: bool = False,
    ) -> Attempt:
        """The answer to send back (possibly an upstream error, passed through when retrying
        could not help), or a GatewayError when no upstream gave one."""
        self.budget.request()
        deadline = time.monotonic() + self.settings.queue_timeout_s
        calls = 0
        last: GatewayError | None = None
        candidates = self._candidates(requested, cross_dialect)
        for position, deployment in enumerate(candidates):
            attempts = 0
            if not self.breaker.allows(deployment.name):
                last = GatewayError(
                    503, f"'{deployment.name}' is failing; its circuit is open", "circuit_open"
                )
                continue
            path, body = request_for(deployment)
            while attempts < self.settings.max_attempts:
                lane = self.pacer.best(self._lanes(deployment))
                if lane is None:
                    last = GatewayError(
                        503,
                        f"every key of provider '{deployment.provider.name}' was refused",
                        "no_upstream_key",
                    )
                    break
                try:
                    grant = self.pacer.try_acquire(lane, tokens, priority)
                    if grant is None:
                        grant = await self.pacer.acquire(
                            lane, tokens, priority, max(0.0, deadline - time.monotonic())
                        )
                except LaneDisabled:
                    continue
                except QueueTimeout as exc:
                    last = GatewayError(
                        429,
                        f"'{deployment.name}' is at its rate limit; waiting would take about "
                        f"{exc.retry_after_s:.0f} s",
                        "rate_limit_queue_timeout",
                        {"retry-after": str(max(1, round(exc.retry_after_s)))},
                    )
                    break
                except NeverFits as exc:
                    last = GatewayError(
                        400,
                        f"the request may use up to {exc.tokens} tokens (its input and its output "
                        f"limit, max_tokens), more than the {exc.tpm} tokens a minute that "
                        f"'{deployment.name}' allows: lower max_tokens or shorten the input",
                        "exceeds_rate_limit",
                    )
                    break
                attempts += 1
                calls += 1
                sent = time.monotonic()
                self.breaker.begin(deployment.name)
                try:
                    response = await self.upstreams.post(deployment.provider, path, scope, body, lane.key)
                except Upstream as exc:
                    self.breaker.end(deployment.name, True)
                    self.pacer.unanswered(lane)
                    last = failure(exc, deployment.provider.name)
                    if await self._wait_to_retry(attempts, None, deadline):
                        continue
                    break
                except BaseException:
                    self.breaker.end(deployment.name, None)
                    raise
                status = response.status
                # a 429 is the pacer's business (the lane cools down), not a failing deployment
                self.breaker.end(deployment.name, None if status == 429 else status in RETRYABLE_STATUS)
                self.pacer.observe(lane, status, response.headers, grant)
                if status in (401, 403) and len(deployment.provider.api_keys) > 1:
                    response.close()
                    self.pacer.disable(lane, f"answered {status}")
                    log.error("upstream key %s refused with %d; taken out of the pool", lane, status)
                    attempts -= 1  # another key, not a retry of the same call
                    continue
                if status in RETRYABLE_STATUS:
                    # after a 429 the pacer holds the lane until the provider's reset: no sleep here
                    retry_after = (
                        0.0 if status == 429 else parse_retry_after(header_map(response.headers), time.time())
                    )
                    if await self._wait_to_retry(attempts, retry_after, deadline, response):
                        continue
                    if position == len(candidates) - 1:
                        return Attempt(deployment, response, lane, grant, calls - 1)
                    response.close()
                    last = GatewayError(
                        status, f"'{deployment.name}' answered {status}", f"upstream_{status}"
                    )
                    break
                if status in (400, 413) and position < len(candidates) - 1:
                    try:
                        error = await response.read()  # error bodies are small
                    except Upstream as exc:
                        last = failure(exc, deployment.provider.name)
                        break
                    if context_overflow(error):
                        response.close()
                        last = GatewayError(
                            status,
                            f"the request is over the context window of '{deployment.name}'",
                            "context_length_exceeded",
                        )
                        break
                    return Attempt(deployment, response, lane, grant, calls - 1, error)
                self.balancer.observe_latency(deployment, time.monotonic() - sent)
                return Attempt(deployment, response, lane, grant, calls - 1)
        raise last or GatewayError(503, f"no upstream could answer for '{requested}'", "no_upstream")

    def settle(self, attempt: Attempt, tokens: int) -> None:
        self.pacer.settle(attempt.grant, tokens)

    def _candidates(self, requested: str, cross_dialect: bool) -> list[Deployment]:
        """The model's deployments in the balancer's order, then each fallback's (of the
        other dialect only when the endpoint can be translated)."""
        found = self.balancer.order(self.router.group(requested))
        kind = found[0].provider.kind
        for name in found[0].fallbacks:
            try:
                group = self.router.group(name)
            except GatewayError:
                continue
            for deployment in self.balancer.order(group):
                if (deployment.provider.kind == kind or cross_dialect) and deployment not in found:
                    found.append(deployment)
        return found

    def _lanes(self, deployment: Deployment) -> list[Lane]:
        """The deployment's lanes, configured with its limits the first time they are used."""
        lanes = self._lanes_of.get(deployment.name)
        if lanes is None:
            lanes = self._lanes_of[deployment.name] = deployment.lanes()
            for lane in lanes:
                self.pacer.configure(lane, deployment.rpm, deployment.tpm)
        return lanes

    async def _wait_to_retry(
        self, attempts: int, retry_after: float | None, deadline: float, response: Response | None = None
    ) -> bool:
        """Back off before another attempt, if the budget and the deadline allow one."""
        if attempts >= self.settings.max_attempts:
            return False
        delay = (
            0.0
            if retry_after == 0.0
            else backoff_s(attempts - 1, self.settings.retry_base_s, self.settings.retry_cap_s, retry_after)
        )
        if time.monotonic() + delay > deadline or not self.budget.try_spend():
            return False
        if response is not None:
            response.close()
        await asyncio.sleep(delay)
        return True
