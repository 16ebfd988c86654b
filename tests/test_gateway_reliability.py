"""Pacing, key pools, retries and fallbacks, with the official SDKs as clients."""

from __future__ import annotations

import asyncio
import functools
import socket
import time

import httpx
import openai
import pytest

from conftest import MASTER_KEY
from test_gateway_e2e import HI
from xvckit.gateway import app as gateway_app
from xvckit.gateway.pacing import SCOUT_S, Pacer
from xvckit.store import keys


def _dead_url() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{s.getsockname()[1]}/v1"


def _client(gw) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{gw.url}/v1", api_key=MASTER_KEY, max_retries=0)


def _gateway(make_gateway, providers: list[dict], models: list[dict], **gateway) -> object:
    return make_gateway({"providers": providers, "models": models, "gateway": gateway})


def test_retries_hide_upstream_failures_within_the_budget(sim_factory, make_gateway):
    sim = sim_factory(fail_rate=0.2, seed=7)
    gw = _gateway(
        make_gateway,
        [{"name": "s", "kind": "openai", "base_url": sim.openai_base_url, "api_keys": ["k"]}],
        [{"name": "gpt-4o-mini", "provider": "s"}],
        retry_base_s=0.01,
        retry_budget=0.5,
        max_attempts=5,
    )
    client = _client(gw)
    ok = 0
    for _ in range(40):
        try:
            client.chat.completions.create(model="gpt-4o-mini", messages=HI, max_tokens=4)
            ok += 1
        except openai.InternalServerError:
            pass
    upstream = sim.count("chat_completions")
    failed = sim.count("chat_completions", "500")
    print(f"client ok {ok}/40, upstream calls {upstream}, upstream 500s {failed}")
    assert failed > 0, "the simulator should have failed some calls"
    assert ok >= 39
    assert upstream <= 40 * 1.5 + 3


def test_a_refused_key_leaves_the_pool(sim_factory, make_gateway):
    sim = sim_factory(api_key="good-key")
    gw = _gateway(
        make_gateway,
        [
            {
                "name": "s",
                "kind": "openai",
                "base_url": sim.openai_base_url,
                "api_keys": ["bad-key", "good-key"],
            }
        ],
        [{"name": "gpt-4o-mini", "provider": "s"}],
    )
    client = _client(gw)
    for _ in range(5):
        client.chat.completions.create(model="gpt-4o-mini", messages=HI, max_tokens=4)
    assert sim.count("chat_completions", "401") <= 1
    ready = httpx.get(f"{gw.url}/readyz").json()
    assert ready["status"] == "ready"
    assert list(ready["disabled_upstream_keys"].values()) == ["answered 401"]
    assert "bad-key" not in str(ready)


def test_fallback_to_another_model_when_a_provider_is_down(sim, make_gateway):
    gw = _gateway(
        make_gateway,
        [
            {"name": "down", "kind": "openai", "base_url": _dead_url(), "api_keys": ["k"]},
            {"name": "s", "kind": "openai", "base_url": sim.openai_base_url, "api_keys": ["k"]},
        ],
        [
            {"name": "primary", "provider": "down", "fallbacks": ["backup"]},
            {"name": "backup", "provider": "s", "model": "gpt-4o-mini"},
        ],
        retry_base_s=0.01,
    )
    raw = _client(gw).chat.completions.with_raw_response.create(model="primary", messages=HI, max_tokens=4)
    assert raw.parse().model.startswith("gpt-4o-mini")
    assert sim.count("chat_completions", "200") == 1


def test_streams_are_retried_before_their_first_byte(sim_factory, make_gateway):
    sim = sim_factory(fail_rate=0.3, seed=3)
    gw = _gateway(
        make_gateway,
        [{"name": "s", "kind": "openai", "base_url": sim.openai_base_url, "api_keys": ["k"]}],
        [{"name": "gpt-4o-mini", "provider": "s"}],
        retry_base_s=0.01,
        retry_budget=1.0,
    )
    client = _client(gw)
    for _ in range(10):
        text = "".join(
            c.choices[0].delta.content or ""
            for c in client.chat.completions.create(model="gpt-4o-mini", messages=HI, stream=True)
            if c.choices
        )
        assert text
    assert sim.count("chat_completions", "500") > 0


def test_requests_over_the_limit_wait_and_a_pointless_wait_is_a_clear_429(sim_factory, make_gateway):
    sim = sim_factory(rpm=3)
    gw = _gateway(
        make_gateway,
        [{"name": "s", "kind": "openai", "base_url": sim.openai_base_url, "api_keys": ["k"], "rpm": 3}],
        [{"name": "gpt-4o-mini", "provider": "s"}],
        queue_timeout_s=2,
    )
    client = _client(gw)
    for _ in range(3):
        client.chat.completions.create(model="gpt-4o-mini", messages=HI, max_tokens=2)
    with pytest.raises(openai.RateLimitError) as info:
        client.chat.completions.create(model="gpt-4o-mini", messages=HI, max_tokens=2)
    assert "rate limit" in info.value.message and int(info.value.response.headers["retry-after"]) >= 1
    assert sim.count("chat_completions", "429") == 0, "the gateway let a request hit the provider's limit"


def _two_deployments(sim, down_first: bool = False, **extra) -> tuple[list[dict], list[dict]]:
    first = _dead_url() if down_first else sim.openai_base_url
    providers = [
        {"name": "a", "kind": "openai", "base_url": first, "api_keys": ["k"], **extra.get("a", {})},
        {
            "name": "b",
            "kind": "openai",
            "base_url": sim.openai_base_url,
            "api_keys": ["k"],
            **extra.get("b", {}),
        },
    ]
    models = [{"name": "gpt-4o-mini", "provider": "a"}, {"name": "gpt-4o-mini", "provider": "b"}]
    return providers, models


def _served_by(gw, n: int) -> list[str]:
    raws = [
        _client(gw).chat.completions.with_raw_response.create(model="gpt-4o-mini", messages=HI, max_tokens=2)
        for _ in range(n)
    ]
    return [r.headers["x-xvckit-deployment"] for r in raws]


def test_headroom_routing_moves_to_the_deployment_with_room(sim, make_gateway):
    providers, models = _two_deployments(sim, a={"rpm": 2}, b={"rpm": 100})
    gw = _gateway(make_gateway, providers, models)
    served = _served_by(gw, 6)
    assert served.count("a/gpt-4o-mini") <= 2 and served.count("b/gpt-4o-mini") >= 4


def test_a_dead_deployment_of_a_model_fails_over_to_the_next(sim, make_gateway):
    providers, models = _two_deployments(sim, down_first=True)
    gw = _gateway(make_gateway, providers, models, routing="weighted", retry_base_s=0.01)
    started = time.monotonic()
    assert set(_served_by(gw, 4)) == {"b/gpt-4o-mini"}
    # a refused connection ends the dead lane's first-call scouting: no retry waits out its 5 s
    assert time.monotonic() - started < SCOUT_S


def test_cost_routing_prefers_the_cheaper_deployment(sim, make_gateway):
    providers, models = _two_deployments(sim)
    models[0]["model"] = "gpt-4o"  # a: the dearer model id behind the same name
    gw = _gateway(make_gateway, providers, models, routing="cost")
    assert set(_served_by(gw, 3)) == {"b/gpt-4o-mini"}


async def test_a_batch_keys_calls_wait_behind_interactive_ones(monkeypatch, sim, make_gateway):
    """One call per (compressed, 1.5 s) window: a batch key's call queued first still goes
    after an interactive call queued later."""
    monkeypatch.setattr(gateway_app, "Pacer", functools.partial(Pacer, window_s=1.5, guard_s=0.1))
    gw = _gateway(
        make_gateway,
        [{"name": "s", "kind": "openai", "base_url": sim.openai_base_url, "api_keys": ["k"], "rpm": 1}],
        [{"name": "gpt-4o-mini", "provider": "s"}],
    )
    _, batch_key = keys.create_key(gw.gateway.store, "nightly", "test", priority="batch")
    await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(gw.gateway.keyring.reload(), gw._loop))
    finished: list[str] = []

    async def call(name: str, key: str) -> None:
        client = openai.AsyncOpenAI(base_url=f"{gw.url}/v1", api_key=key, max_retries=0)
        await client.chat.completions.create(model="gpt-4o-mini", messages=HI, max_tokens=2)
        finished.append(name)
        await client.close()

    await call("first", MASTER_KEY)  # takes the window's one call
    batch = asyncio.create_task(call("batch", batch_key))
    await asyncio.sleep(0.2)
    interactive = asyncio.create_task(call("interactive", MASTER_KEY))
    await asyncio.gather(batch, interactive)
    assert finished == ["first", "interactive", "batch"]


def test_latency_routing_prefers_the_faster_deployment(sim_factory, make_gateway):
    slow, fast = sim_factory(latency_ms=80), sim_factory(latency_ms=0)
    gw = _gateway(
        make_gateway,
        [
            {"name": "a", "kind": "openai", "base_url": slow.openai_base_url, "api_keys": ["k"]},
            {"name": "b", "kind": "openai", "base_url": fast.openai_base_url, "api_keys": ["k"]},
        ],
        [{"name": "gpt-4o-mini", "provider": "a"}, {"name": "gpt-4o-mini", "provider": "b"}],
        routing="latency",
    )
    served = _served_by(gw, 8)
    assert served[2:] == ["b/gpt-4o-mini"] * 6, served  # each measured once, then the faster one


def test_a_request_over_the_context_window_falls_back_to_a_larger_model(sim_factory, make_gateway):
    small, large = sim_factory(context_window=50), sim_factory(context_window=100_000)
    gw = _gateway(
        make_gateway,
        [
            {
                "name": "small",
                "kind": "openai",
                "base_url": small.openai_base_url,
                "api_keys": ["k"],
                "forward_headers": ["x-sim-fail"],
            },
            {"name": "large", "kind": "anthropic", "base_url": large.anthropic_base_url, "api_keys": ["k"]},
        ],
        [
            {"name": "short-ctx", "provider": "small", "model": "gpt-4o-mini", "fallbacks": ["claude-long"]},
            {"name": "claude-long", "provider": "large", "model": "claude-sonnet-4-6"},
        ],
    )
    long_prompt = [{"role": "user", "content": "word " * 400}]
    raw = _client(gw).chat.completions.with_raw_response.create(
        model="short-ctx", messages=long_prompt, max_tokens=5
    )
    assert raw.headers["x-xvckit-deployment"] == "large/claude-sonnet-4-6"
    assert small.count("chat_completions", "400") == 1 and large.count("messages", "200") == 1
    with pytest.raises(openai.BadRequestError):  # any other 400 is the client's to see, no fallback
        _client(gw).chat.completions.create(
            model="short-ctx", messages=HI, extra_headers={"x-sim-fail": "400"}
        )
    assert large.count("messages") == 1
