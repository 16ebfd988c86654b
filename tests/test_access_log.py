"""Issue 20: every request but the health probes has an access log line with its id, method,
path, status and user agent, so a failing tool can be found in the log: unknown routes (404),
wrong methods (405), refusals (401, 413, 415, budget and rate limits), the model list,
/metrics and the base URL. What a client chose is escaped and bounded; the query string,
headers and keys never reach the log. Through the real HTTP server."""

from __future__ import annotations

import logging

import httpx
import openai
import pytest

from conftest import MASTER_KEY
from test_gateway_e2e import sim_providers
from test_gateway_keys import new_key
from xvckit.store.keys import Limits

UA = {"user-agent": "probe/1.0"}
HI = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 5}


@pytest.fixture(scope="module")
def gw(sim_factory, make_module_gateway):
    config = {
        **sim_providers(sim_factory(rpm=10_000, tpm=100_000_000)),
        "prices": {"gpt-4o-mini": {"input": 0, "output": 1000}},
        "gateway": {"max_body_mb": 0.01},
    }
    return make_module_gateway(config)


@pytest.fixture
def access_log(caplog):
    """The access log lines of the test; every logger's records kept, at every level."""
    caplog.set_level(logging.DEBUG)
    return lambda: [r.getMessage() for r in caplog.records if r.name == "xvckit.access"]


def call(gw, method: str, path: str, key: str | None = None, **kwargs) -> httpx.Response:
    headers = {**UA, **kwargs.pop("headers", {})}
    if key:
        headers["authorization"] = f"Bearer {key}"
    return httpx.request(method, f"{gw.url}{path}", headers=headers, timeout=10, **kwargs)


def test_unknown_routes_and_wrong_methods(gw, access_log):
    not_found = call(gw, "GET", "/v1/nope?api_key=in-the-query")
    wrong_method = call(gw, "GET", "/v1/completions", headers={"x-request-id": "trace-7"})
    assert (not_found.status_code, wrong_method.status_code) == (404, 405)
    first, second = access_log()
    assert first == f"{not_found.headers['x-request-id']} GET /v1/nope status=404 ua=probe/1.0"
    assert wrong_method.headers["x-request-id"] == "trace-7"  # the caller's own id answered
    assert second.startswith("req_") and second.endswith(
        " GET /v1/completions status=405 client_id=trace-7 ua=probe/1.0"
    )


def test_the_model_list_metrics_admin_and_base_url_but_not_health_probes(gw, access_log):
    _, member = new_key(gw, name="member")
    answers = [
        call(gw, "GET", "/v1/models", MASTER_KEY),
        call(gw, "GET", "/v1/models"),
        call(gw, "GET", "/v1/models/gpt-4o-mini", member),
        call(gw, "GET", "/metrics", member),
        call(gw, "GET", "/metrics", MASTER_KEY),
        call(gw, "HEAD", "/"),
        call(gw, "GET", "/admin/keys"),
        call(gw, "GET", "/healthz"),
        call(gw, "GET", "/readyz"),
    ]
    assert [r.status_code for r in answers] == [200, 401, 200, 403, 200, 200, 401, 200, 200]
    lines = access_log()
    assert [line.split(" ", 1)[1] for line in lines] == [
        "GET /v1/models status=200 ua=probe/1.0",
        "GET /v1/models status=401 ua=probe/1.0",
        "GET /v1/models/gpt-4o-mini status=200 ua=probe/1.0",
        "GET /metrics status=403 ua=probe/1.0",
        "GET /metrics status=200 ua=probe/1.0",
        "HEAD / status=200 ua=probe/1.0",
        "GET /admin/keys status=401 ua=probe/1.0",
    ]
    assert [line.split(" ", 1)[0] for line in lines] == [r.headers["x-request-id"] for r in answers[:7]]
    assert "x-request-id" not in answers[-1].headers
    assert not any("cost" in line or "usd" in line for line in lines)


def test_refused_requests(gw, access_log):
    _, poor = new_key(gw, name="poor", limits=Limits(budget_usd=0.0005, budget_period="month"))
    _, slow = new_key(gw, name="slow", limits=Limits(rpm=1))
    answers = [
        call(gw, "POST", "/v1/chat/completions", "xvc-wrong", json=HI),
        call(gw, "POST", "/v1/chat/completions", MASTER_KEY, json={**HI, "padding": "x" * 20_000}),
        call(
            gw,
            "POST",
            "/v1/chat/completions",
            MASTER_KEY,
            content=b"{}",
            headers={"content-type": "text/plain"},
        ),
        call(gw, "POST", "/v1/chat/completions", poor, json=HI),
        call(gw, "POST", "/chat/completions", slow, json=HI),
        call(gw, "POST", "/chat/completions", slow, json=HI),
    ]
    assert [r.status_code for r in answers] == [401, 413, 415, 429, 200, 429]
    lines = access_log()
    wanted = [
        ("/v1/chat/completions", "status=401", "error=invalid_api_key"),
        ("/v1/chat/completions", "status=413", "error=request_too_large"),
        ("/v1/chat/completions", "status=415", "error=unsupported_content_type"),
        ("/v1/chat/completions", "status=429", "error=budget_exceeded"),
        ("/chat/completions", "status=200", ""),
        ("/chat/completions", "status=429", "error=rate_limit"),
    ]
    assert len(lines) == len(wanted)
    for line, answer, (path, status, error) in zip(lines, answers, wanted, strict=True):
        assert line.startswith(f"{answer.headers['x-request-id']} POST {path} chat ")
        assert f" {status} " in line and error in line and line.endswith(" ua=probe/1.0")


def test_what_a_client_chose_is_escaped_and_bounded(gw, access_log):
    forged = call(gw, "GET", "/v1/a%0Areq_x%20GET%20/forged status=200")
    long_path = call(gw, "GET", "/v1/" + "p" * 1000)
    odd_agent = call(
        gw,
        "POST",
        "/v1/chat/completions",
        MASTER_KEY,
        json=HI,
        headers={"user-agent": "tool\t/é 1".encode("latin-1")},
    )
    long_agent = call(gw, "GET", "/v1/x", headers={"user-agent": "a" * 1000})
    assert [r.status_code for r in (forged, long_path, odd_agent, long_agent)] == [404, 404, 200, 404]
    first, second, third, fourth = access_log()
    assert " GET '/v1/a\\nreq_x GET /forged status=200' status=404 " in first
    assert f" GET /v1/{'p' * 252}... status=404 " in second
    assert third.endswith(" ua='tool\\t/\\xe9 1'")
    assert fourth.endswith(f" ua={'a' * 200}")


def test_keys_never_reach_the_log(gw, access_log, caplog):
    _, raw = new_key(gw, name="secretive")
    wrong = "xvc-wrong-0123456789abcdefghijklmnop"
    sdk = openai.OpenAI(base_url=f"{gw.url}/v1", api_key=raw, max_retries=0)
    sdk.chat.completions.create(**HI)
    sdk.completions.create(model="claude-sonnet-4-5", prompt="Hi", max_tokens=5)
    call(gw, "GET", f"/v1/models?api_key={raw}", headers={"x-api-key": raw})
    call(gw, "GET", f"/v1/nope?key={MASTER_KEY}", MASTER_KEY)
    call(gw, "POST", "/v1/completions", wrong, json={"model": "x", "prompt": "y"})
    call(gw, "POST", "/v1/messages", headers={"x-api-key": wrong}, json=HI)
    call(gw, "GET", "/metrics", wrong)
    assert len(access_log()) == 7
    logged = "\n".join(r.getMessage() for r in caplog.records if r.name.startswith("xvckit"))
    assert (
        "/v1/nope status=404" in logged
    )  # the gateway's lines are all here (httpx logs the URLs it asks for)
    for secret in (raw, wrong, MASTER_KEY, "sk-upstream", "sk-ant"):
        assert secret not in logged
