"""Virtual keys on the gateway: every limit enforced exactly, on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import itertools
import json
import re
import time
from pathlib import Path

import anthropic
import httpx
import openai
import pytest

from conftest import MASTER_KEY
from test_gateway_e2e import HI, sim_providers
from xvckit.store import keys
from xvckit.store.keys import Limits
from xvckit.store.ledger import ledger_records, usage_report

# One output token costs $0.001 and input is free, so a request's cost is its output tokens.
PRICED = {"prices": {"gpt-4o-mini": {"input": 0, "output": 1000}}}


@pytest.fixture
def gw(sim, make_gateway, store_url):
    server = make_gateway({**sim_providers(sim), **PRICED}, storage_url=store_url)
    server.store = server.gateway.store
    server.sim = sim
    return server


def new_key(gw, **kwargs) -> tuple[keys.ApiKey, str]:
    key, raw = keys.create_key(gw.store, kwargs.pop("name", "test"), "test", **kwargs)
    asyncio.run_coroutine_threadsafe(gw.gateway.keyring.reload(), gw._loop).result(5)
    return key, raw


def flush_ledger(gw) -> None:
    """The ledger commits in the background; wait for what was recorded so far."""
    asyncio.run_coroutine_threadsafe(gw.gateway.ledger.flush(), gw._loop).result(10)


def client(gw, raw: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{gw.url}/v1", api_key=raw, max_retries=0)


def test_a_key_works_and_is_ledgered_under_its_team(gw):
    team = keys.create_team(gw.store, "blue", Limits(), "test")
    _, raw = new_key(gw, team="blue")
    client(gw, raw).chat.completions.create(model="gpt-4o-mini", messages=HI, max_tokens=5)
    flush_ledger(gw)
    rows = usage_report(gw.store, "team", None)
    assert [(r["team_id"], r["requests"]) for r in rows] == [(team.id, 1)]
    assert rows[0]["cost_usd"] == pytest.approx(0.005)


def test_a_streamed_claude_answer_is_ledgered_with_its_input_counted_once(gw):
    """Anthropic's `message_delta` repeats the input tokens (its usage is cumulative): the
    ledger takes them once."""
    key, raw = new_key(gw)
    claude = anthropic.Anthropic(base_url=gw.url, api_key=raw, max_retries=0)
    with claude.messages.stream(model="claude-sonnet-4-6", max_tokens=64, messages=HI) as stream:
        final = stream.get_final_message()
    flush_ledger(gw)
    (row,) = [row for row in ledger_records(gw.store) if row.key_id == key.id]
    assert (row.input_tokens, row.output_tokens) == (final.usage.input_tokens, final.usage.output_tokens)


async def test_fifty_concurrent_first_requests_on_a_one_request_budget(gw):
    _, raw = new_key(gw, limits=Limits(budget_usd=0.01, budget_period="day"))
    aclient = openai.AsyncOpenAI(base_url=f"{gw.url}/v1", api_key=raw, max_retries=0)

    async def one():
        try:
            await aclient.chat.completions.create(model="gpt-4o-mini", messages=HI, max_tokens=10)
            return "ok"
        except openai.RateLimitError as exc:
            assert "budget exhausted for key" in exc.message and "resets at" in exc.message
            assert exc.response.headers["x-should-retry"] == "false"  # waiting a minute will not help
            return "429"

    outcomes = await asyncio.gather(*(one() for _ in range(50)))
    await aclient.close()
    assert outcomes.count("ok") == 1 and outcomes.count("429") == 49
    assert gw.sim.count("chat_completions") == 1
    with pytest.raises(openai.RateLimitError):
        client(gw, raw).chat.completions.create(model="gpt-4o-mini", messages=HI, max_tokens=10)


def test_team_budget_is_shared_by_its_keys(gw):
    keys.create_team(gw.store, "red", Limits(budget_usd=0.01, budget_period="month"), "test")
    _, first = new_key(gw, team="red", name="a")
    _, second = new_key(gw, team="red", name="b")
    client(gw, first).chat.completions.create(model="gpt-4o-mini", messages=HI, max_tokens=10)
    with pytest.raises(openai.RateLimitError, match="budget exhausted for team"):
        client(gw, second).chat.completions.create(model="gpt-4o-mini", messages=HI, max_tokens=10)


def test_budget_spent_before_a_restart_still_counts(gw, sim, make_gateway, store_url):
    _, raw = new_key(gw, limits=Limits(budget_usd=0.01, budget_period="week"))
    client(gw, raw).chat.completions.create(model="gpt-4o-mini", messages=HI, max_tokens=10)
    flush_ledger(gw)  # as a stopping gateway does
    restarted = make_gateway({**sim_providers(sim), **PRICED}, storage_url=store_url)
    with pytest.raises(openai.RateLimitError):
        client(restarted, raw).chat.completions.create(model="gpt-4o-mini", messages=HI, max_tokens=10)


def test_requests_per_minute(gw):
    _, raw = new_key(gw, limits=Limits(rpm=3))
    c = client(gw, raw)
    for _ in range(3):
        c.chat.completions.create(model="gpt-4o-mini", messages=HI, max_tokens=2)
    with pytest.raises(openai.RateLimitError) as info:
        c.chat.completions.create(model="gpt-4o-mini", messages=HI, max_tokens=2)
    assert "requests per minute limit of 3" in info.value.message
    assert 50 <= int(info.value.response.headers["retry-after"]) <= 60


def test_tokens_per_minute_settle_to_the_real_count(gw):
    _, raw = new_key(gw, limits=Limits(tpm=100))
    c = client(gw, raw)
    c.chat.completions.create(model="gpt-4o-mini", messages=HI, max_tokens=50)  # ~70 estimated, ~36 real
    with pytest.raises(openai.RateLimitError, match="tokens per minute limit of 100"):
        c.chat.completions.create(model="gpt-4o-mini", messages=HI, max_tokens=50)


def test_models_outside_the_keys_list(gw):
    _, raw = new_key(gw, limits=Limits(models=("gpt-4o-*",)))
    client(gw, raw).chat.completions.create(model="gpt-4o-mini", messages=HI, max_tokens=2)
    an = anthropic.Anthropic(base_url=gw.url, api_key=raw, max_retries=0)
    with pytest.raises(anthropic.PermissionDeniedError, match="may not use model 'claude-x'"):
        an.messages.create(model="claude-x", max_tokens=5, messages=HI)


def test_expired_revoked_unknown_and_malformed_keys(gw):
    _, expired = new_key(gw, name="expired", expires_at=time.time() + 0.05)  # none is made expired
    time.sleep(0.1)
    with pytest.raises(openai.AuthenticationError, match="expired at") as caught:
        client(gw, expired).chat.completions.create(model="gpt-4o-mini", messages=HI)
    assert caught.value.response.headers["x-should-retry"] == "false"  # waiting will not cure it
    key, raw = new_key(gw)
    client(gw, raw).chat.completions.create(model="gpt-4o-mini", messages=HI, max_tokens=2)
    keys.revoke_key(gw.store, key.id, "test")  # as the CLI would: the gateway notices by itself
    deadline = time.monotonic() + 5
    while True:
        try:
            client(gw, raw).chat.completions.create(model="gpt-4o-mini", messages=HI, max_tokens=2)
        except openai.AuthenticationError as exc:
            assert "revoked" in exc.message
            break
        assert time.monotonic() < deadline, "a revoked key kept working"
        time.sleep(0.2)
    with pytest.raises(openai.AuthenticationError, match="invalid API key"):
        client(gw, "xvc-" + "A" * 43).chat.completions.create(model="gpt-4o-mini", messages=HI)
    with pytest.raises(openai.AuthenticationError, match="malformed API key"):
        client(gw, "sk-not-ours").chat.completions.create(model="gpt-4o-mini", messages=HI)


def test_rotation_replaces_the_secret(gw):
    key, old = new_key(gw)
    _, new = keys.rotate_key(gw.store, key.id, "test")
    asyncio.run_coroutine_threadsafe(gw.gateway.keyring.reload(), gw._loop).result(5)
    with pytest.raises(openai.AuthenticationError):
        client(gw, old).chat.completions.create(model="gpt-4o-mini", messages=HI)
    client(gw, new).chat.completions.create(model="gpt-4o-mini", messages=HI, max_tokens=2)


def test_metrics_exposition(gw):
    _, raw = new_key(gw, limits=Limits(budget_usd=1.0, budget_period="day"))
    client(gw, raw).chat.completions.create(model="gpt-4o-mini", messages=HI, max_tokens=4)
    text = httpx.get(f"{gw.url}/metrics", headers={"authorization": f"Bearer {MASTER_KEY}"}).text
    assert 'xvckit_requests_total{key="' in text and 'model="gpt-4o-mini"' in text
    assert "xvckit_overhead_seconds_bucket" in text and "xvckit_time_to_first_token_seconds" in text
    assert 'xvckit_tokens_total{kind="output",model="gpt-4o-mini"} 4.0' in text
    assert "xvckit_budget_remaining_usd" in text and "xvckit_in_flight_requests 0.0" in text
    assert raw not in text and MASTER_KEY not in text


def test_ledger_backlog_in_readyz_and_metrics_and_a_dead_writer_restarts(gw, monkeypatch):
    monkeypatch.setattr("xvckit.store.ledger_feed.RESTART_DELAY_S", 0.2)
    client(gw, MASTER_KEY).chat.completions.create(model="gpt-4o-mini", messages=HI, max_tokens=4)
    flush_ledger(gw)
    assert httpx.get(f"{gw.url}/readyz").json()["ledger_backlog_bytes"] == 0
    assert (
        "xvckit_ledger_backlog_bytes 0.0"
        in httpx.get(f"{gw.url}/metrics", headers={"authorization": f"Bearer {MASTER_KEY}"}).text
    )
    ledger = gw.gateway.ledger
    ledger._proc.kill()  # a crash of the writer process, not of the gateway
    deadline = time.monotonic() + 10
    while ledger.writer_running and time.monotonic() < deadline:
        time.sleep(0.01)
    ready = httpx.get(f"{gw.url}/readyz").json()
    assert any("usage ledger" in line for line in ready.get("degraded", [])), ready
    client(gw, MASTER_KEY).chat.completions.create(model="gpt-4o-mini", messages=HI, max_tokens=4)
    flush_ledger(gw)  # committed by the writer started in its place
    assert ledger.restarts == 1 and "degraded" not in httpx.get(f"{gw.url}/readyz").json()
    assert usage_report(gw.store, None, None)[0]["requests"] == 2


def test_grafana_dashboard_reads_metrics_the_gateway_exports(gw):
    _, raw = new_key(gw, limits=Limits(budget_usd=1.0, budget_period="day"))
    client(gw, raw).chat.completions.create(model="gpt-4o-mini", messages=HI, stream=False, max_tokens=4)
    exported = httpx.get(f"{gw.url}/metrics", headers={"authorization": f"Bearer {MASTER_KEY}"}).text
    dashboard = json.loads(
        (Path(__file__).parent.parent / "deploy" / "grafana" / "xvckit-gateway.json").read_text()
    )
    # the gateway's own panels, above the rows of what the monitor and the repository KPIs add
    # (test_dashboard.py checks those against a gateway that has them)
    own = list(itertools.takewhile(lambda panel: panel["type"] != "row", dashboard["panels"]))
    used = set(re.findall(r"xvckit_[a-z_]+", json.dumps(own))) - {"xvckit_gateway"}
    assert used, "the dashboard queries no xvckit metric"
    families = {re.sub(r"_(bucket|sum|count)$", "", name) for name in used}
    missing = {name for name in families if f"# TYPE {name} " not in exported}
    assert not missing, f"dashboard queries metrics the gateway does not export: {missing}"


def test_a_reused_request_id_is_answered_and_ledgered_for_each_request(gw):
    """A caller's `x-request-id` comes back on its answer; sent twice (a retry), it is two
    requests in the ledger, each under the gateway's own id."""
    _, raw = new_key(gw)
    answers = [
        client(gw, raw).chat.completions.with_raw_response.create(
            model="gpt-4o-mini", messages=HI, max_tokens=5, extra_headers={"x-request-id": "trace-42"}
        )
        for _ in range(2)
    ]
    assert [answer.headers["x-request-id"] for answer in answers] == ["trace-42", "trace-42"]
    flush_ledger(gw)
    records = ledger_records(gw.store)
    assert [r.client_request_id for r in records] == ["trace-42", "trace-42"]
    assert len({r.request_id for r in records}) == 2 and all(r.request_id.startswith("req_") for r in records)
