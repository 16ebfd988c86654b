"""Latency to one provider endpoint: TCP connect, TLS handshake and HTTP time to first byte,
each the median (and minimum) over several fresh connections, probed one after another so
that they do not queue behind each other."""

from __future__ import annotations

import statistics
from dataclasses import dataclass

from xvckit.config import Provider
from xvckit.doctor.http_probe import Address, Endpoint, ProbeError, Timing, probe
from xvckit.doctor.runner import Deliver, Promise
from xvckit.doctor.setup import Setup
from xvckit.doctor.thresholds import Status

KEY = "network.latency"
# How many probes in a row may go unanswered before the endpoint counts as unreachable
# (each costs a whole timeout: a hanging provider must not eat the deadline).
GIVE_UP_AFTER = 2


@dataclass(slots=True)
class ProbeTally:
    """Probes tried and left unanswered, across providers: the packet-loss fallback's figure."""

    attempts: int = 0
    unanswered: int = 0


def promises(provider: Provider) -> list[Promise]:
    return [Promise(check_id, title, KEY) for check_id, title, _phase in _phases(provider)]


def _phases(provider: Provider) -> list[tuple[str, str, str]]:
    endpoint = Endpoint.parse(provider.base_url)
    phases = [(f"network.connect.{provider.name}", f"TCP connect to {provider.name}", "connect_ms")]
    if endpoint.tls:
        phases.append((f"network.tls.{provider.name}", f"TLS handshake with {provider.name}", "tls_ms"))
    phases.append((f"network.ttfb.{provider.name}", f"HTTP first byte from {provider.name}", "ttfb_ms"))
    return phases


async def measure(
    setup: Setup, provider: Provider, addresses: list[Address], tally: ProbeTally, deliver: Deliver
) -> None:
    endpoint = Endpoint.parse(provider.base_url)
    settings = setup.settings
    timings: list[Timing] = []
    failures: list[ProbeError] = []
    for _ in range(settings.probes):
        tally.attempts += 1
        timing = await probe(endpoint, addresses[0], settings.probe_timeout_s, setup.ssl_context)
        timings.append(timing)
        if timing.error is not None:
            failures.append(timing.error)
            tally.unanswered += timing.error.timed_out
            if len(failures) >= GIVE_UP_AFTER and 2 * len(failures) > len(timings):
                break
    for check_id, title, phase in _phases(provider):
        values = [value for t in timings if (value := getattr(t, phase)) is not None]
        if not values:
            unreachable(setup, check_id, title, endpoint, str(failures[-1]), deliver)
            continue
        median = statistics.median(values)
        detail = (
            f"min {min(values):.2f} ms, median {median:.2f} ms over {len(values)} probes of {endpoint.label}"
        )
        if failures:
            detail += f"; {len(failures)} of {len(timings)} probes failed ({failures[-1]})"
        fix = _FIX[phase].format(host=endpoint.host, name=provider.name)
        samples = {"min": round(min(values), 2), "median": round(median, 2), "count": len(values)}
        deliver(
            setup.judge.measured(
                check_id, title, KEY, samples["median"], fix=fix, detail=detail, samples=samples
            )
        )


_SLOW_ROUTE = "the route to {host} is slow: use a wired link, or a region of {name} closer to you"
_FIX = {
    "connect_ms": _SLOW_ROUTE,
    "tls_ms": _SLOW_ROUTE,
    "ttfb_ms": "{host} answers slowly: try a closer region or another endpoint of {name}",
}


def unreachable(
    setup: Setup, check_id: str, title: str, endpoint: Endpoint, reason: str, deliver: Deliver
) -> None:
    fix = f"check that {endpoint.label} can be reached from here (DNS, firewall, proxy, VPN)"
    deliver(setup.judge.missing(check_id, title, KEY, reason, Status.UNREACHABLE, fix))


def deliver_unreachable(setup: Setup, provider: Provider, reason: str, deliver: Deliver) -> None:
    """Every latency check of a provider whose address could not be found."""
    endpoint = Endpoint.parse(provider.base_url)
    for check_id, title, _phase in _phases(provider):
        unreachable(setup, check_id, title, endpoint, reason, deliver)
