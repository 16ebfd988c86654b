"""Issue 19: property tests of the proxy's request parsing through the real HTTP server. Arbitrary
JSON bodies (and some that are not JSON), headers and model names against the chat, messages,
embeddings, count_tokens and Responses endpoints, and a sweep that gives every place of a full request of
each dialect each other type in turn: never a 5xx, every error in the endpoint's dialect, and
every request exactly one ledger record.

The provider is a stub that answers every call well (or, for a fifth of them, with a 400 in its
dialect), so that a 5xx can only be the gateway's: the simulator answers some malformed requests
with a 500 of its own (a `tool_choice` whose `type` is an object, for one)."""

from __future__ import annotations

import collections
import itertools
import string

import httpx
import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conftest import MASTER_KEY
from servers import BackgroundServer
from test_gateway_keys import flush_ledger, new_key
from xvckit.asgi import JSON, read_body
from xvckit.providers.sse import encode
from xvckit.store.keys import Limits
from xvckit.store.ledger import ledger_records

PATHS = {
    "/v1/chat/completions": "openai",
    "/v1/embeddings": "openai",
    "/v1/messages": "anthropic",
    "/v1/messages/count_tokens": "anthropic",
    "/v1/responses": "openai",
}

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**64 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=12),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
    max_leaves=8,
)
# Values that are not read as "absent" (null, false, 0, "" and [] mostly are).
present = st.one_of(
    st.integers(1, 2**63),
    st.floats(0.5, 1e9),
    st.just(True),
    st.text(min_size=1, max_size=12),
    st.lists(json_values, min_size=1, max_size=3),
    st.dictionaries(st.text(max_size=8), json_values, min_size=1, max_size=3),
)


def shaped(good: st.SearchStrategy) -> st.SearchStrategy:
    """A field's value: of the shape the API gives it, or (as often) of any other."""
    return st.one_of(good, present)


texts = st.text(max_size=30)
known_models = st.sampled_from(
    ["gpt-4o-mini", "fast", "text-embedding-3-small", "claude-sonnet-4-5", "claude-x"]
)
models = st.one_of(
    known_models, known_models, known_models, st.just("nope"), st.text(max_size=20), json_values
)
limits = shaped(st.integers(1, 64) | st.sampled_from([0, 2**31, 2**63 - 1]))
kinds = ["text", "image", "image_url", "tool_use", "tool_result", "document", "file", "refusal", "x"]
blocks = st.fixed_dictionaries(
    {"type": shaped(st.sampled_from(kinds))},
    optional={
        "text": shaped(texts),
        "content": shaped(
            texts | st.lists(st.fixed_dictionaries({"type": st.just("text"), "text": shaped(texts)}))
        ),
        "source": shaped(
            st.fixed_dictionaries(
                {"type": shaped(st.sampled_from(["base64", "url", "text", "content"]))},
                optional={
                    "data": shaped(texts),
                    "media_type": shaped(texts),
                    "url": shaped(texts),
                    "content": present,
                },
            )
        ),
        "input": json_values,
        "id": shaped(texts),
        "name": shaped(texts),
        "image_url": shaped(st.fixed_dictionaries({"url": shaped(texts)})),
        "file": shaped(
            st.fixed_dictionaries({}, optional={"file_data": shaped(texts), "filename": shaped(texts)})
        ),
        "tool_use_id": shaped(texts),
    },
)
contents = shaped(texts | st.lists(shaped(blocks), max_size=3))
calls = st.fixed_dictionaries(
    {
        "type": shaped(st.just("function")),
        "function": shaped(
            st.fixed_dictionaries({}, optional={"name": shaped(texts), "arguments": shaped(texts)})
        ),
    },
    optional={"id": shaped(texts)},
)
messages = st.fixed_dictionaries(
    {"role": shaped(st.sampled_from(["user", "assistant", "system", "developer", "tool"]))},
    optional={
        "content": contents,
        "tool_calls": shaped(st.lists(shaped(calls), max_size=2)),
        "tool_call_id": shaped(texts),
        "name": shaped(texts),
    },
)
tools = st.fixed_dictionaries(
    {},
    optional={
        "type": shaped(st.sampled_from(["function", "custom"])),
        "name": shaped(texts),
        "description": shaped(texts),
        "input_schema": json_values,
        "function": shaped(
            st.fixed_dictionaries({}, optional={"name": shaped(texts), "parameters": json_values})
        ),
    },
)
choices = st.sampled_from(["auto", "none", "required"]) | st.fixed_dictionaries(
    {"type": shaped(st.sampled_from(["auto", "any", "tool", "none", "function"]))},
    optional={"name": shaped(texts), "function": shaped(st.fixed_dictionaries({"name": shaped(texts)}))},
)
# What a client might send: each field right, or of any other shape.
wild = st.fixed_dictionaries(
    {"model": models, "messages": shaped(st.lists(shaped(messages), max_size=3))},
    optional={
        "max_tokens": limits,
        "max_completion_tokens": limits,
        "stream": shaped(st.booleans()),
        "stream_options": shaped(st.fixed_dictionaries({"include_usage": shaped(st.booleans())})),
        "system": contents,
        "input": contents,
        "tools": shaped(st.lists(shaped(tools), max_size=2)),
        "tool_choice": shaped(choices),
        "temperature": shaped(st.floats(0, 2)),
        "stop": shaped(st.lists(texts, max_size=2)),
        "stop_sequences": shaped(st.lists(texts, max_size=2)),
        "metadata": json_values,
    },
)
# Full requests of each dialect, with a field of every kind the gateway reads or translates.
CHAT = {
    "model": "gpt-4o-mini",
    "max_tokens": 20,
    "stream": False,
    "stream_options": {"include_usage": True},
    "temperature": 0.5,
    "stop": ["x"],
    "messages": [
        {"role": "system", "content": "be brief"},
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "hi"},
                {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}},
                {
                    "type": "file",
                    "file": {"file_data": "data:application/pdf;base64,AAAA", "filename": "a.pdf"},
                },
            ],
        },
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {"id": "call_1", "type": "function", "function": {"name": "f", "arguments": '{"a": 1}'}}
            ],
        },
        {"role": "tool", "tool_call_id": "call_1", "content": "42"},
    ],
    "tools": [
        {"type": "function", "function": {"name": "f", "description": "d", "parameters": {"type": "object"}}}
    ],
    "tool_choice": {"type": "function", "function": {"name": "f"}},
    "parallel_tool_calls": False,
    "user": "u",
    "response_format": {"type": "json_schema", "json_schema": {"name": "r", "schema": {"type": "object"}}},
}
MESSAGES = {
    "model": "claude-sonnet-4-5",
    "max_tokens": 20,
    "stream": False,
    "system": [{"type": "text", "text": "be brief"}],
    "messages": [
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "hi"},
                {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "AAAA"}},
                {
                    "type": "document",
                    "source": {"type": "content", "content": [{"type": "text", "text": "d"}]},
                },
                {
                    "type": "document",
                    "source": {"type": "base64", "media_type": "application/pdf", "data": "AA"},
                },
            ],
        },
        {
            "role": "assistant",
            "content": [
                {"type": "text", "text": "calling"},
                {"type": "tool_use", "id": "t1", "name": "f", "input": {}},
            ],
        },
        {
            "role": "user",
            "content": [
                {"type": "tool_result", "tool_use_id": "t1", "content": [{"type": "text", "text": "42"}]}
            ],
        },
    ],
    "tools": [{"name": "f", "description": "d", "input_schema": {"type": "object"}}],
    "tool_choice": {"type": "tool", "name": "f", "disable_parallel_tool_use": True},
    "stop_sequences": ["x"],
    "metadata": {"user_id": "u"},
    "output_config": {"format": {"type": "json_schema", "schema": {"type": "object"}}},
}
EMBEDDINGS = {"model": "text-embedding-3-small", "input": ["a", "b"]}
RESPONSES = {
    "model": "gpt-4o-mini",
    "max_output_tokens": 20,
    "stream": False,
    "instructions": "be brief",
    "input": [
        {
            "type": "message",
            "role": "user",
            "content": [
                {"type": "input_text", "text": "hi"},
                {"type": "input_image", "image_url": "data:image/png;base64,AAAA"},
            ],
        },
        {"type": "function_call", "call_id": "c1", "name": "f", "namespace": "ns", "arguments": "{}"},
        {"type": "function_call_output", "call_id": "c1", "output": "ok"},
        {"type": "message", "role": "assistant", "content": [{"type": "refusal", "refusal": "no"}]},
    ],
    "tools": [
        {"type": "function", "name": "f", "parameters": {"type": "object", "properties": {}}},
        {"type": "namespace", "name": "ns", "description": "d", "tools": [{"type": "function", "name": "g"}]},
        {"type": "web_search"},
    ],
    "tool_choice": {"type": "function", "name": "f"},
    "text": {"format": {"type": "json_schema", "name": "x", "schema": {"type": "object"}}},
    "reasoning": {"effort": "low"},
    "metadata": {"k": "v"},
}


def _paths(value, at: tuple = ()):
    """Every place in a JSON value, as a path of keys and indices."""
    yield at
    items = value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, list) else ()
    for step, inner in items:
        yield from _paths(inner, (*at, step))


def _put(value, path: tuple, new):
    if not path:
        return new
    copy = dict(value) if isinstance(value, dict) else list(value)
    copy[path[0]] = _put(value[path[0]], path[1:], new)
    return copy


PLACES = [
    (template, path)
    for template in (CHAT, MESSAGES, EMBEDDINGS, RESPONSES)
    for path in _paths(template)
    if path
]
# One of the full requests (for any model: either dialect's provider, translated or not) with one
# place given a value of another shape: how a type mix-up anywhere in a request is met.
mutated = st.builds(
    lambda place, model, stream, new: _put({**place[0], "model": model, "stream": stream}, place[1], new),
    st.sampled_from(PLACES),
    known_models,
    st.booleans(),
    present | json_values,
)
bodies = st.one_of(
    *[mutated.map(orjson.dumps)] * 6,
    *[wild.map(orjson.dumps)] * 2,
    json_values.map(orjson.dumps),
    st.binary(max_size=40),
    st.sampled_from([b"", b"{", b'{"model": "gpt-4o-mini"', b"\xff\xfe{}"]),
)
header_text = st.text(string.ascii_letters + string.digits + "-_;=/.,", min_size=1, max_size=16)


class StubProvider:
    """Both providers' APIs, answering every call with a small valid answer in its dialect
    (whole or streamed, as asked), or with a 400 when the body's length is a multiple of 5."""

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            return
        raw = await read_body(scope, receive, 64 << 20)
        body, path = orjson.loads(raw), scope["path"]
        anthropic = path.startswith("/v1/messages")
        model = body.get("model")
        if len(raw) % 5 == 0:
            error = {"type": "invalid_request_error", "message": "refused by the stub"}
            answer = (
                {"type": "error", "error": error}
                if anthropic
                else {"error": {**error, "param": None, "code": None}}
            )
            return await _answer(send, 400, JSON, orjson.dumps(answer))
        if path.endswith("/count_tokens"):
            return await _answer(send, 200, JSON, b'{"input_tokens": 5}')
        if path.endswith("/embeddings"):
            data = [{"object": "embedding", "index": 0, "embedding": [0.5, 0.5]}]
            usage = {"prompt_tokens": 3, "total_tokens": 3}
            return await _answer(
                send,
                200,
                JSON,
                orjson.dumps({"object": "list", "data": data, "model": model, "usage": usage}),
            )
        if body.get("stream") is True:
            events = _anthropic_stream(model) if anthropic else _openai_stream(model)
            return await _answer(send, 200, b"text/event-stream", b"".join(events))
        if anthropic:
            answer = {
                "id": "msg_1",
                "type": "message",
                "role": "assistant",
                "model": model,
                "content": [{"type": "text", "text": "hello"}],
                "stop_reason": "end_turn",
                "stop_sequence": None,
                "usage": {"input_tokens": 5, "output_tokens": 2},
            }
        else:
            message = {"role": "assistant", "content": "hello"}
            answer = {
                "id": "chatcmpl-1",
                "object": "chat.completion",
                "created": 0,
                "model": model,
                "choices": [{"index": 0, "message": message, "finish_reason": "stop"}],
                "usage": {"prompt_tokens": 5, "completion_tokens": 2, "total_tokens": 7},
            }
        await _answer(send, 200, JSON, orjson.dumps(answer))


async def _answer(send, status: int, content_type: bytes, body: bytes) -> None:
    await send(
        {"type": "http.response.start", "status": status, "headers": [(b"content-type", content_type)]}
    )
    await send({"type": "http.response.body", "body": body})


def _openai_stream(model) -> list[bytes]:
    head = {"id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 0, "model": model}
    deltas = [{"role": "assistant", "content": "hel"}, {"content": "lo"}, {}]
    events = [
        encode({**head, "choices": [{"index": 0, "delta": d, "finish_reason": None if d else "stop"}]})
        for d in deltas
    ]
    usage = {"prompt_tokens": 5, "completion_tokens": 2, "total_tokens": 7}
    return [*events, encode({**head, "choices": [], "usage": usage}), b"data: [DONE]\n\n"]


def _anthropic_stream(model) -> list[bytes]:
    message = {
        "id": "msg_1",
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": [],
        "stop_reason": None,
        "stop_sequence": None,
        "usage": {"input_tokens": 5, "output_tokens": 1},
    }
    return [
        encode({"type": "message_start", "message": message}, "message_start"),
        encode(
            {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}},
            "content_block_start",
        ),
        encode(
            {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "hello"}},
            "content_block_delta",
        ),
        encode({"type": "content_block_stop", "index": 0}, "content_block_stop"),
        encode(
            {
                "type": "message_delta",
                "delta": {"stop_reason": "end_turn", "stop_sequence": None},
                "usage": {"output_tokens": 2},
            },
            "message_delta",
        ),
        encode({"type": "message_stop"}, "message_stop"),
    ]


@pytest.fixture
def fuzz_gw(make_gateway):
    with BackgroundServer(StubProvider()) as stub:
        providers = [
            {"name": "stub-oa", "kind": "openai", "base_url": f"{stub.url}/v1", "api_keys": ["sk-stub"]},
            {"name": "stub-an", "kind": "anthropic", "base_url": stub.url, "api_keys": ["sk-stub"]},
        ]
        models = [
            {"name": "gpt-4o-mini", "provider": "stub-oa"},
            {"name": "fast", "provider": "stub-oa", "model": "gpt-4o-mini"},
            {"name": "text-embedding-3-small", "provider": "stub-oa"},
            {"name": "claude-*", "provider": "stub-an"},
        ]
        gw = make_gateway({"providers": providers, "models": models})
        gw.store = gw.gateway.store
        limits = Limits(budget_usd=50.0, budget_period="day", tpm=10_000_000)
        _, gw.keyed = new_key(gw, name="keyed", limits=limits)
        _, gw.batch = new_key(gw, name="batch", priority="batch", cache="on")
        yield gw


class Caller:
    """Sends requests to the gateway, each with an x-request-id of its own (the ledger keeps it),
    and checks the answer: never a 5xx, and an error in the endpoint's dialect."""

    def __init__(self, gw) -> None:
        self.gw = gw
        self.client = httpx.Client(base_url=gw.url, timeout=30)
        self.sent: list[str] = []

    def post(self, path: str, body: bytes, headers: dict[str, str]) -> httpx.Response:
        request_id = f"fuzz-{len(self.sent)}"
        response = self.client.post(path, content=body, headers={**headers, "x-request-id": request_id})
        self.sent.append(request_id)
        assert response.status_code < 500, (path, body, response.status_code, response.text)
        if response.status_code >= 400:
            _check_error(response, PATHS[path])
        return response

    def check_ledger(self) -> None:
        """Every request sent is one ledger record, exactly."""
        self.client.close()
        flush_ledger(self.gw)
        counted = collections.Counter(r.client_request_id for r in ledger_records(self.gw.store))
        assert {request_id: counted[request_id] for request_id in self.sent} == dict.fromkeys(self.sent, 1)


def _check_error(response: httpx.Response, dialect: str) -> None:
    """An error body as the endpoint's dialect writes one (the gateway's own, or an upstream's)."""
    body = response.json()
    if dialect == "openai":
        assert set(body) == {"error"} and isinstance(body["error"]["message"], str), body
    else:
        assert body["type"] == "error" and isinstance(body["error"]["message"], str), body
        assert isinstance(body["error"]["type"], str), body


def test_no_request_makes_a_5xx_and_each_is_ledgered_once(fuzz_gw):
    caller = Caller(fuzz_gw)
    keys = {"master": MASTER_KEY, "keyed": fuzz_gw.keyed, "batch": fuzz_gw.batch, "wrong": "xvc-wrong"}

    @settings(max_examples=400, deadline=None, suppress_health_check=list(HealthCheck), database=None)
    @given(
        path=st.sampled_from(sorted(PATHS)),
        body=bodies,
        key=st.sampled_from(["master"] * 3 + ["keyed"] * 3 + ["batch", "wrong", None]),
        content_type=st.sampled_from(
            ["application/json"] * 6 + ["application/json; charset=utf-8", "text/plain", None]
        ),
        priority=st.one_of(*[st.sampled_from([None, "batch", "interactive"])] * 3, header_text),
        cache=st.one_of(*[st.sampled_from([None, "on", "off"])] * 3, header_text),
    )
    def one(path, body, key, content_type, priority, cache):
        headers = {
            "authorization": key and f"Bearer {keys[key]}",
            "content-type": content_type,
            "x-xvckit-priority": priority,
            "x-xvckit-cache": cache,
        }
        caller.post(path, body, {name: value for name, value in headers.items() if value is not None})

    one()
    assert len(caller.sent) >= 400
    caller.check_ledger()


WRONG = [5, 2.5, True, "x", {"k": 1}, [1], None]
ENDPOINTS = {
    id(CHAT): "/v1/chat/completions",
    id(MESSAGES): "/v1/messages",
    id(EMBEDDINGS): "/v1/embeddings",
    id(RESPONSES): "/v1/responses",
}
CROSSED = {
    id(CHAT): "claude-sonnet-4-5",
    id(MESSAGES): "gpt-4o-mini",
    id(EMBEDDINGS): "claude-x",
    id(RESPONSES): "claude-sonnet-4-5",
}


def test_a_value_of_another_type_anywhere_in_a_request_is_never_a_5xx(fuzz_gw):
    """Every place of a full request of each dialect, given each other type in turn, sent in its
    dialect and translated for the other one, whole and streamed: the sweep of the type mix-ups
    a random search meets too rarely to count on."""
    caller = Caller(fuzz_gw)
    for n, ((template, place), wrong, crossed) in enumerate(itertools.product(PLACES, WRONG, (False, True))):
        model = CROSSED[id(template)] if crossed else template["model"]
        body = _put({**template, "model": model, "stream": n % 4 < 2}, place, wrong)
        key = fuzz_gw.keyed if n % 2 else MASTER_KEY
        headers = {"authorization": f"Bearer {key}", "content-type": "application/json"}
        caller.post(ENDPOINTS[id(template)], orjson.dumps(body), headers)
    caller.check_ledger()
