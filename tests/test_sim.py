"""The simulated provider, driven by the official SDKs exactly as they drive the real ones."""

from __future__ import annotations

import json
import math
import signal
import subprocess
import sys
import time
from typing import TYPE_CHECKING

import anthropic
import httpx2
import openai
import pytest

from xvckit.providers.ratelimit import parse_anthropic_headers, parse_openai_headers
from xvckit.sim import SimSettings
from xvckit.sim.limiter import Limiter
from xvckit.sim.schemas import instance
from xvckit.sim.text import estimate_tokens, reply_text
from xvckit.sim.tools import pick_tool

if TYPE_CHECKING:
    from sim_fixture import RunningSim

USER = [{"role": "user", "content": "Explain how a sliding window rate limiter works."}]
WEATHER_SCHEMA = {
    "type": "object",
    "properties": {
        "city": {"type": "string"},
        "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]},
        "days": {"type": "integer"},
    },
    "required": ["city", "unit"],
}
OPENAI_TOOLS = [{"type": "function", "function": {"name": "get_weather", "parameters": WEATHER_SCHEMA}}]
ANTHROPIC_TOOLS = [
    {"name": "get_weather", "description": "Weather in a city", "input_schema": WEATHER_SCHEMA}
]
CLAUDE = "claude-sonnet-4-6"

pytest_plugins = ["sim_fixture"]  # the `sim` and `sim_factory` fixtures


def openai_client(running: RunningSim, **options) -> openai.OpenAI:
    return openai.OpenAI(base_url=running.openai_base_url, api_key="sk-test", max_retries=0, **options)


def anthropic_client(running: RunningSim, **options) -> anthropic.Anthropic:
    return anthropic.Anthropic(
        base_url=running.anthropic_base_url, api_key="sk-ant-test", max_retries=0, **options
    )


def post(running: RunningSim, path: str, content: bytes, headers: dict[str, str]) -> httpx2.Response:
    return httpx2.post(running.url + path, content=content, headers=headers)


# --- OpenAI: chat completions ----------------------------------------------------------------


def test_openai_chat_completion(sim: RunningSim) -> None:
    client = openai_client(sim)
    raw = client.chat.completions.with_raw_response.create(model="gpt-4o", messages=USER)
    completion = raw.parse()
    choice = completion.choices[0]
    assert completion.object == "chat.completion"
    assert completion.model == "gpt-4o"
    assert completion.id.startswith("chatcmpl-")
    assert choice.finish_reason == "stop"
    assert choice.message.role == "assistant"
    assert choice.message.content.startswith("Re: Explain how a sliding window")
    assert completion.usage.completion_tokens == estimate_tokens(choice.message.content) == 32
    assert completion.usage.prompt_tokens == estimate_tokens(USER[0]["content"]) + 3
    assert completion.usage.total_tokens == completion.usage.prompt_tokens + 32
    assert completion._request_id == raw.headers["x-request-id"]
    assert raw.headers["x-ratelimit-limit-requests"] == "10000"
    again = client.chat.completions.create(model="gpt-4o", messages=USER)
    assert again.choices[0].message.content == choice.message.content  # deterministic
    assert sim.count("chat_completions", "200") == 2


def test_openai_reply_length_and_max_tokens(sim: RunningSim) -> None:
    client = openai_client(sim)
    long = client.chat.completions.create(
        model="gpt-4o", messages=USER, extra_headers={"x-sim-output-tokens": "100"}
    )
    assert long.usage.completion_tokens == 100
    assert long.choices[0].finish_reason == "stop"
    for limit in ({"max_tokens": 7}, {"max_completion_tokens": 7}):
        cut = client.chat.completions.create(model="gpt-4o", messages=USER, **limit)
        assert cut.usage.completion_tokens == 7
        assert cut.choices[0].finish_reason == "length"
        assert long.choices[0].message.content.startswith(cut.choices[0].message.content)


def test_openai_stream_with_usage(sim: RunningSim) -> None:
    client = openai_client(sim)
    plain = client.chat.completions.create(model="gpt-4o", messages=USER).choices[0].message.content
    chunks = list(
        client.chat.completions.create(
            model="gpt-4o", messages=USER, stream=True, stream_options={"include_usage": True}
        )
    )
    assert chunks[0].choices[0].delta.role == "assistant"
    assert all(chunk.object == "chat.completion.chunk" for chunk in chunks)
    assert len({chunk.id for chunk in chunks}) == 1
    content_chunks = [c for c in chunks if c.choices and c.choices[0].delta.content]
    assert len(content_chunks) > 2  # really streamed
    assert "".join(c.choices[0].delta.content for c in content_chunks) == plain
    *body, finish, last = chunks
    assert finish.choices[0].finish_reason == "stop" and finish.usage is None
    assert all(chunk.usage is None for chunk in body)
    assert last.choices == [] and last.usage.completion_tokens == 32


def test_openai_stream_wire_format(sim: RunningSim) -> None:
    body = json.dumps({"model": "gpt-4o", "messages": USER, "stream": True}).encode()
    response = post(sim, "/v1/chat/completions", body, {"authorization": "Bearer k"})
    assert response.headers["content-type"].startswith("text/event-stream")
    events = response.text.split("\n\n")
    assert events[-2:] == ["data: [DONE]", ""]
    chunks = [json.loads(event.removeprefix("data: ")) for event in events[:-2]]
    assert all("usage" not in chunk for chunk in chunks)  # only with include_usage
    assert chunks[-1]["choices"][0] == {"index": 0, "delta": {}, "logprobs": None, "finish_reason": "stop"}


def test_openai_tool_call(sim: RunningSim) -> None:
    client = openai_client(sim)
    completion = client.chat.completions.create(model="gpt-4o", messages=USER, tools=OPENAI_TOOLS)
    choice = completion.choices[0]
    assert choice.finish_reason == "tool_calls"
    assert choice.message.content is None
    (call,) = choice.message.tool_calls
    assert call.type == "function" and call.id.startswith("call_")
    assert call.function.name == "get_weather"
    assert json.loads(call.function.arguments) == {"city": "sim", "unit": "celsius"}

    answered = [
        *USER,
        {"role": "assistant", "content": None, "tool_calls": [call.model_dump()]},
        {"role": "tool", "tool_call_id": call.id, "content": "12 degrees"},
    ]
    after = client.chat.completions.create(model="gpt-4o", messages=answered, tools=OPENAI_TOOLS)
    assert after.choices[0].finish_reason == "stop" and after.choices[0].message.content
    forced = client.chat.completions.create(
        model="gpt-4o", messages=answered, tools=OPENAI_TOOLS, tool_choice="required"
    )
    assert forced.choices[0].finish_reason == "tool_calls"
    declined = client.chat.completions.create(
        model="gpt-4o", messages=USER, tools=OPENAI_TOOLS, tool_choice="none"
    )
    assert declined.choices[0].message.tool_calls is None


def test_openai_streamed_tool_call(sim: RunningSim) -> None:
    client = openai_client(sim)
    with client.chat.completions.stream(model="gpt-4o", messages=USER, tools=OPENAI_TOOLS) as stream:
        deltas = [event for event in stream if event.type == "tool_calls.function.arguments.delta"]
        final = stream.get_final_completion()
    assert len(deltas) > 1  # the arguments arrive in fragments
    (call,) = final.choices[0].message.tool_calls
    assert final.choices[0].finish_reason == "tool_calls"
    assert call.function.name == "get_weather"
    assert json.loads(call.function.arguments) == {"city": "sim", "unit": "celsius"}


async def test_openai_async_client(sim: RunningSim) -> None:
    client = openai.AsyncOpenAI(base_url=sim.openai_base_url, api_key="sk-test", max_retries=0)
    completion = await client.chat.completions.create(model="gpt-4o-mini", messages=USER)
    stream = await client.chat.completions.create(model="gpt-4o-mini", messages=USER, stream=True)
    streamed = "".join([chunk.choices[0].delta.content or "" async for chunk in stream])
    assert streamed == completion.choices[0].message.content
    await client.close()


# --- OpenAI: embeddings, models --------------------------------------------------------------


def test_openai_embeddings(sim: RunningSim) -> None:
    client = openai_client(sim)
    default = client.embeddings.create(model="text-embedding-3-small", input=["alpha", "beta"])  # base64
    floats = client.embeddings.create(
        model="text-embedding-3-small", input=["alpha", "beta"], encoding_format="float"
    )
    assert [item.index for item in default.data] == [0, 1]
    assert len(default.data[0].embedding) == 1536
    assert math.fsum(x * x for x in default.data[0].embedding) == pytest.approx(1.0, abs=1e-5)
    assert default.data[0].embedding == floats.data[0].embedding  # base64 decodes to the same floats
    assert default.data[0].embedding != default.data[1].embedding
    assert default.usage.prompt_tokens == default.usage.total_tokens == 3  # 5 and 4 characters
    short = client.embeddings.create(model="text-embedding-3-large", input="alpha", dimensions=256)
    assert len(short.data[0].embedding) == 256


def test_models_list_in_each_dialect(sim: RunningSim) -> None:
    assert "gpt-4o" in [model.id for model in openai_client(sim).models.list()]
    claude_models = list(anthropic_client(sim).models.list())
    assert CLAUDE in [model.id for model in claude_models]
    assert all(model.type == "model" and model.display_name for model in claude_models)


# --- Anthropic: messages ---------------------------------------------------------------------


def test_anthropic_message(sim: RunningSim) -> None:
    client = anthropic_client(sim)
    raw = client.messages.with_raw_response.create(model=CLAUDE, max_tokens=256, messages=USER)
    message = raw.parse()
    assert message.type == "message" and message.role == "assistant"
    assert message.id.startswith("msg_")
    assert message.stop_reason == "end_turn" and message.stop_sequence is None
    (block,) = message.content
    assert block.type == "text" and block.text.startswith("Re: Explain how a sliding window")
    assert message.usage.output_tokens == estimate_tokens(block.text) == 32
    assert message._request_id == raw.headers["request-id"]
    counted = client.messages.count_tokens(model=CLAUDE, messages=USER)
    assert counted.input_tokens == message.usage.input_tokens
    assert sim.count("count_tokens", "200") == 1


def test_anthropic_max_tokens_and_system(sim: RunningSim) -> None:
    client = anthropic_client(sim)
    cut = client.messages.create(model=CLAUDE, max_tokens=5, messages=USER)
    assert cut.stop_reason == "max_tokens" and cut.usage.output_tokens == 5
    bare = client.messages.count_tokens(model=CLAUDE, messages=USER).input_tokens
    with_system = client.messages.count_tokens(model=CLAUDE, messages=USER, system="You are terse. " * 10)
    assert with_system.input_tokens == bare + estimate_tokens("You are terse. " * 10)


def test_anthropic_stream_events(sim: RunningSim) -> None:
    client = anthropic_client(sim)
    plain = client.messages.create(model=CLAUDE, max_tokens=256, messages=USER)
    events = list(client.messages.create(model=CLAUDE, max_tokens=256, messages=USER, stream=True))
    assert events[0].type == "message_start"
    assert events[0].message.usage.input_tokens == plain.usage.input_tokens
    assert events[-2].type == "message_delta" and events[-2].delta.stop_reason == "end_turn"
    assert events[-2].usage.output_tokens == plain.usage.output_tokens
    assert events[-1].type == "message_stop"
    text = "".join(event.delta.text for event in events if event.type == "content_block_delta")
    assert text == plain.content[0].text
    with client.messages.stream(model=CLAUDE, max_tokens=256, messages=USER) as stream:
        assert stream.get_final_message().content[0].text == plain.content[0].text


def test_anthropic_stream_wire_format(sim: RunningSim) -> None:
    body = json.dumps({"model": CLAUDE, "max_tokens": 256, "messages": USER, "stream": True}).encode()
    response = post(sim, "/v1/messages", body, {"x-api-key": "k", "anthropic-version": "2023-06-01"})
    assert response.headers["content-type"].startswith("text/event-stream")
    events = [event.split("\n") for event in response.text.split("\n\n") if event]
    names = [lines[0].removeprefix("event: ") for lines in events]
    assert names == [json.loads(lines[1].removeprefix("data: "))["type"] for lines in events]
    deltas = names.count("content_block_delta")
    assert deltas > 2  # really streamed
    assert names == [
        "message_start",
        "content_block_start",
        "ping",
        *["content_block_delta"] * deltas,
        "content_block_stop",
        "message_delta",
        "message_stop",
    ]


def test_anthropic_tool_use(sim: RunningSim) -> None:
    client = anthropic_client(sim)
    message = client.messages.create(model=CLAUDE, max_tokens=256, messages=USER, tools=ANTHROPIC_TOOLS)
    assert message.stop_reason == "tool_use"
    (block,) = message.content
    assert block.type == "tool_use" and block.id.startswith("toolu_") and block.name == "get_weather"
    assert block.input == {"city": "sim", "unit": "celsius"}
    with client.messages.stream(model=CLAUDE, max_tokens=256, messages=USER, tools=ANTHROPIC_TOOLS) as stream:
        partial = [event for event in stream if event.type == "input_json"]
        streamed = stream.get_final_message()
    assert len(partial) > 1
    assert streamed.content[0].input == block.input and streamed.stop_reason == "tool_use"

    answered = [
        *USER,
        {"role": "assistant", "content": [block.model_dump(include={"type", "id", "name", "input"})]},
        {
            "role": "user",
            "content": [{"type": "tool_result", "tool_use_id": block.id, "content": "12 degrees"}],
        },
    ]
    after = client.messages.create(model=CLAUDE, max_tokens=256, messages=answered, tools=ANTHROPIC_TOOLS)
    assert after.stop_reason == "end_turn"
    forced = client.messages.create(
        model=CLAUDE,
        max_tokens=256,
        messages=answered,
        tools=ANTHROPIC_TOOLS,
        tool_choice={"type": "tool", "name": "get_weather"},
    )
    assert forced.stop_reason == "tool_use"


async def test_anthropic_async_client(sim: RunningSim) -> None:
    client = anthropic.AsyncAnthropic(base_url=sim.anthropic_base_url, api_key="k", max_retries=0)
    message = await client.messages.create(model=CLAUDE, max_tokens=64, messages=USER)
    async with client.messages.stream(model=CLAUDE, max_tokens=64, messages=USER) as stream:
        final = await stream.get_final_message()
    assert final.content[0].text == message.content[0].text
    assert (await client.messages.count_tokens(model=CLAUDE, messages=USER)).input_tokens > 0
    await client.close()


def test_anthropic_accepts_x_api_key_and_requires_a_version(sim: RunningSim) -> None:
    body = json.dumps({"model": CLAUDE, "max_tokens": 8, "messages": USER}).encode()
    ok = post(sim, "/v1/messages", body, {"x-api-key": "k", "anthropic-version": "2023-06-01"})
    assert ok.status_code == 200 and ok.json()["type"] == "message"
    missing = post(sim, "/v1/messages", body, {"x-api-key": "k"})
    assert missing.status_code == 400
    assert missing.json()["error"] == {
        "type": "invalid_request_error",
        "message": "anthropic-version: header is required",
    }


# --- authentication --------------------------------------------------------------------------


def test_missing_key_is_401_in_each_dialect(sim: RunningSim) -> None:
    body = json.dumps({"model": "m", "max_tokens": 8, "messages": USER}).encode()
    for_openai = post(sim, "/v1/chat/completions", body, {})
    assert for_openai.status_code == 401
    assert for_openai.json()["error"]["type"] == "invalid_request_error"
    assert for_openai.headers["x-request-id"].startswith("req_")
    for_anthropic = post(sim, "/v1/messages", body, {"anthropic-version": "2023-06-01"})
    assert for_anthropic.status_code == 401
    assert for_anthropic.json()["error"] == {
        "type": "authentication_error",
        "message": "x-api-key header is required",
    }
    assert for_anthropic.json()["request_id"] == for_anthropic.headers["request-id"]


def test_wrong_key_is_401(sim_factory) -> None:
    running = sim_factory(api_key="sk-right")
    with pytest.raises(openai.AuthenticationError) as oai:
        openai_client(running).chat.completions.create(model="gpt-4o", messages=USER)
    assert oai.value.code == "invalid_api_key"
    assert "sk-test" not in str(oai.value)  # a secret is never echoed
    with pytest.raises(anthropic.AuthenticationError) as ant:
        anthropic_client(running).messages.create(model=CLAUDE, max_tokens=8, messages=USER)
    assert ant.value.body["error"]["type"] == "authentication_error"
    right = openai.OpenAI(base_url=running.openai_base_url, api_key="sk-right", max_retries=0)
    assert right.chat.completions.create(model="gpt-4o", messages=USER).choices
    assert running.count("chat_completions", "401") == 1


# --- rate limits -----------------------------------------------------------------------------


def test_openai_requests_per_minute(sim_factory) -> None:
    running = sim_factory(rpm=2, tpm=1_000)
    client = openai_client(running)
    first = client.chat.completions.with_raw_response.create(model="gpt-4o", messages=USER)
    limits = parse_openai_headers(first.headers, time.time())
    assert (limits.requests.limit, limits.requests.remaining) == (2, 1)
    assert 59 < limits.requests.reset_s <= 60
    assert limits.tokens.remaining == 1_000 - first.parse().usage.total_tokens
    client.chat.completions.create(model="gpt-4o", messages=USER)
    with pytest.raises(openai.RateLimitError) as refused:
        client.chat.completions.create(model="gpt-4o", messages=USER)
    error = refused.value
    assert error.code == "rate_limit_exceeded" and error.body["type"] == "requests"
    assert "requests per min (RPM): Limit 2, Used 2, Requested 1" in error.message
    headers = error.response.headers
    assert headers["retry-after"] == "60" and headers["x-ratelimit-remaining-requests"] == "0"
    assert running.count("chat_completions", "429") == 1
    other_key = openai.OpenAI(base_url=running.openai_base_url, api_key="sk-other", max_retries=0)
    assert other_key.chat.completions.create(model="gpt-4o", messages=USER).choices  # limits are per key


def test_openai_tokens_per_minute(sim_factory) -> None:
    running = sim_factory(tpm=100)
    client = openai_client(running)
    client.chat.completions.create(model="gpt-4o", messages=USER, extra_headers={"x-sim-output-tokens": "60"})
    with pytest.raises(openai.RateLimitError) as refused:
        client.chat.completions.create(
            model="gpt-4o", messages=USER, extra_headers={"x-sim-output-tokens": "60"}
        )
    assert refused.value.body["type"] == "tokens"
    assert "x-ratelimit-limit-requests" not in refused.value.response.headers  # no RPM limit set
    assert int(refused.value.response.headers["retry-after"]) == 60
    with pytest.raises(openai.RateLimitError) as too_large:
        client.chat.completions.create(
            model="gpt-4o", messages=USER, extra_headers={"x-sim-output-tokens": "500"}
        )
    assert "Request too large" in too_large.value.message
    assert "retry-after" not in too_large.value.response.headers  # waiting would not help


def test_anthropic_rate_limit_headers(sim_factory) -> None:
    running = sim_factory(rpm=1, tpm=10_000)
    client = anthropic_client(running)
    ok = client.messages.with_raw_response.create(model=CLAUDE, max_tokens=16, messages=USER)
    limits = parse_anthropic_headers(ok.headers, time.time())
    assert (limits.requests.limit, limits.requests.remaining) == (1, 0)
    assert 58 <= limits.requests.reset_s <= 61
    assert limits.input_tokens == limits.output_tokens == limits.tokens
    assert limits.tokens.remaining == 10_000 - ok.parse().usage.input_tokens - 16
    with pytest.raises(anthropic.RateLimitError) as refused:
        client.messages.create(model=CLAUDE, max_tokens=16, messages=USER)
    assert refused.value.body["error"]["type"] == "rate_limit_error"
    assert refused.value.response.headers["retry-after"] == "60"
    assert refused.value.response.headers["anthropic-ratelimit-requests-remaining"] == "0"


def test_no_limits_no_headers(sim_factory) -> None:
    unlimited = sim_factory()  # the enterprise tier: "no rate limits"
    raw = openai_client(unlimited).chat.completions.with_raw_response.create(model="gpt-4o", messages=USER)
    assert not [name for name in raw.headers if "ratelimit" in name]


def test_forced_429_carries_retry_after(sim: RunningSim) -> None:
    with pytest.raises(openai.RateLimitError) as refused:
        openai_client(sim).chat.completions.create(
            model="gpt-4o", messages=USER, extra_headers={"x-sim-fail": "429"}
        )
    assert refused.value.response.headers["retry-after"] == "1"


# --- failures --------------------------------------------------------------------------------


def test_forced_server_errors(sim: RunningSim) -> None:
    with pytest.raises(openai.InternalServerError) as oai:
        openai_client(sim).chat.completions.create(
            model="gpt-4o", messages=USER, extra_headers={"x-sim-fail": "500"}
        )
    assert oai.value.body["type"] == "server_error"
    client = anthropic_client(sim)
    with pytest.raises(anthropic.OverloadedError) as overloaded:
        client.messages.create(model=CLAUDE, max_tokens=8, messages=USER, extra_headers={"x-sim-fail": "529"})
    assert overloaded.value.body["error"] == {"type": "overloaded_error", "message": "Overloaded"}
    with pytest.raises(anthropic.InternalServerError) as internal:
        client.messages.create(model=CLAUDE, max_tokens=8, messages=USER, extra_headers={"x-sim-fail": "500"})
    assert internal.value.status_code == 500 and internal.value.body["error"]["type"] == "api_error"
    assert sim.stats()["messages"] == {"529": 1, "500": 1}


def test_fail_rate_and_sdk_retries(sim_factory) -> None:
    running = sim_factory(fail_rate=1.0, seed=7)
    client = openai.OpenAI(base_url=running.openai_base_url, api_key="k", max_retries=1)
    with pytest.raises(openai.InternalServerError):
        client.chat.completions.create(model="gpt-4o", messages=USER)
    assert running.count("chat_completions", "500") == 2  # the SDK's try and its retry
    statuses = set()
    for _ in range(12):
        with pytest.raises(anthropic.InternalServerError) as failed:
            anthropic_client(running).messages.create(model=CLAUDE, max_tokens=8, messages=USER)
        statuses.add(failed.value.status_code)
    assert statuses == {500, 529}


def test_context_window(sim_factory) -> None:
    running = sim_factory(context_window=40)
    long_prompt = [{"role": "user", "content": "word " * 60}]
    with pytest.raises(openai.BadRequestError) as oai:
        openai_client(running).chat.completions.create(model="gpt-4o", messages=long_prompt)
    assert oai.value.code == "context_length_exceeded" and oai.value.param == "messages"
    assert "maximum context length is 40 tokens" in oai.value.message
    with pytest.raises(openai.BadRequestError) as with_completion:
        openai_client(running).chat.completions.create(model="gpt-4o", messages=USER, max_tokens=30)
    assert "in the completion" in with_completion.value.message
    fits = openai_client(running).chat.completions.create(model="gpt-4o", messages=USER)
    assert fits.choices[0].finish_reason == "length"  # the reply stops at the window
    assert fits.usage.total_tokens == 40
    client = anthropic_client(running)
    with pytest.raises(anthropic.BadRequestError) as too_long:
        client.messages.create(model=CLAUDE, max_tokens=8, messages=long_prompt)
    assert too_long.value.body["error"]["message"].startswith("prompt is too long: ")
    assert too_long.value.body["error"]["message"].endswith(" tokens > 40 maximum")
    # Current Claude models take a max_tokens past the window and stop at its end.
    at_window = client.messages.create(model=CLAUDE, max_tokens=30, messages=USER)
    assert at_window.stop_reason == "model_context_window_exceeded"
    assert at_window.usage.input_tokens + at_window.usage.output_tokens == 40


def test_drop_midstream_and_hang(sim: RunningSim) -> None:
    client = openai_client(sim)
    with pytest.raises(openai.APIConnectionError):
        client.chat.completions.create(model="gpt-4o", messages=USER, extra_headers={"x-sim-fail": "drop"})
    stream = client.chat.completions.create(
        model="gpt-4o", messages=USER, stream=True, extra_headers={"x-sim-fail": "midstream"}
    )
    received = []
    with pytest.raises(openai.APIConnectionError):
        received.extend(stream)
    assert received and received[0].choices[0].delta.role == "assistant"
    with pytest.raises(anthropic.APIConnectionError):  # a plain body cut in half
        anthropic_client(sim).messages.create(
            model=CLAUDE, max_tokens=8, messages=USER, extra_headers={"x-sim-fail": "midstream"}
        )
    with pytest.raises(openai.APITimeoutError):
        client.with_options(timeout=0.3).chat.completions.create(
            model="gpt-4o", messages=USER, extra_headers={"x-sim-fail": "hang"}
        )
    stats = sim.stats()
    assert stats["chat_completions"] == {"drop": 1, "midstream": 1, "hang": 1}
    assert stats["messages"] == {"midstream": 1}


def test_drop_rate(sim_factory) -> None:
    running = sim_factory(drop_rate=0.5, seed=3)
    client = openai_client(running)
    outcomes = []
    for _ in range(20):
        try:
            client.chat.completions.create(model="gpt-4o", messages=USER)
            outcomes.append("ok")
        except openai.APIConnectionError:
            outcomes.append("dropped")
    assert 3 <= outcomes.count("dropped") <= 17
    assert running.count("chat_completions", "drop") == outcomes.count("dropped")


def test_latency(sim_factory) -> None:
    running = sim_factory(latency_ms=150, chunk_delay_ms=20)
    client = openai_client(running)
    started = time.perf_counter()
    client.chat.completions.create(model="gpt-4o", messages=USER)
    assert time.perf_counter() - started >= 0.15
    started = time.perf_counter()
    chunks = list(client.chat.completions.create(model="gpt-4o", messages=USER, stream=True))
    assert time.perf_counter() - started >= 0.15 + 0.02 * (len(chunks) - 1)
    started = time.perf_counter()
    client.chat.completions.create(model="gpt-4o", messages=USER, extra_headers={"x-sim-latency-ms": "0"})
    assert time.perf_counter() - started < 0.15


def test_malformed_requests(sim: RunningSim) -> None:
    bad_json = post(sim, "/v1/chat/completions", b"{not json", {"authorization": "Bearer k"})
    assert bad_json.status_code == 400 and bad_json.json()["error"]["type"] == "invalid_request_error"
    anthropic_headers = {"x-api-key": "k", "anthropic-version": "2023-06-01"}
    bad_anthropic = post(sim, "/v1/messages", b"[1, 2]", anthropic_headers)
    assert bad_anthropic.status_code == 400 and bad_anthropic.json()["type"] == "error"
    no_max_tokens = post(
        sim, "/v1/messages", json.dumps({"model": CLAUDE, "messages": USER}).encode(), anthropic_headers
    )
    assert no_max_tokens.json()["error"]["message"] == "max_tokens: Field required"
    unknown = httpx2.get(sim.url + "/v1/nowhere")
    assert (
        unknown.status_code == 404 and unknown.json()["error"]["message"] == "Invalid URL (GET /v1/nowhere)"
    )
    unknown_anthropic = httpx2.get(sim.url + "/v1/nowhere", headers={"anthropic-version": "2023-06-01"})
    assert unknown_anthropic.json()["error"]["type"] == "not_found_error"
    bad_fault = post(sim, "/v1/chat/completions", b"{}", {"authorization": "Bearer k", "x-sim-fail": "200"})
    assert bad_fault.status_code == 400 and "x-sim-fail" in bad_fault.json()["error"]["message"]
    assert httpx2.get(sim.url + "/healthz").json() == {"status": "ok"}
    assert sim.stats()["not_found"] == {"404": 2}


# --- the pieces ------------------------------------------------------------------------------


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_limiter_window_slides() -> None:
    clock = FakeClock()
    limiter = Limiter(rpm=3, tpm=0, clock=clock)
    for offset in (0, 20, 40):
        clock.now = 1000 + offset
        assert limiter.admit(b"k", 10).refused is None
    clock.now = 1050  # a fixed one-minute bucket would have emptied at 1060 only, a sliding one too
    refused = limiter.admit(b"k", 10)
    assert refused.refused == "requests" and refused.limits.retry_after_s == pytest.approx(10)
    clock.now = 1060  # the request of 1000 has left the window, not those of 1020 and 1040
    verdict = limiter.admit(b"k", 10)
    assert verdict.refused is None
    assert verdict.limits.requests.remaining == 0 and verdict.limits.requests.reset_s == pytest.approx(60)
    assert limiter.admit(b"other", 10).refused is None  # one window per key


def test_limiter_tokens() -> None:
    clock = FakeClock()
    limiter = Limiter(rpm=0, tpm=100, clock=clock)
    assert limiter.admit(b"k", 60).refused is None
    clock.now += 30
    assert limiter.admit(b"k", 30).refused is None
    refused = limiter.admit(b"k", 50)  # 90 used: 40 must go, and the first 60 leave in 30 s
    assert (refused.refused, refused.used, refused.requested) == ("tokens", 90, 50)
    assert refused.limits.retry_after_s == pytest.approx(30)
    assert refused.limits.tokens.remaining == 10
    assert limiter.admit(b"k", 101).too_large


def test_settings_from_tiers() -> None:
    basic = SimSettings(tier="basic")
    assert (basic.rpm, basic.tpm, basic.latency_ms, basic.tokens_per_s) == (15, 30_000, 7_500, 45)
    assert basic.context_window is None  # each model's own
    unlimited = SimSettings(tier="basic", rpm=0, latency_ms=0)
    assert (unlimited.rpm, unlimited.tpm, unlimited.latency_ms, unlimited.tokens_per_s) == (0, 30_000, 0, 0)
    assert SimSettings(tier="enterprise").rpm == 0
    with pytest.raises(ValueError, match="unknown tier 'gold'"):
        SimSettings(tier="gold")
    with pytest.raises(ValueError, match="fail_rate"):
        SimSettings(fail_rate=1.5)


def test_reply_text_and_tools() -> None:
    assert len(reply_text("a prompt", 10)) == 40
    assert reply_text("a prompt", 10) == reply_text("a prompt", 10) != reply_text("another", 10)
    assert reply_text("x", 0) == ""
    schema = {
        "type": "object",
        "properties": {
            "tags": {"type": "array", "items": {"type": "string"}, "minItems": 1},
            "limit": {"type": ["null", "number"]},
            "mode": {"const": "fast"},
            "nested": {"type": "object", "properties": {"on": {"type": "boolean"}}, "required": ["on"]},
        },
        "required": ["tags", "limit", "mode", "nested"],
    }
    assert instance(schema) == {"tags": ["sim"], "limit": 1.5, "mode": "fast", "nested": {"on": True}}
    assert pick_tool(["a", "b"], "auto", None, after_tool_result=False) == 0
    assert pick_tool(["a", "b"], "auto", None, after_tool_result=True) is None
    assert pick_tool(["a", "b"], "required", "b", after_tool_result=True) == 1
    assert pick_tool(["a", "b"], "none", None, after_tool_result=False) is None


def test_cli_serves_until_interrupted() -> None:
    command = [sys.executable, "-m", "xvckit", "sim", "--port", "0", "--tier", "basic", "--latency-ms", "0"]
    process = subprocess.Popen(command, stderr=subprocess.PIPE, text=True)
    try:
        banner = process.stderr.readline()
        assert "basic: 15 rpm, 30000 tpm, time to first token 0 ms, 0 tokens/s" in banner
        url = banner.split(" on ")[1].split()[0]
        response = httpx2.post(
            url + "/v1/chat/completions",
            json={"model": "gpt-4o", "messages": USER},
            headers={"authorization": "Bearer k"},
        )
        assert response.status_code == 200 and response.headers["x-ratelimit-limit-requests"] == "15"
    finally:
        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=10) == 0
