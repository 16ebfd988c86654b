"""The simulated provider as pytest fixtures: real servers on free loopback ports, each served
from a background thread so the official (blocking) SDKs can call them.

    sim                  a no-latency simulator with limits too high to reach (10,000 rpm,
                         100M tpm: its responses carry rate-limit headers as a real provider's
                         do), its statistics and windows zeroed for the test
    sim_factory(**f)     a simulator with SimSettings fields `f` (tier enterprise and latency 0
                         unless given), started once per session for each distinct setting and
                         zeroed on each call
"""

from __future__ import annotations

import urllib.request
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from typing import Any

import orjson
import pytest

from servers import BackgroundServer
from xvckit.sim import SimApp, SimSettings


class RunningSim:
    def __init__(self, url: str, settings: SimSettings) -> None:
        self.url = url
        self.settings = settings

    @property
    def openai_base_url(self) -> str:
        return f"{self.url}/v1"

    @property
    def anthropic_base_url(self) -> str:
        return self.url

    def stats(self) -> dict[str, dict[str, int]]:
        """Requests served since the last reset: {route: {status or fault: count}}.

        Read over HTTP, so the simulator's own event loop serializes it with the requests."""
        with urllib.request.urlopen(f"{self.url}/sim/stats", timeout=5) as response:
            return orjson.loads(response.read())

    def count(self, route: str, outcome: str | None = None) -> int:
        """How many requests `route` ("chat_completions", "messages", ...) served, optionally
        only those with one status ("429") or fault ("drop")."""
        outcomes = self.stats().get(route, {})
        return outcomes.get(outcome, 0) if outcome else sum(outcomes.values())

    def reset(self) -> None:
        """Zero the statistics and empty the rate-limit windows."""
        request = urllib.request.Request(f"{self.url}/sim/reset", method="POST")
        with urllib.request.urlopen(request, timeout=5):
            pass


@pytest.fixture(scope="session")
def sim_factory() -> Iterator[Callable[..., RunningSim]]:
    with ExitStack() as stack:
        running: dict[str, RunningSim] = {}

        def start(**fields: Any) -> RunningSim:
            settings = SimSettings(**{"tier": "enterprise", "latency_ms": 0, **fields})
            key = repr(settings)
            if key not in running:
                server = stack.enter_context(BackgroundServer(SimApp(settings)))
                running[key] = RunningSim(server.url, settings)
            sim = running[key]
            sim.reset()
            return sim

        yield start


@pytest.fixture
def sim(sim_factory: Callable[..., RunningSim]) -> RunningSim:
    return sim_factory(rpm=10_000, tpm=100_000_000)
