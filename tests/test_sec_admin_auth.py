"""Issue 19: the admin API's failed authentications tell nothing about the store. A request
without a usable key gets the same 401 on every path but the docs, whether the key, team or
secret it names exists or not, and whatever its body, query or method (the key is checked
before any of them is read); only the key presented changes the message. Through the real
HTTP server, on SQLite and PostgreSQL."""

from __future__ import annotations

import time

import httpx
import pytest

from conftest import MASTER_KEY

HEADERS_THAT_VARY = {"date", "content-length", "x-request-id"}  # each answer has its own id


@pytest.fixture
def gw(make_gateway, store_url):
    return make_gateway({}, storage_url=store_url)


def requests_for(existing: dict) -> list[tuple[str, str, dict]]:
    """Each route, once naming what exists and once naming what does not, with good and bad input."""
    out = []
    for key, team in ((existing["key"], existing["team"]), ("key_000000000000", "ghost")):
        out += [
            ("GET", f"/admin/keys/{key}", {}),
            ("POST", f"/admin/keys/{key}/rotate", {}),
            ("POST", f"/admin/keys/{key}/revoke", {}),
            ("GET", f"/admin/teams/{team}", {}),
            ("POST", "/admin/keys", {"json": {"name": "x", "team": team}}),
            ("PUT", "/admin/secrets/openai-prod", {"json": {"value": "sk-1"}}),
        ]
    return [
        *out,
        ("GET", "/admin/keys", {}),
        ("GET", "/admin/teams", {}),
        ("POST", "/admin/teams", {"json": {"name": "", "rpm": -1}}),
        ("GET", "/admin/usage?since=nan&by=nothing", {}),
        ("GET", "/admin/audit?limit=99999999999999999999", {}),
        ("GET", "/admin/audit/verify", {}),
        ("POST", "/admin/keys", {"content": b"{not json", "headers": {"content-type": "application/json"}}),
        ("DELETE", "/admin/keys", {}),
        ("GET", "/admin/no-such-route", {}),
    ]


def test_failed_authentication_answers_alike(gw):
    admin = httpx.Client(base_url=gw.url, headers={"authorization": f"Bearer {MASTER_KEY}"})
    team = admin.post("/admin/teams", json={"name": "blue"}).json()
    key = admin.post("/admin/keys", json={"name": "dev", "team": "blue"}).json()
    admin.put("/admin/secrets/openai-prod", json={"value": "sk-live-1"})
    revoked = admin.post("/admin/keys", json={"name": "old", "team": "blue"}).json()
    admin.post(f"/admin/keys/{revoked['id']}/revoke")
    expiring = admin.post("/admin/keys", json={"name": "brief", "expires_in": 0.01}).json()
    time.sleep(0.05)
    credentials = {
        "none": {},
        "unknown": {"authorization": "Bearer xvc-not-a-key-of-this-gateway"},
        "malformed": {"x-api-key": "sk-something-else"},
        "revoked": {"authorization": f"Bearer {revoked['key']}"},
        "expired": {"authorization": f"Bearer {expiring['key']}"},
    }
    for name, headers in credentials.items():
        answers = {
            (method, path, str(kwargs)): httpx.request(
                method, gw.url + path, **{**kwargs, "headers": {**kwargs.get("headers", {}), **headers}}
            )
            for method, path, kwargs in requests_for({"key": key["id"], "team": team["name"]})
        }
        first = next(iter(answers.values()))
        assert first.status_code == 401, (name, first.text)
        for request, answer in answers.items():
            assert (answer.status_code, answer.content) == (401, first.content), (name, request, answer.text)
            same = {k: v for k, v in answer.headers.items() if k not in HEADERS_THAT_VARY}
            assert same == {k: v for k, v in first.headers.items() if k not in HEADERS_THAT_VARY}
        assert "sk-live" not in first.text and key["id"] not in first.text
    # the documentation stays open; with a key, a wrong route is a 404 in the API's own form
    assert httpx.get(f"{gw.url}/admin/openapi.json").status_code == 200
    assert httpx.get(f"{gw.url}/admin/docs").status_code == 200
    assert admin.get("/admin/no-such-route").json() == {
        "error": {"type": "not_found", "message": "Not Found"}
    }
    # nothing was changed by any of them
    assert [k["name"] for k in admin.get("/admin/keys").json()] == ["dev", "old", "brief"]
    assert admin.get("/admin/keys/old").json()["hint"] == revoked["hint"]
