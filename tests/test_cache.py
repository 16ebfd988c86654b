"""The exact response cache: keys, entries, replays (read back by the official SDKs, served from
a loopback server), the in-memory LRU, and the Redis-shared cache with its local fallback.

Redis tests skip with the reason when there is no Redis, except when CI=true, where they fail.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from typing import Any

import anthropic
import openai
import orjson
import pytest
import redis.asyncio as aioredis
from anthropic.types import Message
from openai.lib.streaming.chat import ChatCompletionStreamState
from openai.types.chat import ChatCompletion

from servers import BackgroundServer, TcpRelay
from xvckit.asgi import lifespan, respond
from xvckit.gateway.cache import (
    CachedResponse,
    RedisResponseCache,
    ResponseCache,
    cache_key,
    replay,
    replay_as_body,
    replay_as_stream,
    stored_headers,
)
from xvckit.providers import Usage
from xvckit.providers.sse import EventSplitter, encode, event_json

GPT = "gpt-4o-mini-2024-07-18"
CLAUDE = "claude-sonnet-4-6"
MESSAGES = [{"role": "user", "content": "Weather in Paris and Rome?"}]

OPENAI_BODY: dict[str, Any] = {
    "id": "chatcmpl-abc",
    "object": "chat.completion",
    "created": 1_700_000_000,
    "model": GPT,
    "choices": [
        {
            "index": 0,
            "message": {
                "role": "assistant",
                "content": "Let me look both up.",
                "refusal": None,
                "annotations": [],
                "tool_calls": [
                    {
                        "id": "call_1",
                        "type": "function",
                        "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'},
                    },
                    {
                        "id": "call_2",
                        "type": "function",
                        "function": {"name": "get_weather", "arguments": '{"city": "Rome", "unit": "c"}'},
                    },
                ],
            },
            "logprobs": None,
            "finish_reason": "tool_calls",
        },
        {
            "index": 1,
            "message": {"role": "assistant", "content": "Sunny, 21 °C.", "refusal": None, "annotations": []},
            "logprobs": None,
            "finish_reason": "stop",
        },
    ],
    "usage": {
        "prompt_tokens": 40,
        "completion_tokens": 30,
        "total_tokens": 70,
        "prompt_tokens_details": {"cached_tokens": 8, "audio_tokens": 0},
        "completion_tokens_details": {"reasoning_tokens": 0},
    },
    "service_tier": "default",
    "system_fingerprint": "fp_1",
}

ANTHROPIC_BODY: dict[str, Any] = {
    "id": "msg_abc",
    "type": "message",
    "role": "assistant",
    "model": CLAUDE,
    "content": [
        {"type": "thinking", "thinking": "Two cities, two calls.", "signature": "sig=="},
        {
            "type": "text",
            "text": "Checking the weather.",
            "citations": [
                {
                    "type": "char_location",
                    "cited_text": "Paris",
                    "document_index": 0,
                    "document_title": None,
                    "start_char_index": 0,
                    "end_char_index": 5,
                    "file_id": None,
                }
            ],
        },
        {
            "type": "tool_use",
            "id": "toolu_1",
            "name": "get_weather",
            "input": {"city": "Paris", "days": [1, 2]},
        },
        {"type": "tool_use", "id": "toolu_2", "name": "now", "input": {}},
    ],
    "stop_reason": "tool_use",
    "stop_sequence": None,
    "usage": {
        "input_tokens": 50,
        "output_tokens": 42,
        "cache_creation_input_tokens": 10,
        "cache_read_input_tokens": 20,
    },
}


def entry_of(body: dict | bytes, streamed: bool = False, **kwargs: Any) -> CachedResponse:
    data = body if isinstance(body, bytes) else orjson.dumps(body)
    content_type = b"text/event-stream" if streamed else b"application/json"
    return CachedResponse(200, [(b"content-type", content_type)], data, streamed, **kwargs)


HELPERS = frozenset({"parsed", "parsed_arguments", "parsed_output"})
INDEX = HELPERS | {"index"}


def without(value: Any, names: frozenset[str] = HELPERS) -> Any:
    """A model dump without the SDK helpers' own parsing fields."""
    if isinstance(value, dict):
        return {k: without(v, names) for k, v in value.items() if k not in names}
    if isinstance(value, list):
        return [without(v, names) for v in value]
    return value


# --- keys ------------------------------------------------------------------------------------

BASE = {"model": "fast", "messages": MESSAGES, "temperature": 0, "max_tokens": 100}


def key(payload: dict, **kwargs: Any) -> str:
    return cache_key("chat", GPT, payload, **kwargs)


def test_key_ignores_key_order_streaming_and_end_user_fields() -> None:
    reference = key(BASE)
    assert len(reference) == 64
    assert key(dict(reversed(list(BASE.items())))) == reference
    same = {
        **BASE,
        "stream": True,
        "stream_options": {"include_usage": True},
        "user": "u-1",
        "safety_identifier": "s",
        "metadata": {"job": "x"},
        "store": True,
        "prompt_cache_key": "k",
        "service_tier": "flex",
        "n": 1,
    }
    assert key(same) == reference
    assert key({**BASE, "temperature": 0.0}) == reference  # 0 and 0.0 are one number
    assert key({**BASE, "model": "another-alias"}) == reference  # the upstream id counts


@pytest.mark.parametrize(
    "change",
    [
        {"temperature": 0.2},
        {"max_tokens": 101},
        {"messages": [{"role": "user", "content": "Weather in Rome?"}]},
        {"messages": [{"content": "Weather in Paris and Rome?", "role": "user"}]},  # nested order kept
        {"tools": [{"type": "function", "function": {"name": "f", "parameters": {}}}]},
        {"tool_choice": "required"},
        {"n": 2},
        {"seed": 7},
        {"response_format": {"type": "json_object"}},
    ],
)
def test_key_changes_with_what_changes_the_answer(change: dict) -> None:
    assert key({**BASE, **change}) != key(BASE)


def test_key_depends_on_endpoint_model_scope_and_beta_headers() -> None:
    reference = key(BASE)
    assert cache_key("messages", GPT, BASE) != reference
    assert cache_key("chat", "gpt-4o", BASE) != reference
    assert key(BASE, scope="team-a") != reference != key(BASE, scope="team-b")
    assert key(BASE, headers={b"user-agent": b"x", b"authorization": b"Bearer a"}) == reference
    beta = key(BASE, headers={b"anthropic-beta": b"output-128k-2025-02-19"})
    assert beta != reference
    assert key(BASE, headers={b"anthropic-beta": b"output-128k-2025-02-19", b"x-other": b"1"}) == beta


# --- entries ---------------------------------------------------------------------------------


def test_entry_bytes_round_trip_and_size() -> None:
    entry = CachedResponse(
        200,
        [(b"content-type", b"application/json"), (b"openai-version", b"2020-10-01")],
        orjson.dumps(OPENAI_BODY),
        False,
        Usage(40, 30, 8, 2),
        0.000123,
        1_700_000_000.5,
    )
    data = entry.to_bytes()
    assert len(data) == entry.size
    assert CachedResponse.from_bytes(data) == entry
    streamed = CachedResponse(502, [], b"", True)
    assert CachedResponse.from_bytes(streamed.to_bytes()) == streamed
    for bad in (b"", b"garbage", data[:40], b"xc\x02" + data[3:]):
        with pytest.raises(ValueError):
            CachedResponse.from_bytes(bad)


def test_stored_headers_keep_only_what_describes_the_answer() -> None:
    headers = [
        (b"content-type", b"application/json"),
        (b"x-request-id", b"req_1"),
        (b"x-ratelimit-remaining-requests", b"99"),
        (b"set-cookie", b"a=b"),
        (b"openai-version", b"2020-10-01"),
        (b"date", b"today"),
    ]
    assert stored_headers(headers) == [
        (b"content-type", b"application/json"),
        (b"openai-version", b"2020-10-01"),
    ]


# --- replays, read by the SDKs ---------------------------------------------------------------


async def _nothing() -> None:
    pass


class _Canned:
    """Answers every request with the bytes the test set last."""

    def __init__(self) -> None:
        self.content_type = b"application/json"
        self.body = b"{}"

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            await lifespan(receive, send, _nothing, _nothing)
            return
        while (await receive()).get("more_body"):
            pass
        await respond(send, 200, self.body, self.content_type)


@pytest.fixture(scope="module")
def canned() -> Iterator[tuple[_Canned, str]]:
    app = _Canned()
    with BackgroundServer(app) as server:
        yield app, server.url


def serve(canned: tuple[_Canned, str], body: bytes, stream: bool) -> str:
    app, url = canned
    app.body = body
    app.content_type = b"text/event-stream" if stream else b"application/json"
    return url


def openai_client(url: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=url + "/v1", api_key="sk-test", max_retries=0)


def anthropic_client(url: str) -> anthropic.Anthropic:
    return anthropic.Anthropic(base_url=url, api_key="sk-ant-test", max_retries=0)


def openai_stream(url: str, **kwargs: Any) -> tuple[list, ChatCompletion]:
    """Chunks of a streamed call through the SDK, and the completion its own accumulator makes."""
    chunks = list(
        openai_client(url).chat.completions.create(model=GPT, messages=MESSAGES, stream=True, **kwargs)
    )
    state = ChatCompletionStreamState()
    for chunk in chunks:
        state.handle_chunk(chunk)
    return chunks, state.get_final_completion()


@pytest.mark.parametrize("include_usage", [True, False])
def test_openai_whole_answer_replayed_as_a_stream_the_sdk_reads(canned, include_usage: bool) -> None:
    stream = replay_as_stream(entry_of(OPENAI_BODY), "openai", include_usage)
    url = serve(canned, stream, stream=True)
    chunks, final = openai_stream(url, stream_options={"include_usage": include_usage})
    expected = ChatCompletion.model_validate(OPENAI_BODY).model_dump()
    if not include_usage:
        expected["usage"] = None
        assert all(chunk.usage is None for chunk in chunks)
    else:
        assert chunks[-1].choices == [] and chunks[-1].usage is not None
        assert all(chunk.usage is None for chunk in chunks[:-1])
    # the SDK's accumulator keeps the tool calls' stream `index`, a whole answer has none
    assert without(final.model_dump(), INDEX) == without(expected, INDEX)
    assert stream.endswith(b"data: [DONE]\n\n")


def test_anthropic_whole_answer_replayed_as_a_stream_the_sdk_reads(canned) -> None:
    stream = replay_as_stream(entry_of(ANTHROPIC_BODY), "anthropic")
    url = serve(canned, stream, stream=True)
    with anthropic_client(url).messages.stream(model=CLAUDE, max_tokens=100, messages=MESSAGES) as events:
        kinds = [event.type for event in events]
        final = events.get_final_message()
    assert kinds[0] == "message_start" and kinds[-1] == "message_stop"
    assert without(final.model_dump()) == without(Message.model_validate(ANTHROPIC_BODY).model_dump())


# Streams as providers send them: fragments, pings, obfuscation padding, a usage chunk.
def _openai_chunk(choices: list, **fields: Any) -> bytes:
    chunk = {
        "id": "chatcmpl-s",
        "object": "chat.completion.chunk",
        "created": 1_700_000_001,
        "model": GPT,
        "service_tier": "default",
        "system_fingerprint": "fp_2",
        "choices": choices,
        "usage": None,
        "obfuscation": "xyz",
        **fields,
    }
    return encode(chunk)


def _delta(delta: dict, finish: str | None = None, index: int = 0) -> dict:
    return {"index": index, "delta": delta, "logprobs": None, "finish_reason": finish}


OPENAI_STREAM = b"".join(
    [
        _openai_chunk([_delta({"role": "assistant", "content": "", "refusal": None})]),
        _openai_chunk([_delta({"content": "Hel"})]),
        _openai_chunk([_delta({"content": "lo"})]),
        _openai_chunk(
            [
                _delta(
                    {
                        "tool_calls": [
                            {
                                "index": 0,
                                "id": "call_9",
                                "type": "function",
                                "function": {"name": "get_weather", "arguments": ""},
                            }
                        ]
                    }
                )
            ]
        ),
        _openai_chunk([_delta({"tool_calls": [{"index": 0, "function": {"arguments": '{"city"'}}]})]),
        _openai_chunk([_delta({"tool_calls": [{"index": 0, "function": {"arguments": ': "Oslo"}'}}]})]),
        _openai_chunk([_delta({}, "tool_calls")]),
        _openai_chunk(
            [], usage={"prompt_tokens": 12, "completion_tokens": 9, "total_tokens": 21}, obfuscation="ab"
        ),
        b"data: [DONE]\n\n",
    ]
)


def _anthropic_event(data: dict) -> bytes:
    return encode(data, data["type"])


ANTHROPIC_STREAM = b"".join(
    _anthropic_event(event)
    for event in [
        {
            "type": "message_start",
            "message": {
                "id": "msg_s",
                "type": "message",
                "role": "assistant",
                "model": CLAUDE,
                "content": [],
                "stop_reason": None,
                "stop_sequence": None,
                "usage": {"input_tokens": 30, "output_tokens": 1, "cache_read_input_tokens": 5},
            },
        },
        {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}},
        {"type": "ping"},
        {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "Hel"}},
        {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "lo"}},
        {"type": "content_block_stop", "index": 0},
        {
            "type": "content_block_start",
            "index": 1,
            "content_block": {"type": "tool_use", "id": "toolu_9", "name": "get_weather", "input": {}},
        },
        {
            "type": "content_block_delta",
            "index": 1,
            "delta": {"type": "input_json_delta", "partial_json": '{"city": "Os'},
        },
        {
            "type": "content_block_delta",
            "index": 1,
            "delta": {"type": "input_json_delta", "partial_json": 'lo"}'},
        },
        {"type": "content_block_stop", "index": 1},
        {
            "type": "message_delta",
            "delta": {"stop_reason": "tool_use", "stop_sequence": None},
            "usage": {"output_tokens": 17},
        },
        {"type": "message_stop"},
    ]
)


def test_openai_streamed_answer_replayed_whole_matches_the_sdks_accumulation(canned) -> None:
    url = serve(canned, OPENAI_STREAM, stream=True)
    _, accumulated = openai_stream(url)
    url = serve(canned, replay_as_body(entry_of(OPENAI_STREAM, streamed=True), "openai"), stream=False)
    whole = openai_client(url).chat.completions.create(model=GPT, messages=MESSAGES)
    assert whole.choices[0].message.content == "Hello"
    assert whole.choices[0].message.tool_calls[0].function.arguments == '{"city": "Oslo"}'
    assert whole.usage.total_tokens == 21
    assert without(whole.model_dump(), INDEX) == without(accumulated.model_dump(), INDEX)


def test_anthropic_streamed_answer_replayed_whole_matches_the_sdks_accumulation(canned) -> None:
    url = serve(canned, ANTHROPIC_STREAM, stream=True)
    with anthropic_client(url).messages.stream(model=CLAUDE, max_tokens=100, messages=MESSAGES) as events:
        accumulated = events.get_final_message()
    url = serve(canned, replay_as_body(entry_of(ANTHROPIC_STREAM, streamed=True), "anthropic"), stream=False)
    whole = anthropic_client(url).messages.create(model=CLAUDE, max_tokens=100, messages=MESSAGES)
    assert whole.content[1].input == {"city": "Oslo"}
    assert whole.usage.output_tokens == 17 and whole.usage.cache_read_input_tokens == 5
    assert without(whole.model_dump()) == without(accumulated.model_dump())


@pytest.mark.parametrize(("dialect", "body"), [("openai", OPENAI_BODY), ("anthropic", ANTHROPIC_BODY)])
def test_body_to_stream_to_body_is_the_same_answer(dialect, body: dict) -> None:
    stream = replay_as_stream(entry_of(body), dialect, include_usage=True)
    assert orjson.loads(replay_as_body(entry_of(stream, streamed=True), dialect)) == body


def _events(stream: bytes) -> list[dict | None]:
    return [event_json(event) for event in EventSplitter().feed(stream)]


def test_stored_openai_stream_follows_the_requests_include_usage() -> None:
    entry = entry_of(OPENAI_STREAM, streamed=True, usage=Usage(12, 9))
    assert replay_as_stream(entry, "openai", include_usage=True) == OPENAI_STREAM  # as it was
    without_usage = replay_as_stream(entry, "openai", include_usage=False)
    assert len(_events(without_usage)) == len(_events(OPENAI_STREAM)) - 1
    assert all(not (e and e["choices"] == []) for e in _events(without_usage))
    # stored without its usage chunk, asked with: made from the entry's usage
    added = replay_as_stream(entry_of(without_usage, streamed=True, usage=Usage(12, 9, 4)), "openai", True)
    usage = _events(added)[-2]["usage"]
    assert usage["prompt_tokens"] == 12 and usage["total_tokens"] == 21
    assert usage["prompt_tokens_details"] == {"cached_tokens": 4}
    assert added.endswith(b"data: [DONE]\n\n")


def test_stored_anthropic_stream_is_replayed_as_it_was() -> None:
    assert replay_as_stream(entry_of(ANTHROPIC_STREAM, streamed=True), "anthropic") == ANTHROPIC_STREAM


def test_replay_sets_content_type_length_and_age() -> None:
    entry = CachedResponse(
        200,
        [(b"content-type", b"application/json"), (b"openai-version", b"2020-10-01")],
        orjson.dumps(OPENAI_BODY),
        created_at=1000.0,
    )
    status, headers, body = replay(entry, "openai", stream=True, include_usage=False, now=1042.7)
    assert status == 200
    assert dict(headers) == {
        b"openai-version": b"2020-10-01",
        b"content-type": b"text/event-stream",
        b"content-length": str(len(body)).encode(),
        b"age": b"42",
    }
    status, headers, body = replay(entry, "openai", stream=False, now=1000.0)
    assert body == entry.body and dict(headers)[b"content-type"] == b"application/json"
    error = CachedResponse(400, [(b"content-type", b"application/json")], b'{"error": {}}')
    status, headers, body = replay(error, "openai", stream=True)
    assert (status, body, dict(headers)[b"content-type"]) == (400, b'{"error": {}}', b"application/json")
    with pytest.raises(ValueError):
        replay_as_stream(error, "openai")


# --- the in-memory cache ---------------------------------------------------------------------


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def sized(size: int, tag: bytes = b"") -> CachedResponse:
    """An entry whose encoded size is exactly `size` bytes."""
    empty = CachedResponse(200, [], b"")
    return CachedResponse(200, [], tag.ljust(size - empty.size, b"."))


async def test_hit_miss_and_stats() -> None:
    cache = ResponseCache(10_000, 5_000)
    assert await cache.get("a") is None
    entry = sized(1000)
    assert await cache.put("a", entry, 60)
    assert await cache.get("a") is entry
    assert cache.stats() == {
        "hits": 1,
        "misses": 1,
        "stores": 1,
        "too_large": 0,
        "evictions": 0,
        "expired": 0,
        "bytes": 1000,
        "entries": 1,
    }
    assert await cache.put("a", sized(2000), 60)  # replaced: counted once
    assert cache.stats()["bytes"] == 2000 and cache.stats()["entries"] == 1


async def test_lru_eviction_by_bytes() -> None:
    cache = ResponseCache(max_bytes=3000, max_entry_bytes=3000)
    for name in "abc":
        await cache.put(name, sized(1000, name.encode()), 60)
    await cache.get("a")  # a is now the most recently used: b goes first
    await cache.put("d", sized(1500), 60)
    assert [await cache.get(k) is not None for k in "abcd"] == [True, False, False, True]
    stats = cache.stats()
    assert stats["evictions"] == 2 and stats["bytes"] == 2500 and stats["entries"] == 2


async def test_ttl_expiry_with_an_injected_clock() -> None:
    clock = Clock()
    cache = ResponseCache(clock=clock)
    await cache.put("short", sized(500), 10)
    await cache.put("long", sized(500), 100)
    clock.now += 9.9
    assert await cache.get("short") is not None
    clock.now += 0.2
    assert await cache.get("short") is None
    assert await cache.get("long") is not None
    clock.now += 1000  # a later put sweeps expired entries out of the byte count
    await cache.put("new", sized(500), 10)
    assert cache.stats()["entries"] == 1 and cache.stats()["expired"] == 2


async def test_entries_over_the_size_limit_are_not_stored() -> None:
    cache = ResponseCache(max_bytes=10_000, max_entry_bytes=1000)
    assert not await cache.put("big", sized(1001), 60)
    assert await cache.put("fits", sized(1000), 60)
    assert not await cache.put("no-ttl", sized(100), 0)
    assert await cache.get("big") is None
    assert cache.stats()["too_large"] == 1 and cache.stats()["entries"] == 1


# --- shared through Redis --------------------------------------------------------------------


@pytest.fixture
def prefix(redis_prefix: str) -> str:
    return redis_prefix


async def test_redis_cache_is_shared_by_two_replicas(redis_url, prefix) -> None:
    one = RedisResponseCache(redis_url, prefix=prefix, timeout_s=2)
    two = RedisResponseCache(redis_url, prefix=prefix, timeout_s=2)
    try:
        entry = CachedResponse(
            200, [(b"content-type", b"text/event-stream")], OPENAI_STREAM, True, Usage(12, 9), 0.5
        )
        assert await two.get("k") is None
        assert await one.put("k", entry, 60)
        assert await two.get("k") == entry
        assert not await one.put("big", sized(one.max_entry_bytes + 1), 60)
        assert await one.put("short", entry, 0.1)
        await asyncio.sleep(0.2)
        assert await two.get("short") is None  # Redis expired it (PX)
        client = aioredis.Redis.from_url(redis_url)
        await client.set(prefix + "alien", b"not a cached response")
        await client.aclose()
        assert await two.get("alien") is None  # unreadable: a miss
        assert two.stats() == {
            "hits": 1,
            "misses": 3,
            "stores": 0,
            "too_large": 0,
            "bytes": 0,
            "entries": 0,
            "degraded": None,
        }
    finally:
        await one.aclose()
        await two.aclose()


async def test_redis_down_serves_from_local_state_and_says_so() -> None:
    cache = RedisResponseCache("redis://127.0.0.1:1/0", timeout_s=0.2, retry_s=60)
    try:
        started = time.perf_counter()
        assert await cache.get("k") is None
        assert cache.degraded is not None and "Redis unavailable" in cache.degraded
        assert await cache.put("k", sized(100), 60)
        assert await cache.get("k") is not None
        assert time.perf_counter() - started < 2  # one failed attempt, then local only
        stats = cache.stats()
        assert stats["entries"] == 1 and stats["hits"] == 1 and stats["degraded"] == cache.degraded
    finally:
        await cache.aclose()


async def test_redis_outage_then_recovery(redis_url, prefix) -> None:
    proxy = TcpRelay(int(redis_url.split("//", 1)[1].split("/", 1)[0].rsplit(":", 1)[1]))
    await proxy.start()
    cache = RedisResponseCache(f"redis://127.0.0.1:{proxy.port}/0", prefix=prefix, timeout_s=0.5, retry_s=0.1)
    other = RedisResponseCache(redis_url, prefix=prefix)
    try:
        await cache.put("before", sized(100), 60)
        await proxy.cut()
        assert await cache.get("before") is None  # Redis gone: local (empty) state
        assert cache.degraded is not None
        await cache.put("during", sized(100), 60)
        assert await cache.get("during") is not None
        await proxy.start()
        for _ in range(50):
            await asyncio.sleep(0.05)
            await cache.get("probe")  # a call while degraded starts the probe when due
            if cache.degraded is None:
                break
        assert cache.degraded is None
        assert await cache.get("before") is not None  # shared again
        assert cache.stats()["entries"] == 0  # the local entries were let go
        assert await other.get("during") is None  # kept locally only
    finally:
        await cache.aclose()
        await other.aclose()
        await proxy.cut()
