"""Issue 21: key and team management through the admin API (the real HTTP server, SQLite and
PostgreSQL): PATCH changes the fields given and keeps the others, with the role rules (a
team-admin only on keys it sees, within its team's limits, never granting admin; a member
not at all); a key's spend this period; names for ids in usage and in its rows; warnings
for model patterns no route serves."""

from __future__ import annotations

import time

import httpx
import pytest

from conftest import MASTER_KEY
from test_gateway_e2e import sim_providers
from xvckit.store.ledger import UsageRecord, write_records


@pytest.fixture
def gw(sim, make_gateway, store_url):
    return make_gateway(sim_providers(sim), storage_url=store_url)


def api(gw, key: str) -> httpx.Client:
    return httpx.Client(base_url=f"{gw.url}/admin", headers={"authorization": f"Bearer {key}"})


def ok(response: httpx.Response, status: int = 200) -> dict:
    assert response.status_code == status, response.text
    return response.json()


def refused(response: httpx.Response, status: int, words: str) -> None:
    assert response.status_code == status and words in response.json()["error"]["message"], response.text


@pytest.fixture
def teams(gw):
    """Team blue (rpm 100, $10 a month) with a team-admin, a member and an admin key; team red
    with a member."""
    master = api(gw, MASTER_KEY)
    ok(master.post("/teams", json={"name": "blue", "rpm": 100, "budget_usd": 10}), 201)
    ok(master.post("/teams", json={"name": "red"}), 201)
    made = {
        "lead": {"name": "lead", "team": "blue", "role": "team-admin"},
        "dev": {"name": "dev", "team": "blue", "rpm": 50, "budget_usd": 5, "budget_period": "week"},
        "ops": {"name": "ops", "team": "blue", "role": "admin"},
        "r1": {"name": "r1", "team": "red"},
    }
    return {name: ok(master.post("/keys", json=body), 201) for name, body in made.items()}


def test_patch_changes_one_field_and_keeps_the_others(gw, teams):
    master, dev = api(gw, MASTER_KEY), teams["dev"]
    patched = ok(master.patch(f"/keys/{dev['id']}", json={"rpm": 60}))
    assert (patched["rpm"], patched["budget_usd"], patched["budget_period"]) == (60, 5, "week")
    assert patched["warnings"] == []
    patched = ok(master.patch("/keys/dev", json={"budget_usd": None, "expires_in": "30d", "cache": "on"}))
    assert (patched["budget_usd"], patched["budget_period"], patched["rpm"], patched["cache"]) == (
        None,
        None,
        60,
        "on",
    )
    assert patched["expires_at"] == pytest.approx(time.time() + 30 * 86400, abs=60)
    assert ok(master.patch("/keys/dev", json={"expires_in": None}))["expires_at"] is None
    patched = ok(master.patch("/keys/dev", json={"name": "developer", "models": ["gpt-4o*", "gemini-*"]}))
    assert patched["name"] == "developer" and patched["hint"] == dev["hint"]
    assert patched["warnings"] == ["model pattern 'gemini-*' matches no configured route"]
    changes = [e for e in ok(master.get("/audit")) if e["action"] == "key.update"]
    assert [e["detail"]["changed"] for e in changes][:2] == [
        {"rpm": [50, 60]},
        {
            "budget_usd": [5.0, None],
            "budget_period": ["week", None],
            "expires_at": [None, changes[1]["detail"]["changed"]["expires_at"][1]],
            "cache": [None, "on"],
        },
    ]
    assert {e["target"] for e in changes} == {dev["id"]} and ok(master.get("/audit/verify"))["ok"]
    for body, status, words in [
        ({}, 400, "nothing to change"),
        ({"name": None}, 422, "name"),
        ({"role": None}, 422, "role"),
        ({"max_budget": 5}, 422, "max_budget"),
        ({"team": "red"}, 422, "team"),
        ({"rpm": 0}, 422, "rpm"),
        ({"budget_period": "day"}, 400, "a budget period needs a budget"),
        ({"name": "lead"}, 409, "exists already"),
        ({"expires_in": "-1d"}, 422, "expires_in"),
    ]:
        refused(master.patch("/keys/developer", json=body), status, words)
    refused(master.patch("/keys/ghost", json={"rpm": 1}), 404, "no key 'ghost'")
    ok(master.post("/keys/developer/revoke"))
    refused(master.patch("/keys/developer", json={"rpm": 1}), 400, "is revoked")


def test_patch_roles_and_team_ceilings(gw, teams):
    master, lead, member = api(gw, MASTER_KEY), api(gw, teams["lead"]["key"]), api(gw, teams["dev"]["key"])
    dev = teams["dev"]["id"]
    assert ok(lead.patch(f"/keys/{dev}", json={"rpm": 100, "budget_usd": 10, "budget_period": "month"}))
    assert ok(lead.patch("/keys/dev", json={"budget_usd": 10, "budget_period": "day"}))
    helper = ok(lead.post("/keys", json={"name": "helper"}), 201)
    assert ok(lead.patch(f"/keys/{helper['id']}", json={"role": "team-admin"}))["role"] == "team-admin"
    for body, words in [
        ({"rpm": 101}, "rpm 101 is above the 100 of team 'blue'"),
        ({"budget_usd": 10.5}, "is above the $10 a month of team 'blue'"),
        ({"budget_usd": 11, "budget_period": "week"}, "above"),
        ({"role": "admin"}, "may not give the admin role"),
    ]:
        refused(lead.patch("/keys/dev", json=body), 403, words)
    refused(lead.post("/keys", json={"name": "big", "rpm": 1000}), 403, "above the 100 of team 'blue'")
    for ref in ("ops", teams["ops"]["id"], "r1", teams["r1"]["id"]):  # higher role, other team
        refused(lead.patch(f"/keys/{ref}", json={"rpm": 1}), 404, "no key")
    ok(lead.patch("/keys/lead", json={"rpm": 10}))  # its own key, within the team's limits
    refused(
        api(gw, teams["r1"]["key"]).patch(f"/keys/{teams['r1']['id']}", json={"rpm": 1}), 403, "team-admin"
    )
    assert ok(master.patch(f"/keys/{dev}", json={"rpm": 5000}))["rpm"] == 5000  # the admin's choice
    refused(member.patch("/keys/dev", json={"rpm": 1}), 403, "admin or team-admin")
    # teams: the admin's alone; a change keeps what it does not name (the CLI's old bug)
    refused(lead.patch("/teams/blue", json={"rpm": 1000}), 403, "needs an admin key")
    blue = ok(master.patch("/teams/blue", json={"rpm": 50}))
    assert (blue["rpm"], blue["budget_usd"], blue["budget_period"]) == (50, 10, "month")
    blue = ok(master.patch("/teams/blue", json={"budget_usd": None, "name": "azure", "models": ["o3"]}))
    assert (blue["name"], blue["rpm"], blue["budget_usd"]) == ("azure", 50, None)
    assert blue["warnings"] == ["model pattern 'o3' matches no configured route"]
    refused(master.patch("/teams/azure", json={"name": "red"}), 409, "exists already")
    refused(master.patch("/teams/azure", json={"budget": 5}), 422, "budget")
    updates = [e["detail"]["changed"] for e in ok(master.get("/audit")) if e["action"] == "team.update"]
    assert updates[0] == {"rpm": [100, 50]}


def test_show_has_spend_and_usage_takes_and_gives_names(gw, teams):
    master, lead = api(gw, MASTER_KEY), api(gw, teams["lead"]["key"])
    now = time.time()
    records = [
        UsageRecord(
            f"r{i}", "chat", ts=now - 5, key_id=teams[k]["id"], team_id=teams[k]["team_id"], cost_usd=1.5
        )
        for i, k in enumerate(["dev", "dev", "ops", "r1"])
    ]
    write_records(gw.gateway.store, records)
    shown = ok(lead.get("/keys/dev"))
    assert [(s["scope"], s["period"], s["spent_usd"], s["left_usd"]) for s in shown["spend"]] == [
        ("key", "week", 3.0, 2.0),
        ("team", "month", 4.5, 5.5),
    ]
    by_key = ok(master.get("/usage", params={"by": "key", "since": "7d"}))
    assert sorted((r["key_name"], r["team_name"], r["requests"]) for r in by_key) == [
        ("dev", "blue", 2),
        ("ops", "blue", 1),
        ("r1", "red", 1),
    ]
    # a team-admin sees its team's rows; the name of a key it may not see stays out
    assert {(r["key_name"], r["requests"]) for r in ok(lead.get("/usage?by=key"))} == {("dev", 2), (None, 1)}
    assert ok(lead.get("/usage", params={"key": "dev"}))[0]["requests"] == 2
    assert ok(master.get("/usage", params={"team": "red", "by": "team"})) == [
        {"team_id": teams["r1"]["team_id"], "team_name": "red", **ok(master.get("/usage?team=red"))[0]}
    ]
    assert ok(master.get("/usage", params={"key": "dev", "team": "blue"}))[0]["requests"] == 2
    refused(lead.get("/usage", params={"team": "red"}), 404, "no team 'red'")
    refused(lead.get("/usage", params={"key": "r1"}), 404, "no key 'r1'")
    refused(lead.get("/usage", params={"key": "ops"}), 404, "no key 'ops'")
    ok(master.post("/keys", json={"name": "dev", "team": "red"}), 201)
    refused(master.get("/usage", params={"key": "dev"}), 400, "2 keys are named 'dev'")
    assert ok(master.get("/usage", params={"key": "dev", "team": "red"}))[0]["requests"] == 0
