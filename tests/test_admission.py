"""Admission's reservations, below the gateway: a refusal by a later scope takes back what
the earlier ones reserved, and a budget not yet loaded is read once, then enforced."""

import asyncio

import pytest

from xvckit.gateway.admission import Admission, BudgetNotLoaded
from xvckit.gateway.dialects import GatewayError
from xvckit.gateway.keyring import Principal, principal
from xvckit.store.keys import ApiKey, Limits, Team


def caller(admission: Admission, key_limits: Limits, team_limits: Limits | None = None) -> Principal:
    team = Team("team_1", "team", team_limits, 0.0) if team_limits else None
    key = ApiKey("key_1", "key", "member", "hash", "xvc-...", team and team.id, key_limits, None, None, 0.0)
    return principal(key, team, admission.scope)


def loader(spent: dict[str, float], calls: list[str]):
    async def load(kind: str, ident: str, since: float) -> float:
        calls.append(f"{kind}:{ident}")
        await asyncio.sleep(0)
        return spent.get(f"{kind}:{ident}", 0.0)

    return load


async def test_a_refusal_by_the_team_takes_back_the_keys_reservations():
    calls: list[str] = []
    admission = Admission(loader({}, calls))
    who = caller(admission, Limits(rpm=10, budget_usd=1.0, budget_period="day"), Limits(rpm=1))
    first = await admission.admit(who.scopes, "m", 100, 0.25)
    with pytest.raises(GatewayError) as refused:
        await admission.admit(who.scopes, "m", 100, 0.25)
    assert refused.value.status == 429 and "team team_1" in refused.value.message
    assert admission.remaining() == {"key:key_1": 0.75}  # only the first request's reservation
    assert admission._scopes["key:key_1"].count == 1
    admission.settle(first, 40, 0.125)
    assert admission.remaining() == {"key:key_1": 0.875}
    assert admission._scopes["key:key_1"].total == 40
    assert calls == ["key:key_1"]  # the budget was read once


async def test_a_budget_is_loaded_before_it_is_enforced():
    admission = Admission(loader({"key:key_1": 0.9}, []))
    who = caller(admission, Limits(budget_usd=1.0, budget_period="day"))
    with pytest.raises(BudgetNotLoaded):
        admission.try_admit(who.scopes, "m", 10, 0.05)
    assert admission.remaining() == {}  # not loaded yet: nothing reserved
    ticket = await admission.admit(who.scopes, "m", 10, 0.05)
    with pytest.raises(GatewayError) as refused:
        admission.try_admit(who.scopes, "m", 10, 0.06)
    assert refused.value.code == "budget_exceeded"
    admission.settle(ticket, 10, 0.01)
    assert admission.remaining()["key:key_1"] == pytest.approx(0.09)


def test_keys_and_teams_without_limits_are_not_admitted_at_all():
    admission = Admission(loader({}, []))
    assert caller(admission, Limits(), Limits()).scopes == ()
    assert [scope.name for scope, _ in caller(admission, Limits(), Limits(tpm=5)).scopes] == ["team:team_1"]


async def test_a_new_limit_in_the_same_period_keeps_what_the_period_used():
    """Running requests' reservations and spend not yet in the ledger still count: only a new
    period reads the ledger again."""
    calls: list[str] = []
    admission = Admission(loader({"key:key_1": 0.5}, calls))
    running = await admission.admit(
        caller(admission, Limits(budget_usd=2.0, budget_period="day")).scopes, "m", 10, 0.5
    )
    lowered = caller(admission, Limits(budget_usd=1.2, budget_period="day"))  # the key after an edit
    with pytest.raises(GatewayError) as refused:
        await admission.admit(lowered.scopes, "m", 10, 0.25)  # 0.5 spent + 0.5 reserved + 0.25 > 1.2
    assert refused.value.code == "budget_exceeded"
    admission.settle(running, 10, 0.1)
    assert admission.remaining() == {"key:key_1": pytest.approx(0.6)}  # 1.2 - 0.5 - 0.1
    await admission.admit(lowered.scopes, "m", 10, 0.25)
    assert calls == ["key:key_1"]
