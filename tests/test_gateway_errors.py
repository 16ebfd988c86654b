"""Bad input never gets a traceback: each failure is the dialect's error JSON with the right status."""

from __future__ import annotations

import socket

import anthropic
import httpx
import openai
import pytest

from conftest import MASTER_KEY


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def dead_upstream_gateway(make_gateway):
    """A gateway whose only provider listens nowhere."""
    port = _free_port()
    return make_gateway(
        {
            "providers": [
                {
                    "name": "oa",
                    "kind": "openai",
                    "base_url": f"http://127.0.0.1:{port}/v1",
                    "api_keys": ["sk-up-SECRET"],
                },
                {
                    "name": "an",
                    "kind": "anthropic",
                    "base_url": f"http://127.0.0.1:{port}",
                    "api_keys": ["sk-up-SECRET"],
                },
            ],
            "models": [{"name": "gpt-4o", "provider": "oa"}, {"name": "claude-*", "provider": "an"}],
            "gateway": {"max_body_mb": 0.01},
        }
    )


def _post(url: str, body: bytes | str, **headers: str) -> httpx.Response:
    headers = {"authorization": f"Bearer {MASTER_KEY}", "content-type": "application/json", **headers}
    return httpx.post(url, content=body, headers=headers)


def _openai_error(response: httpx.Response) -> dict:
    body = response.json()
    assert set(body) == {"error"}, body
    assert set(body["error"]) == {"message", "type", "param", "code"}
    return body["error"]


def _anthropic_error(response: httpx.Response) -> dict:
    body = response.json()
    assert body["type"] == "error" and body["request_id"] == response.headers["x-request-id"]
    return body["error"]


def test_malformed_json(dead_upstream_gateway):
    r = _post(f"{dead_upstream_gateway.url}/v1/chat/completions", b'{"model": "gpt-4o", ')
    assert r.status_code == 400
    assert _openai_error(r)["code"] == "invalid_json"
    r = _post(f"{dead_upstream_gateway.url}/v1/messages", b"[1, 2]")
    assert r.status_code == 400
    assert _anthropic_error(r)["type"] == "invalid_request_error"


def test_wrong_content_type(dead_upstream_gateway):
    r = _post(
        f"{dead_upstream_gateway.url}/v1/chat/completions", "model=gpt-4o", **{"content-type": "text/plain"}
    )
    assert r.status_code == 415
    assert "application/json" in _openai_error(r)["message"]


def test_body_over_the_limit(dead_upstream_gateway):
    big = b'{"model": "gpt-4o", "pad": "' + b"x" * 20_000 + b'"}'
    r = _post(f"{dead_upstream_gateway.url}/v1/chat/completions", big)
    assert r.status_code == 413
    assert _openai_error(r)["code"] == "request_too_large"
    r = _post(f"{dead_upstream_gateway.url}/v1/messages", big)
    assert r.status_code == 413
    assert _anthropic_error(r)["type"] == "request_too_large"


def test_unknown_model_with_both_sdks(dead_upstream_gateway):
    client = openai.OpenAI(base_url=f"{dead_upstream_gateway.url}/v1", api_key=MASTER_KEY, max_retries=0)
    with pytest.raises(openai.NotFoundError) as info:
        client.chat.completions.create(model="nope", messages=[{"role": "user", "content": "hi"}])
    assert "nope" in str(info.value)
    aclient = anthropic.Anthropic(base_url=dead_upstream_gateway.url, api_key=MASTER_KEY, max_retries=0)
    with pytest.raises(anthropic.NotFoundError):
        aclient.messages.create(model="gemini-x", max_tokens=5, messages=[{"role": "user", "content": "hi"}])


def test_missing_and_invalid_key(dead_upstream_gateway):
    client = openai.OpenAI(base_url=f"{dead_upstream_gateway.url}/v1", api_key="wrong-key", max_retries=0)
    with pytest.raises(openai.AuthenticationError) as info:
        client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "hi"}])
    assert "wrong-key" not in str(info.value)
    aclient = anthropic.Anthropic(base_url=dead_upstream_gateway.url, api_key="wrong-key", max_retries=0)
    with pytest.raises(anthropic.AuthenticationError):
        aclient.messages.create(model="claude-x", max_tokens=5, messages=[{"role": "user", "content": "hi"}])
    r = httpx.post(f"{dead_upstream_gateway.url}/v1/chat/completions", json={"model": "gpt-4o"})
    assert r.status_code == 401 and _openai_error(r)["code"] == "missing_api_key"


def test_upstream_unreachable_hides_the_upstream_key(dead_upstream_gateway):
    client = openai.OpenAI(base_url=f"{dead_upstream_gateway.url}/v1", api_key=MASTER_KEY, max_retries=0)
    with pytest.raises(openai.APIStatusError) as info:
        client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "hi"}])
    assert info.value.status_code == 502
    assert "unreachable" in info.value.message and "SECRET" not in info.value.message
    aclient = anthropic.Anthropic(base_url=dead_upstream_gateway.url, api_key=MASTER_KEY, max_retries=0)
    with pytest.raises(anthropic.APIStatusError) as ainfo:
        aclient.messages.create(model="claude-x", max_tokens=5, messages=[{"role": "user", "content": "hi"}])
    assert ainfo.value.status_code == 502


def test_an_endpoint_without_a_counterpart_is_explained(dead_upstream_gateway):
    r = _post(f"{dead_upstream_gateway.url}/v1/embeddings", b'{"model": "claude-x", "input": "hi"}')
    assert r.status_code == 400
    assert "no embeddings endpoint" in _openai_error(r)["message"]


def test_unknown_path_and_method(dead_upstream_gateway):
    r = httpx.get(f"{dead_upstream_gateway.url}/v1/nothing")
    assert r.status_code == 404 and _openai_error(r)
    r = httpx.get(f"{dead_upstream_gateway.url}/v1/chat/completions")
    assert r.status_code == 405


def test_health_models_and_request_id(dead_upstream_gateway):
    url = dead_upstream_gateway.url
    assert httpx.get(f"{url}/healthz").json() == {"status": "ok"}
    assert httpx.get(f"{url}/readyz").json()["status"] == "ready"
    client = openai.OpenAI(base_url=f"{url}/v1", api_key=MASTER_KEY, max_retries=0)
    assert [m.id for m in client.models.list()] == ["gpt-4o"]
    aclient = anthropic.Anthropic(base_url=url, api_key=MASTER_KEY, max_retries=0)
    assert [m.id for m in aclient.models.list()] == ["gpt-4o"]
    r = _post(f"{url}/v1/chat/completions", b"{", **{"x-request-id": "trace-123"})
    assert r.headers["x-request-id"] == "trace-123"
    assert float(r.headers["x-xvckit-overhead-ms"]) >= 0
    r = _post(f"{url}/v1/chat/completions", b"{", **{"x-request-id": "bad id\twith tab"})
    assert r.headers["x-request-id"].startswith("req_")
