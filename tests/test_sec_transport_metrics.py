"""/metrics (issue 19, hole 6): labels come from the configuration and the store only, the
exposition is built off the event loop, and only the master key and admin keys may read it."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from conftest import MASTER_KEY
from test_gateway_e2e import HI, sim_providers
from xvckit.config import ModelRoute
from xvckit.gateway import metrics


@pytest.fixture
def gw(sim, make_gateway, store_url):
    config = sim_providers(sim)
    config["models"].append({"name": "gpt-*", "provider": "sim-oa"})
    return make_gateway(config, storage_url=store_url)


def key_of(gw, role: str, team: str | None = None) -> str:
    body = {"name": f"{role}-key", "role": role, **({"team": team} if team else {})}
    created = httpx.post(f"{gw.url}/admin/keys", json=body, headers=bearer(MASTER_KEY))
    assert created.status_code == 201, created.text
    return created.json()["key"]


def bearer(key: str) -> dict[str, str]:
    return {"authorization": f"Bearer {key}"}


def scrape(gw, key: str = MASTER_KEY) -> httpx.Response:
    return httpx.get(f"{gw.url}/metrics", headers=bearer(key), timeout=10)


def chat(gw, model: str) -> httpx.Response:
    body = {"model": model, "messages": HI, "max_tokens": 2}
    return httpx.post(f"{gw.url}/v1/chat/completions", json=body, headers=bearer(MASTER_KEY), timeout=30)


def test_client_model_names_are_counted_under_their_route_never_as_labels(gw):
    """100 requests with distinct 250-character model names (names are at most 256) through a
    glob route: one label, the route's pattern, and an exposition of a few kilobytes (on
    5158e6f it held every name, in every series)."""
    for n in range(100):
        assert chat(gw, f"gpt-4o-{n:03d}" + "x" * 240).status_code == 200  # the simulator serves gpt-4o*
    assert chat(gw, "gpt-4o-mini").status_code == 200  # an exact route is its own label
    assert chat(gw, "nothing-routes-this-" + "y" * 200).status_code == 404
    text = scrape(gw).text
    assert len(text) < 64_000, len(text)
    assert "xxxxxxxxxx" not in text and "yyyyyyyyyy" not in text
    assert 'xvckit_requests_total{key="-",model="gpt-*",status="200",team="-"} 100.0' in text
    assert 'xvckit_requests_total{key="-",model="gpt-4o-mini",status="200",team="-"} 1.0' in text
    assert 'xvckit_requests_total{key="-",model="-",status="404",team="-"} 1.0' in text
    assert 'xvckit_tokens_total{kind="output",model="gpt-*"}' in text


def test_metrics_need_an_admin_key_or_the_master_key(gw):
    httpx.post(f"{gw.url}/admin/teams", json={"name": "blue", "budget_usd": 5}, headers=bearer(MASTER_KEY))
    member, team_admin, admin = (
        key_of(gw, "member", "blue"),
        key_of(gw, "team-admin", "blue"),
        key_of(gw, "admin"),
    )
    anonymous = httpx.get(f"{gw.url}/metrics")
    assert anonymous.status_code == 401
    assert anonymous.json()["error"]["code"] == "missing_api_key"
    assert "xvckit_budget_remaining_usd" not in anonymous.text
    assert scrape(gw, "xvc-not-a-key").status_code == 401
    for key in (member, team_admin):
        refused = scrape(gw, key)
        assert refused.status_code == 403 and refused.json()["error"]["code"] == "permission_denied"
        assert "xvckit_" not in refused.text
    for key in (admin, MASTER_KEY):
        allowed = scrape(gw, key)
        assert allowed.status_code == 200 and "# TYPE xvckit_requests_total counter" in allowed.text


def test_the_exposition_is_built_off_the_event_loop(gw, monkeypatch):
    """While a scrape is being rendered (held here until /healthz answered), the gateway
    serves other requests: the rendering does not run on the event loop."""
    rendering, release = threading.Event(), threading.Event()
    real = metrics.generate_latest

    def slow_render(collector):
        rendering.set()
        release.wait(10)
        return real(collector)

    monkeypatch.setattr(metrics, "generate_latest", slow_render)
    with ThreadPoolExecutor(1) as pool:
        scraped = pool.submit(scrape, gw)
        try:
            assert rendering.wait(10)
            assert httpx.get(f"{gw.url}/healthz", timeout=2).status_code == 200
        finally:
            release.set()
        assert scraped.result().status_code == 200


def test_model_labels_are_route_names_or_other():
    """What the HTTP test cannot reach: a name no route matches (the proxy counts a request
    only after routing it) is `other`; a request that failed before its model was read is `-`."""
    routes = [ModelRoute(name="gpt-4o", provider="p"), ModelRoute(name="claude-*", provider="p")]
    labels = metrics.Metrics(routes)
    assert [labels.model_label(m) for m in ("gpt-4o", "claude-x" * 1000, "llama", None)] == [
        "gpt-4o",
        "claude-*",
        "other",
        "-",
    ]
