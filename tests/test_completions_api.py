"""Issue 20: OpenAI's legacy completions (`POST /v1/completions`) through the gateway, driven by
the official `openai` SDK (`client.completions.create`, plain and streamed): passed on untouched
to an OpenAI-dialect provider, translated through chat for an Anthropic one; ledgered under
"completions" and in the access log; refused with a bad key, and with a clear 400 for what a
chat model cannot answer. The simulator's route in OpenAI's wire format. Through the real HTTP
server."""

from __future__ import annotations

import logging

import httpx
import openai
import orjson
import pytest

from conftest import MASTER_KEY
from test_gateway_e2e import sim_providers
from test_gateway_keys import flush_ledger, new_key
from xvckit.store.ledger import ledger_records

INSTRUCT = "gpt-3.5-turbo-instruct"  # served by the simulator's OpenAI side on /v1/completions
CLAUDE = "claude-sonnet-4-5"  # the Anthropic side: translated through chat
UPSTREAMS = [INSTRUCT, CLAUDE]
SIM_KEY = {"authorization": "Bearer sk-sim"}


@pytest.fixture(scope="module")
def gw(sim_factory, make_module_gateway):
    sim = sim_factory(rpm=10_000, tpm=100_000_000)
    config = sim_providers(sim)
    config["models"].insert(0, {"name": INSTRUCT, "provider": "sim-oa"})
    server = make_module_gateway(config)
    server.sim = sim
    return server


@pytest.fixture
def access_log(caplog):
    caplog.set_level(logging.INFO, logger="xvckit.access")
    return lambda: [r.getMessage() for r in caplog.records if r.name == "xvckit.access"]


def sdk(gw, key: str = MASTER_KEY) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{gw.url}/v1", api_key=key, max_retries=0)


def ledger_row(gw, key_id: str):
    flush_ledger(gw)
    (row,) = [row for row in ledger_records(gw.store) if row.key_id == key_id]
    return row


@pytest.mark.parametrize("model", UPSTREAMS)
def test_plain_completion_is_read_by_the_sdk_ledgered_and_logged(gw, model, access_log):
    key, raw = new_key(gw, name=f"plain-{model}")
    completion = sdk(gw, raw).completions.create(model=model, prompt="Say hello", max_tokens=100)
    assert completion.object == "text_completion" and completion.id.startswith("cmpl-")
    assert completion.model == model
    (choice,) = completion.choices
    assert choice.text and choice.index == 0 and choice.logprobs is None
    assert choice.finish_reason == "stop"  # Anthropic's end_turn
    usage = completion.usage
    assert usage.prompt_tokens > 0 and usage.completion_tokens > 0
    assert usage.total_tokens == usage.prompt_tokens + usage.completion_tokens
    row = ledger_row(gw, key.id)
    assert (row.endpoint, row.status, row.model) == ("completions", 200, model)
    assert (row.input_tokens, row.output_tokens) == (usage.prompt_tokens, usage.completion_tokens)
    (line,) = access_log()
    assert f" POST /v1/completions completions model={model} " in line
    assert f"key={key.id} status=200 stream=False" in line and " ua='OpenAI/Python " in line


@pytest.mark.parametrize("model", UPSTREAMS)
def test_without_max_tokens_the_apis_16_tokens_are_the_limit(gw, model):
    completion = sdk(gw).completions.create(model=model, prompt="Go on")
    assert completion.usage.completion_tokens == 16
    assert completion.choices[0].finish_reason == "length"  # Anthropic's max_tokens


@pytest.mark.parametrize("model", UPSTREAMS)
@pytest.mark.parametrize("include_usage", [True, False])
def test_streamed_text_completion_chunks(gw, model, include_usage):
    key, raw = new_key(gw, name=f"stream-{model}-{include_usage}")
    chunks = list(
        sdk(gw, raw).completions.create(
            model=model,
            prompt="Tell me a story",
            max_tokens=10,
            stream=True,
            stream_options={"include_usage": include_usage},
        )
    )
    assert {chunk.object for chunk in chunks} == {"text_completion"}
    assert all(chunk.id.startswith("cmpl-") and chunk.model == model for chunk in chunks)
    if include_usage:
        *chunks, last = chunks
        assert last.choices == [] and last.usage.completion_tokens == 10
    assert all(chunk.usage is None for chunk in chunks)  # the usage the gateway asked for is hidden
    finishes = [chunk.choices[0].finish_reason for chunk in chunks]
    assert finishes[-1] == "length" and not any(finishes[:-1])
    assert "".join(chunk.choices[0].text for chunk in chunks)
    row = ledger_row(gw, key.id)
    assert (row.endpoint, row.status, row.output_tokens) == ("completions", 200, 10)


@pytest.mark.parametrize("model", UPSTREAMS)
def test_the_stream_on_the_wire_ends_with_done_and_the_alias_path_works(gw, model):
    body = {"model": model, "prompt": "Hi", "max_tokens": 5, "stream": True}
    headers = {"authorization": f"Bearer {MASTER_KEY}"}
    response = httpx.post(f"{gw.url}/completions", json=body, headers=headers, timeout=10)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/event-stream")
    events = response.content.split(b"\n\n")
    assert events[-2:] == [b"data: [DONE]", b""]
    for event in events[:-2]:
        chunk = orjson.loads(event.removeprefix(b"data: "))
        assert chunk["object"] == "text_completion"
        assert [set(choice) for choice in chunk["choices"]] == [
            {"text", "index", "logprobs", "finish_reason"}
        ]


def test_an_openai_provider_gets_the_request_untouched(gw):
    """Several prompts, n, echo: the legacy provider answers them itself."""
    completion = sdk(gw).completions.create(
        model=INSTRUCT, prompt=["Alpha here", "Beta here"], n=2, echo=True, max_tokens=5
    )
    assert [choice.index for choice in completion.choices] == [0, 1, 2, 3]
    texts = [choice.text for choice in completion.choices]
    assert [text.startswith("Alpha here") for text in texts] == [True, True, False, False]
    assert all(text.startswith("Beta here") for text in texts[2:])
    assert completion.usage.completion_tokens == 20


@pytest.mark.parametrize(
    ("fields", "named"),
    [
        ({"n": 2}, "'n'"),
        ({"best_of": 3}, "'best_of'"),
        ({"echo": True}, "'echo'"),
        ({"logprobs": 1}, "'logprobs'"),
        ({"suffix": "the end"}, "'suffix'"),
        ({"prompt": ["one", "two"]}, "'prompt'"),
        ({"prompt": [1, 2, 3]}, "'prompt'"),
        ({"prompt": ""}, "'prompt'"),
        ({"max_tokens": 0}, "'max_tokens'"),
    ],
)
def test_what_a_chat_model_cannot_answer_is_a_clear_400(gw, fields, named):
    before = gw.sim.count("messages")
    with pytest.raises(openai.BadRequestError) as caught:
        sdk(gw).completions.create(**{"model": CLAUDE, "prompt": "Hi", **fields})
    assert named in caught.value.message and caught.value.code == "invalid_request"
    assert gw.sim.count("messages") == before  # never sent upstream


def test_a_bad_key_is_refused_logged_and_never_printed(gw, access_log, caplog):
    caplog.set_level(logging.DEBUG)
    wrong = "xvc-not-a-key-0123456789abcdefghij"
    with pytest.raises(openai.AuthenticationError) as caught:
        sdk(gw, wrong).completions.create(model=INSTRUCT, prompt="Hi")
    assert caught.value.code == "invalid_api_key"
    (line,) = access_log()
    assert " POST /v1/completions completions " in line and "key=anonymous status=401" in line
    assert "error=invalid_api_key" in line and " ua='OpenAI/Python " in line
    assert wrong not in caplog.text and MASTER_KEY not in caplog.text


# --- the simulator's route -------------------------------------------------------------------


def sim_post(gw, body: dict) -> httpx.Response:
    return httpx.post(f"{gw.sim.openai_base_url}/completions", json=body, headers=SIM_KEY, timeout=10)


def test_the_simulator_answers_in_openais_exact_shape(gw):
    response = sim_post(gw, {"model": INSTRUCT, "prompt": "Hello there", "max_tokens": 7})
    assert response.status_code == 200 and response.headers["x-request-id"]
    body = response.json()
    assert set(body) == {"id", "object", "created", "model", "choices", "usage"}
    assert body["object"] == "text_completion" and body["id"].startswith("cmpl-")
    assert body["choices"] == [
        {"text": body["choices"][0]["text"], "index": 0, "logprobs": None, "finish_reason": "length"}
    ]
    assert body["usage"] == {"prompt_tokens": 3, "completion_tokens": 7, "total_tokens": 10}


def test_the_simulators_stream_with_usage(gw):
    body = {"model": INSTRUCT, "prompt": "Hi", "max_tokens": 50, "stream": True}
    response = sim_post(gw, {**body, "stream_options": {"include_usage": True}})
    events = response.content.split(b"\n\n")
    assert events[-2:] == [b"data: [DONE]", b""]
    chunks = [orjson.loads(event.removeprefix(b"data: ")) for event in events[:-2]]
    *texts, finish, usage = chunks
    assert all(chunk["usage"] is None and chunk["choices"][0]["finish_reason"] is None for chunk in texts)
    assert finish["choices"] == [{"text": "", "index": 0, "logprobs": None, "finish_reason": "stop"}]
    assert usage["choices"] == [] and usage["usage"]["completion_tokens"] == 32
    plain = sim_post(gw, body).content
    assert b'"usage"' not in plain  # only asked for


@pytest.mark.parametrize(
    ("body", "status", "said"),
    [
        ({"model": "gpt-4o", "prompt": "Hi"}, 404, "This is a chat model"),
        ({"model": "no-such-model", "prompt": "Hi"}, 404, "does not exist"),
        ({"model": INSTRUCT, "prompt": "Hi", "max_tokens": 5000}, 400, "maximum context length is 4097"),
        ({"model": INSTRUCT, "prompt": {"text": "Hi"}}, 400, "'prompt' must be"),
        ({"model": INSTRUCT, "prompt": "Hi", "n": 0}, 400, "Invalid 'n'"),
        ({"model": INSTRUCT, "prompt": "Hi", "logprobs": 6}, 400, "Invalid 'logprobs'"),
    ],
)
def test_the_simulator_refuses_as_openai_does(gw, body, status, said):
    response = sim_post(gw, body)
    assert response.status_code == status and said in response.json()["error"]["message"]


def test_a_stream_broken_off_is_charged_for_the_text_sent(gw):
    key, raw = new_key(gw, name="broken")
    body = {"model": INSTRUCT, "prompt": "Hi", "max_tokens": 200, "stream": True}
    headers = {"authorization": f"Bearer {raw}", "x-sim-fail": "midstream", "x-sim-output-tokens": "200"}
    response = httpx.post(f"{gw.url}/v1/completions", json=body, headers=headers, timeout=10)
    assert b'"text_completion"' in response.content and b'"error"' in response.content
    row = ledger_row(gw, key.id)
    assert row.error_type and row.output_tokens > 0


def test_a_budget_reserves_the_apis_16_tokens_and_caps_the_output_as_for_chat(gw, access_log):
    """Claude's output is $15 per 1M tokens: $0.0005 pays for 16 of them and about 17 more."""
    from xvckit.store.keys import Limits

    key, raw = new_key(gw, name="budgeted", limits=Limits(budget_usd=0.0005, budget_period="day"))
    client = sdk(gw, raw).completions.with_raw_response
    first = client.create(model=CLAUDE, prompt="Hi")  # no max_tokens: 16, not the model's 64,000
    assert "x-xvckit-max-tokens-capped" not in first.headers
    assert first.parse().usage.completion_tokens == 16
    second = client.create(model=CLAUDE, prompt="Hi", max_tokens=100)
    capped = int(second.headers["x-xvckit-max-tokens-capped"])
    assert 0 < capped < 34 and second.parse().usage.completion_tokens <= capped
    with pytest.raises(openai.RateLimitError):  # what is left pays for no output token
        client.create(model=CLAUDE, prompt="Hi", max_tokens=100)
    assert [line.split(" status=")[1][:3] for line in access_log()] == ["200", "200", "429"]
    flush_ledger(gw)
    rows = [row for row in ledger_records(gw.store) if row.key_id == key.id]
    assert [(row.endpoint, row.status) for row in rows] == [("completions", s) for s in (200, 200, 429)]
