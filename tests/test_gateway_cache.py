"""Idempotency-Key and the exact response cache in the gateway, with the official SDKs as clients."""

from __future__ import annotations

import asyncio
import uuid

import anthropic
import httpx
import openai
import pytest

from conftest import MASTER_KEY
from test_gateway_e2e import HI, sim_providers
from xvckit.store.ledger import ledger_records

# One output token costs $0.001 and input is free, so a request's cost is its output tokens.
PRICED = {"prices": {"gpt-4o-mini": {"input": 0, "output": 1000}}}
CACHE_ON = {"x-xvckit-cache": "on"}


def _oa(gw, **kw) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{gw.url}/v1", api_key=MASTER_KEY, max_retries=0, **kw)


def _cached_stream(client: openai.OpenAI) -> list:
    """HI as a cached stream that asks for its usage chunk, read to the end."""
    stream = client.chat.completions.create(
        model="gpt-4o-mini",
        messages=HI,
        max_tokens=8,
        extra_headers=CACHE_ON,
        stream=True,
        stream_options={"include_usage": True},
    )
    return list(stream)


def _an(gw) -> anthropic.Anthropic:
    return anthropic.Anthropic(base_url=gw.url, api_key=MASTER_KEY, max_retries=0)


def flush_ledger(gw) -> None:
    asyncio.run_coroutine_threadsafe(gw.gateway.ledger.flush(), gw._loop).result(10)


def _config(sim, **model_settings) -> dict:
    config = sim_providers(sim)
    config["models"] = [{**m, **model_settings} for m in config["models"]]
    return {**config, **PRICED}


@pytest.fixture
def gw(sim, make_gateway):
    server = make_gateway(_config(sim))
    server.sim = sim
    return server


def _idem(key: str) -> dict:
    return {"Idempotency-Key": key}


# --- Idempotency-Key ---------------------------------------------------------------------------


def test_an_idempotent_retry_gets_the_first_answer_without_an_upstream_call(gw):
    client = _oa(gw)
    first = client.chat.completions.with_raw_response.create(
        model="gpt-4o-mini", messages=HI, max_tokens=8, extra_headers=_idem("retry-1")
    )
    again = client.chat.completions.with_raw_response.create(
        model="gpt-4o-mini", messages=HI, max_tokens=8, extra_headers=_idem("retry-1")
    )
    assert gw.sim.count("chat_completions") == 1
    assert again.parse().id == first.parse().id
    assert again.parse().choices[0].message.content == first.parse().choices[0].message.content
    assert again.headers["x-xvckit-cache"] == "idempotent-replay"


def test_an_idempotent_streamed_retry_is_replayed_as_sse(gw):
    client = _oa(gw)

    def streamed() -> str:
        stream = client.chat.completions.create(
            model="gpt-4o-mini", messages=HI, max_tokens=8, extra_headers=_idem("s-1"), stream=True
        )
        return "".join(chunk.choices[0].delta.content or "" for chunk in stream if chunk.choices)

    assert streamed() == streamed()
    assert gw.sim.count("chat_completions") == 1
    # the same key for the request without `stream` is another body
    with pytest.raises(openai.UnprocessableEntityError):
        client.chat.completions.create(
            model="gpt-4o-mini", messages=HI, max_tokens=8, extra_headers=_idem("s-1")
        )


def test_the_same_key_with_another_body_is_422(gw):
    client = _oa(gw)
    client.chat.completions.create(model="gpt-4o-mini", messages=HI, max_tokens=8, extra_headers=_idem("k2"))
    with pytest.raises(openai.UnprocessableEntityError) as caught:
        client.chat.completions.create(
            model="gpt-4o-mini", messages=HI, max_tokens=9, extra_headers=_idem("k2")
        )
    assert "Idempotency-Key" in str(caught.value)
    assert gw.sim.count("chat_completions") == 1


def test_a_streamed_idempotent_messages_request_is_replayed(gw):
    client = _an(gw)
    kwargs = {"model": "claude-3-5-haiku-latest", "max_tokens": 16, "messages": HI}
    with client.messages.stream(**kwargs, extra_headers=_idem("an-1")) as stream:
        first = stream.get_final_message()
    with client.messages.stream(**kwargs, extra_headers=_idem("an-1")) as stream:
        again = stream.get_final_message()
    assert gw.sim.count("messages") == 1
    assert again.id == first.id
    assert again.content[0].text == first.content[0].text


async def test_concurrent_requests_with_one_key_make_one_upstream_call(sim_factory, make_gateway):
    sim = sim_factory(rpm=10_000, tpm=100_000_000, latency_ms=200)
    gw = make_gateway(_config(sim))
    client = openai.AsyncOpenAI(base_url=f"{gw.url}/v1", api_key=MASTER_KEY, max_retries=0)
    answers = await asyncio.gather(
        *(
            client.chat.completions.create(
                model="gpt-4o-mini", messages=HI, max_tokens=8, extra_headers=_idem("together")
            )
            for _ in range(8)
        )
    )
    await client.close()
    assert sim.count("chat_completions") == 1
    assert len({a.id for a in answers}) == 1


def test_a_failed_request_leaves_its_key_free(gw):
    client = _oa(gw)
    with pytest.raises(openai.NotFoundError):  # a gateway error: not kept for the key
        client.chat.completions.create(
            model="no-such-model", messages=HI, max_tokens=8, extra_headers=_idem("fails")
        )
    client.chat.completions.create(
        model="gpt-4o-mini", messages=HI, max_tokens=8, extra_headers=_idem("fails")
    )
    assert gw.sim.count("chat_completions") == 1


# --- the response cache ------------------------------------------------------------------------


def test_cache_on_by_header_answers_the_second_request(gw):
    client = _oa(gw)
    first = client.chat.completions.with_raw_response.create(
        model="gpt-4o-mini", messages=HI, max_tokens=8, extra_headers=CACHE_ON
    )
    second = client.chat.completions.with_raw_response.create(
        model="gpt-4o-mini", messages=HI, max_tokens=8, extra_headers=CACHE_ON
    )
    assert gw.sim.count("chat_completions") == 1
    assert first.headers["x-xvckit-cache"] == "miss"
    assert second.headers["x-xvckit-cache"] == "hit"
    assert second.parse().choices[0].message.content == first.parse().choices[0].message.content
    assert second.parse().usage.completion_tokens == first.parse().usage.completion_tokens
    # without the header (model setting off) the cache is not used
    client.chat.completions.create(model="gpt-4o-mini", messages=HI, max_tokens=8)
    assert gw.sim.count("chat_completions") == 2
    # an alias of the same upstream model shares the entry
    client.chat.completions.create(model="fast", messages=HI, max_tokens=8, extra_headers=CACHE_ON)
    assert gw.sim.count("chat_completions") == 2


def test_a_hit_is_replayed_as_a_stream_openai(gw):
    client = _oa(gw)
    whole = client.chat.completions.create(
        model="gpt-4o-mini", messages=HI, max_tokens=8, extra_headers=CACHE_ON
    )
    chunks = _cached_stream(client)
    assert gw.sim.count("chat_completions") == 1
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == (
        whole.choices[0].message.content
    )
    assert chunks[-1].usage.completion_tokens == whole.usage.completion_tokens


def test_a_streamed_answer_is_cached_and_replayed_whole_and_streamed_openai(gw):
    client = _oa(gw)
    streamed = list(
        client.chat.completions.create(
            model="gpt-4o-mini", messages=HI, max_tokens=8, extra_headers=CACHE_ON, stream=True
        )
    )
    text = "".join(c.choices[0].delta.content or "" for c in streamed if c.choices)
    whole = client.chat.completions.create(
        model="gpt-4o-mini", messages=HI, max_tokens=8, extra_headers=CACHE_ON
    )
    assert whole.choices[0].message.content == text
    assert whole.usage.completion_tokens > 0  # the hidden usage chunk came back from the entry
    again = _cached_stream(client)
    assert "".join(c.choices[0].delta.content or "" for c in again if c.choices) == text
    assert again[-1].usage.completion_tokens == whole.usage.completion_tokens
    assert gw.sim.count("chat_completions") == 1


def test_a_hit_is_replayed_as_a_stream_anthropic(gw):
    client = _an(gw)
    kwargs = {"model": "claude-3-5-haiku-latest", "max_tokens": 16, "messages": HI}
    whole = client.messages.create(**kwargs, extra_headers=CACHE_ON)
    with client.messages.stream(**kwargs, extra_headers=CACHE_ON) as stream:
        replayed = stream.get_final_message()
    assert gw.sim.count("messages") == 1
    assert replayed.content[0].text == whole.content[0].text
    assert replayed.usage.output_tokens == whole.usage.output_tokens


def test_deterministic_model_setting_caches_temperature_zero_only(sim, make_gateway):
    gw = make_gateway(_config(sim, cache="deterministic"))
    client = _oa(gw)
    for _ in range(2):
        client.chat.completions.create(model="gpt-4o-mini", messages=HI, max_tokens=8, temperature=0)
    assert sim.count("chat_completions") == 1
    for _ in range(2):
        client.chat.completions.create(model="gpt-4o-mini", messages=HI, max_tokens=8, temperature=0.7)
    assert sim.count("chat_completions") == 3
    # the header turns it off for one request
    client.chat.completions.create(
        model="gpt-4o-mini",
        messages=HI,
        max_tokens=8,
        temperature=0,
        extra_headers={"x-xvckit-cache": "off"},
    )
    assert sim.count("chat_completions") == 4


def test_a_bad_cache_header_is_400(gw):
    with pytest.raises(openai.BadRequestError):
        _oa(gw).chat.completions.create(
            model="gpt-4o-mini", messages=HI, max_tokens=8, extra_headers={"x-xvckit-cache": "maybe"}
        )


def test_a_hit_is_in_the_ledger_with_the_cost_it_saved(gw):
    client = _oa(gw)
    first = client.chat.completions.with_raw_response.create(
        model="gpt-4o-mini", messages=HI, max_tokens=8, extra_headers=CACHE_ON
    )
    hit = client.chat.completions.with_raw_response.create(
        model="gpt-4o-mini", messages=HI, max_tokens=8, extra_headers=CACHE_ON
    )
    flush_ledger(gw)
    records = {r.request_id: r for r in ledger_records(gw.gateway.store)}
    paid, saved = records[first.headers["x-request-id"]], records[hit.headers["x-request-id"]]
    tokens = first.parse().usage.completion_tokens
    assert not paid.cache_hit and paid.cost_usd == pytest.approx(tokens * 0.001)
    assert saved.cache_hit and saved.status == 200
    assert saved.cost_usd == 0
    assert saved.cost_saved_usd == pytest.approx(tokens * 0.001)
    metrics = httpx.get(f"{gw.url}/metrics", headers={"authorization": f"Bearer {MASTER_KEY}"}).text
    assert 'xvckit_cache_hits_total{model="gpt-4o-mini"} 1.0' in metrics


# --- shared by replicas through Redis ----------------------------------------------------------


async def test_two_gateways_share_cache_and_keys_through_redis(sim, make_gateway, redis_url):
    config = {**_config(sim), "redis": {"url": redis_url}}
    one, two = make_gateway(config), make_gateway(config)
    messages = [{"role": "user", "content": f"hello {uuid.uuid4().hex}"}]  # keys of this run only
    key = _idem(uuid.uuid4().hex)
    first = _oa(one).chat.completions.create(
        model="gpt-4o-mini", messages=messages, max_tokens=8, extra_headers=key
    )
    again = _oa(two).chat.completions.create(
        model="gpt-4o-mini", messages=messages, max_tokens=8, extra_headers=key
    )
    assert again.id == first.id
    _oa(one).chat.completions.create(
        model="gpt-4o-mini", messages=messages, max_tokens=9, extra_headers=CACHE_ON
    )
    hit = _oa(two).chat.completions.with_raw_response.create(
        model="gpt-4o-mini", messages=messages, max_tokens=9, extra_headers=CACHE_ON
    )
    assert hit.headers["x-xvckit-cache"] == "hit"
    assert sim.count("chat_completions") == 2


def test_redis_down_the_gateway_serves_and_readyz_says_so(sim, make_gateway):
    gw = make_gateway({**_config(sim), "redis": {"url": "redis://127.0.0.1:1/0"}})
    client = _oa(gw)
    for _ in range(2):
        client.chat.completions.create(
            model="gpt-4o-mini", messages=HI, max_tokens=8, extra_headers={**CACHE_ON, **_idem("down")}
        )
    assert sim.count("chat_completions") == 1
    ready = httpx.get(f"{gw.url}/readyz").json()
    assert ready["status"] == "ready"
    degraded = " ".join(ready["degraded"])
    assert "response cache on this replica's own state" in degraded
    assert "idempotency on this replica's own state" in degraded


def test_a_keys_cache_setting_turns_the_cache_on(sim, make_gateway):
    from xvckit.store import keys

    gw = make_gateway(sim_providers(sim))
    _, raw = keys.create_key(gw.gateway.store, "cached", "test", cache="on")
    asyncio.run_coroutine_threadsafe(gw.gateway.keyring.reload(), gw._loop).result(5)
    client = openai.OpenAI(base_url=f"{gw.url}/v1", api_key=raw, max_retries=0)
    first = client.chat.completions.with_raw_response.create(model="gpt-4o-mini", messages=HI, max_tokens=8)
    second = client.chat.completions.with_raw_response.create(model="gpt-4o-mini", messages=HI, max_tokens=8)
    assert first.headers["x-xvckit-cache"] == "miss" and second.headers["x-xvckit-cache"] == "hit"
    assert second.parse().choices[0].message.content == first.parse().choices[0].message.content
    assert sim.count("chat_completions") == 1
