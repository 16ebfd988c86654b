"""The admin REST API: roles, keys shown once, audit entries without secrets."""

from __future__ import annotations

import httpx
import pytest

from conftest import MASTER_KEY
from test_gateway_e2e import sim_providers


@pytest.fixture
def gw(sim, make_gateway, store_url):
    return make_gateway(sim_providers(sim), storage_url=store_url)


def api(gw, key: str):
    return httpx.Client(base_url=f"{gw.url}/admin", headers={"authorization": f"Bearer {key}"})


def test_admin_creates_teams_and_keys_shown_once(gw):
    admin = api(gw, MASTER_KEY)
    team = admin.post("/teams", json={"name": "blue", "budget_usd": 5, "budget_period": "day"})
    assert team.status_code == 201 and team.json()["budget_usd"] == 5
    created = admin.post("/keys", json={"name": "ci", "team": "blue", "rpm": 10, "models": ["gpt-4o*"]})
    assert created.status_code == 201
    body = created.json()
    raw = body["key"]
    assert raw.startswith("xvc-") and body["team_id"] == team.json()["id"]
    shown = admin.get(f"/keys/{body['id']}").json()
    assert "key" not in shown and "key_hash" not in shown and raw not in str(shown)
    assert [k["id"] for k in admin.get("/keys").json()] == [body["id"]]
    assert admin.get(f"/teams/{team.json()['id']}").json()["keys"][0]["id"] == body["id"]
    trail = admin.get("/audit").json()
    assert {"team.create", "key.create"} <= {e["action"] for e in trail}
    assert raw not in str(trail)
    assert admin.get("/audit/verify").json()["ok"] is True
    # the new key works on the proxy at once
    r = httpx.post(
        f"{gw.url}/v1/chat/completions",
        headers={"authorization": f"Bearer {raw}"},
        json={"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]},
    )
    assert r.status_code == 200


def test_roles(gw):
    admin = api(gw, MASTER_KEY)
    admin.post("/teams", json={"name": "blue"})
    admin.post("/teams", json={"name": "red"})
    lead = admin.post("/keys", json={"name": "lead", "team": "blue", "role": "team-admin"}).json()
    other = admin.post("/keys", json={"name": "r1", "team": "red"}).json()
    team_admin = api(gw, lead["key"])
    member_of_blue = team_admin.post("/keys", json={"name": "dev"})
    assert member_of_blue.status_code == 201 and member_of_blue.json()["team_id"] == lead["team_id"]
    assert team_admin.post("/keys", json={"name": "x", "role": "admin"}).status_code == 403
    assert team_admin.post("/keys", json={"name": "x", "team": "red"}).status_code == 403
    assert team_admin.get(f"/keys/{other['id']}").status_code == 404
    assert {k["name"] for k in team_admin.get("/keys").json()} == {"lead", "dev"}
    assert team_admin.post("/teams", json={"name": "green"}).status_code == 403
    assert team_admin.get("/audit").status_code == 403
    member = api(gw, member_of_blue.json()["key"])
    assert [k["name"] for k in member.get("/keys").json()] == ["dev"]
    assert member.post(f"/keys/{member_of_blue.json()['id']}/revoke").status_code == 403
    assert member.get("/usage").status_code == 200
    revoked = team_admin.post(f"/keys/{member_of_blue.json()['id']}/revoke")
    assert revoked.status_code == 200 and revoked.json()["revoked_at"]
    assert member.get("/keys").status_code == 401


def test_bad_credentials_and_bad_input(gw):
    assert httpx.get(f"{gw.url}/admin/keys").status_code == 401
    assert api(gw, "xvc-nope").get("/keys").status_code == 401
    admin = api(gw, MASTER_KEY)
    assert admin.post("/keys", json={"name": ""}).status_code == 422
    assert (
        admin.post("/keys", json={"name": "x", "team": "ghost"}).json()["error"]["message"]
        == "no team 'ghost'"
    )
    assert admin.get("/keys/key_missing").status_code == 404


def test_openapi_and_docs(gw):
    spec = httpx.get(f"{gw.url}/admin/openapi.json").json()
    assert "/admin/keys" in spec["paths"] and "/admin/usage" in spec["paths"]
    assert httpx.get(f"{gw.url}/admin/docs").status_code == 200


def test_secrets_are_stored_encrypted_and_never_returned(gw):
    admin = api(gw, MASTER_KEY)
    r = admin.put("/secrets/openai-prod", json={"value": "sk-live-abcdef123456"})
    assert r.status_code == 200 and "sk-live" not in r.text
    trail = admin.get("/audit").text
    assert "secret.put" in trail and "sk-live" not in trail
    assert api(gw, MASTER_KEY).get("/keys").status_code == 200
