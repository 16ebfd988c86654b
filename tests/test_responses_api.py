"""Issue 20: OpenAI's Responses API through the gateway, driven by the official `openai` SDK
(`client.responses.create`, plain, streamed, with tools and with structured output), against an
upstream that speaks only chat completions, an Anthropic upstream, and one that speaks the
Responses API itself; `previous_response_id` across calls; the stored response's GET, DELETE and
input items, each key seeing only its own. Through the real HTTP server."""

from __future__ import annotations

import json

import httpx
import openai
import pytest

from conftest import MASTER_KEY
from servers import BackgroundServer
from test_gateway_e2e import sim_providers
from test_gateway_keys import flush_ledger, new_key
from xvckit.config import from_mapping
from xvckit.gateway import Gateway
from xvckit.http_server import HttpServer
from xvckit.providers import responses_events, sse
from xvckit.sim.kept import KeptConversations
from xvckit.store import Store, keys
from xvckit.store.ledger import ledger_records

WEATHER = {
    "type": "function",
    "name": "get_weather",
    "description": "The weather in a city",
    "parameters": {
        "type": "object",
        "properties": {"city": {"type": "string"}},
        "required": ["city"],
        "additionalProperties": False,
    },
    "strict": True,
}
PERSON = {
    "type": "json_schema",
    "name": "person",
    "strict": True,
    "schema": {
        "type": "object",
        "properties": {"name": {"type": "string"}, "age": {"type": "integer"}},
        "required": ["name", "age"],
        "additionalProperties": False,
    },
}
# chat: an OpenAI-compatible server with chat completions only; claude: Anthropic's Messages
UPSTREAMS = ["gpt-4o-mini", "claude-sonnet-4-5"]


@pytest.fixture(scope="module")
def gw(sim_factory, tmp_path_factory):
    """One gateway for the module (a gateway's stop takes a second): each test its own keys."""
    config = sim_providers(sim_factory(rpm=10_000, tpm=100_000_000))
    config["providers"].append(
        {**config["providers"][0], "name": "sim-native", "responses_api": True, "api_keys": ["sk-n"]}
    )
    config["models"].insert(0, {"name": "native-gpt", "provider": "sim-native", "model": "gpt-4o-mini"})
    folder = tmp_path_factory.mktemp("responses")
    loaded = from_mapping({"storage": {"url": f"sqlite:///{folder}/xvckit.db"}, **config})
    gateway = Gateway(loaded, MASTER_KEY, Store.open(loaded.storage.url))
    with BackgroundServer(gateway, server=HttpServer) as server:
        server.gateway, server.store = gateway, gateway.store
        yield server


def sdk(gw, key: str = MASTER_KEY) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{gw.url}/v1", api_key=key, max_retries=0)


@pytest.mark.parametrize("model", UPSTREAMS)
def test_plain_response_is_read_by_the_sdk_and_ledgered(gw, model):
    key, raw = new_key(gw, name=f"plain-{model}")
    response = sdk(gw, raw).responses.create(
        model=model, input="Say hello", instructions="Be brief", max_output_tokens=40
    )
    assert response.object == "response" and response.status == "completed"
    assert response.id.startswith("resp_") and response.model == model
    assert response.output_text and response.output[0].type == "message"
    assert response.usage.input_tokens > 0 and response.usage.output_tokens > 0
    assert response.usage.total_tokens == response.usage.input_tokens + response.usage.output_tokens
    flush_ledger(gw)
    (row,) = [row for row in ledger_records(gw.store) if row.key_id == key.id]
    assert (row.endpoint, row.status, row.model) == ("responses", 200, model)
    assert row.output_tokens == response.usage.output_tokens


@pytest.mark.parametrize("model", UPSTREAMS)
def test_streamed_events_arrive_in_the_api_order(gw, model):
    with sdk(gw).responses.stream(model=model, input="Tell me a story", max_output_tokens=500) as stream:
        kinds = [event.type for event in stream]
        final = stream.get_final_response()
    assert kinds[:2] == ["response.created", "response.in_progress"]
    assert kinds[2:5] == [
        "response.output_item.added",
        "response.content_part.added",
        "response.output_text.delta",
    ]
    assert kinds[-4:] == [
        "response.output_text.done",
        "response.content_part.done",
        "response.output_item.done",
        "response.completed",
    ]
    assert final.output_text and final.usage.output_tokens > 0


@pytest.mark.parametrize("model", UPSTREAMS)
@pytest.mark.parametrize("stream", [False, True])
def test_a_tool_call_then_its_result(gw, model, stream):
    client = sdk(gw)
    args = dict(model=model, input="Weather in Paris?", tools=[WEATHER])
    if stream:
        with client.responses.stream(**args) as events:
            kinds = [event.type for event in events]
            first = events.get_final_response()
        assert "response.function_call_arguments.delta" in kinds
        assert "response.function_call_arguments.done" in kinds
    else:
        first = client.responses.create(**args)
    (call,) = [item for item in first.output if item.type == "function_call"]
    assert call.name == "get_weather" and json.loads(call.arguments)["city"]
    second = client.responses.create(
        model=model,
        previous_response_id=first.id,
        input=[{"type": "function_call_output", "call_id": call.call_id, "output": "sunny, 21 C"}],
        tools=[WEATHER],
    )
    assert second.output_text and second.previous_response_id == first.id


# What the Codex CLI sends: function tools, some grouped in a namespace, and web search.
CODEX_TOOLS = [
    {"type": "web_search", "external_web_access": False},
    {
        "type": "namespace",
        "name": "multi_agent_v1",
        "description": "Tools for spawning and managing sub-agents.",
        "tools": [
            {
                "type": "function",
                "name": "close_agent",
                "parameters": {
                    "type": "object",
                    "properties": {"id": {"type": "string"}},
                    "required": ["id"],
                },
            }
        ],
    },
]


@pytest.mark.parametrize("model", [*UPSTREAMS, "native-gpt"])
@pytest.mark.parametrize("stream", [False, True])
def test_namespaced_tools_and_web_search_as_the_codex_cli_sends_them(gw, model, stream):
    """A namespace's functions reach a chat or Anthropic upstream as `<namespace>__<name>` and
    come back as a call with its `namespace`; web search is left out (the simulator, as OpenAI,
    takes both as they are)."""
    client = sdk(gw)
    args = dict(model=model, input="Close agent 7", tools=CODEX_TOOLS, tool_choice="required")
    if stream:
        with client.responses.stream(**args) as events:
            first = events.get_final_response()
    else:
        first = client.responses.create(**args)
    (call,) = [item for item in first.output if item.type == "function_call"]
    assert (call.namespace, call.name) == ("multi_agent_v1", "close_agent") and json.loads(call.arguments)[
        "id"
    ]
    second = client.responses.create(
        model=model,
        previous_response_id=first.id,
        input=[{"type": "function_call_output", "call_id": call.call_id, "output": "closed"}],
        tools=CODEX_TOOLS,
    )
    assert second.output_text and second.previous_response_id == first.id


@pytest.mark.parametrize("model", UPSTREAMS)
def test_structured_output_validates(gw, model):
    response = sdk(gw).responses.create(model=model, input="A person", text={"format": PERSON})
    person = json.loads(response.output_text)
    assert set(person) == {"name", "age"} and isinstance(person["age"], int)


@pytest.mark.parametrize("model", [*UPSTREAMS, "native-gpt"])
def test_previous_response_id_carries_the_conversation(gw, sim, model):
    client = sdk(gw)
    first = client.responses.create(model=model, input="My name is Ada.", instructions="Be brief")
    second = client.responses.create(model=model, input="What is my name?", previous_response_id=first.id)
    assert second.previous_response_id == first.id
    items = client.responses.input_items.list(second.id, order="asc").data
    texts = [item.content[0].text for item in items if item.type == "message"]
    assert texts[0] == "My name is Ada." and texts[-1] == "What is my name?"
    assert len(items) == 3  # the first input, the first answer, the second input
    assert client.responses.retrieve(second.id).output_text == second.output_text


def test_stored_responses_are_the_keys_own(gw):
    _, mine = new_key(gw, name="mine")
    _, theirs = new_key(gw, name="theirs")
    first = sdk(gw, mine).responses.create(model="gpt-4o-mini", input="secret plans")
    other = sdk(gw, theirs)
    with pytest.raises(openai.NotFoundError, match="No response found"):
        other.responses.retrieve(first.id)
    with pytest.raises(openai.NotFoundError, match="Previous response with id"):
        other.responses.create(model="gpt-4o-mini", input="go on", previous_response_id=first.id)
    with pytest.raises(openai.NotFoundError):
        other.responses.delete(first.id)
    assert sdk(gw, mine).responses.retrieve(first.id).id == first.id
    sdk(gw, mine).responses.delete(first.id)
    with pytest.raises(openai.NotFoundError):
        sdk(gw, mine).responses.retrieve(first.id)


def test_store_false_keeps_nothing(gw):
    client = sdk(gw)
    first = client.responses.create(model="gpt-4o-mini", input="hi", store=False)
    with pytest.raises(openai.NotFoundError):
        client.responses.retrieve(first.id)


def test_refusals_are_clear(gw):
    client = sdk(gw)
    with pytest.raises(openai.BadRequestError, match="file_search"):
        client.responses.create(
            model="gpt-4o-mini", input="docs", tools=[{"type": "file_search", "vector_store_ids": ["vs_1"]}]
        )
    with pytest.raises(openai.BadRequestError, match="tool_choice"):
        client.responses.create(
            model="gpt-4o-mini",
            input="news",
            tools=[{"type": "web_search"}],
            tool_choice={"type": "web_search"},
        )
    with pytest.raises(openai.BadRequestError, match="'input' must be"):
        client.responses.create(model="gpt-4o-mini", input=42)
    with pytest.raises(openai.BadRequestError, match="previous_response_id"):
        client.responses.create(model="gpt-4o-mini", input="x", previous_response_id="r" * 500)
    for path in ("/v1/responses/resp_x/cancel", "/v1/responses/resp_x/input_items/more"):
        answer = httpx.post(gw.url + path, headers={"authorization": f"Bearer {MASTER_KEY}"})
        assert answer.status_code == 404
    assert httpx.get(gw.url + "/v1/responses/resp_x").status_code == 401


@pytest.mark.parametrize("model", UPSTREAMS)
def test_the_cache_replays_a_response_whole_or_streamed_and_its_id_goes_on(gw, sim, model):
    keys.create_team(gw.store, f"cache-{model}", keys.Limits(), "test")
    _, first_key = new_key(gw, name=f"cache-a-{model}", team=f"cache-{model}")
    _, other_key = new_key(gw, name=f"cache-b-{model}", team=f"cache-{model}")  # the same team: hits
    route = "chat_completions" if model.startswith("gpt") else "messages"
    cached = {"x-xvckit-cache": "on"}
    whole = sdk(gw, first_key).responses.with_raw_response.create(
        model=model, input="Cache me whole", extra_headers=cached
    )
    assert whole.headers["x-xvckit-cache"] == "miss"
    with sdk(gw, other_key).responses.stream(
        model=model, input="Cache me whole", extra_headers=cached
    ) as events:
        kinds = [event.type for event in events]
        replayed = events.get_final_response()
    assert kinds[0] == "response.created" and kinds[-1] == "response.completed"
    assert replayed.id == whole.parse().id and replayed.output_text == whole.parse().output_text
    with sdk(gw, first_key).responses.stream(
        model=model, input="Cache me streamed", extra_headers=cached
    ) as events:
        streamed = events.get_final_response()
    again = sdk(gw, other_key).responses.with_raw_response.create(
        model=model, input="Cache me streamed", extra_headers=cached
    )
    assert again.headers["x-xvckit-cache"] == "hit" and again.parse().output_text == streamed.output_text
    assert sim.count(route) == 2
    # the key that got a replay goes on from its id, and sees it as its own
    follow = sdk(gw, other_key).responses.create(
        model=model, input="And then?", previous_response_id=replayed.id
    )
    assert follow.previous_response_id == replayed.id
    assert sdk(gw, other_key).responses.retrieve(again.parse().id).output_text == streamed.output_text


def test_an_idempotency_key_answers_a_retry_from_the_record(gw, sim):
    client = sdk(gw).with_options(default_headers={"Idempotency-Key": "responses-retry-1"})
    first = client.responses.create(model="gpt-4o-mini", input="Pay once")
    retry = client.responses.with_raw_response.create(model="gpt-4o-mini", input="Pay once")
    assert retry.headers["x-xvckit-cache"] == "idempotent-replay" and retry.parse().id == first.id
    assert sim.count("chat_completions") == 1
    with pytest.raises(openai.UnprocessableEntityError):
        client.responses.create(model="gpt-4o-mini", input="Another body under the same key")


@pytest.mark.parametrize("model", UPSTREAMS)
def test_a_budget_cuts_max_output_tokens_to_what_it_pays_for(gw, model):
    # gpt-4o-mini's output is $0.60 per million tokens and Sonnet's $15: a budget of a few
    # hundred output tokens, far below the 16,000 asked for
    budget = 0.0002 if model.startswith("gpt") else 0.005
    key, raw = new_key(gw, name=f"capped-{model}", limits=keys.Limits(budget_usd=budget, budget_period="day"))
    answer = sdk(gw, raw).responses.with_raw_response.create(
        model=model, input="Go", max_output_tokens=16_000
    )
    capped = int(answer.headers["x-xvckit-max-tokens-capped"])
    assert 100 < capped < 400
    assert answer.parse().usage.output_tokens <= capped
    flush_ledger(gw)
    (row,) = [row for row in ledger_records(gw.store) if row.key_id == key.id]
    assert row.cost_usd <= budget


def test_a_response_becomes_its_events_and_back():
    response = {
        "id": "resp_1",
        "object": "response",
        "status": "completed",
        "output": [
            {
                "id": "rs_1",
                "type": "reasoning",
                "summary": [],
                "content": [{"type": "reasoning_text", "text": "hm"}],
            },
            {
                "id": "msg_1",
                "type": "message",
                "role": "assistant",
                "status": "completed",
                "content": [{"type": "output_text", "text": "Hi", "annotations": []}],
            },
            {
                "id": "fc_1",
                "type": "function_call",
                "call_id": "c1",
                "name": "f",
                "arguments": "{}",
                "status": "completed",
            },
        ],
        "usage": {"input_tokens": 3, "output_tokens": 4, "total_tokens": 7},
    }
    events = sse.EventSplitter().feed(responses_events.events_of(response))
    kinds = [sse.event_json(event)["type"] for event in events]
    assert kinds == [
        "response.created",
        "response.in_progress",
        "response.output_item.added",
        "response.content_part.added",
        "response.reasoning_text.delta",
        "response.reasoning_text.done",
        "response.content_part.done",
        "response.output_item.done",
        "response.output_item.added",
        "response.content_part.added",
        "response.output_text.delta",
        "response.output_text.done",
        "response.content_part.done",
        "response.output_item.done",
        "response.output_item.added",
        "response.function_call_arguments.delta",
        "response.function_call_arguments.done",
        "response.output_item.done",
        "response.completed",
    ]
    assert [sse.event_json(event)["sequence_number"] for event in events] == list(range(len(events)))
    assert sse.event_json(events[0])["response"]["output"] == []
    assert responses_events.response_from_events(events) == response
    with pytest.raises(ValueError):
        responses_events.response_from_events(events[:-1])


def test_a_clients_extra_fields_are_not_kept_and_odd_types_are_a_400(gw):
    client = sdk(gw)
    junk = "x" * 100_000
    first = client.responses.create(
        model="gpt-4o-mini",
        input=[
            {
                "type": "message",
                "role": "user",
                "content": [{"type": "input_text", "text": "hi", "junk": junk}],
            }
        ],
        extra_body={"metadata": {"a": "b"}},
    )
    page = httpx.get(
        f"{gw.url}/v1/responses/{first.id}/input_items", headers={"authorization": f"Bearer {MASTER_KEY}"}
    )
    assert (
        page.status_code == 200
        and "junk" not in page.text
        and page.json()["data"][0]["content"][0]["text"] == "hi"
    )
    for odd in ({"type": "output_text", "text": 5}, {"type": "refusal", "refusal": {"no": 1}}):
        with pytest.raises(openai.BadRequestError, match="must be a string"):
            client.responses.create(
                model="gpt-4o-mini",
                input=[
                    {"type": "message", "role": "assistant", "content": [odd]},
                    {"role": "user", "content": "hi"},
                ],
            )


def test_the_simulators_kept_conversations_are_bounded_in_bytes():
    kept = KeptConversations(max_bytes=1_000)
    kept.put(b"k", "resp_1", [{"text": "a" * 400}])
    kept.put(b"k", "resp_2", [{"text": "b" * 400}])
    kept.put(b"k", "resp_3", [{"text": "c" * 400}])  # over 1,000 bytes: the oldest goes
    assert kept.get(b"k", "resp_1") is None and kept.get(b"k", "resp_3") == [{"text": "c" * 400}]
    assert kept.get(b"other", "resp_3") is None
    kept.put(b"k", "resp_big", [{"text": "d" * 2_000}])  # larger than the bound: not kept
    assert kept.get(b"k", "resp_big") is None and kept.get(b"k", "resp_2") is not None
