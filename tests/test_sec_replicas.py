"""Key and team limits over several gateway replicas (issue 19, hole 16): with Redis, three
replicas sharing one store admit exactly what one would; without it, each holds 1/N of every
limit and says so in /readyz; a dead replica's reservations expire."""

from __future__ import annotations

import asyncio
import functools

import httpx
import openai
import pytest
import redis.asyncio as aioredis

from servers import TcpRelay
from test_admission import caller
from test_gateway_e2e import HI, sim_providers
from test_gateway_keys import PRICED, flush_ledger
from xvckit.gateway import app as gateway_app
from xvckit.gateway.admission_redis import RedisAdmission
from xvckit.gateway.dialects import GatewayError
from xvckit.gateway.token_estimate import estimate_parts
from xvckit.store import keys
from xvckit.store.keys import Limits
from xvckit.store.ledger import ledger_records

# Each request may produce 10 output tokens ($0.01 reserved) and produces 10 ($0.01 spent).
# Budgets leave less than one token's price after their last whole request, so that none is
# admitted with its output cut to what is left.
REQUEST = {"model": "gpt-4o-mini", "messages": HI, "max_tokens": 10}
SLOW = {"x-sim-latency-ms": "400"}  # every request of a burst is admitted before one settles


@pytest.fixture
def replicas(sim, make_gateway, store_url, redis_url, redis_prefix, monkeypatch):
    """Three gateways on one store and one Redis (admission's keys under this test's prefix)."""
    monkeypatch.setattr(gateway_app, "RedisAdmission", functools.partial(RedisAdmission, prefix=redis_prefix))
    config = {**sim_providers(sim), **PRICED, "redis": {"url": redis_url, "replicas": 3}}
    return [make_gateway(config, storage_url=spelled(store_url, i)) for i in range(3)]


def spelled(url: str, replica: int) -> str:
    """The same store, named differently for each replica: its ledger journal (kept by the
    store's name) is then its own, as on a machine of its own."""
    if url.startswith("sqlite:///"):
        folder, _, name = url.rpartition("/")
        return f"{folder}/{'./' * replica}{name}"
    return f"{url}?application_name=replica{replica}"


def new_key(replicas, **kwargs) -> str:
    """A key every replica knows (each reloads its keyring)."""
    _, raw = keys.create_key(replicas[0].gateway.store, kwargs.pop("name"), "test", **kwargs)
    for gw in replicas:
        asyncio.run_coroutine_threadsafe(gw.gateway.keyring.reload(), gw._loop).result(5)
    return raw


async def spread(
    replicas, raws: list[str], n: int, headers: dict | None = None, request: dict = REQUEST
) -> list[str]:
    """`n` concurrent requests, the i-th with key i % len(raws) on replica i % len(replicas):
    each "ok" or the message of its 429."""
    clients = {
        (raw, gw.url): openai.AsyncOpenAI(base_url=f"{gw.url}/v1", api_key=raw, max_retries=0)
        for raw in raws
        for gw in replicas
    }

    async def one(i: int) -> str:
        target = clients[raws[i % len(raws)], replicas[i % len(replicas)].url]
        try:
            await target.chat.completions.create(**request, extra_headers=headers)
        except openai.RateLimitError as exc:
            return exc.message
        return "ok"

    try:
        return await asyncio.gather(*(one(i) for i in range(n)))
    finally:
        for target in clients.values():
            await target.close()


def refusals(outcomes: list[str], expected: str) -> None:
    assert outcomes and all(expected in outcome for outcome in outcomes if outcome != "ok"), outcomes


# --- shared through Redis ---------------------------------------------------------------------


async def test_three_replicas_spend_one_budget(replicas):
    raw = new_key(replicas, name="solo", limits=Limits(budget_usd=0.0505, budget_period="day"))
    outcomes = await spread(replicas, [raw], 30)
    assert outcomes.count("ok") == 5  # what one replica admits: 5 x $0.01 of $0.0505
    refusals(outcomes, "budget exhausted for key")
    store = replicas[0].gateway.store
    team = keys.create_team(store, "blue", Limits(budget_usd=0.0305, budget_period="month"), "test")
    members = [new_key(replicas, name=f"m{i}", team="blue") for i in range(2)]
    outcomes = await spread(replicas, members, 12)
    assert outcomes.count("ok") == 3
    refusals(outcomes, "budget exhausted for team")
    for gw in replicas:
        flush_ledger(gw)
    records = ledger_records(store)
    key_spent = sum(r.cost_usd for r in records if r.team_id is None)
    team_spent = sum(r.cost_usd for r in records if r.team_id == team.id)
    assert key_spent == pytest.approx(0.05) and team_spent == pytest.approx(0.03)  # within budget


async def test_three_replicas_hold_one_rpm_and_tpm(replicas):
    raw = new_key(replicas, name="rpm", limits=Limits(rpm=5))
    outcomes = await spread(replicas, [raw], 12, SLOW)
    assert outcomes.count("ok") == 5
    refusals(outcomes, "requests per minute limit of 5 reached for key")
    estimate = sum(estimate_parts(dict(REQUEST), "gpt-4o-mini"))
    raw = new_key(replicas, name="tpm", limits=Limits(tpm=3 * estimate + estimate // 2))
    outcomes = await spread(replicas, [raw], 12, SLOW)
    assert outcomes.count("ok") == 3
    refusals(outcomes, "tokens per minute limit")
    keys.create_team(replicas[0].gateway.store, "red", Limits(rpm=4), "test")
    members = [new_key(replicas, name=f"m{i}", team="red") for i in range(2)]
    outcomes = await spread(replicas, members, 12, SLOW)
    assert outcomes.count("ok") == 4
    refusals(outcomes, "requests per minute limit of 4 reached for team")


async def test_a_budget_is_seeded_from_the_ledger_once_a_period(replicas, redis_url, redis_prefix):
    """Redis lost the period's spend (restarted, flushed): it is read from the ledger again."""
    raw = new_key(replicas, name="seeded", limits=Limits(budget_usd=0.0505, budget_period="week"))
    assert (await spread(replicas, [raw], 3)).count("ok") == 3
    for gw in replicas:
        flush_ledger(gw)
    client = aioredis.Redis.from_url(redis_url)
    spend = [key async for key in client.scan_iter(match=f"{redis_prefix}key:*:b:*")]
    assert len(spend) == 1
    await client.delete(*spend)
    await client.aclose()
    outcomes = await spread(replicas, [raw], 9)
    assert outcomes.count("ok") == 2  # $0.03 spent before
    refusals(outcomes, "budget exhausted for key")


async def test_settles_reach_redis(replicas, redis_url, redis_prefix):
    """A request's real tokens and cost replace its estimate in Redis: the next one, on another
    replica, finds room that two estimates would not leave."""
    request = {**REQUEST, "max_tokens": 50}
    estimate = sum(estimate_parts(dict(request), "gpt-4o-mini"))
    limits = Limits(tpm=2 * estimate - 1, budget_usd=1.0, budget_period="day")
    raw = new_key(replicas, name="settled", limits=limits)
    short = {"x-sim-output-tokens": "1"}  # ~15 tokens and $0.001 where ~70 and $0.05 were reserved
    assert await spread(replicas[:1], [raw], 1, short, request) == ["ok"]
    for _ in range(40):
        outcome = (await spread(replicas[1:2], [raw], 1, short, request))[0]
        if outcome == "ok":
            break
        assert "tokens per minute limit" in outcome
        await asyncio.sleep(0.05)
    assert outcome == "ok"
    assert await shared_spend(redis_url, redis_prefix, 0.002)


# --- Redis away ---------------------------------------------------------------------------------


def test_redis_unreachable_each_replica_holds_its_share(sim, make_gateway, tmp_path):
    config = {**sim_providers(sim), **PRICED, "redis": {"url": "redis://127.0.0.1:1/0", "replicas": 3}}
    replicas = [
        make_gateway(config, storage_url=spelled(f"sqlite:///{tmp_path}/shared.db", i)) for i in range(3)
    ]
    by_rate = new_key(replicas, name="rate", limits=Limits(rpm=6))
    by_budget = new_key(replicas, name="budget", limits=Limits(budget_usd=0.0615, budget_period="day"))
    # One slow request on each replica: each reads the ledger's $0 before any request is spent.
    assert asyncio.run(spread(replicas, [by_budget], 3, SLOW)) == ["ok"] * 3
    for gw in replicas:
        outcomes = asyncio.run(spread([gw], [by_rate], 3))
        assert outcomes.count("ok") == 2
        refusals(outcomes, "requests per minute limit of 2 reached for key")
        outcomes = [asyncio.run(spread([gw], [by_budget], 1))[0] for _ in range(2)]
        assert outcomes[0] == "ok"  # $0.02 of a third of $0.0615
        assert "budget exhausted for key" in outcomes[1] and "$0.0005 of $0.0205 is left" in outcomes[1]
        ready = httpx.get(f"{gw.url}/readyz").json()
        assert ready["status"] == "ready"
        assert any(
            line.startswith("redis: Redis unavailable")
            and "key and team limits (1/3 of each) on this replica's own state" in line
            for line in ready["degraded"]
        ), ready


# --- leases and outages, below the HTTP server ----------------------------------------------------

BUDGET = Limits(budget_usd=0.015, budget_period="day")


async def nothing_spent(kind: str, ident: str, since: float) -> float:
    return 0.0


async def test_a_dead_replicas_reservation_expires_and_a_running_one_is_renewed(redis_url, redis_prefix):
    def replica() -> RedisAdmission:
        return RedisAdmission(redis_url, nothing_spent, prefix=redis_prefix, lease_s=0.3, timeout_s=2)

    running, dead, other = replica(), replica(), replica()
    ticket = await running.admit(caller(running, BUDGET).scopes, "m", 10, 0.01)
    await asyncio.sleep(1.0)  # three leases: renewed while the request runs
    with pytest.raises(GatewayError, match="budget exhausted"):
        await other.admit(caller(other, BUDGET).scopes, "m", 10, 0.01)
    running.settle(ticket, 10, 0.0)  # a free answer: the budget is all there again
    await running.aclose()
    await dead.admit(caller(dead, BUDGET).scopes, "m", 10, 0.01)
    await dead.aclose()  # stops without settling, as a killed replica
    with pytest.raises(GatewayError, match="budget exhausted"):
        await other.admit(caller(other, BUDGET).scopes, "m", 10, 0.01)
    await asyncio.sleep(0.4)
    other.settle(await other.admit(caller(other, BUDGET).scopes, "m", 10, 0.01), 10, 0.01)
    await other.aclose()


async def shared_spend(redis_url: str, prefix: str, usd: float) -> bool:
    """Whether the one budget period under `prefix` shows `usd` spent within 5 s."""
    client = aioredis.Redis.from_url(redis_url)
    try:
        for _ in range(100):
            spend = [key async for key in client.scan_iter(match=f"{prefix}key:*:b:*")]
            if spend and float(await client.get(spend[0])) == pytest.approx(usd):
                return True
            await asyncio.sleep(0.05)
        return False
    finally:
        await client.aclose()


async def back(admission: RedisAdmission) -> bool:
    """Whether a degraded admission finds Redis again within 5 s."""
    for _ in range(100):
        if admission.degraded is None:
            return True
        admission.try_admit((), "m", 0, None)  # a caller without limits: probes Redis when due
        await asyncio.sleep(0.05)
    return False


async def test_costs_settled_during_an_outage_reach_the_shared_budget(redis_url, redis_prefix):
    relay = TcpRelay(int(redis_url.rsplit(":", 1)[1].split("/", 1)[0]))
    await relay.start()
    cut_off = RedisAdmission(
        f"redis://127.0.0.1:{relay.port}/0", nothing_spent, prefix=redis_prefix, replicas=2, retry_s=0.1
    )
    other = RedisAdmission(redis_url, nothing_spent, prefix=redis_prefix, timeout_s=2)
    limits = Limits(budget_usd=1.0, budget_period="day")
    who = caller(cut_off, limits)
    cut_off.settle(await cut_off.admit(who.scopes, "m", 10, 0.1), 10, 0.1)
    assert await shared_spend(redis_url, redis_prefix, 0.1)  # settled before the cut
    await relay.cut()
    with pytest.raises(GatewayError, match=r"needs up to \$0.60 and \$0.50 of \$0.50 is left"):  # half, alone
        await cut_off.admit(who.scopes, "m", 10, 0.6)
    assert "Redis unavailable" in cut_off.degraded
    cut_off.settle(await cut_off.admit(who.scopes, "m", 10, 0.3), 10, 0.2)
    await relay.start()
    assert await back(cut_off)
    assert await shared_spend(redis_url, redis_prefix, 0.3)
    with pytest.raises(GatewayError, match=r"needs up to \$0.71 and \$0.70 of \$1.00 is left"):
        await other.admit(caller(other, limits).scopes, "m", 10, 0.71)
    await cut_off.aclose()
    await other.aclose()
    await relay.cut()
