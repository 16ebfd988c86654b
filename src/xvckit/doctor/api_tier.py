"""The API section: each provider placed in the guide's tier table (§3, providers/tiers.py)
by its rate limit and its response time; the lower of the two is its tier.

Evidence, best first: with `--probe-api`, one minimal request (one output token): the limit
in its rate-limit headers (parsed by providers/ratelimit.py) and its time. Else the `rpm`
set for the provider in xvckit.yaml, and the ledger: the median time of the latest answered
requests and the busiest minute (a floor under the limit, not the limit). The gateway's
learned limits live in its memory only. No request limit known, no tier: an answer without
rate-limit headers is as likely a proxy or a local server as the guide's "no rate limits".
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import orjson

from xvckit.config import Provider
from xvckit.doctor.checks import Check
from xvckit.doctor.history import NoHistory
from xvckit.doctor.http_probe import Endpoint, ProbeError, connect, exchange, request, resolve
from xvckit.doctor.runner import Deliver, Job, Promise
from xvckit.doctor.setup import Setup
from xvckit.doctor.thresholds import Status, judge
from xvckit.providers import anthropic
from xvckit.providers.ratelimit import parse_anthropic_headers, parse_openai_headers
from xvckit.providers.tiers import TIERS

CHAT_PATH = {"openai": "/chat/completions", "anthropic": "/v1/messages"}
PARSE = {"openai": parse_openai_headers, "anthropic": parse_anthropic_headers}
# The api.response_time row's bounds are the Professional and Enterprise response times.
TIER_BY_RESPONSE = {
    Status.OPTIMAL: "enterprise",
    Status.MINIMUM: "professional",
    Status.BELOW_MINIMUM: "basic",
}
RANK = {name: i for i, name in enumerate(TIERS)}  # basic < professional < enterprise
NO_LIMIT = "no request limit known, and the guide tells tiers by it: set the provider's rpm in xvckit.yaml"
UPGRADE = "a higher API tier or plan with {name} (the guide: Professional to start, Enterprise for 10x+)"


@dataclass(slots=True)
class Evidence:
    rpm: int | None = None
    response_s: float | None = None
    response_from: str = ""
    notes: list[str] = field(default_factory=list)


class NoEvidence(Exception):
    """Why a provider's tier cannot be told (one line)."""


def promises(provider: Provider) -> list[Promise]:
    return [
        Promise(f"api.tier.{provider.name}", f"API tier of {provider.name}", "api.tier"),
        Promise(
            f"api.response_time.{provider.name}", f"API response time of {provider.name}", "api.response_time"
        ),
    ]


def jobs(setup: Setup) -> list[Job]:
    return [Job(promises(p), _job(setup, p)) for p in setup.config.providers]


def _job(setup: Setup, provider: Provider):
    async def run(deliver: Deliver) -> None:
        tier_p, response_p = promises(provider)
        try:
            evidence = await (_probe(setup, provider) if setup.probe_api else _from_records(setup, provider))
        except (ProbeError, NoHistory, NoEvidence) as exc:  # not measured: unknown, with the reason
            reason = f"--probe-api: {exc}" if isinstance(exc, ProbeError) else str(exc)
            hint = "" if setup.probe_api else "; --probe-api sends one minimal request to find out"
            for promise in (tier_p, response_p):
                deliver(setup.judge.missing(promise.id, promise.title, promise.threshold, reason + hint))
            return
        deliver(_response_check(setup, provider, response_p, evidence))
        deliver(_tier_check(setup, provider, tier_p, evidence))

    return run


def _response_check(setup: Setup, provider: Provider, promise: Promise, evidence: Evidence) -> Check:
    if evidence.response_s is None:
        return setup.judge.missing(promise.id, promise.title, promise.threshold, "no response time known")
    fix = f"{provider.name} answers slowly: a faster model or tier, or a closer region"
    value = round(evidence.response_s, 3)
    return setup.judge.measured(
        promise.id, promise.title, promise.threshold, value, fix=fix, detail=evidence.response_from
    )


def _tier_check(setup: Setup, provider: Provider, promise: Promise, evidence: Evidence) -> Check:
    if evidence.rpm is None:
        hint = "" if setup.probe_api else ", or --probe-api reads it from the provider's headers"
        reason = "; ".join([*evidence.notes, NO_LIMIT + hint])
        return setup.judge.missing(promise.id, promise.title, promise.threshold, reason)
    rank = "professional" if evidence.rpm >= TIERS["professional"].rpm_range[0] else "basic"
    by = {"rate limit": rank}
    if evidence.response_s is not None:
        by["response time"] = TIER_BY_RESPONSE[
            judge(setup.judge.table["api.response_time"], evidence.response_s)
        ]
    tier = min(by.values(), key=RANK.__getitem__)
    detail = "; ".join([*evidence.notes, ", ".join(f"{t} by {what}" for what, t in by.items())])
    fix = UPGRADE.format(name=provider.name)
    return setup.judge.measured(promise.id, promise.title, promise.threshold, tier, fix=fix, detail=detail)


def _configured(provider: Provider) -> Evidence:
    """What xvckit.yaml says: the provider's rpm, if set."""
    notes = [] if provider.rpm is None else [f"rpm {provider.rpm} set in xvckit.yaml"]
    return Evidence(rpm=provider.rpm, notes=notes)


async def _from_records(setup: Setup, provider: Provider) -> Evidence:
    evidence = _configured(provider)
    try:
        stats = await setup.history.of(provider.name)
    except NoHistory as exc:
        if provider.rpm is None:
            raise
        evidence.notes.append(str(exc))
        return evidence
    evidence.notes.append(
        f"busiest minute {stats.peak_rpm} requests answered; {stats.rate_limited} of {stats.requests} "
        f"requests answered 429 (ledger, last {setup.settings.history_days:g} days)"
    )
    if stats.median_upstream_ms is not None:
        evidence.response_s = stats.median_upstream_ms / 1000
        evidence.response_from = (
            f"median of the latest {stats.sampled} answered requests, whole responses (ledger)"
        )
    return evidence


async def _probe(setup: Setup, provider: Provider) -> Evidence:
    model = next(
        (r.model or r.name for r in setup.config.models if r.provider == provider.name and not r.is_glob),
        None,
    )
    if model is None:
        raise NoEvidence(
            f"--probe-api: no model route names a model of {provider.name} (add one under models:)"
        )
    query = "&".join(f"{k}={v}" for k, v in provider.query.items())
    endpoint = Endpoint.parse(provider.base_url + CHAT_PATH[provider.kind] + (f"?{query}" if query else ""))
    body = orjson.dumps({"model": model, "max_tokens": 1, "messages": [{"role": "user", "content": "ping"}]})
    timeout = setup.settings.probe_timeout_s
    addresses = await resolve(endpoint.host, endpoint.port, timeout)
    conn = await connect(endpoint, addresses[0], timeout, setup.ssl_context)
    try:
        started = time.perf_counter()
        head = await exchange(
            conn, request("POST", endpoint, _headers(provider), body), setup.settings.deadline_s
        )
        elapsed = time.perf_counter() - started
    finally:
        conn.close()
    if head.status in (401, 403):
        raise NoEvidence(f"--probe-api: {provider.name} refused the key ({head.status})")
    if head.status == 404:
        raise NoEvidence(
            f"--probe-api: {provider.name} answered 404 for '{model}': it does not serve that model, "
            "or base_url misses a path such as /v1"
        )
    limits = PARSE[provider.kind](head.headers, time.time())
    answered = f"one request for 1 output token of {model} (--probe-api), answered {head.status}"
    evidence = _configured(provider)
    evidence.response_s, evidence.response_from = elapsed, answered
    if limits.requests is not None:  # the provider's own word outranks xvckit.yaml's
        evidence.rpm = limits.requests.limit
        evidence.notes = [f"rpm limit {limits.requests.limit} in the rate-limit headers"]
    else:
        evidence.notes.insert(0, f"answered {head.status} without a request limit in its headers")
    return evidence


def _headers(provider: Provider) -> dict[str, str]:
    headers = {"Content-Type": "application/json", **provider.headers}
    if provider.api_keys:
        key = provider.api_keys[0].get_secret_value()
        name = provider.upstream_key_header
        headers[name] = f"Bearer {key}" if name == "authorization" else key
    if provider.kind == "anthropic":
        headers.setdefault("anthropic-version", anthropic.VERSION)
    return headers
