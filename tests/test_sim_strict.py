"""The simulator is as strict as the providers, so that tests see what a real provider would
refuse: each model's own window and output maximum, unknown models, structured outputs that
validate (and strict-mode schemas that do not pass), a tool loop that ends when a tool result
is followed by system text, complete streamed usage, and time to first token then an output
speed."""

from __future__ import annotations

import json
import time
from typing import TYPE_CHECKING

import anthropic
import httpx2
import jsonschema
import openai
import pydantic
import pytest

from xvckit.sim.schemas import instance, strict_problem

if TYPE_CHECKING:
    from sim_fixture import RunningSim

pytest_plugins = ["sim_fixture"]

USER = [{"role": "user", "content": "Describe a person as json."}]
TOOL = {
    "type": "object",
    "properties": {"path": {"type": "string"}},
    "required": ["path"],
    "additionalProperties": False,
}


class Address(pydantic.BaseModel):
    street: str
    zip_code: str = pydantic.Field(min_length=5, max_length=5)


class Person(pydantic.BaseModel):
    name: str
    age: int = pydantic.Field(ge=18, lt=130)
    email: str | None
    tags: list[str]
    home: Address
    previous: list[Address]


def oai(running: RunningSim) -> openai.OpenAI:
    return openai.OpenAI(base_url=running.openai_base_url, api_key="sk-test", max_retries=0)


def claude(running: RunningSim) -> anthropic.Anthropic:
    # a timeout given: the SDK refuses large max_tokens without a stream otherwise
    return anthropic.Anthropic(
        base_url=running.anthropic_base_url, api_key="sk-test", max_retries=0, timeout=60
    )


# --- each model's limits -----------------------------------------------------------------------


def test_each_model_has_its_own_output_maximum(sim: RunningSim) -> None:
    assert oai(sim).chat.completions.create(model="gpt-4o", messages=USER, max_tokens=16_384).choices
    with pytest.raises(openai.BadRequestError) as too_many:
        oai(sim).chat.completions.create(model="gpt-4o", messages=USER, max_tokens=16_385)
    assert (too_many.value.code, too_many.value.param) == ("invalid_value", "max_tokens")
    assert "supports at most 16384 completion tokens" in too_many.value.message
    # Claude Code asks 64,000 of Sonnet 4.5, langchain-anthropic and LiteLLM 128,000 of Sonnet 4.6
    for model, most in (("claude-sonnet-4-5", 64_000), ("claude-sonnet-4-6", 128_000)):
        assert claude(sim).messages.create(model=model, max_tokens=most, messages=USER).content
        with pytest.raises(anthropic.BadRequestError) as over:
            claude(sim).messages.create(model=model, max_tokens=most + 1, messages=USER)
        assert over.value.body["error"]["message"] == (
            f"max_tokens: {most + 1} > {most}, which is the maximum allowed number of output tokens "
            f"for {model}"
        )


def test_each_model_has_its_own_window(sim: RunningSim) -> None:
    long = [{"role": "user", "content": "word " * 110_000}]  # 137,500 tokens at 4 characters each
    with pytest.raises(openai.BadRequestError) as overflow:
        oai(sim).chat.completions.create(model="gpt-4o", messages=long)
    assert overflow.value.code == "context_length_exceeded"
    assert "maximum context length is 128000 tokens" in overflow.value.message
    assert oai(sim).chat.completions.create(model="gpt-4.1", messages=long).usage.prompt_tokens > 128_000
    # input and max_tokens past the window: the model stops at its end, as current Claude models do
    cut = claude(sim).messages.create(
        model="claude-sonnet-4-5",
        max_tokens=64_000,
        messages=long,
        extra_headers={"x-sim-output-tokens": "64000"},
    )
    assert cut.stop_reason == "model_context_window_exceeded"
    assert cut.usage.input_tokens + cut.usage.output_tokens == 200_000
    longer = [{"role": "user", "content": "word " * 170_000}]
    with pytest.raises(anthropic.BadRequestError, match=r"prompt is too long: \d+ tokens > 200000 maximum"):
        claude(sim).messages.create(model="claude-sonnet-4-5", max_tokens=10, messages=longer)


def test_unknown_models_are_404_in_each_providers_shape(sim_factory) -> None:
    running = sim_factory(models=("my-local-model",))
    with pytest.raises(openai.NotFoundError) as missing:
        oai(running).chat.completions.create(model="gpt-nonesuch-", messages=USER)
    assert missing.value.code == "model_not_found"
    assert (
        missing.value.body["message"]
        == "The model `gpt-nonesuch-` does not exist or you do not have access to it."
    )
    for model in ("GPT-4O", "openai/gpt-4o", "llama3"):
        with pytest.raises(openai.NotFoundError):
            oai(running).chat.completions.create(model=model, messages=USER)
    with pytest.raises(openai.NotFoundError):
        oai(running).embeddings.create(model="ada-nonesuch", input="x")
    with pytest.raises(anthropic.NotFoundError) as missing_claude:
        claude(running).messages.create(model="sonnet", max_tokens=8, messages=USER)
    assert missing_claude.value.body["error"] == {"type": "not_found_error", "message": "model: sonnet"}
    # a name given with --model is served, and listed in both dialects
    assert oai(running).chat.completions.create(model="my-local-model", messages=USER).choices
    assert claude(running).messages.create(model="my-local-model", max_tokens=8, messages=USER).content
    assert "my-local-model" in [m.id for m in oai(running).models.list()]
    assert "my-local-model" in [m.id for m in claude(running).models.list()]


# --- structured outputs ----------------------------------------------------------------------


def test_strict_json_schema_is_answered_with_json_that_validates(sim: RunningSim) -> None:
    parsed = oai(sim).chat.completions.parse(model="gpt-4o", messages=USER, response_format=Person)
    person = parsed.choices[0].message.parsed
    assert isinstance(person, Person) and 18 <= person.age < 130 and len(person.home.zip_code) == 5
    schema = {"type": "object", "properties": {"n": {"type": "integer", "minimum": 3}}, "required": ["n"]}
    format_ = {"type": "json_schema", "json_schema": {"name": "n", "schema": schema}}
    streamed = oai(sim).chat.completions.create(
        model="gpt-4o", messages=USER, response_format=format_, stream=True
    )
    text = "".join(chunk.choices[0].delta.content or "" for chunk in streamed if chunk.choices)
    assert json.loads(text) == {"n": 3}


def test_json_object_needs_the_word_json(sim: RunningSim) -> None:
    answer = oai(sim).chat.completions.create(
        model="gpt-4o", messages=USER, response_format={"type": "json_object"}
    )
    assert isinstance(json.loads(answer.choices[0].message.content), dict)
    with pytest.raises(openai.BadRequestError, match="must contain the word 'json'") as refused:
        oai(sim).chat.completions.create(
            model="gpt-4o",
            messages=[{"role": "user", "content": "hi"}],
            response_format={"type": "json_object"},
        )
    assert refused.value.param == "messages"


def test_strict_mode_refuses_what_openai_refuses(sim: RunningSim) -> None:
    loose = {"type": "object", "properties": {"a": {"type": "string"}}, "required": ["a"]}
    format_ = {"type": "json_schema", "json_schema": {"name": "loose", "schema": loose, "strict": True}}
    with pytest.raises(openai.BadRequestError) as refused:
        oai(sim).chat.completions.create(model="gpt-4o", messages=USER, response_format=format_)
    assert refused.value.param == "response_format"
    assert refused.value.body["message"] == (
        "Invalid schema for response_format 'loose': In context=(), "
        "'additionalProperties' is required to be supplied and to be false."
    )
    nameless = {"type": "json_schema", "json_schema": {"schema": loose}}
    with pytest.raises(openai.BadRequestError) as no_name:
        oai(sim).chat.completions.create(model="gpt-4o", messages=USER, response_format=nameless)
    assert no_name.value.code == "missing_required_parameter"
    strict_tool = {"type": "function", "function": {"name": "read", "parameters": loose, "strict": True}}
    with pytest.raises(openai.BadRequestError) as tool_refused:
        oai(sim).chat.completions.create(model="gpt-4o", messages=USER, tools=[strict_tool])
    assert (tool_refused.value.code, tool_refused.value.param) == (
        "invalid_function_parameters",
        "tools[0].parameters",
    )
    optional = {**TOOL, "properties": {**TOOL["properties"], "limit": {"type": "integer"}}}
    assert "Missing 'limit'" in strict_problem(optional)
    assert strict_problem(Person.model_json_schema()) is not None  # pydantic leaves additionalProperties out
    assert strict_problem(TOOL) is None


def test_anthropic_structured_output_validates(sim: RunningSim) -> None:
    schema = Person.model_json_schema()
    answer = claude(sim).messages.create(
        model="claude-sonnet-4-6",
        max_tokens=1024,
        messages=USER,
        extra_body={"output_config": {"format": {"type": "json_schema", "schema": schema}}},
    )
    jsonschema.validate(json.loads(answer.content[0].text), schema)


SCHEMAS = [
    Person.model_json_schema(),
    {
        "type": "array",
        "prefixItems": [{"type": "string"}, {"type": "number"}],
        "minItems": 3,
        "items": {"type": "boolean"},
    },
    {"anyOf": [{"type": "null"}, {"type": "string", "format": "email"}]},
    {
        "allOf": [
            {"properties": {"a": {"type": "integer"}}, "required": ["a"]},
            {"required": ["b"], "properties": {"b": {"enum": ["x", "y"]}}},
        ]
    },
    {"type": "number", "exclusiveMinimum": 10, "exclusiveMaximum": 11},
    {"type": "integer", "minimum": -5, "maximum": -3},
    {"type": "string", "minLength": 12, "maxLength": 12},
    {"type": "string", "format": "date-time"},
    {
        "$defs": {
            "node": {
                "type": "object",
                "properties": {"next": {"anyOf": [{"$ref": "#/$defs/node"}, {"type": "null"}]}},
                "required": ["next"],
            }
        },
        "$ref": "#/$defs/node",
    },
    {
        "type": "object",
        "properties": {"kids": {"type": "array", "items": {"$ref": "#"}, "minItems": 1}},
        "required": [],
    },
]


@pytest.mark.parametrize("schema", SCHEMAS, ids=range(len(SCHEMAS)))
def test_schema_instances_validate(schema) -> None:
    jsonschema.validate(instance(schema), schema, format_checker=jsonschema.FormatChecker())


# --- tool loops ------------------------------------------------------------------------------


def test_a_tool_result_ends_the_loop_even_with_system_text_after_it(sim: RunningSim) -> None:
    tools = [{"type": "function", "function": {"name": "read", "parameters": TOOL}}]
    first = oai(sim).chat.completions.create(model="gpt-4o", messages=USER, tools=tools)
    call = first.choices[0].message.tool_calls[0]
    after = [
        *USER,
        first.choices[0].message.model_dump(exclude_none=True),
        {"role": "tool", "tool_call_id": call.id, "content": "file contents"},
        {"role": "system", "content": "<system-reminder>keep going</system-reminder>"},
    ]
    done = oai(sim).chat.completions.create(model="gpt-4o", messages=after, tools=tools)
    assert done.choices[0].finish_reason == "stop" and done.choices[0].message.content
    again = [*after, {"role": "assistant", "content": "done"}, {"role": "user", "content": "and now?"}]
    assert (
        oai(sim)
        .chat.completions.create(model="gpt-4o", messages=again, tools=tools)
        .choices[0]
        .message.tool_calls
    )

    claude_tools = [{"name": "read", "input_schema": TOOL}]
    use = claude(sim).messages.create(
        model="claude-sonnet-4-6", max_tokens=256, messages=USER, tools=claude_tools
    )
    block = use.content[0]
    follow = [
        *USER,
        {"role": "assistant", "content": [block.model_dump()]},
        {
            "role": "user",
            "content": [
                {"type": "tool_result", "tool_use_id": block.id, "content": "file contents"},
                {"type": "text", "text": "<system-reminder>keep going</system-reminder>"},
            ],
        },
    ]
    answer = claude(sim).messages.create(
        model="claude-sonnet-4-6", max_tokens=256, messages=follow, tools=claude_tools
    )
    assert answer.stop_reason == "end_turn" and answer.content[0].type == "text"


# --- streamed usage --------------------------------------------------------------------------


def test_anthropic_stream_reports_the_whole_usage_at_its_end(sim: RunningSim) -> None:
    with claude(sim).messages.stream(model="claude-sonnet-4-6", max_tokens=64, messages=USER) as stream:
        events = list(stream)
        final = stream.get_final_message()
    start = next(e for e in events if e.type == "message_start").message.usage
    delta = next(e for e in events if e.type == "message_delta").usage
    assert delta.input_tokens == start.input_tokens > 0
    assert delta.output_tokens == final.usage.output_tokens > 1
    assert delta.cache_read_input_tokens == 0 and delta.cache_creation_input_tokens == 0
    chunks = list(
        oai(sim).chat.completions.create(
            model="gpt-4o", messages=USER, stream=True, stream_options={"include_usage": True}
        )
    )
    usage = chunks[-1].usage
    assert (
        usage.prompt_tokens_details.cached_tokens == 0
        and usage.completion_tokens_details.reasoning_tokens == 0
    )


# --- timing ----------------------------------------------------------------------------------


def test_time_to_first_token_then_an_output_speed(sim_factory) -> None:
    running = sim_factory(latency_ms=100, tokens_per_s=200)
    forty = {"x-sim-output-tokens": "40"}  # 0.2 s at 200 tokens/s
    started = time.perf_counter()
    oai(running).chat.completions.create(model="gpt-4o", messages=USER, extra_headers=forty)
    assert time.perf_counter() - started >= 0.3
    started = time.perf_counter()
    stream = oai(running).chat.completions.create(
        model="gpt-4o", messages=USER, stream=True, extra_headers=forty
    )
    next(iter(stream))
    first = time.perf_counter() - started
    list(stream)
    whole = time.perf_counter() - started
    assert first >= 0.1 and whole - first >= 0.15  # the first token, then the rest spread out
    assert timed(running, "/embeddings", {"model": "text-embedding-3-small", "input": "x"}) < 0.1
    chat = {"model": "gpt-4o", "messages": USER}
    assert timed(running, "/chat/completions", chat, {"x-sim-latency-ms": "0", **forty}) < 0.1  # all of it


def timed(running: RunningSim, path: str, body: dict, headers: dict | None = None) -> float:
    """Seconds one request to the simulator takes, over plain HTTP."""
    started = time.perf_counter()
    response = httpx2.post(
        running.openai_base_url + path, json=body, headers={"authorization": "Bearer k", **(headers or {})}
    )
    assert response.status_code == 200
    return time.perf_counter() - started
