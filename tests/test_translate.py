"""Cross-dialect translation: each mapping on its own, then round trips in which the official
SDKs parse what the translators produce (bodies, chunk by chunk streams, errors), against the
simulator speaking the other dialect."""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

import anthropic
import httpx2
import openai
import orjson
import pydantic
import pytest
from anthropic.types import Message, RawMessageStreamEvent
from openai.types.chat import ChatCompletion, ChatCompletionChunk

from xvckit.providers.sse import EventSplitter, event_field, event_json
from xvckit.providers.translate import (
    DEFAULT_MAX_TOKENS,
    AnthropicToOpenAIStream,
    InvalidRequest,
    OpenAIToAnthropicStream,
    anthropic_to_openai_error,
    anthropic_to_openai_request,
    anthropic_to_openai_response,
    openai_to_anthropic_error,
    openai_to_anthropic_request,
    openai_to_anthropic_response,
)
from xvckit.providers.translate_response import anthropic_usage, finish_reason, openai_usage, stop_reason

if TYPE_CHECKING:
    from sim_fixture import RunningSim

CLAUDE = "claude-sonnet-4-6"
GPT = "gpt-4o"
# 1.1M tokens: past the windows of gpt-4o (128k) and of Claude Sonnet 4.6 (1M)
TOO_LONG = [{"role": "user", "content": "word " * 880_000}]
WEATHER_SCHEMA = {
    "type": "object",
    "properties": {"city": {"type": "string"}, "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]}},
    "required": ["city", "unit"],
}
OPENAI_TOOLS = [
    {
        "type": "function",
        "function": {"name": "get_weather", "description": "Weather in a city", "parameters": WEATHER_SCHEMA},
    }
]
ANTHROPIC_TOOLS = [
    {"name": "get_weather", "description": "Weather in a city", "input_schema": WEATHER_SCHEMA}
]
PNG = "iVBORw0KGgoAAAANSUhEUg=="
STREAM_EVENT = pydantic.TypeAdapter(RawMessageStreamEvent)


# --- requests: OpenAI -> Anthropic -----------------------------------------------------------


def test_openai_request_to_anthropic_full_conversation() -> None:
    body = {
        "model": GPT,
        "messages": [
            {"role": "system", "content": "Be brief."},
            {"role": "developer", "content": [{"type": "text", "text": "Use metric units."}]},
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "What is in these pictures, and the weather?"},
                    {
                        "type": "image_url",
                        "image_url": {"url": f"data:image/png;base64,{PNG}", "detail": "high"},
                    },
                    {"type": "image_url", "image_url": {"url": "https://example.com/cat.jpg"}},
                ],
                "name": "ada",
            },
            {
                "role": "assistant",
                "content": "Let me check.",
                "tool_calls": [
                    {
                        "id": "call_1",
                        "type": "function",
                        "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'},
                    },
                    {
                        "id": "call_2",
                        "type": "function",
                        "function": {"name": "get_weather", "arguments": '{"city": "Rome"}'},
                    },
                ],
            },
            {"role": "tool", "tool_call_id": "call_1", "content": "18C"},
            {"role": "tool", "tool_call_id": "call_2", "content": [{"type": "text", "text": "21C"}]},
            {"role": "user", "content": "Thanks"},
        ],
        "tools": OPENAI_TOOLS,
        "tool_choice": "required",
        "parallel_tool_calls": False,
        "max_completion_tokens": 500,
        "max_tokens": 100,
        "temperature": 1.5,
        "top_p": 0.9,
        "stop": "END",
        "stream": True,
        "stream_options": {"include_usage": True},
        "user": "u-42",
        "n": 1,
        "seed": 7,
        "logprobs": True,
        "frequency_penalty": 0.5,
        "reasoning_effort": "low",
    }
    assert openai_to_anthropic_request(body, CLAUDE) == {
        "model": CLAUDE,
        "max_tokens": 500,
        "system": [{"type": "text", "text": "Be brief."}, {"type": "text", "text": "Use metric units."}],
        "messages": [
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "What is in these pictures, and the weather?"},
                    {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": PNG}},
                    {"type": "image", "source": {"type": "url", "url": "https://example.com/cat.jpg"}},
                ],
            },
            {
                "role": "assistant",
                "content": [
                    {"type": "text", "text": "Let me check."},
                    {"type": "tool_use", "id": "call_1", "name": "get_weather", "input": {"city": "Paris"}},
                    {"type": "tool_use", "id": "call_2", "name": "get_weather", "input": {"city": "Rome"}},
                ],
            },
            {
                "role": "user",
                "content": [
                    {"type": "tool_result", "tool_use_id": "call_1", "content": "18C"},
                    {
                        "type": "tool_result",
                        "tool_use_id": "call_2",
                        "content": [{"type": "text", "text": "21C"}],
                    },
                    {"type": "text", "text": "Thanks"},
                ],
            },
        ],
        "tools": ANTHROPIC_TOOLS,
        "tool_choice": {"type": "any", "disable_parallel_tool_use": True},
        "temperature": 1.0,  # clamped to Anthropic's range
        "top_p": 0.9,
        "stop_sequences": ["END"],
        "stream": True,
        "metadata": {"user_id": "u-42"},
    }


def test_openai_request_minimal_gets_default_max_tokens_and_string_content() -> None:
    body = {"model": GPT, "messages": [{"role": "system", "content": "S"}, {"role": "user", "content": "Hi"}]}
    assert openai_to_anthropic_request(body, CLAUDE) == {
        "model": CLAUDE,
        "max_tokens": DEFAULT_MAX_TOKENS,
        "system": "S",
        "messages": [{"role": "user", "content": "Hi"}],
    }
    assert openai_to_anthropic_request({**body, "max_tokens": 77}, CLAUDE)["max_tokens"] == 77


@pytest.mark.parametrize(
    ("choice", "parallel", "expected"),
    [
        ("auto", None, {"type": "auto"}),
        ("none", None, {"type": "none"}),
        ("none", False, {"type": "none"}),  # Anthropic's none takes no parallel flag
        ("required", None, {"type": "any"}),
        (
            {"type": "function", "function": {"name": "get_weather"}},
            None,
            {"type": "tool", "name": "get_weather"},
        ),
        (None, None, None),
        (None, False, {"type": "auto", "disable_parallel_tool_use": True}),
        (
            {"type": "allowed_tools", "allowed_tools": {"mode": "required", "tools": []}},
            None,
            {"type": "any"},
        ),
    ],
)
def test_openai_tool_choice_to_anthropic(choice: Any, parallel: Any, expected: Any) -> None:
    body: dict[str, Any] = {
        "model": GPT,
        "messages": [{"role": "user", "content": "x"}],
        "tools": OPENAI_TOOLS,
    }
    if choice is not None:
        body["tool_choice"] = choice
    if parallel is not None:
        body["parallel_tool_calls"] = parallel
    assert openai_to_anthropic_request(body, CLAUDE).get("tool_choice") == expected


def test_openai_tool_details_to_anthropic() -> None:
    body = {
        "model": GPT,
        "messages": [
            {"role": "user", "content": "x"},
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    # ids some OpenAI-compatible servers produce, which Anthropic would refuse
                    {
                        "id": "functions.now:0",
                        "type": "function",
                        "function": {"name": "now", "arguments": ""},
                    },
                    {
                        "id": "call_9",
                        "type": "function",
                        "function": {"name": "now", "arguments": "not json"},
                    },
                ],
            },
            {"role": "tool", "tool_call_id": "functions.now:0", "content": ""},
            {"role": "tool", "tool_call_id": "call_9", "content": "12:00"},
        ],
        "tools": [
            {"type": "function", "function": {"name": "now", "strict": True}},
            {"type": "custom", "custom": {"name": "grammar_tool"}},
        ],
        "tool_choice": "auto",
    }
    request = openai_to_anthropic_request(body, CLAUDE)
    assert request["tools"] == [
        {"name": "now", "input_schema": {"type": "object", "properties": {}}, "strict": True}
    ]
    assert request["messages"][1:] == [
        {
            "role": "assistant",
            "content": [
                {"type": "tool_use", "id": "functions_now_0", "name": "now", "input": {}},
                {"type": "tool_use", "id": "call_9", "name": "now", "input": {}},
            ],
        },
        {
            "role": "user",
            "content": [
                {"type": "tool_result", "tool_use_id": "functions_now_0"},
                {"type": "tool_result", "tool_use_id": "call_9", "content": "12:00"},
            ],
        },
    ]


def test_openai_request_files_stops_and_structured_output() -> None:
    body = {
        "model": GPT,
        "messages": [
            {
                "role": "user",
                "content": [
                    {
                        "type": "file",
                        "file": {"filename": "a.pdf", "file_data": "data:application/pdf;base64,JVBERi0="},
                    },
                    {"type": "file", "file": {"file_id": "file-abc"}},
                    {"type": "input_audio", "input_audio": {"data": "AAAA", "format": "wav"}},
                    {"type": "image_url", "image_url": {"url": "data:image/gif,GIF89a"}},
                ],
            }
        ],
        "stop": ["a", "", "b"],
        "safety_identifier": "hashed-user",
        "response_format": {"type": "json_schema", "json_schema": {"name": "w", "schema": WEATHER_SCHEMA}},
    }
    request = openai_to_anthropic_request(body, CLAUDE)
    assert request["messages"][0]["content"] == [
        {
            "type": "document",
            "source": {"type": "base64", "media_type": "application/pdf", "data": "JVBERi0="},
            "title": "a.pdf",
        },
        {"type": "image", "source": {"type": "base64", "media_type": "image/gif", "data": "R0lGODlh"}},
    ]
    assert request["stop_sequences"] == ["a", "b"]
    assert request["metadata"] == {"user_id": "hashed-user"}
    assert request["output_config"] == {"format": {"type": "json_schema", "schema": WEATHER_SCHEMA}}
    json_object = openai_to_anthropic_request({**body, "response_format": {"type": "json_object"}}, CLAUDE)
    assert "output_config" not in json_object


# --- requests: Anthropic -> OpenAI -----------------------------------------------------------


def test_anthropic_request_to_openai_full_conversation() -> None:
    body = {
        "model": CLAUDE,
        "max_tokens": 1024,
        "system": [{"type": "text", "text": "Be brief.", "cache_control": {"type": "ephemeral"}}],
        "messages": [
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "Weather?"},
                    {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": PNG}},
                    {"type": "image", "source": {"type": "url", "url": "https://example.com/cat.jpg"}},
                ],
            },
            {
                "role": "assistant",
                "content": [
                    {"type": "thinking", "thinking": "hmm", "signature": "sig"},
                    {"type": "text", "text": "Checking."},
                    {"type": "tool_use", "id": "toolu_1", "name": "get_weather", "input": {"city": "Paris"}},
                    {"type": "tool_use", "id": "toolu_2", "name": "get_weather", "input": {"city": "Rome"}},
                ],
            },
            {
                "role": "user",
                "content": [
                    {"type": "tool_result", "tool_use_id": "toolu_1", "content": "18C"},
                    {
                        "type": "tool_result",
                        "tool_use_id": "toolu_2",
                        "is_error": True,
                        "content": [
                            {"type": "text", "text": "21C"},
                            {
                                "type": "image",
                                "source": {"type": "base64", "media_type": "image/jpeg", "data": "/9j/"},
                            },
                        ],
                    },
                    {"type": "text", "text": "Thanks"},
                ],
            },
        ],
        "tools": [*ANTHROPIC_TOOLS, {"type": "web_search_20250305", "name": "web_search"}],
        "tool_choice": {"type": "any", "disable_parallel_tool_use": True},
        "temperature": 0.2,
        "top_p": 0.9,
        "top_k": 40,
        "stop_sequences": ["1", "2", "3", "4", "5"],
        "stream": True,
        "metadata": {"user_id": "u-42"},
        "thinking": {"type": "enabled", "budget_tokens": 2000},
    }
    assert anthropic_to_openai_request(body, GPT) == {
        "model": GPT,
        "messages": [
            {"role": "system", "content": "Be brief."},
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "Weather?"},
                    {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PNG}"}},
                    {"type": "image_url", "image_url": {"url": "https://example.com/cat.jpg"}},
                ],
            },
            {
                "role": "assistant",
                "content": "Checking.",
                "tool_calls": [
                    {
                        "id": "toolu_1",
                        "type": "function",
                        "function": {"name": "get_weather", "arguments": '{"city":"Paris"}'},
                    },
                    {
                        "id": "toolu_2",
                        "type": "function",
                        "function": {"name": "get_weather", "arguments": '{"city":"Rome"}'},
                    },
                ],
            },
            {"role": "tool", "tool_call_id": "toolu_1", "content": "18C"},
            {"role": "tool", "tool_call_id": "toolu_2", "content": "21C"},
            {
                "role": "user",
                "content": [
                    {"type": "image_url", "image_url": {"url": "data:image/jpeg;base64,/9j/"}},
                    {"type": "text", "text": "Thanks"},
                ],
            },
        ],
        "max_completion_tokens": 1024,
        "temperature": 0.2,
        "top_p": 0.9,
        "stop": ["1", "2", "3", "4"],
        "tools": OPENAI_TOOLS,
        "tool_choice": "required",
        "parallel_tool_calls": False,
        "stream": True,
        "stream_options": {"include_usage": True},
        "user": "u-42",
    }


@pytest.mark.parametrize(
    ("choice", "expected"),
    [
        ({"type": "auto"}, "auto"),
        ({"type": "any"}, "required"),
        ({"type": "none"}, "none"),
        ({"type": "tool", "name": "get_weather"}, {"type": "function", "function": {"name": "get_weather"}}),
    ],
)
def test_anthropic_tool_choice_to_openai(choice: dict, expected: Any) -> None:
    body = {
        "model": CLAUDE,
        "max_tokens": 10,
        "messages": [],
        "tools": ANTHROPIC_TOOLS,
        "tool_choice": choice,
    }
    request = anthropic_to_openai_request(body, GPT)
    assert request["tool_choice"] == expected
    assert "parallel_tool_calls" not in request


def test_anthropic_request_strings_documents_and_structured_output() -> None:
    body = {
        "model": CLAUDE,
        "max_tokens": 10,
        "system": "S",
        "messages": [
            {"role": "user", "content": "Hi"},
            {"role": "assistant", "content": "Hello"},
            {
                "role": "user",
                "content": [
                    {
                        "type": "document",
                        "title": "r.pdf",
                        "source": {"type": "base64", "media_type": "application/pdf", "data": "JVBERi0="},
                    },
                    {
                        "type": "document",
                        "source": {"type": "text", "media_type": "text/plain", "data": "notes"},
                    },
                    {"type": "document", "source": {"type": "url", "url": "https://example.com/a.pdf"}},
                ],
            },
            {
                "role": "assistant",
                "content": [{"type": "thinking", "thinking": "only this", "signature": "s"}],
            },
        ],
        "output_config": {"format": {"type": "json_schema", "schema": WEATHER_SCHEMA}, "effort": "high"},
    }
    request = anthropic_to_openai_request(body, GPT)
    assert request["messages"] == [
        {"role": "system", "content": "S"},
        {"role": "user", "content": "Hi"},
        {"role": "assistant", "content": "Hello"},
        {
            "role": "user",
            "content": [
                {
                    "type": "file",
                    "file": {"filename": "r.pdf", "file_data": "data:application/pdf;base64,JVBERi0="},
                },
                {"type": "text", "text": "notes"},
            ],
        },
    ]
    assert request["response_format"] == {
        "type": "json_schema",
        "json_schema": {"name": "response", "schema": WEATHER_SCHEMA},
    }
    assert "stream" not in request and "stream_options" not in request


def test_requests_round_trip_keep_the_conversation() -> None:
    """OpenAI -> Anthropic -> OpenAI keeps what both dialects can say."""
    body = {
        "model": GPT,
        "messages": [
            {"role": "system", "content": "S"},
            {"role": "user", "content": "Weather in Paris?"},
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {
                        "id": "call_1",
                        "type": "function",
                        "function": {"name": "get_weather", "arguments": '{"city":"Paris"}'},
                    }
                ],
            },
            {"role": "tool", "tool_call_id": "call_1", "content": "18C"},
        ],
        "tools": OPENAI_TOOLS,
        "tool_choice": "auto",
        "max_completion_tokens": 300,
        "temperature": 0.5,
        "stop": ["END"],
        "user": "u",
    }
    back = anthropic_to_openai_request(openai_to_anthropic_request(body, CLAUDE), GPT)
    assert back == {**body, "stop": ["END"]}


# --- responses, usage, stop reasons, errors --------------------------------------------------


ANTHROPIC_MESSAGE = {
    "id": "msg_01XYZ",
    "type": "message",
    "role": "assistant",
    "model": CLAUDE,
    "content": [
        {"type": "thinking", "thinking": "The user wants weather.", "signature": "sig"},
        {"type": "text", "text": "Checking both."},
        {
            "type": "tool_use",
            "id": "toolu_a",
            "name": "get_weather",
            "input": {"city": "Paris", "unit": "celsius"},
        },
        {
            "type": "tool_use",
            "id": "toolu_b",
            "name": "get_weather",
            "input": {"city": "Rome", "unit": "celsius"},
        },
    ],
    "stop_reason": "tool_use",
    "stop_sequence": None,
    "usage": {
        "input_tokens": 100,
        "output_tokens": 20,
        "cache_creation_input_tokens": 50,
        "cache_read_input_tokens": 300,
    },
}


def test_anthropic_response_to_openai_parses_with_the_sdk() -> None:
    translated = anthropic_to_openai_response(ANTHROPIC_MESSAGE, GPT, created=1700000000)
    completion = ChatCompletion.model_validate(translated)
    assert completion.id == "chatcmpl-01XYZ"
    assert completion.model == GPT and completion.created == 1700000000
    choice = completion.choices[0]
    assert choice.finish_reason == "tool_calls"
    assert choice.message.content == "Checking both."
    calls = choice.message.tool_calls or []
    assert [(c.id, c.function.name, json.loads(c.function.arguments)) for c in calls] == [
        ("toolu_a", "get_weather", {"city": "Paris", "unit": "celsius"}),
        ("toolu_b", "get_weather", {"city": "Rome", "unit": "celsius"}),
    ]
    usage = completion.usage
    assert usage is not None and usage.prompt_tokens_details is not None
    assert (usage.prompt_tokens, usage.completion_tokens, usage.total_tokens) == (450, 20, 470)
    assert usage.prompt_tokens_details.cached_tokens == 300
    assert usage.prompt_tokens_details.cache_write_tokens == 50


def test_openai_response_to_anthropic_parses_with_the_sdk() -> None:
    completion = anthropic_to_openai_response(ANTHROPIC_MESSAGE, GPT)
    message = Message.model_validate(openai_to_anthropic_response(completion, CLAUDE))
    assert message.id == "msg_01XYZ" and message.model == CLAUDE
    assert message.stop_reason == "tool_use"
    assert [block.type for block in message.content] == ["text", "tool_use", "tool_use"]
    assert message.content[1].input == {"city": "Paris", "unit": "celsius"}  # type: ignore[union-attr]
    # Cached tokens leave input_tokens again: the usage survives the round trip.
    assert message.usage.model_dump(exclude_none=True) == ANTHROPIC_MESSAGE["usage"]


def test_openai_text_and_refusal_responses_to_anthropic() -> None:
    def completion(message: dict, finish: str) -> dict:
        usage = {"prompt_tokens": 12, "completion_tokens": 3, "total_tokens": 15}
        return {
            "id": "chatcmpl-abc",
            "object": "chat.completion",
            "created": 1,
            "model": GPT,
            "choices": [{"index": 0, "message": {"role": "assistant", **message}, "finish_reason": finish}],
            "usage": usage,
        }

    text = Message.model_validate(
        openai_to_anthropic_response(completion({"content": "Hi"}, "length"), CLAUDE)
    )
    assert text.content[0].text == "Hi"  # type: ignore[union-attr]
    assert text.stop_reason == "max_tokens"
    assert (text.usage.input_tokens, text.usage.output_tokens, text.usage.cache_read_input_tokens) == (
        12,
        3,
        0,
    )
    refusal = openai_to_anthropic_response(
        completion({"content": None, "refusal": "I can't."}, "stop"), CLAUDE
    )
    assert Message.model_validate(refusal).stop_reason == "refusal"
    assert refusal["content"] == [{"type": "text", "text": "I can't."}]


def test_anthropic_text_response_to_openai() -> None:
    body = {**ANTHROPIC_MESSAGE, "content": [{"type": "text", "text": "Hello"}], "stop_reason": "end_turn"}
    choice = ChatCompletion.model_validate(anthropic_to_openai_response(body, GPT)).choices[0]
    assert (choice.message.content, choice.message.tool_calls, choice.finish_reason) == (
        "Hello",
        None,
        "stop",
    )


@pytest.mark.parametrize(
    ("anthropic_reason", "openai_reason", "back"),
    [
        ("end_turn", "stop", "end_turn"),
        ("stop_sequence", "stop", "end_turn"),
        ("max_tokens", "length", "max_tokens"),
        ("tool_use", "tool_calls", "tool_use"),
        ("refusal", "content_filter", "refusal"),
        ("pause_turn", "stop", "end_turn"),
        ("model_context_window_exceeded", "length", "max_tokens"),
        (None, "stop", "end_turn"),
    ],
)
def test_stop_reasons(anthropic_reason: str | None, openai_reason: str, back: str) -> None:
    assert finish_reason(anthropic_reason) == openai_reason
    assert stop_reason(openai_reason) == back


def test_usage_maps_cached_tokens_both_ways() -> None:
    openai_side = {
        "prompt_tokens": 1000,
        "completion_tokens": 50,
        "total_tokens": 1050,
        "prompt_tokens_details": {"cached_tokens": 800, "audio_tokens": 0},
        "completion_tokens_details": {"reasoning_tokens": 30},
    }
    assert anthropic_usage(openai_side) == {
        "input_tokens": 200,
        "output_tokens": 50,
        "cache_creation_input_tokens": 0,
        "cache_read_input_tokens": 800,
        "output_tokens_details": {"thinking_tokens": 30},
    }
    assert openai_usage(anthropic_usage(openai_side)) == {
        "prompt_tokens": 1000,
        "completion_tokens": 50,
        "total_tokens": 1050,
        "prompt_tokens_details": {"cached_tokens": 800},
        "completion_tokens_details": {"reasoning_tokens": 30},
    }
    assert anthropic_usage(None)["input_tokens"] == 0 and openai_usage(None)["total_tokens"] == 0


def test_error_bodies_in_the_other_dialect() -> None:
    openai_429 = orjson.dumps(
        {
            "error": {
                "message": "Rate limit reached",
                "type": "tokens",
                "param": None,
                "code": "rate_limit_exceeded",
            }
        }
    )
    assert orjson.loads(openai_to_anthropic_error(429, openai_429)) == {
        "type": "error",
        "error": {"type": "rate_limit_error", "message": "Rate limit reached"},
    }
    overloaded = (
        b'{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"},"request_id":"req_1"}'
    )
    assert orjson.loads(anthropic_to_openai_error(529, overloaded)) == {
        "error": {"message": "Overloaded", "type": "server_error", "param": None, "code": None}
    }
    too_long = orjson.dumps(
        {
            "type": "error",
            "error": {
                "type": "invalid_request_error",
                "message": "prompt is too long: 300000 tokens > 200000 maximum",
            },
        }
    )
    error = orjson.loads(anthropic_to_openai_error(400, too_long))["error"]
    assert (error["code"], error["param"], error["type"]) == (
        "context_length_exceeded",
        "messages",
        "invalid_request_error",
    )
    assert orjson.loads(openai_to_anthropic_error(502, b"<html>Bad Gateway</html>"))["error"] == {
        "type": "api_error",
        "message": "<html>Bad Gateway</html>",
    }
    assert (
        orjson.loads(anthropic_to_openai_error(500, b""))["error"]["message"] == "upstream error (HTTP 500)"
    )


# --- streams: hand-built events, every output event parsed by the SDKs ------------------------


def anthropic_event(data: dict) -> bytes:
    return f"event: {data['type']}\ndata: {json.dumps(data)}\n\n".encode()


def openai_event(data: dict) -> bytes:
    return b"data: " + orjson.dumps(data) + b"\n\n"


ANTHROPIC_STREAM = [
    anthropic_event(
        {
            "type": "message_start",
            "message": {
                **ANTHROPIC_MESSAGE,
                "content": [],
                "stop_reason": None,
                "usage": {
                    "input_tokens": 10,
                    "output_tokens": 1,
                    "cache_read_input_tokens": 5,
                    "cache_creation_input_tokens": 0,
                },
            },
        }
    ),
    anthropic_event(
        {
            "type": "content_block_start",
            "index": 0,
            "content_block": {"type": "thinking", "thinking": "", "signature": ""},
        }
    ),
    anthropic_event({"type": "ping"}),
    anthropic_event(
        {"type": "content_block_delta", "index": 0, "delta": {"type": "thinking_delta", "thinking": "Paris."}}
    ),
    anthropic_event(
        {"type": "content_block_delta", "index": 0, "delta": {"type": "signature_delta", "signature": "abc"}}
    ),
    anthropic_event({"type": "content_block_stop", "index": 0}),
    anthropic_event(
        {"type": "content_block_start", "index": 1, "content_block": {"type": "text", "text": ""}}
    ),
    anthropic_event(
        {"type": "content_block_delta", "index": 1, "delta": {"type": "text_delta", "text": "Hello "}}
    ),
    anthropic_event(
        {"type": "content_block_delta", "index": 1, "delta": {"type": "text_delta", "text": "world"}}
    ),
    anthropic_event({"type": "content_block_stop", "index": 1}),
    anthropic_event(
        {
            "type": "content_block_start",
            "index": 2,
            "content_block": {"type": "tool_use", "id": "toolu_a", "name": "get_weather", "input": {}},
        }
    ),
    anthropic_event(
        {"type": "content_block_delta", "index": 2, "delta": {"type": "input_json_delta", "partial_json": ""}}
    ),
    anthropic_event(
        {
            "type": "content_block_delta",
            "index": 2,
            "delta": {"type": "input_json_delta", "partial_json": '{"city": "Pa'},
        }
    ),
    anthropic_event(
        {
            "type": "content_block_delta",
            "index": 2,
            "delta": {"type": "input_json_delta", "partial_json": 'ris"}'},
        }
    ),
    anthropic_event({"type": "content_block_stop", "index": 2}),
    anthropic_event(
        {
            "type": "content_block_start",
            "index": 3,
            "content_block": {"type": "tool_use", "id": "toolu_b", "name": "now", "input": {}},
        }
    ),
    anthropic_event({"type": "content_block_stop", "index": 3}),
    anthropic_event(
        {
            "type": "message_delta",
            "delta": {"stop_reason": "tool_use", "stop_sequence": None},
            "usage": {"output_tokens": 30},
        }
    ),
    anthropic_event({"type": "message_stop"}),
]


def sse_response(events: list[bytes], status: int = 200) -> Callable[[httpx2.Request], httpx2.Response]:
    """A transport handler answering every request with these SSE events, sent one by one."""

    def handle(request: httpx2.Request) -> httpx2.Response:
        return httpx2.Response(status, headers={"content-type": "text/event-stream"}, content=iter(events))

    return handle


def mock_openai(handler: Callable[[httpx2.Request], httpx2.Response]) -> openai.OpenAI:
    transport = httpx2.MockTransport(handler)
    return openai.OpenAI(
        base_url="http://bridge/v1",
        api_key="sk-test",
        max_retries=0,
        http_client=httpx2.Client(transport=transport),
    )


def mock_anthropic(handler: Callable[[httpx2.Request], httpx2.Response]) -> anthropic.Anthropic:
    transport = httpx2.MockTransport(handler)
    return anthropic.Anthropic(
        base_url="http://bridge",
        api_key="sk-ant-test",
        max_retries=0,
        http_client=httpx2.Client(transport=transport),
    )


def translate_all(
    translator: AnthropicToOpenAIStream | OpenAIToAnthropicStream, events: list[bytes]
) -> list[bytes]:
    """The translated stream as single events (a translator may answer one event with several)."""
    splitter = EventSplitter()
    out = [event for source in events for event in splitter.feed(translator.feed(source))]
    assert splitter.pending == b""
    return out


def test_anthropic_stream_to_openai_chunks() -> None:
    out = translate_all(AnthropicToOpenAIStream(GPT, include_usage=True, created=5), ANTHROPIC_STREAM)
    assert out[-1] == b"data: [DONE]\n\n"
    chunks = [ChatCompletionChunk.model_validate(event_json(event)) for event in out[:-1]]
    assert {c.id for c in chunks} == {"chatcmpl-01XYZ"} and {c.model for c in chunks} == {GPT}
    assert all(c.usage is None for c in chunks[:-1])
    assert chunks[0].choices[0].delta.role == "assistant"
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == "Hello world"
    opening = [
        c.choices[0].delta.tool_calls[0] for c in chunks if c.choices and c.choices[0].delta.tool_calls
    ]
    assert [(t.index, t.id, t.function and t.function.name) for t in opening if t.id] == [
        (0, "toolu_a", "get_weather"),
        (1, "toolu_b", "now"),
    ]
    assert [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason] == [
        "tool_calls"
    ]
    final = chunks[-1]
    assert final.choices == [] and final.usage is not None and final.usage.prompt_tokens_details is not None
    assert (
        final.usage.prompt_tokens,
        final.usage.completion_tokens,
        final.usage.prompt_tokens_details.cached_tokens,
    ) == (15, 30, 5)


def test_anthropic_stream_accumulated_by_the_openai_sdk() -> None:
    events = translate_all(AnthropicToOpenAIStream(GPT, include_usage=True), ANTHROPIC_STREAM)
    client = mock_openai(sse_response(events))
    with client.chat.completions.stream(model=GPT, messages=[{"role": "user", "content": "x"}]) as stream:
        kinds = {event.type for event in stream}
        completion = stream.get_final_completion()
    assert {"content.delta", "tool_calls.function.arguments.delta", "chunk"} <= kinds
    message = completion.choices[0].message
    assert message.content == "Hello world"
    assert [(c.id, c.function.name, c.function.arguments) for c in message.tool_calls or []] == [
        ("toolu_a", "get_weather", '{"city": "Paris"}'),
        ("toolu_b", "now", "{}"),  # a tool without parameters gets "{}", as OpenAI sends it
    ]
    assert completion.choices[0].finish_reason == "tool_calls"
    assert completion.usage is not None and completion.usage.completion_tokens == 30


def test_anthropic_stream_without_usage_chunk() -> None:
    out = translate_all(AnthropicToOpenAIStream(GPT), ANTHROPIC_STREAM)
    payloads = [event_json(event) for event in out[:-1]]
    assert all("usage" not in p and len(p["choices"]) == 1 for p in payloads if p)


OPENAI_STREAM_BASE = {
    "id": "chatcmpl-xyz",
    "object": "chat.completion.chunk",
    "created": 1,
    "model": GPT,
    "usage": None,
}


def openai_chunk(delta: dict, finish: str | None = None) -> bytes:
    choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}
    return openai_event({**OPENAI_STREAM_BASE, "choices": [choice]})


OPENAI_STREAM = [
    openai_chunk({"role": "assistant", "content": "", "refusal": None}),
    openai_chunk({"content": "Checking "}),
    openai_chunk({"content": "both."}),
    openai_chunk(
        {
            "tool_calls": [
                {
                    "index": 0,
                    "id": "call_a",
                    "type": "function",
                    "function": {"name": "get_weather", "arguments": ""},
                }
            ]
        }
    ),
    openai_chunk({"tool_calls": [{"index": 0, "function": {"arguments": '{"city":'}}]}),
    openai_chunk({"tool_calls": [{"index": 0, "function": {"arguments": ' "Paris"}'}}]}),
    openai_chunk(
        {
            "tool_calls": [
                {
                    "index": 1,
                    "id": "call_b",
                    "type": "function",
                    "function": {"name": "get_weather", "arguments": '{"city": "Rome"}'},
                }
            ]
        }
    ),
    openai_chunk({}, "tool_calls"),
    openai_event(
        {
            **OPENAI_STREAM_BASE,
            "choices": [],
            "usage": {
                "prompt_tokens": 50,
                "completion_tokens": 12,
                "total_tokens": 62,
                "prompt_tokens_details": {"cached_tokens": 20},
            },
        }
    ),
    b"data: [DONE]\n\n",
]


def test_openai_stream_to_anthropic_events() -> None:
    out = translate_all(OpenAIToAnthropicStream(CLAUDE), OPENAI_STREAM)
    events = [STREAM_EVENT.validate_python(event_json(event)) for event in out]
    assert all(
        event_field(raw, b"event") == event.type.encode() for raw, event in zip(out, events, strict=True)
    )
    assert [(e.type, getattr(e, "index", None)) for e in events] == [
        ("message_start", None),
        ("content_block_start", 0),
        ("content_block_delta", 0),
        ("content_block_delta", 0),
        ("content_block_stop", 0),
        ("content_block_start", 1),
        ("content_block_delta", 1),
        ("content_block_delta", 1),
        ("content_block_stop", 1),
        ("content_block_start", 2),
        ("content_block_delta", 2),
        ("content_block_stop", 2),
        ("message_delta", None),
        ("message_stop", None),
    ]
    assert events[0].message.id == "msg_xyz" and events[0].message.model == CLAUDE  # type: ignore[union-attr]
    delta = events[-2]
    assert delta.delta.stop_reason == "tool_use"  # type: ignore[union-attr]
    assert delta.usage.model_dump(exclude_none=True) == {  # type: ignore[union-attr]
        "input_tokens": 30,
        "output_tokens": 12,
        "cache_creation_input_tokens": 0,
        "cache_read_input_tokens": 20,
    }


def test_openai_stream_accumulated_by_the_anthropic_sdk() -> None:
    events = translate_all(OpenAIToAnthropicStream(CLAUDE), OPENAI_STREAM)
    client = mock_anthropic(sse_response(events))
    with client.messages.stream(
        model=CLAUDE, max_tokens=100, messages=[{"role": "user", "content": "x"}]
    ) as stream:
        text = "".join(stream.text_stream)
        message = stream.get_final_message()
    assert text == "Checking both."
    assert [block.type for block in message.content] == ["text", "tool_use", "tool_use"]
    assert [(b.id, b.input) for b in message.content[1:]] == [  # type: ignore[union-attr]
        ("call_a", {"city": "Paris"}),
        ("call_b", {"city": "Rome"}),
    ]
    assert message.stop_reason == "tool_use"
    assert (
        message.usage.input_tokens,
        message.usage.output_tokens,
        message.usage.cache_read_input_tokens,
    ) == (30, 12, 20)


def test_openai_stream_without_usage_or_content() -> None:
    """A stream that never asked for usage, and one with no chunk at all, still end properly."""
    out = translate_all(
        OpenAIToAnthropicStream(CLAUDE),
        [openai_chunk({"role": "assistant", "content": ""}), openai_chunk({}, "stop"), b"data: [DONE]\n\n"],
    )
    events = [STREAM_EVENT.validate_python(event_json(event)) for event in out]
    assert [e.type for e in events] == ["message_start", "message_delta", "message_stop"]
    assert events[1].delta.stop_reason == "end_turn"  # type: ignore[union-attr]
    empty = translate_all(OpenAIToAnthropicStream(CLAUDE), [b"data: [DONE]\n\n"])
    assert [STREAM_EVENT.validate_python(event_json(e)).type for e in empty] == [
        "message_start",
        "message_delta",
        "message_stop",
    ]


def test_stream_errors_reach_the_client_in_its_dialect() -> None:
    anthropic_error = anthropic_event(
        {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}
    )
    events = translate_all(
        AnthropicToOpenAIStream(GPT), [*ANTHROPIC_STREAM[:8], anthropic_error, ANTHROPIC_STREAM[-1]]
    )
    assert events[-1].startswith(b'data: {"error"')  # nothing after the error, no [DONE]
    client = mock_openai(sse_response(events))
    with pytest.raises(openai.APIError, match="Overloaded"):
        for _ in client.chat.completions.create(
            model=GPT, messages=[{"role": "user", "content": "x"}], stream=True
        ):
            pass

    openai_error = openai_event(
        {"error": {"message": "The server had an error", "type": "server_error", "param": None, "code": None}}
    )
    events = translate_all(OpenAIToAnthropicStream(CLAUDE), [*OPENAI_STREAM[:3], openai_error])
    assert event_json(events[-1]) == {
        "type": "error",
        "error": {"type": "api_error", "message": "The server had an error"},
    }
    client = mock_anthropic(sse_response(events))
    with pytest.raises(anthropic.APIStatusError, match="The server had an error"):
        for _ in client.messages.create(
            model=CLAUDE, max_tokens=10, messages=[{"role": "user", "content": "x"}], stream=True
        ):
            pass


# --- round trips through the simulator: a client of one dialect, an upstream of the other ----


class Bridge:
    """A cross-dialect hop as a transport for the SDKs: translate the client's request, send it
    to the simulator in the other dialect over HTTP, translate the answer (body, stream or error)
    back. Control headers (`x-sim-*`) pass through."""

    def __init__(self, sim: RunningSim, client_dialect: str) -> None:
        self.sim = sim
        self.client_dialect = client_dialect
        self.upstream_requests: list[dict[str, Any]] = []
        self.upstream_events: list[bytes] = []

    def handle(self, request: httpx2.Request) -> httpx2.Response:
        body = json.loads(request.read())
        controls = {k: v for k, v in request.headers.items() if k.startswith("x-sim-")}
        if self.client_dialect == "openai":
            translated = openai_to_anthropic_request(body, CLAUDE)
            url = f"{self.sim.anthropic_base_url}/v1/messages"
            headers = {"x-api-key": "sk-ant-test", "anthropic-version": "2023-06-01", **controls}
        else:
            translated = anthropic_to_openai_request(body, GPT)
            url = f"{self.sim.openai_base_url}/chat/completions"
            headers = {"authorization": "Bearer sk-test", **controls}
        self.upstream_requests.append(translated)
        upstream = httpx2.post(url, json=translated, headers=headers, timeout=10)
        if upstream.status_code != 200:
            error = (
                anthropic_to_openai_error if self.client_dialect == "openai" else openai_to_anthropic_error
            )
            return httpx2.Response(
                upstream.status_code,
                headers={"content-type": "application/json"},
                content=error(upstream.status_code, upstream.content),
            )
        if not translated.get("stream"):
            if self.client_dialect == "openai":
                return httpx2.Response(200, json=anthropic_to_openai_response(upstream.json(), body["model"]))
            return httpx2.Response(200, json=openai_to_anthropic_response(upstream.json(), body["model"]))
        self.upstream_events = EventSplitter().feed(upstream.content)
        if self.client_dialect == "openai":
            include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
            translator: Any = AnthropicToOpenAIStream(body["model"], include_usage)
        else:
            translator = OpenAIToAnthropicStream(body["model"])
        out: Iterator[bytes] = (translator.feed(event) for event in self.upstream_events)
        return httpx2.Response(200, headers={"content-type": "text/event-stream"}, content=out)


@pytest.fixture
def openai_via_anthropic(sim: RunningSim) -> tuple[openai.OpenAI, Bridge]:
    bridge = Bridge(sim, "openai")
    return mock_openai(bridge.handle), bridge


@pytest.fixture
def anthropic_via_openai(sim: RunningSim) -> tuple[anthropic.Anthropic, Bridge]:
    bridge = Bridge(sim, "anthropic")
    return mock_anthropic(bridge.handle), bridge


USER = [{"role": "user", "content": "Explain how a sliding window rate limiter works."}]


def test_openai_client_on_anthropic_model(openai_via_anthropic: tuple[openai.OpenAI, Bridge]) -> None:
    client, bridge = openai_via_anthropic
    completion = client.chat.completions.create(
        model=GPT, messages=[{"role": "system", "content": "Brief."}, *USER]
    )
    assert bridge.upstream_requests[0]["system"] == "Brief."
    assert bridge.upstream_requests[0]["max_tokens"] == DEFAULT_MAX_TOKENS
    assert completion.id.startswith("chatcmpl-") and completion.model == GPT
    assert completion.choices[0].finish_reason == "stop" and completion.choices[0].message.content
    assert completion.usage is not None and completion.usage.prompt_tokens > 0

    short = client.chat.completions.create(
        model=GPT, messages=USER, max_tokens=5, extra_headers={"x-sim-output-tokens": "50"}
    )
    assert short.choices[0].finish_reason == "length" and short.usage and short.usage.completion_tokens == 5

    with client.chat.completions.stream(
        model=GPT, messages=USER, stream_options={"include_usage": True}
    ) as stream:
        streamed = stream.get_final_completion()
    assert streamed.choices[0].message.content == completion.choices[0].message.content
    assert (
        streamed.usage is not None and streamed.usage.completion_tokens == completion.usage.completion_tokens
    )
    assert len(bridge.upstream_events) > 5  # a real multi-event Anthropic stream was translated


def test_openai_client_tool_loop_on_anthropic_model(
    openai_via_anthropic: tuple[openai.OpenAI, Bridge],
) -> None:
    client, bridge = openai_via_anthropic
    first = client.chat.completions.create(
        model=GPT, messages=USER, tools=OPENAI_TOOLS, tool_choice="required"
    )
    assert bridge.upstream_requests[0]["tool_choice"] == {"type": "any"}
    message = first.choices[0].message
    assert first.choices[0].finish_reason == "tool_calls" and message.content is None
    call = (message.tool_calls or [])[0]
    assert call.function.name == "get_weather"
    assert json.loads(call.function.arguments) == {"city": "sim", "unit": "celsius"}

    with client.chat.completions.stream(
        model=GPT, messages=USER, tools=OPENAI_TOOLS, tool_choice="required"
    ) as stream:
        argument_deltas = [e for e in stream if e.type == "tool_calls.function.arguments.delta"]
        streamed = stream.get_final_completion()
    assert len(argument_deltas) > 1
    streamed_call = (streamed.choices[0].message.tool_calls or [])[0]
    assert json.loads(streamed_call.function.arguments) == {"city": "sim", "unit": "celsius"}
    assert streamed.choices[0].finish_reason == "tool_calls"

    # The tool result goes back as a tool_result block; the simulated model then answers in text.
    history = [
        *USER,
        message.model_dump(exclude_none=True),
        {"role": "tool", "tool_call_id": call.id, "content": "18C"},
    ]
    final = client.chat.completions.create(model=GPT, messages=history, tools=OPENAI_TOOLS)
    assert final.choices[0].finish_reason == "stop" and final.choices[0].message.content
    assert bridge.upstream_requests[-1]["messages"][-1]["content"] == [
        {"type": "tool_result", "tool_use_id": call.id, "content": "18C"}
    ]


def test_anthropic_client_on_openai_model(anthropic_via_openai: tuple[anthropic.Anthropic, Bridge]) -> None:
    client, bridge = anthropic_via_openai
    message = client.messages.create(model=CLAUDE, max_tokens=256, system="Brief.", messages=USER)
    assert bridge.upstream_requests[0]["messages"][0] == {"role": "system", "content": "Brief."}
    assert message.id.startswith("msg_") and message.model == CLAUDE
    assert message.stop_reason == "end_turn" and message.content[0].text  # type: ignore[union-attr]
    assert message.usage.input_tokens > 0 and message.usage.output_tokens > 0

    short = client.messages.create(
        model=CLAUDE, max_tokens=5, messages=USER, extra_headers={"x-sim-output-tokens": "50"}
    )
    assert short.stop_reason == "max_tokens" and short.usage.output_tokens == 5

    with client.messages.stream(model=CLAUDE, max_tokens=256, messages=USER) as stream:
        text = "".join(stream.text_stream)
        streamed = stream.get_final_message()
    assert bridge.upstream_requests[-1]["stream_options"] == {"include_usage": True}
    assert text == message.content[0].text  # type: ignore[union-attr]
    assert streamed.usage.input_tokens == short.usage.input_tokens  # same prompt, no system
    assert streamed.usage.output_tokens == message.usage.output_tokens
    assert len(bridge.upstream_events) > 5


def test_anthropic_client_tool_loop_on_openai_model(
    anthropic_via_openai: tuple[anthropic.Anthropic, Bridge],
) -> None:
    client, bridge = anthropic_via_openai
    first = client.messages.create(
        model=CLAUDE, max_tokens=256, messages=USER, tools=ANTHROPIC_TOOLS, tool_choice={"type": "any"}
    )
    assert bridge.upstream_requests[0]["tool_choice"] == "required"
    assert first.stop_reason == "tool_use"
    tool_use = first.content[0]
    assert tool_use.type == "tool_use" and tool_use.input == {"city": "sim", "unit": "celsius"}

    with client.messages.stream(
        model=CLAUDE,
        max_tokens=256,
        messages=USER,
        tools=ANTHROPIC_TOOLS,
        tool_choice={"type": "tool", "name": "get_weather"},
    ) as stream:
        json_deltas = [e for e in stream if e.type == "input_json"]
        streamed = stream.get_final_message()
    assert len(json_deltas) > 1
    assert streamed.stop_reason == "tool_use"
    assert streamed.content[0].input == {"city": "sim", "unit": "celsius"}  # type: ignore[union-attr]

    history = [
        *USER,
        {"role": "assistant", "content": [block.model_dump(exclude_none=True) for block in first.content]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": tool_use.id, "content": "18C"}]},
    ]
    final = client.messages.create(model=CLAUDE, max_tokens=256, messages=history, tools=ANTHROPIC_TOOLS)
    assert final.stop_reason == "end_turn" and final.content[0].type == "text"
    assert bridge.upstream_requests[-1]["messages"][-1] == {
        "role": "tool",
        "tool_call_id": tool_use.id,
        "content": "18C",
    }


def test_upstream_errors_reach_each_sdk_as_its_own_exceptions(
    openai_via_anthropic: tuple[openai.OpenAI, Bridge],
    anthropic_via_openai: tuple[anthropic.Anthropic, Bridge],
) -> None:
    openai_client, _ = openai_via_anthropic
    anthropic_client, _ = anthropic_via_openai
    with pytest.raises(openai.RateLimitError) as rate_limited:
        openai_client.chat.completions.create(model=GPT, messages=USER, extra_headers={"x-sim-fail": "429"})
    assert rate_limited.value.code == "rate_limit_exceeded"
    with pytest.raises(openai.BadRequestError) as overflow:
        openai_client.chat.completions.create(model=GPT, messages=TOO_LONG)
    assert overflow.value.code == "context_length_exceeded"
    with pytest.raises(openai.InternalServerError):
        openai_client.chat.completions.create(model=GPT, messages=USER, extra_headers={"x-sim-fail": "529"})

    with pytest.raises(anthropic.RateLimitError):
        anthropic_client.messages.create(
            model=CLAUDE, max_tokens=10, messages=USER, extra_headers={"x-sim-fail": "429"}
        )
    with pytest.raises(anthropic.BadRequestError, match="maximum context length"):
        # streamed: the SDK itself refuses a non-streaming request this long
        anthropic_client.messages.create(model=CLAUDE, max_tokens=10, messages=TOO_LONG, stream=True)


def test_malformed_bodies_do_not_crash_the_translators() -> None:
    """A field the translation reads, of the wrong type, raises InvalidRequest (the gateway's
    400, naming the field); what it does not read passes; translating answers never raises."""
    odd = {"messages": ["x", {"role": "user", "content": "hi"}], "metadata": "x", "response_format": "text"}
    assert openai_to_anthropic_request(odd, CLAUDE)["messages"] == [{"role": "user", "content": "hi"}]
    weird = {**odd, "output_config": [], "tool_choice": "auto"}
    assert anthropic_to_openai_request(weird, GPT)["messages"] == [{"role": "user", "content": "hi"}]
    for wrong, field in [
        ({"messages": [{"role": "user", "content": 5}]}, "'messages[].content'"),
        ({"tools": "no"}, "'tools' must be a list"),
        ({"messages": [{"role": "assistant", "tool_calls": 5}]}, "'messages[].tool_calls'"),
        ({"max_tokens": "many"}, "'max_tokens' must be a positive integer"),
    ]:
        with pytest.raises(InvalidRequest, match=re.escape(field)):
            openai_to_anthropic_request(wrong, CLAUDE)
    tool_result = {"type": "tool_result", "tool_use_id": "t", "content": 5}
    for wrong, field in [
        ({"messages": [{"role": "user", "content": [tool_result]}]}, "'messages[].content[].content'"),
        ({"system": 3}, "'system' must be a string or a list"),
        (
            {"messages": [{"role": "assistant", "content": [{"type": "text", "text": 5}]}]},
            "text' must be a string",
        ),
        ({"stop_sequences": 5}, "'stop_sequences' must be a list"),
        ({"tools": [{"name": "t"}], "tool_choice": {"type": ["tool"]}}, "'tool_choice.type'"),
    ]:
        with pytest.raises(InvalidRequest, match=re.escape(field)):
            anthropic_to_openai_request(wrong, GPT)
    assert openai_to_anthropic_response({"choices": []}, CLAUDE)["content"] == []
    assert anthropic_to_openai_response({}, GPT, created=0)["choices"][0]["message"]["content"] is None
    assert AnthropicToOpenAIStream(GPT).feed(b"data: not json\n\n") == b""
    assert OpenAIToAnthropicStream(CLAUDE).feed(b": comment\n\n") == b""
