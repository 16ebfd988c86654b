"""The network section: latency to each provider, packet loss, provider uptime from the
ledger (bandwidth is `bandwidth.py`, run after the rest)."""

from __future__ import annotations

import asyncio

from xvckit.config import Provider
from xvckit.doctor import latency
from xvckit.doctor.checks import Check
from xvckit.doctor.history import NoHistory
from xvckit.doctor.http_probe import Address, Endpoint, ProbeError, resolve
from xvckit.doctor.packet_loss import NoIcmp, Retransmissions, ping, retransmissions
from xvckit.doctor.runner import Deliver, Job, Promise, in_thread
from xvckit.doctor.setup import Setup

LOSS_ID = "network.packet_loss"
LOSS_FIX = "packets are being lost: check Wi-Fi signal, cabling, or the ISP's line"


def jobs(setup: Setup) -> list[Job]:
    providers = setup.config.providers
    promises = [p for provider in providers for p in latency.promises(provider)]
    promises.append(Promise(LOSS_ID, "packet loss"))
    found = [Job(promises, lambda deliver: _latency_and_loss(setup, deliver))]
    found += [
        Job(
            [Promise(f"network.uptime.{p.name}", f"uptime of {p.name}", "network.uptime")],
            _uptime_job(setup, p),
        )
        for p in providers
    ]
    return found


async def _latency_and_loss(setup: Setup, deliver: Deliver) -> None:
    providers = setup.config.providers
    timeout = setup.settings.probe_timeout_s
    resolved = await asyncio.gather(*(_addresses(p, timeout) for p in providers), return_exceptions=True)
    tally = latency.ProbeTally()
    reachable: dict[str, list[Address]] = {}
    for provider, found in zip(providers, resolved, strict=True):
        if isinstance(found, ProbeError):
            tally.attempts += 1
            tally.unanswered += found.timed_out
            latency.deliver_unreachable(setup, provider, str(found), deliver)
        else:
            reachable[provider.name] = found
    hosts = sorted({addresses[0][1][0] for addresses in reachable.values()})
    echoes = asyncio.ensure_future(in_thread(ping, hosts, setup.settings.ping_count)) if hosts else None
    await asyncio.gather(
        *(
            latency.measure(setup, p, reachable[p.name], tally, deliver)
            for p in providers
            if p.name in reachable
        )
    )
    deliver(await _packet_loss(setup, echoes, tally))


async def _addresses(provider: Provider, timeout_s: float) -> list[Address]:
    endpoint = Endpoint.parse(provider.base_url)
    return await resolve(endpoint.host, endpoint.port, timeout_s)


async def _packet_loss(setup: Setup, echoes: asyncio.Future | None, tally: latency.ProbeTally) -> Check:
    judge = setup.judge
    no_icmp = "no provider host to ping"
    if echoes is not None:
        try:
            result = await echoes
        except NoIcmp as exc:
            no_icmp = str(exc)
        else:
            if result.sent:
                value = 100 * (result.sent - result.answered) / result.sent
                detail = f"{result.method}: {result.answered} of {result.sent} answered"
                if result.silent:
                    detail += f"; {', '.join(result.silent)} answer no ICMP (left out)"
                return judge.measured(
                    LOSS_ID, "packet loss", LOSS_ID, round(value, 3), fix=LOSS_FIX, detail=detail
                )
            no_icmp = f"{', '.join(result.silent)} answer no ICMP"
    snmp = setup.paths.proc / "net" / "snmp"
    try:
        counters: Retransmissions = await in_thread(retransmissions, snmp)
    except (OSError, KeyError, ValueError) as exc:
        reason = f"{no_icmp}; cannot read TCP counters: {getattr(exc, 'strerror', None) or exc}"
        return judge.missing(LOSS_ID, "packet loss", LOSS_ID, reason)
    value = counters.percent
    detail = (
        f"no ICMP ({no_icmp}): TCP retransmissions since boot, all connections "
        f"({counters.retransmitted} of {counters.sent} segments, {snmp})"
    )
    if tally.attempts:
        unanswered = 100 * tally.unanswered / tally.attempts
        detail += f"; probes unanswered: {tally.unanswered} of {tally.attempts}"
        value = max(value, unanswered)
    return judge.measured(LOSS_ID, "packet loss", LOSS_ID, round(value, 3), fix=LOSS_FIX, detail=detail)


def _uptime_job(setup: Setup, provider: Provider):
    check_id, title = f"network.uptime.{provider.name}", f"uptime of {provider.name}"

    async def run(deliver: Deliver) -> None:
        try:
            stats = await setup.history.of(provider.name)
        except NoHistory as exc:
            deliver(setup.judge.missing(check_id, title, "network.uptime", str(exc)))
            return
        value = 100 * (stats.requests - stats.failed) / stats.requests
        detail = (
            f"{stats.requests - stats.failed} of {stats.requests} requests answered by {provider.name} "
            f"(no 5xx, timeout or unreachable) in the ledger, last {setup.settings.history_days:g} days"
        )
        fix = f"{provider.name} fails often: add a fallback provider or deployment in xvckit.yaml"
        deliver(
            setup.judge.measured(check_id, title, "network.uptime", round(value, 3), fix=fix, detail=detail)
        )

    return run
