"""Issue 21: the admin API as strict as the CLI, through the real HTTP server: unknown fields
and query parameters are 422 (they were dropped), durations as the CLI writes them, one error
shape for every refusal, and Swagger UI from local files with the key as a security scheme."""

from __future__ import annotations

import re
import time

import httpx
import pytest

from conftest import MASTER_KEY
from xvckit.gateway import admin, keyring


@pytest.fixture
def gw(make_gateway, store_url):
    return make_gateway({}, storage_url=store_url)


@pytest.fixture
def master(gw) -> httpx.Client:
    client = httpx.Client(base_url=f"{gw.url}/admin", headers={"authorization": f"Bearer {MASTER_KEY}"})
    assert client.post("/teams", json={"name": "blue"}).status_code == 201
    return client


def test_unknown_fields_and_parameters_are_422(master):
    for method, path, body, field in [
        ("POST", "/keys", {"name": "a", "expires": "30d"}, "expires"),
        ("POST", "/keys", {"name": "a", "max_budget": 5}, "max_budget"),
        ("POST", "/keys", {"name": "a", "expires_in_s": 60}, "expires_in_s"),
        ("POST", "/teams", {"name": "t", "budget": 5}, "budget"),
        ("PATCH", "/keys/a", {"rpm": 5, "tmp": 5}, "tmp"),
        ("PATCH", "/teams/blue", {"rmp": 5}, "rmp"),
        ("PUT", "/secrets/s", {"value": "v", "note": "n"}, "note"),
    ]:
        answer = master.request(method, path, json=body)
        assert answer.status_code == 422 and field in answer.json()["error"]["message"], (body, answer.text)
    for path in ("/usage?sinse=7d", "/audit?limit=5&offset=2", "/keys?team=blue"):
        answer = master.get(path)
        assert answer.status_code == 422 and "unknown parameter" in answer.text, (path, answer.text)
    assert master.get("/keys").json() == []  # nothing was made with a field left out


def test_durations_as_the_cli_writes_them(master):
    key = master.post("/keys", json={"name": "a", "expires_in": "30d"}).json()
    assert key["expires_at"] == pytest.approx(time.time() + 30 * 86400, abs=60)
    assert master.post("/keys", json={"name": "b", "expires_in": 90}).json()["expires_at"] == pytest.approx(
        time.time() + 90, abs=60
    )
    for since in ("7d", "24h", "2026-11-01", "2026-11-01T12:00:00Z", "0", "1700000000.5"):
        assert master.get("/usage", params={"since": since, "until": "1h"}).status_code == 200, since
    for since in ("yesterday", "7x", "-3d", "nan", "inf"):
        answer = master.get("/usage", params={"since": since})
        assert answer.status_code == 422 and "since" in answer.json()["error"]["message"], since
    assert master.post("/keys", json={"name": "c", "expires_in": "0s"}).status_code == 422


def test_every_refusal_has_one_shape(gw, master, monkeypatch):
    member = master.post("/keys", json={"name": "dev", "team": "blue"}).json()["key"]
    answers = {
        401: httpx.get(f"{gw.url}/admin/keys"),
        403: httpx.get(f"{gw.url}/admin/audit", headers={"authorization": f"Bearer {member}"}),
        404: master.get("/keys/ghost"),
        405: master.delete("/keys"),
        409: master.post("/teams", json={"name": "blue"}),
        413: master.put("/secrets/big", json={"value": "x" * (admin.MAX_BODY_BYTES + 1)}),
        422: master.post("/keys", json={"name": ""}),
        400: master.patch("/keys/dev", json={}),
    }
    monkeypatch.setattr(keyring, "LOOKUPS_AT_ONCE", 0)  # every key not in memory: "retry in a second"
    answers[429] = httpx.get(f"{gw.url}/admin/keys", headers={"authorization": "Bearer xvc-unknown"})
    monkeypatch.setattr("xvckit.store.keys.list_teams", lambda store: 1 / 0)
    answers[500] = master.get("/teams")
    for status, answer in answers.items():
        assert answer.status_code == status, (status, answer.text)
        error = answer.json()["error"]
        assert set(answer.json()) == {"error"} and isinstance(error["message"], str) and error["message"]
        assert error["type"] == admin._TYPES[status] or status in (401, 429), (status, error)
        assert set(error) == ({"type", "message", "detail"} if status == 422 else {"type", "message"})
    assert answers[401].json()["error"]["type"] == "missing_api_key"  # the keyring's own codes
    assert answers[429].json()["error"]["type"] == "rate_limit_exceeded"
    assert answers[429].headers["retry-after"] == "1"
    assert "ZeroDivisionError" not in answers[500].text and "internal error" in answers[500].text
    assert master.get("/keys").status_code == 200  # the server goes on


def test_swagger_ui_from_local_files_with_the_key_as_security_scheme(gw):
    page = httpx.get(f"{gw.url}/admin/docs")
    assert page.status_code == 200 and "SwaggerUIBundle" in page.text
    assets = re.findall(r'(?:src|href)="([^"]+)"', page.text)
    assert assets and all(a.startswith("/admin/docs/static/") for a in assets), assets
    for asset in assets:  # served without a key, like the page
        answer = httpx.get(gw.url + asset)
        assert answer.status_code == 200 and len(answer.content) > 500, asset
    assert "url: '/admin/openapi.json'" in page.text and '"validatorUrl": null' in page.text
    assert httpx.get(f"{gw.url}/admin/docs/static/nothing.js").status_code == 404
    spec = httpx.get(f"{gw.url}/admin/openapi.json").json()
    schemes = spec["components"]["securitySchemes"]
    assert {(s["type"], s.get("scheme"), s.get("name")) for s in schemes.values()} == {
        ("http", "bearer", None),
        ("apiKey", None, "x-api-key"),
    }
    operations = [op for path in spec["paths"].values() for op in path.values()]
    assert operations and all({next(iter(s)) for s in op["security"]} == set(schemes) for op in operations)
    assert "/admin/docs" not in spec["paths"] and "patch" in spec["paths"]["/admin/keys/{ref}"]
    # "Authorize" sends either header; both are what the gateway takes
    for headers in ({"authorization": f"Bearer {MASTER_KEY}"}, {"x-api-key": MASTER_KEY}):
        assert httpx.get(f"{gw.url}/admin/teams", headers=headers).status_code == 200
