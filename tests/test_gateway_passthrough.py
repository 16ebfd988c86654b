"""What the upstream sees: fields untouched, keys swapped, disconnects passed on."""

from __future__ import annotations

import asyncio
import threading
import time

import httpx
import orjson
import pytest

from conftest import MASTER_KEY
from servers import BackgroundServer
from xvckit.asgi import lifespan, read_body, respond

COMPLETION = {
    "id": "chatcmpl-1",
    "object": "chat.completion",
    "created": 1,
    "model": "up-model",
    "choices": [{"index": 0, "message": {"role": "assistant", "content": "ok"}, "finish_reason": "stop"}],
    "usage": {"prompt_tokens": 3, "completion_tokens": 1, "total_tokens": 4},
}


class RecordingUpstream:
    """Answers a fixed completion and remembers each request. A streamed request gets one
    event, a request with `"hang": true` nothing; both then wait to see if their client leaves."""

    def __init__(self) -> None:
        self.requests: list[tuple[str, dict[bytes, bytes], bytes]] = []
        self.client_left = threading.Event()

    async def __call__(self, scope, receive, send):
        if scope["type"] == "lifespan":
            await lifespan(receive, send, _nothing, _nothing)
            return
        body = await read_body(scope, receive, 1 << 30)
        self.requests.append((scope["path"], dict(scope["headers"]), body))
        payload = orjson.loads(body)
        if payload.get("stream") or payload.get("hang"):
            if payload.get("stream"):
                await send(
                    {
                        "type": "http.response.start",
                        "status": 200,
                        "headers": [(b"content-type", b"text/event-stream")],
                    }
                )
                await send(
                    {
                        "type": "http.response.body",
                        "body": b'data: {"choices":[{"delta":{}}]}\n\n',
                        "more_body": True,
                    }
                )
            while (await receive())["type"] != "http.disconnect":
                pass
            self.client_left.set()
            return
        await respond(send, 200, orjson.dumps(COMPLETION))


async def _nothing() -> None:
    return None


@pytest.fixture
def upstream():
    recorder = RecordingUpstream()
    with BackgroundServer(recorder) as server:
        recorder.url = server.url
        yield recorder


@pytest.fixture
def gw(upstream, make_gateway):
    return make_gateway(
        {
            "providers": [
                {
                    "name": "up",
                    "kind": "openai",
                    "base_url": f"{upstream.url}/v1",
                    "api_keys": ["sk-up-1"],
                    "headers": {"x-team": "blue"},
                },
                {"name": "an", "kind": "anthropic", "base_url": upstream.url, "api_keys": ["sk-ant-1"]},
            ],
            "models": [
                {"name": "same", "provider": "up"},
                {"name": "alias", "provider": "up", "model": "real-id"},
                {"name": "claude-x", "provider": "an"},
            ],
        }
    )


def _post(url: str, payload: dict, **headers: str) -> httpx.Response:
    return httpx.post(
        url,
        content=orjson.dumps(payload),
        headers={"authorization": f"Bearer {MASTER_KEY}", "content-type": "application/json", **headers},
    )


def test_unknown_fields_pass_untouched_and_keys_are_swapped(gw, upstream):
    payload = {
        "model": "same",
        "messages": [{"role": "user", "content": "hi"}],
        "response_format": {
            "type": "json_schema",
            "json_schema": {"name": "x", "schema": {"type": "object"}},
        },
        "thinking": {"type": "enabled", "budget_tokens": 1024},
        "vendor_extension": {"nested": [1, 2.5, None, "ü"]},
    }
    sent = orjson.dumps(payload)
    r = httpx.post(
        f"{gw.url}/v1/chat/completions",
        content=sent,
        headers={"authorization": f"Bearer {MASTER_KEY}", "content-type": "application/json"},
    )
    assert r.status_code == 200 and r.json() == COMPLETION
    path, headers, body = upstream.requests[-1]
    assert path == "/v1/chat/completions"
    assert body == sent, "an unchanged request must reach the upstream byte for byte"
    assert headers[b"authorization"] == b"Bearer sk-up-1"
    assert headers[b"x-team"] == b"blue"
    assert MASTER_KEY.encode() not in b"".join(headers.values())


def test_alias_rewrites_only_the_model(gw, upstream):
    payload = {"model": "alias", "messages": [], "tools": [{"type": "function", "function": {"name": "f"}}]}
    assert _post(f"{gw.url}/v1/chat/completions", payload).status_code == 200
    forwarded = orjson.loads(upstream.requests[-1][2])
    assert forwarded == {**payload, "model": "real-id"}


def test_anthropic_key_and_version_headers(gw, upstream):
    payload = {"model": "claude-x", "max_tokens": 5, "messages": [], "cache_control": {"type": "ephemeral"}}
    _post(f"{gw.url}/v1/messages", payload, **{"anthropic-version": "2023-06-01", "anthropic-beta": "b1"})
    path, headers, body = upstream.requests[-1]
    assert path == "/v1/messages"
    assert headers[b"x-api-key"] == b"sk-ant-1" and b"authorization" not in headers
    assert headers[b"anthropic-version"] == b"2023-06-01" and headers[b"anthropic-beta"] == b"b1"
    assert orjson.loads(body) == payload


def test_stream_asks_for_usage_and_a_disconnect_reaches_the_upstream(gw, upstream):
    payload = {"model": "same", "messages": [], "stream": True}
    with httpx.stream(
        "POST",
        f"{gw.url}/v1/chat/completions",
        content=orjson.dumps(payload),
        headers={"authorization": f"Bearer {MASTER_KEY}", "content-type": "application/json"},
    ) as r:
        first = next(r.iter_raw())
        assert first.startswith(b"data: ")
    # the client has closed its connection: the gateway must close the upstream call too
    assert upstream.client_left.wait(5), "the upstream call outlived its client"
    forwarded = orjson.loads(upstream.requests[-1][2])
    assert forwarded["stream_options"] == {"include_usage": True}


async def test_disconnect_while_waiting_for_a_slow_answer(gw, upstream):
    """No bytes have come back yet when the client gives up: the upstream call still ends."""
    payload = orjson.dumps({"model": "same", "messages": [], "hang": True})
    _, writer = await asyncio.open_connection("127.0.0.1", gw.port)
    writer.write(
        b"POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n"
        + f"authorization: Bearer {MASTER_KEY}\r\ncontent-length: {len(payload)}\r\n\r\n".encode()
        + payload
    )
    await writer.drain()
    deadline = time.monotonic() + 5
    while not upstream.requests and time.monotonic() < deadline:
        await asyncio.sleep(0.01)
    writer.close()
    deadline = time.monotonic() + 5
    while not upstream.client_left.is_set() and time.monotonic() < deadline:
        await asyncio.sleep(0.02)
    assert upstream.client_left.is_set()
