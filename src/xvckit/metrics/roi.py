"""What each of the guide's API tiers would cost a month for the usage the ledger measured,
and the developer time it would lose, so the tiers can be compared on money.

Measured, scaled to a 30-day month from the period read: requests, tokens, spend (the tokens
priced by model with the price table, providers/prices.py), the time requests took and the
429s they met. Per tier (providers/tiers.py):
- waits for rate limits: the measured requests, minute by minute, through a queue served at
  the tier's requests and tokens per minute (what xvckit's pacing does instead of a 429): each
  minute, every request still queued at its end waits that minute; a token backlog counts as
  that many average requests. The ledger has no queue-wait column of its own (pacing waits are
  inside `upstream_ms`), so this is a model of the measured arrivals, not a measured wait;
- requests over the limit: those beyond the tier's requests per minute in their minute (what
  would meet a 429 without pacing);
- waiting for answers: every request's time to first token and its output at the tier's
  speed (the simulator's numbers for the tier);
- the tier's fee: the guide's monthly cost for one developer, times the developers; an
  estimate, labelled as the guide's, like its velocity multipliers and break-even times.
The recommended tier has the lowest fee + spend + hours lost x hourly rate; break-even is the
hourly rate at which the hours a tier saves over the one below it pay its extra fee.
"""

from __future__ import annotations

import itertools
from collections import defaultdict
from typing import Any

import numpy as np

from xvckit.metrics.compute import Period
from xvckit.metrics.report import period_dict
from xvckit.metrics.usage import Requests
from xvckit.providers.prices import PriceTable
from xvckit.providers.tiers import TIERS, Tier
from xvckit.providers.usage import Usage

MONTH_DAYS = 30
SCHEMA_ID = "xvckit.roi/1"
# the guide's "ROI Break-even" column, by tier (its Cost-Benefit Analysis table)
GUIDE_BREAK_EVEN = {"basic": "2-3 months", "professional": "2-4 weeks", "enterprise": "1-2 weeks"}


def roi(
    requests: Requests, period: Period, prices: PriceTable, developers: int | None, hourly_rate: float
) -> dict[str, Any]:
    """The ROI document for the requests of `period`."""
    scale = MONTH_DAYS / period.days
    people = developers if developers is not None else max(1, len({k for k in requests.key if k}))
    spend, unpriced = _spend(requests, prices)
    minutes = _per_minute(requests)
    answers = requests.output.astype(float)
    tiers = [
        _tier(tier, requests, minutes, answers, scale, spend * scale, people, hourly_rate)
        for tier in TIERS.values()
    ]
    measured = {
        "requests": round(len(requests) * scale),
        "input_tokens": round(int(requests.input.sum()) * scale),
        "output_tokens": round(int(requests.output.sum()) * scale),
        "spend_usd": round(spend * scale, 4),
        "unpriced_requests": round(unpriced * scale),
        "latency_hours": round(float(np.nansum(requests.latency)) / 3.6e6 * scale, 3),
        "rate_limited": round(int((requests.status == 429).sum()) * scale),
        "peak_requests_per_minute": int(minutes[0].max()) if len(minutes[0]) else 0,
        "peak_tokens_per_minute": int(minutes[1].max()) if len(minutes[1]) else 0,
        "queue_wait_hours": None,  # not in the ledger: see the module's docstring
    }
    best = min(tiers, key=lambda t: (t["total_usd"], t["fee_usd"][0]))
    return {
        "schema": SCHEMA_ID,
        "period": period_dict(period),
        "month_days": MONTH_DAYS,
        "developers": people,
        "developers_from": "--developers" if developers is not None else "keys seen in the ledger",
        "hourly_rate_usd": hourly_rate,
        "measured_per_month": measured,
        "tiers": tiers,
        "break_even": [_break_even(low, high, hourly_rate) for low, high in itertools.pairwise(tiers)],
        "recommended": {"tier": best["tier"], "reasons": _reasons(best, tiers, hourly_rate)},
    }


def _spend(requests: Requests, prices: PriceTable) -> tuple[float, int]:
    """The requests' tokens priced by model (summed per model first: the price is linear),
    and how many requests had a model without a price."""
    sums: dict[str | None, list[int]] = defaultdict(lambda: [0, 0, 0, 0, 0])
    for i, model in enumerate(requests.model):
        acc = sums[model]
        acc[0] += int(requests.input[i])
        acc[1] += int(requests.output[i])
        acc[2] += int(requests.cached[i])
        acc[3] += int(requests.cache_write[i])
        acc[4] += 1
    total, unpriced = 0.0, 0
    for model, (inputs, outputs, cached, written, count) in sums.items():
        cost = prices.cost_usd(model, Usage(inputs, outputs, cached, written))
        if cost is None:
            unpriced += count
        else:
            total += cost
    return total, unpriced


def _per_minute(requests: Requests) -> tuple[np.ndarray, np.ndarray]:
    """Requests and tokens (input + output) per minute, from the first request's minute on."""
    if not len(requests):
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
    minute = (requests.ts // 60).astype(np.int64)
    minute -= minute.min()
    tokens = requests.input + requests.output
    return np.bincount(minute), np.bincount(minute, weights=tokens).astype(np.int64)


def queue_wait_s(
    arrivals: np.ndarray, tokens: np.ndarray, rpm: int | None, tpm: int | None
) -> tuple[float, int]:
    """Seconds waited in a queue served at `rpm` requests and `tpm` tokens a minute, and the
    requests that came over `rpm` in their minute (see the module's docstring)."""
    if rpm is None and tpm is None:
        return 0.0, 0
    mean_tokens = float(tokens.sum()) / max(int(arrivals.sum()), 1)
    over = int(np.maximum(arrivals - rpm, 0).sum()) if rpm is not None else 0
    arrivals, tokens = arrivals.tolist(), tokens.tolist()  # Python numbers: faster one by one
    waited = 0.0
    backlog_requests = backlog_tokens = 0.0
    minute = 0
    while minute < len(arrivals) or backlog_requests > 0 or backlog_tokens > 0:
        if minute < len(arrivals):
            backlog_requests += arrivals[minute]
            backlog_tokens += tokens[minute]
        backlog_requests = max(0.0, backlog_requests - rpm) if rpm is not None else 0.0
        backlog_tokens = max(0.0, backlog_tokens - tpm) if tpm is not None else 0.0
        waiting = max(backlog_requests, backlog_tokens / mean_tokens if mean_tokens else 0.0)
        waited += waiting * 60
        minute += 1
    return waited, over


def _tier(
    tier: Tier,
    requests: Requests,
    minutes: tuple[np.ndarray, np.ndarray],
    answers: np.ndarray,
    scale: float,
    spend: float,
    people: int,
    hourly_rate: float,
) -> dict[str, Any]:
    waited, over = queue_wait_s(*minutes, tier.rpm, tier.tpm)
    answering = len(requests) * tier.latency_ms / 1000 + float(answers.sum()) / tier.tokens_per_s
    wait_hours = waited / 3600 * scale
    answer_hours = answering / 3600 * scale
    lost = wait_hours + answer_hours
    low, high = tier.monthly_cost_usd
    fee = (low * people, None if high is None else high * people)
    return {
        "tier": tier.name,
        "rpm": tier.rpm,
        "tpm": tier.tpm,
        "ttft_ms": tier.latency_ms,
        "tokens_per_s": tier.tokens_per_s,
        "fee_usd": list(fee),
        "spend_usd": round(spend, 4),
        "rate_limit_wait_hours": round(wait_hours, 3),
        "over_limit_requests": round(over * scale),
        "answer_wait_hours": round(answer_hours, 3),
        "hours_lost": round(lost, 3),
        "time_cost_usd": round(lost * hourly_rate, 2),
        "total_usd": round(fee[0] + spend + lost * hourly_rate, 2),
        "guide_estimate": {
            "monthly_cost_usd": [low, high],
            "velocity": list(tier.velocity),
            "break_even": GUIDE_BREAK_EVEN[tier.name],
        },
    }


def _break_even(low: dict[str, Any], high: dict[str, Any], hourly_rate: float) -> dict[str, Any]:
    extra = high["fee_usd"][0] - low["fee_usd"][0]
    saved = low["hours_lost"] - high["hours_lost"]
    rate = extra / saved if saved > 0 else None
    return {
        "from": low["tier"],
        "to": high["tier"],
        "extra_fee_usd": round(extra, 2),
        "hours_saved": round(saved, 3),
        "break_even_hourly_rate_usd": None if rate is None else round(rate, 2),
        "pays_at_hourly_rate": rate is not None and hourly_rate >= rate,
    }


def _reasons(best: dict[str, Any], tiers: list[dict[str, Any]], hourly_rate: float) -> list[str]:
    reasons = [
        f"{best['tier']} has the lowest monthly total: ${best['total_usd']:,.2f} (the guide's fee "
        f"${best['fee_usd'][0]:,.0f} + measured usage ${best['spend_usd']:,.2f} + "
        f"{best['hours_lost']:,.1f} h lost x ${hourly_rate:,.0f}/h)"
    ]
    for other in tiers:
        if other is best:
            continue
        more_hours = other["hours_lost"] - best["hours_lost"]
        reasons.append(
            f"{other['tier']}: ${other['total_usd'] - best['total_usd']:,.2f} more a month "
            f"({more_hours:+,.1f} h lost, ${other['fee_usd'][0] - best['fee_usd'][0]:+,.0f} fee)"
        )
    if best["rate_limit_wait_hours"] > 0:
        reasons.append(
            f"{best['tier']} still queues {best['rate_limit_wait_hours']:,.1f} h a month at "
            f"{best['rpm']} requests per minute"
        )
    return reasons
