"""Issue 19, the proxy's holes: every request settles its reservation and writes one ledger row
whatever ends it (hole 5), streams are charged for what they sent (3), budgets cap the output
they cannot pay for (4), a request no lane can ever fit is refused at once (7), and the smaller
leaks and 500s of holes 13 and 14. Through the real HTTP server, the ledger on SQLite and
PostgreSQL."""

from __future__ import annotations

import asyncio
import functools
import logging
import time

import httpx
import orjson
import pytest

from conftest import MASTER_KEY
from servers import BackgroundServer
from test_gateway_e2e import HI, sim_providers
from test_gateway_errors import _anthropic_error, _openai_error
from test_gateway_keys import flush_ledger, new_key
from xvckit.asgi import JSON, read_body
from xvckit.gateway import app as gateway_app
from xvckit.gateway import crossing
from xvckit.gateway.admission_redis import RedisAdmission
from xvckit.gateway.pacing_redis import RedisPacer
from xvckit.gateway.token_estimate import count_text
from xvckit.store.keys import Limits
from xvckit.store.ledger import ledger_records

CLAUDE = "claude-sonnet-4-5"
# One output token costs $0.001 and input is free: a request's cost is its output tokens / 1000.
PRICED = {"prices": {"gpt-4o-mini": {"input": 0, "output": 1000}, CLAUDE: {"input": 0, "output": 1000}}}


def gateway(make_gateway, sim, store_url: str, **extra):
    server = make_gateway({**sim_providers(sim), **PRICED, **extra}, storage_url=store_url)
    server.store, server.sim = server.gateway.store, sim
    return server


@pytest.fixture
def gw(sim, make_gateway, store_url):
    return gateway(make_gateway, sim, store_url)


@pytest.fixture
def slow_gw(sim_factory, make_gateway, store_url):
    """A provider that sends one stream event every 10 ms."""
    sim = sim_factory(rpm=10_000, tpm=100_000_000, chunk_delay_ms=10)
    return gateway(make_gateway, sim, store_url)


def post(gw, path: str, body: dict | bytes, key: str = MASTER_KEY, **headers: str) -> httpx.Response:
    content = body if isinstance(body, bytes) else orjson.dumps(body)
    headers = {"authorization": f"Bearer {key}", "content-type": "application/json", **headers}
    return httpx.post(f"{gw.url}{path}", content=content, headers=headers, timeout=10)


def rows(gw, wanted: int = 1, timeout: float = 10.0) -> list:
    """The ledger's records, once it has `wanted` of them (a request ends after its client may)."""
    deadline = time.monotonic() + timeout
    while True:
        flush_ledger(gw)
        found = ledger_records(gw.store)
        if len(found) >= wanted or time.monotonic() > deadline:
            return found
        time.sleep(0.05)


def budget_left(gw, key_id: str) -> float:
    return gw.gateway.admission.remaining()[f"key:{key_id}"]


# --- hole 5: every exit settles and is ledgered once -----------------------------------------

TOOL_RESULT_5 = {
    "model": "gpt-4o-mini",
    "max_tokens": 10,
    "messages": [{"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t1", "content": 5}]}],
}


def test_a_field_of_the_wrong_type_is_a_400_settled_and_ledgered(gw):
    key, raw = new_key(gw, limits=Limits(budget_usd=1.0, budget_period="day"))
    r = post(gw, "/v1/messages", TOOL_RESULT_5, raw)  # Anthropic dialect to an OpenAI model: translated
    assert r.status_code == 400
    assert "'messages[].content[].content' must be a string or a list" in _anthropic_error(r)["message"]
    r = post(gw, "/v1/chat/completions", {"model": CLAUDE, "messages": [{"role": "user", "content": 5}]}, raw)
    assert r.status_code == 400 and _openai_error(r)["code"] == "invalid_request"
    records = rows(gw, 2)
    assert [(x.status, x.error_type, x.key_id) for x in records] == [(400, "invalid_request", key.id)] * 2
    assert budget_left(gw, key.id) == pytest.approx(1.0)  # both reservations taken back
    assert gw.sim.count("chat_completions") + gw.sim.count("messages") == 0


def test_an_unexpected_error_is_a_500_in_the_callers_dialect_settled_and_ledgered(gw, monkeypatch):
    def broken(*args, **kwargs):
        raise RuntimeError("a bug")

    monkeypatch.setattr(crossing, "request_body", broken)
    key, raw = new_key(gw, limits=Limits(budget_usd=1.0, budget_period="day"))
    r = post(gw, "/v1/messages", {**TOOL_RESULT_5, "messages": HI}, raw)
    assert r.status_code == 500 and _anthropic_error(r)["type"] == "api_error"
    r = post(gw, "/v1/chat/completions", {"model": CLAUDE, "messages": HI}, raw)
    assert r.status_code == 500 and _openai_error(r)["code"] == "internal_error"
    assert "a bug" not in r.text
    records = rows(gw, 2)
    assert [(x.status, x.error_type) for x in records] == [(500, "internal_error")] * 2
    assert budget_left(gw, key.id) == pytest.approx(1.0)


def test_a_failure_mid_stream_ends_the_stream_and_charges_what_it_sent(slow_gw, monkeypatch):
    """A bug that strikes after the answer began: the client's stream ends with an error event in
    its dialect, and the ledger has the request once, with the output it was sent."""
    real = crossing.stream_translator

    def breaks_on_the_sixth_event(*args):
        translate, seen = real(*args), []

        def feed(event: bytes) -> bytes:
            seen.append(event)
            if len(seen) == 6:
                raise RuntimeError("a bug")
            return translate(event)

        return feed

    monkeypatch.setattr(crossing, "stream_translator", breaks_on_the_sixth_event)
    key, raw = new_key(slow_gw, limits=Limits(budget_usd=1.0, budget_period="day"))
    body = {"model": CLAUDE, "messages": HI, "max_tokens": 100, "stream": True}
    r = post(slow_gw, "/v1/chat/completions", body, raw, **{"x-sim-output-tokens": "60"})
    assert r.status_code == 200
    events = [e for e in r.text.split("\n\n") if e]
    assert any('"content"' in e for e in events[:-1])
    assert orjson.loads(events[-1].removeprefix("data: "))["error"]["code"] == "internal_error"
    (record,) = rows(slow_gw)
    assert (record.status, record.error_type) == (500, "internal_error")
    assert record.output_tokens > 0 and record.cost_usd > 0
    assert budget_left(slow_gw, key.id) == pytest.approx(1.0 - record.cost_usd)


# --- hole 3: streams are charged for what they sent ------------------------------------------


def read_and_leave(gw, path: str, body: dict, key: str, events: int) -> str:
    """Read `events` stream events, then close the connection; the text received."""
    headers = {
        "authorization": f"Bearer {key}",
        "content-type": "application/json",
        "x-sim-output-tokens": "400",
    }
    text = []
    with httpx.stream(
        "POST", f"{gw.url}{path}", content=orjson.dumps(body), headers=headers, timeout=10
    ) as r:
        assert r.status_code == 200
        for line in r.iter_lines():
            if line.startswith("data: {"):
                chunk = orjson.loads(line[6:])
                if "choices" in chunk:  # OpenAI
                    text += [c["delta"].get("content") or "" for c in chunk["choices"]]
                else:  # Anthropic
                    text.append((chunk.get("delta") or {}).get("text") or "")
                events -= 1
                if not events:
                    break
    return "".join(text)


@pytest.mark.parametrize(
    ("path", "model"),
    [("/v1/chat/completions", "gpt-4o-mini"), ("/v1/messages", CLAUDE)],
    ids=["openai", "anthropic"],
)
def test_a_client_that_leaves_a_stream_is_charged_for_what_it_received(
    slow_gw, tiktoken_encodings, path, model
):
    key, raw = new_key(slow_gw, limits=Limits(budget_usd=5.0, budget_period="day"))
    body = {"model": model, "messages": HI, "max_tokens": 1000, "stream": True}
    received = read_and_leave(slow_gw, path, body, raw, events=30)
    (record,) = rows(slow_gw)
    assert (record.status, record.error_type) == (499, "client_disconnected")
    assert record.input_tokens > 0  # the provider's figure (Anthropic's message_start) or the estimate
    assert record.output_tokens >= count_text(received, model) - 1 > 0
    assert record.output_tokens < 400  # what was streamed, not the whole answer
    assert record.cost_usd == pytest.approx(record.output_tokens / 1000)
    assert budget_left(slow_gw, key.id) == pytest.approx(5.0 - record.cost_usd)


@pytest.mark.parametrize(
    ("path", "model"),
    [("/v1/chat/completions", "gpt-4o-mini"), ("/v1/messages", "gpt-4o-mini")],
    ids=["own", "crossed"],
)
def test_a_stream_the_upstream_breaks_off_is_charged_for_what_it_sent(gw, path, model):
    key, raw = new_key(gw, limits=Limits(budget_usd=5.0, budget_period="day"))
    body = {"model": model, "messages": HI, "max_tokens": 1000, "stream": True}
    r = post(gw, path, body, raw, **{"x-sim-fail": "midstream", "x-sim-output-tokens": "300"})
    assert r.status_code == 200 and '"error"' in r.text.rsplit("\n\n", 2)[-2]
    (record,) = rows(gw)
    assert record.status == 200 and record.error_type.startswith("upstream")
    assert record.input_tokens > 0 and 0 < record.output_tokens < 300
    assert record.cost_usd > 0 and budget_left(gw, key.id) == pytest.approx(5.0 - record.cost_usd)


# --- hole 4: a budget caps the output it cannot pay for --------------------------------------


def test_a_budget_caps_the_output_and_is_never_overspent(gw):
    """$1.10 pays for 1,100 output tokens: a request that names no limit (or a larger one) is
    cut to what is left, says so, and spend never passes the budget."""
    key, raw = new_key(gw, limits=Limits(budget_usd=1.1, budget_period="day"))
    long = {"x-sim-output-tokens": "5000"}
    r = post(gw, "/v1/chat/completions", {"model": "gpt-4o-mini", "messages": HI}, raw, **long)
    assert r.status_code == 200
    capped = int(r.headers["x-xvckit-max-tokens-capped"])
    assert 1098 <= capped <= 1100 and r.json()["usage"]["completion_tokens"] == capped
    assert r.json()["choices"][0]["finish_reason"] == "length"
    r = post(gw, "/v1/messages", {"model": "gpt-4o-mini", "messages": HI, "max_tokens": 4000}, raw, **long)
    assert r.status_code == 429 and _anthropic_error(r)["type"] == "rate_limit_error"
    assert "budget exhausted" in _anthropic_error(r)["message"]
    records = rows(gw, 2)
    assert sum(x.cost_usd for x in records) <= 1.1
    assert budget_left(gw, key.id) >= 0


async def test_concurrent_requests_stay_within_the_budget(gw):
    """Answers of 3,000 tokens ($3) against $2.50: before the caps, two requests reserving
    1,024 tokens each were admitted and spent $6."""
    key, raw = new_key(gw, limits=Limits(budget_usd=2.5, budget_period="day"))
    headers = {"authorization": f"Bearer {raw}", "x-sim-output-tokens": "3000"}
    async with httpx.AsyncClient(base_url=gw.url, headers=headers, timeout=10) as client:

        async def one(n: int) -> httpx.Response:
            path, model = ("/v1/messages", CLAUDE) if n % 2 else ("/v1/chat/completions", "gpt-4o-mini")
            body = {"model": model, "messages": HI, **({"max_tokens": 1000} if n % 2 else {})}
            return await client.post(path, json=body)

        answers = await asyncio.gather(*(one(n) for n in range(8)))
    served = [r for r in answers if r.status_code == 200]
    assert {r.status_code for r in answers} <= {200, 429} and 1 <= len(served) < 8
    records = rows(gw, 8)
    assert sum(x.cost_usd for x in records) <= 2.5
    assert budget_left(gw, key.id) >= 0


def test_the_cap_holds_with_admission_shared_through_redis(
    sim, make_gateway, store_url, redis_url, redis_prefix, monkeypatch
):
    """Replicas share budgets through Redis (hole 16): its refusal says what is left the same way."""
    gw = gateway(
        make_gateway, sim, store_url, redis=shared_through_redis(monkeypatch, redis_url, redis_prefix)
    )
    assert isinstance(gw.gateway.admission, RedisAdmission)
    _, raw = new_key(gw, limits=Limits(budget_usd=0.3, budget_period="day"))
    r = post(
        gw,
        "/v1/chat/completions",
        {"model": "gpt-4o-mini", "messages": HI},
        raw,
        **{"x-sim-output-tokens": "900"},
    )
    assert r.status_code == 200 and 298 <= int(r.headers["x-xvckit-max-tokens-capped"]) <= 300
    r = post(gw, "/v1/chat/completions", {"model": "gpt-4o-mini", "messages": HI}, raw)
    assert r.status_code == 429
    assert sum(x.cost_usd for x in rows(gw)) <= 0.3


def test_a_team_budget_caps_too_and_the_key_without_one_is_not_capped(gw):
    from xvckit.store import keys

    keys.create_team(gw.store, "green", Limits(budget_usd=0.2, budget_period="month"), "test")
    _, member = new_key(gw, team="green")
    r = post(gw, "/v1/chat/completions", {"model": "gpt-4o-mini", "messages": HI, "max_tokens": 500}, member)
    assert r.status_code == 200 and 198 <= int(r.headers["x-xvckit-max-tokens-capped"]) <= 200
    r = post(gw, "/v1/chat/completions", {"model": "gpt-4o-mini", "messages": HI, "max_tokens": 500})
    assert r.status_code == 200 and "x-xvckit-max-tokens-capped" not in r.headers


# --- hole 7: a request no lane can fit is refused at once ------------------------------------


def shared_through_redis(monkeypatch, redis_url: str, prefix: str) -> dict:
    """The `redis` settings of gateways sharing admission and pacing there, under `prefix`."""
    monkeypatch.setattr(gateway_app, "RedisAdmission", functools.partial(RedisAdmission, prefix=prefix))
    monkeypatch.setattr(gateway_app, "RedisPacer", functools.partial(RedisPacer, prefix=f"{prefix}pace:"))
    return {"url": redis_url}


def test_a_request_larger_than_the_lanes_limit_is_refused_at_once_and_blocks_no_one(sim, make_gateway):
    refused_at_once(sim, make_gateway)


def test_the_same_when_replicas_pace_through_redis(sim, make_gateway, redis_url, redis_prefix, monkeypatch):
    refused_at_once(sim, make_gateway, redis=shared_through_redis(monkeypatch, redis_url, redis_prefix))


def refused_at_once(sim, make_gateway, **extra) -> None:
    config = {
        **sim_providers(sim),
        "models": [{"name": "gpt-4.1", "provider": "sim-oa", "tpm": 450_000}],
        "gateway": {"queue_timeout_s": 120},
        **extra,
    }
    gw = make_gateway(config)
    r = post(gw, "/v1/chat/completions", {"model": "gpt-4.1", "messages": HI, "max_tokens": 30_000})
    assert r.status_code == 200  # the window is no longer empty
    for limit in (500_000, 2**63 - 1):
        started = time.monotonic()
        r = post(gw, "/v1/chat/completions", {"model": "gpt-4.1", "messages": HI, "max_tokens": limit})
        assert r.status_code == 400 and time.monotonic() - started < 2
        error = _openai_error(r)
        assert error["code"] == "exceeds_rate_limit" and "450000 tokens a minute" in error["message"]
    r = post(gw, "/v1/chat/completions", {"model": "gpt-4.1", "messages": HI, "max_tokens": 10})
    assert r.status_code == 200


def test_an_estimate_is_capped_at_the_models_context_window(sim, make_gateway):
    """gpt-4o-mini has a 128k window: max_tokens 2**63-1 is estimated at the window, fits a 450k
    lane, and is answered at once (by the provider, which refuses it: more than the model's
    output maximum)."""
    config = {
        **sim_providers(sim),
        "models": [{"name": "gpt-4o-mini", "provider": "sim-oa", "tpm": 450_000}],
        "gateway": {"queue_timeout_s": 120},
    }
    gw = make_gateway(config)
    r = post(gw, "/v1/chat/completions", {"model": "gpt-4o-mini", "messages": HI, "max_tokens": 100})
    assert r.status_code == 200  # the window is no longer empty: all of 450k no longer fits
    started = time.monotonic()
    r = post(gw, "/v1/chat/completions", {"model": "gpt-4o-mini", "messages": HI, "max_tokens": 2**63 - 1})
    assert r.status_code == 400 and "max_tokens is too large" in _openai_error(r)["message"]
    assert time.monotonic() - started < 2


# --- holes 13 and 14: smaller leaks and 500s -------------------------------------------------


@pytest.fixture
def access_log(caplog):
    caplog.set_level(logging.INFO, logger="xvckit.access")
    return lambda: [r.getMessage() for r in caplog.records if r.name == "xvckit.access"]


def test_a_model_name_with_control_characters_is_refused_and_the_log_escapes_names(gw, access_log):
    r = post(gw, "/v1/chat/completions", {"model": "gpt-4o-mini\nreq_x chat model=forged", "messages": HI})
    assert r.status_code == 400 and _openai_error(r)["code"] == "invalid_model"
    r = post(gw, "/v1/messages", {"model": "claude-x\r\nforged", "max_tokens": 5, "messages": HI})
    assert r.status_code == 400 and _anthropic_error(r)["type"] == "invalid_request_error"
    r = post(gw, "/v1/messages", {"model": "claude-x status=200", "max_tokens": 5, "messages": HI})
    assert r.status_code == 200  # a glob route takes it: printable, but the log quotes it
    lines = access_log()
    assert len(lines) == 3 and not any("\n" in line or "\r" in line for line in lines)
    assert "model='claude-x status=200'" in lines[2]


def test_a_model_name_longer_than_any_real_one_is_refused(gw):
    """Client-chosen names become routing-cache keys, pacing lanes and a response header."""
    longest = "claude-" + "x" * 249  # 256 characters: a glob route takes it
    r = post(gw, "/v1/messages", {"model": longest, "max_tokens": 5, "messages": HI})
    assert r.status_code == 200
    r = post(gw, "/v1/messages", {"model": longest + "x", "max_tokens": 5, "messages": HI})
    assert r.status_code == 400 and "longer than 256 characters" in _anthropic_error(r)["message"]


def test_a_failed_authentication_is_logged_as_anonymous(gw, access_log):
    r = post(gw, "/v1/chat/completions", {"model": "gpt-4o-mini", "messages": HI}, key="xvc-wrong")
    assert r.status_code == 401
    r = post(gw, "/v1/chat/completions", {"model": "gpt-4o-mini", "messages": HI, "max_tokens": 5})
    assert r.status_code == 200
    first, second = access_log()
    assert "key=anonymous status=401" in first and "key=master status=200" in second


def test_the_response_cache_is_not_shared_between_keys_without_a_team(gw):
    _, alice = new_key(gw, name="alice")
    _, bob = new_key(gw, name="bob")
    body = {
        "model": "gpt-4o-mini",
        "messages": [{"role": "user", "content": "my secret plan"}],
        "max_tokens": 5,
    }
    tags = [
        post(gw, "/v1/chat/completions", body, k, **{"x-xvckit-cache": "on"})
        for k in (alice, bob, MASTER_KEY)
    ]
    assert [r.headers["x-xvckit-cache"] for r in tags] == ["miss", "miss", "miss"]
    again = post(gw, "/v1/chat/completions", body, bob, **{"x-xvckit-cache": "on"})
    assert again.headers["x-xvckit-cache"] == "hit"  # each caller still has its own entries
    assert gw.sim.count("chat_completions") == 3


def test_a_batch_keys_requests_cannot_raise_their_priority(gw, monkeypatch):
    seen = []
    call = gw.gateway.dispatcher.call

    async def spy(scope, requested, request_for, tokens, priority, *rest):
        seen.append(priority)
        return await call(scope, requested, request_for, tokens, priority, *rest)

    monkeypatch.setattr(gw.gateway.dispatcher, "call", spy)
    _, batch = new_key(gw, priority="batch")
    body = {"model": "gpt-4o-mini", "messages": HI, "max_tokens": 5}
    for key, asked in [(batch, "interactive"), (batch, None), (MASTER_KEY, "batch"), (MASTER_KEY, None)]:
        extra = {"x-xvckit-priority": asked} if asked else {}
        assert post(gw, "/v1/chat/completions", body, key, **extra).status_code == 200
    assert seen == [0, 0, 0, 1]


class _HtmlUpstream:
    """A provider behind a misbehaving proxy: 200s whose bodies are not the API's answers."""

    def __init__(self) -> None:
        self.bodies = [
            (b"text/html", b"<html><body>Gateway login</body></html>"),
            (JSON, b'{"id": "chatcmpl-1", "choices": 5}'),
            (JSON, b'{"id": "chatcmpl-1", "choi'),
        ]
        self.served = 0

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            return
        await read_body(scope, receive, 1 << 20)
        content_type, body = self.bodies[self.served % len(self.bodies)]
        self.served += 1
        await send(
            {"type": "http.response.start", "status": 200, "headers": [(b"content-type", content_type)]}
        )
        await send({"type": "http.response.body", "body": body})


def test_an_upstream_200_that_is_not_an_answer_is_a_502_ledgered_as_such(make_gateway, store_url):
    upstream = _HtmlUpstream()
    with BackgroundServer(upstream) as server:
        providers = [
            {"name": "odd", "kind": "openai", "base_url": f"{server.url}/v1", "api_keys": ["sk-x"]},
            {"name": "odd-an", "kind": "anthropic", "base_url": server.url, "api_keys": ["sk-x"]},
        ]
        models = [{"name": "gpt-4o-mini", "provider": "odd"}, {"name": "claude-*", "provider": "odd-an"}]
        gw = make_gateway({"providers": providers, "models": models}, storage_url=store_url)
        gw.store = gw.gateway.store
        body = {"model": "gpt-4o-mini", "messages": HI, "max_tokens": 5}
        for _ in range(3):
            r = post(gw, "/v1/chat/completions", body)
            assert r.status_code == 502 and _openai_error(r)["code"] == "upstream_malformed"
        for _ in range(3):
            r = post(gw, "/v1/messages", {**body, "model": "claude-x"})
            assert r.status_code == 502 and _anthropic_error(r)["type"] == "api_error"
        r = post(gw, "/v1/messages", body)  # crossed: the OpenAI upstream's answer is translated
        assert r.status_code == 502 and "not a valid answer" in _anthropic_error(r)["message"]
        records = rows(gw, 7)
    assert [(x.status, x.error_type) for x in records] == [(502, "upstream_malformed")] * 7


def test_json_nested_too_deep_is_a_400(gw):
    deep = "[" * 500 + "]" * 500
    chat = (
        b'{"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}], "tools": ' + deep.encode()
    )
    r = post(gw, "/v1/chat/completions", chat + b"}", **{"x-xvckit-cache": "on"})
    assert r.status_code == 400 and "nested deeper than 252 levels" in _openai_error(r)["message"]
    messages = (
        b'{"model": "gpt-4o-mini", "max_tokens": 5, "metadata": ' + deep.encode() + b', "messages": []}'
    )
    r = post(gw, "/v1/messages", messages)
    assert r.status_code == 400 and _anthropic_error(r)["type"] == "invalid_request_error"
    fine = "[" * 200 + "]" * 200
    body = {"model": "gpt-4o-mini", "messages": HI, "max_tokens": 5, "metadata": orjson.loads(fine)}
    r = post(gw, "/v1/chat/completions", body)
    assert r.status_code == 200
    assert [x.status for x in rows(gw, 3)] == [400, 400, 200]
