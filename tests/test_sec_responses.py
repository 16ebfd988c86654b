"""The Responses API as an attacker with a member key uses it, and as an upstream that answers
oddly: output limits and budgets hold, a stream broken off is charged what it sent, a continued
conversation is estimated whole, background and provider-side state are refused, a failed or
unfinished answer is neither cached nor kept nor free, a cache hit gives no one else's `user` or
`metadata`, a deleted response leaves the cache. Through the real HTTP server."""

from __future__ import annotations

import httpx
import orjson
import pytest

from conftest import MASTER_KEY
from servers import BackgroundServer
from test_gateway_e2e import sim_providers
from test_gateway_keys import flush_ledger, new_key
from xvckit.asgi import lifespan, read_body
from xvckit.providers import sse
from xvckit.store import keys
from xvckit.store.keys import Limits
from xvckit.store.ledger import ledger_records

FAKE = "x-fake"  # which odd answer the fake native upstream gives


async def _nothing() -> None:
    pass


def _response(status: str = "completed", usage: object = None, output: object = None) -> dict:
    text = {"type": "output_text", "text": "hi", "annotations": []}
    message = {
        "type": "message",
        "id": "msg_1",
        "role": "assistant",
        "status": "completed",
        "content": [text],
    }
    return {
        "id": "resp_fake",
        "object": "response",
        "status": status,
        "model": "gpt-4o-mini",
        "output": [message] if output is None else output,
        "usage": {"input_tokens": 5, "output_tokens": 2, "total_tokens": 7} if usage is None else usage,
    }


def _events(*pairs: tuple[str, dict]) -> bytes:
    return b"".join(sse.encode({"type": kind, **fields}, event=kind) for kind, fields in pairs)


async def fake_native(scope, receive, send) -> None:
    """A provider that speaks the Responses API, answering as the `x-fake` header says."""
    if scope["type"] == "lifespan":
        await lifespan(receive, send, _nothing, _nothing)
        return
    await read_body(scope, receive, 1 << 24)
    fake = dict(scope["headers"]).get(FAKE.encode(), b"").decode()
    stream = False
    if fake == "queued":
        body = orjson.dumps(_response("queued", usage={}, output=[]))
    elif fake == "string-usage":
        body = orjson.dumps(_response(usage={"input_tokens": "100", "output_tokens": 5}))
    elif fake == "failed-stream":
        failed = {**_response("failed"), "error": {"code": "server_error", "message": "boom"}}
        body, stream = (
            _events(
                ("response.created", {"response": _response("in_progress")}),
                ("response.failed", {"response": failed}),
            ),
            True,
        )
    elif fake == "broken-stream":
        deltas = [("response.output_text.delta", {"delta": "word " * 20}) for _ in range(50)]
        body, stream = _events(("response.created", {"response": _response("in_progress")}), *deltas), True
    else:
        body = orjson.dumps(_response())
    kind = b"text/event-stream" if stream else b"application/json"
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", kind)]})
    await send({"type": "http.response.body", "body": body})


@pytest.fixture(scope="module")
def gw(sim_factory, make_module_gateway):
    with BackgroundServer(fake_native) as native:
        config = sim_providers(sim_factory(rpm=10_000, tpm=100_000_000))
        config["providers"].append(
            {
                "name": "fake",
                "kind": "openai",
                "base_url": f"{native.url}/v1",
                "api_keys": ["sk-f"],
                "responses_api": True,
                "forward_headers": [FAKE],
            }
        )
        config["models"].insert(0, {"name": "fake-gpt", "provider": "fake", "model": "gpt-4o-mini"})
        server = make_module_gateway(config)
        yield server


def post(gw, key: str, body: dict, **headers: str) -> httpx.Response:
    return httpx.post(
        f"{gw.url}/v1/responses", json=body, headers={"authorization": f"Bearer {key}", **headers}, timeout=30
    )


def rows_of(gw, key_id: str) -> list:
    flush_ledger(gw)
    return [row for row in ledger_records(gw.store) if row.key_id == key_id]


def test_chat_output_limits_are_refused_not_left_unbounded(gw):
    _, raw = new_key(gw, name="limits", limits=Limits(budget_usd=0.0002, budget_period="day"))
    for field in ("max_tokens", "max_completion_tokens"):
        answer = post(gw, raw, {"model": "gpt-4o-mini", "input": "Go", field: 1})
        assert answer.status_code == 400 and "max_output_tokens" in answer.json()["error"]["message"]


def test_a_native_stream_broken_off_is_charged_what_it_sent(gw):
    key, raw = new_key(gw, name="broken")
    answer = post(gw, raw, {"model": "fake-gpt", "input": "Go", "stream": True}, **{FAKE: "broken-stream"})
    assert "upstream_incomplete" in answer.text
    (row,) = rows_of(gw, key.id)
    assert row.output_tokens >= 500  # 50 deltas of 20 words


def test_a_continued_conversation_is_estimated_whole(gw):
    """81k tokens of earlier turns: the continuation reserves them, so a budget that paid for the
    first call refuses the second instead of letting eight of them through."""
    _, raw = new_key(gw, name="whole", limits=Limits(budget_usd=0.02, budget_period="day"))
    first = post(gw, raw, {"model": "gpt-4o-mini", "input": "word " * 81_000, "max_output_tokens": 5})
    assert first.status_code == 200
    more = {"model": "gpt-4o-mini", "input": "more", "previous_response_id": first.json()["id"]}
    assert post(gw, raw, {**more, "max_output_tokens": 5}).status_code == 429
    refusal = {"type": "refusal", "refusal": "word " * 81_000}
    hidden = [
        {"type": "message", "role": "assistant", "content": [refusal]},
        {"role": "user", "content": "hi"},
    ]
    _, other = new_key(gw, name="refusal", limits=Limits(budget_usd=0.005, budget_period="day"))
    assert (
        post(gw, other, {"model": "gpt-4o-mini", "input": hidden, "max_output_tokens": 5}).status_code == 429
    )


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("background", True),
        ("conversation", "conv_123"),
        ("prompt", {"id": "pmpt_1"}),
        ("input", [{"type": "item_reference", "id": "msg_theirs"}]),
    ],
)
def test_provider_side_state_and_background_work_are_refused(gw, field, value):
    body = {"model": "fake-gpt", "input": "hi", field: value}
    answer = post(gw, MASTER_KEY, body)
    assert answer.status_code == 400 and answer.json()["error"]["code"] == "unsupported_parameter"


@pytest.mark.parametrize("fake", ["queued", "string-usage"])
def test_an_unfinished_or_malformed_native_answer_is_no_free_success(gw, fake):
    key, raw = new_key(gw, name=f"odd-{fake}")
    answer = post(gw, raw, {"model": "fake-gpt", "input": "hi"}, **{FAKE: fake})
    assert answer.status_code == 502 and answer.json()["error"]["code"] == "upstream_malformed"
    (row,) = rows_of(gw, key.id)
    assert row.status == 502 and row.error_type == "upstream_malformed"


def test_a_failed_native_stream_is_neither_cached_nor_kept(gw):
    key, raw = new_key(gw, name="failed")
    body = {"model": "fake-gpt", "input": "hi", "stream": True}
    first = post(gw, raw, body, **{FAKE: "failed-stream", "x-xvckit-cache": "on"})
    assert "response.failed" in first.text and first.headers["x-xvckit-cache"] == "miss"
    again = post(gw, raw, body, **{FAKE: "failed-stream", "x-xvckit-cache": "on"})
    assert again.headers["x-xvckit-cache"] == "miss"
    missing = httpx.get(f"{gw.url}/v1/responses/resp_fake", headers={"authorization": f"Bearer {raw}"})
    assert missing.status_code == 404
    assert {row.error_type for row in rows_of(gw, key.id)} == {"upstream_failed"}


def test_a_cache_hit_gives_no_one_else_user_or_metadata_and_a_delete_leaves_the_cache(gw):
    keys.create_team(gw.store, "echoes", Limits(), "test")
    _, alice = new_key(gw, name="alice", team="echoes")
    _, bob = new_key(gw, name="bob", team="echoes")
    cached = {"x-xvckit-cache": "on"}
    private = {
        "model": "gpt-4o-mini",
        "input": "Q3 numbers",
        "user": "alice@corp",
        "metadata": {"customer": "ACME"},
    }
    first = post(gw, alice, private, **cached)
    assert first.headers["x-xvckit-cache"] == "miss"
    plain = post(gw, bob, {"model": "gpt-4o-mini", "input": "Q3 numbers"}, **cached)
    assert plain.headers["x-xvckit-cache"] == "miss" and "ACME" not in plain.text
    assert post(gw, bob, private, **cached).headers["x-xvckit-cache"] == "hit"  # the very same request
    gone = httpx.delete(
        f"{gw.url}/v1/responses/{first.json()['id']}", headers={"authorization": f"Bearer {alice}"}
    )
    assert gone.status_code == 200
    assert post(gw, bob, private, **cached).headers["x-xvckit-cache"] == "miss"


def test_deep_nesting_with_the_cache_on_is_a_400_not_a_500(gw):
    # 253 levels, as bytes (orjson itself stops at 255): was a 500 once the cache key wrapped it
    body = (
        b'{"model": "gpt-4o-mini", "input": "hi", "metadata": {"d": ' + b"[" * 251 + b"1" + b"]" * 251 + b"}}"
    )
    answer = httpx.post(
        f"{gw.url}/v1/responses",
        content=body,
        headers={
            "authorization": f"Bearer {MASTER_KEY}",
            "content-type": "application/json",
            "x-xvckit-cache": "on",
        },
    )
    assert answer.status_code == 400
