"""The gateway end to end: the official SDKs as clients, `xvckit sim` as the provider."""

from __future__ import annotations

import asyncio
import base64
import struct

import anthropic
import openai
import pytest

from conftest import MASTER_KEY
from xvckit.stack import SIM_CONTROL_HEADERS

TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Weather for a city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
    },
}
ANTHROPIC_TOOL = {
    "name": "get_weather",
    "description": "Weather for a city",
    "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
}
HI = [{"role": "user", "content": "Say hello to the gateway"}]


def sim_providers(sim) -> dict:
    controls = list(SIM_CONTROL_HEADERS)
    return {
        "providers": [
            {
                "name": "sim-oa",
                "kind": "openai",
                "base_url": sim.openai_base_url,
                "api_keys": ["sk-upstream"],
                "forward_headers": controls,
            },
            {
                "name": "sim-an",
                "kind": "anthropic",
                "base_url": sim.anthropic_base_url,
                "api_keys": ["sk-ant"],
                "forward_headers": controls,
            },
        ],
        "models": [
            {"name": "gpt-4o-mini", "provider": "sim-oa"},
            {"name": "fast", "provider": "sim-oa", "model": "gpt-4o-mini"},
            {"name": "text-embedding-3-small", "provider": "sim-oa"},
            {"name": "claude-*", "provider": "sim-an"},
        ],
    }


@pytest.fixture
def gw(sim, make_gateway):
    server = make_gateway(sim_providers(sim))
    server.sim = sim
    return server


@pytest.fixture
def oa(gw):
    return openai.OpenAI(base_url=f"{gw.url}/v1", api_key=MASTER_KEY, max_retries=0)


@pytest.fixture
def an(gw):
    return anthropic.Anthropic(base_url=gw.url, api_key=MASTER_KEY, max_retries=0)


def test_openai_chat_sync_with_headers(oa, gw):
    raw = oa.chat.completions.with_raw_response.create(model="gpt-4o-mini", messages=HI, max_tokens=20)
    completion = raw.parse()
    assert completion.choices[0].message.content
    assert completion.usage.prompt_tokens > 0 and completion.usage.completion_tokens > 0
    assert raw.headers["x-request-id"].startswith("req_")
    assert 0 <= float(raw.headers["x-xvckit-overhead-ms"]) < 1000
    assert raw.headers["x-ratelimit-limit-requests"]  # the provider's headers pass through
    assert gw.sim.count("chat_completions", "200") == 1


def test_alias_is_sent_upstream_under_its_real_id(oa):
    completion = oa.chat.completions.create(model="fast", messages=HI)
    assert completion.model.startswith("gpt-4o-mini")


async def test_openai_chat_async_concurrent(gw):
    client = openai.AsyncOpenAI(base_url=f"{gw.url}/v1", api_key=MASTER_KEY, max_retries=0)
    results = await asyncio.gather(
        *(client.chat.completions.create(model="gpt-4o-mini", messages=HI) for _ in range(20))
    )
    assert all(r.choices[0].message.content for r in results)
    assert len({r.id for r in results}) == 20
    await client.close()


def test_openai_stream_hides_the_usage_chunk_it_added(oa):
    chunks = list(oa.chat.completions.create(model="gpt-4o-mini", messages=HI, stream=True))
    assert len(chunks) > 2
    assert all(chunk.choices for chunk in chunks), (
        "the include_usage chunk leaked to a client that did not ask"
    )
    assert "".join(c.choices[0].delta.content or "" for c in chunks)
    assert chunks[-1].choices[0].finish_reason == "stop"


def test_openai_stream_with_usage_when_asked(oa):
    chunks = list(
        oa.chat.completions.create(
            model="gpt-4o-mini", messages=HI, stream=True, stream_options={"include_usage": True}
        )
    )
    assert chunks[-1].choices == [] and chunks[-1].usage.completion_tokens > 0


def test_openai_tool_calls_plain_and_streamed(oa):
    completion = oa.chat.completions.create(model="gpt-4o-mini", messages=HI, tools=[TOOL])
    call = completion.choices[0].message.tool_calls[0]
    assert call.function.name == "get_weather" and "city" in call.function.arguments
    assert completion.choices[0].finish_reason == "tool_calls"
    stream = oa.chat.completions.create(model="gpt-4o-mini", messages=HI, tools=[TOOL], stream=True)
    arguments = ""
    names = set()
    for chunk in stream:
        for delta in chunk.choices[0].delta.tool_calls or []:
            names.add(delta.function.name) if delta.function.name else None
            arguments += delta.function.arguments or ""
    assert names == {"get_weather"} and "city" in arguments


def test_embeddings_base64_and_float(oa):
    result = oa.embeddings.create(model="text-embedding-3-small", input=["one", "two"])
    assert len(result.data) == 2 and len(result.data[0].embedding) > 8
    raw = oa.embeddings.create(model="text-embedding-3-small", input="one", encoding_format="base64")
    floats = struct.unpack(
        f"<{len(base64.b64decode(raw.data[0].embedding)) // 4}f", base64.b64decode(raw.data[0].embedding)
    )
    assert floats[:4] == pytest.approx(result.data[0].embedding[:4])
    assert result.usage.prompt_tokens > 0


def test_models_list_both_dialects(oa, an):
    assert {m.id for m in oa.models.list()} == {"gpt-4o-mini", "fast", "text-embedding-3-small"}
    assert "fast" in {m.id for m in an.models.list()}


def test_anthropic_messages_sync(an):
    raw = an.messages.with_raw_response.create(model="claude-sonnet-4-6", max_tokens=50, messages=HI)
    message = raw.parse()
    assert message.content[0].type == "text" and message.content[0].text
    assert message.usage.input_tokens > 0 and message.stop_reason in ("end_turn", "max_tokens")
    assert raw.headers["x-request-id"].startswith("req_") and raw.headers["request-id"]


def test_anthropic_stream_and_tool_use(an):
    with an.messages.stream(model="claude-sonnet-4-6", max_tokens=64, messages=HI) as stream:
        text = "".join(stream.text_stream)
        final = stream.get_final_message()
    assert text and final.usage.output_tokens > 0
    message = an.messages.create(model="claude-haiku-4-6", max_tokens=64, messages=HI, tools=[ANTHROPIC_TOOL])
    block = next(b for b in message.content if b.type == "tool_use")
    assert block.name == "get_weather" and "city" in block.input and message.stop_reason == "tool_use"


async def test_anthropic_async_and_count_tokens(gw):
    client = anthropic.AsyncAnthropic(base_url=gw.url, api_key=MASTER_KEY, max_retries=0)
    counted = await client.messages.count_tokens(model="claude-sonnet-4-6", messages=HI)
    assert counted.input_tokens > 0
    async with client.messages.stream(model="claude-sonnet-4-6", max_tokens=32, messages=HI) as stream:
        final = await stream.get_final_message()
    assert final.content[0].text
    await client.close()


def test_upstream_errors_pass_through_in_the_dialect(oa, an):
    with pytest.raises(openai.RateLimitError) as info:
        oa.chat.completions.create(model="gpt-4o-mini", messages=HI, extra_headers={"x-sim-fail": "429"})
    assert info.value.response.headers["retry-after"]
    with pytest.raises(openai.InternalServerError):
        oa.chat.completions.create(model="gpt-4o-mini", messages=HI, extra_headers={"x-sim-fail": "500"})
    with pytest.raises(anthropic.APIStatusError) as ainfo:
        an.messages.create(model="claude-x", max_tokens=5, messages=HI, extra_headers={"x-sim-fail": "529"})
    assert ainfo.value.status_code == 529
    assert ainfo.value.body["error"]["type"] == "overloaded_error"


def test_mid_stream_failure_ends_with_an_error_event(oa, an):
    with pytest.raises(openai.APIError):
        for _ in oa.chat.completions.create(
            model="gpt-4o-mini", messages=HI, stream=True, extra_headers={"x-sim-fail": "midstream"}
        ):
            pass
    with (
        pytest.raises(anthropic.APIError),
        an.messages.stream(
            model="claude-x", max_tokens=64, messages=HI, extra_headers={"x-sim-fail": "midstream"}
        ) as stream,
    ):
        for _ in stream:
            pass


def test_upstream_timeout_is_504(sim, make_gateway):
    config = sim_providers(sim)
    config["gateway"] = {"read_timeout_s": 0.3}
    server = make_gateway(config)
    client = openai.OpenAI(base_url=f"{server.url}/v1", api_key=MASTER_KEY, max_retries=0)
    with pytest.raises(openai.APIStatusError) as info:
        client.chat.completions.create(model="gpt-4o-mini", messages=HI, extra_headers={"x-sim-fail": "hang"})
    assert info.value.status_code == 504


def test_openai_client_on_a_claude_model(oa):
    """Cursor-style: the OpenAI dialect served by an Anthropic provider, translated both ways."""
    completion = oa.chat.completions.create(model="claude-sonnet-4-6", messages=HI, max_tokens=20)
    assert completion.choices[0].message.content and completion.usage.completion_tokens > 0
    chunks = list(oa.chat.completions.create(model="claude-sonnet-4-6", messages=HI, stream=True))
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert all(c.choices for c in chunks), "no usage chunk was asked for"
    call = oa.chat.completions.create(model="claude-sonnet-4-6", messages=HI, tools=[TOOL])
    assert call.choices[0].message.tool_calls[0].function.name == "get_weather"
    with pytest.raises(openai.RateLimitError):
        oa.chat.completions.create(model="claude-x", messages=HI, extra_headers={"x-sim-fail": "429"})


def test_anthropic_client_on_an_openai_model(an):
    message = an.messages.create(model="gpt-4o-mini", max_tokens=20, messages=HI)
    assert message.content[0].text and message.usage.output_tokens > 0
    with an.messages.stream(model="gpt-4o-mini", max_tokens=20, messages=HI) as stream:
        assert "".join(stream.text_stream)
        assert stream.get_final_message().usage.output_tokens > 0
    used = an.messages.create(model="gpt-4o-mini", max_tokens=64, messages=HI, tools=[ANTHROPIC_TOOL])
    assert any(b.type == "tool_use" and b.name == "get_weather" for b in used.content)


def test_fallback_across_dialects(sim, make_gateway):
    config = sim_providers(sim)
    config["providers"].append({"name": "down", "kind": "openai", "base_url": "http://127.0.0.1:9/v1"})
    config["models"].insert(0, {"name": "flaky", "provider": "down", "fallbacks": ["claude-sonnet-4-6"]})
    config["gateway"] = {"retry_base_s": 0.01}
    server = make_gateway(config)
    client = openai.OpenAI(base_url=f"{server.url}/v1", api_key=MASTER_KEY, max_retries=0)
    completion = client.chat.completions.create(model="flaky", messages=HI, max_tokens=10)
    assert completion.choices[0].message.content
    assert sim.count("messages", "200") == 1
