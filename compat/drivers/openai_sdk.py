"""The official OpenAI Python SDK, configured only by OPENAI_BASE_URL and OPENAI_API_KEY: chat
completions and the Responses API, plain, streamed, with a tool and with structured output."""

from __future__ import annotations

import json

import openai
from harness import check, main, short, version_of
from pydantic import BaseModel

client = openai.OpenAI(max_retries=0, timeout=60)
MODEL = "gpt-4o-mini"
ASK = [{"role": "user", "content": "Say hello in five words."}]
WEATHER = {
    "name": "get_weather",
    "description": "The weather in a city now",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
}


class City(BaseModel):
    name: str
    population: int


def chat_plain() -> str:
    """chat.completions.create"""
    reply = client.chat.completions.create(model=MODEL, messages=ASK)
    check(reply.choices[0].message.content, f"no text: {reply}")
    check(reply.usage and reply.usage.completion_tokens > 0, f"no usage: {reply.usage}")
    return short(reply.choices[0].message.content)


def chat_stream() -> str:
    """chat.completions.create(stream=True, include_usage)"""
    stream = client.chat.completions.create(
        model=MODEL, messages=ASK, stream=True, stream_options={"include_usage": True}
    )
    text, usage = "", None
    for chunk in stream:
        text += "".join(choice.delta.content or "" for choice in chunk.choices)
        usage = chunk.usage or usage
    check(text, "no text in the stream")
    check(usage and usage.prompt_tokens > 0, f"no usage chunk: {usage}")
    return f"{usage.completion_tokens} tokens streamed"


def chat_tools() -> str:
    """chat.completions.create with a tool: the call, then text on its result"""
    tools = [{"type": "function", "function": WEATHER}]
    messages = [{"role": "user", "content": "What is the weather in Paris?"}]
    first = client.chat.completions.create(model=MODEL, messages=messages, tools=tools).choices[0]
    calls = first.message.tool_calls
    check(calls and calls[0].function.name == "get_weather", f"no tool call: {first}")
    arguments = json.loads(calls[0].function.arguments)
    messages += [
        first.message.model_dump(exclude_none=True),
        {"role": "tool", "tool_call_id": calls[0].id, "content": "18 C, sunny"},
    ]
    second = client.chat.completions.create(model=MODEL, messages=messages, tools=tools).choices[0]
    check(second.message.content and not second.message.tool_calls, f"no text after the result: {second}")
    return f"get_weather({json.dumps(arguments)}), then text"


def chat_parse() -> str:
    """chat.completions.parse (json_schema, strict)"""
    reply = client.chat.completions.parse(model=MODEL, messages=ASK, response_format=City)
    parsed = reply.choices[0].message.parsed
    check(isinstance(parsed, City), f"not parsed: {reply.choices[0].message}")
    return short(parsed.model_dump_json())


def responses_plain() -> str:
    """responses.create"""
    response = client.responses.create(model=MODEL, input="Say hello in five words.")
    check(response.status == "completed" and response.output_text, f"no text: {response}")
    check(response.usage and response.usage.output_tokens > 0, f"no usage: {response.usage}")
    return short(response.output_text)


def responses_stream() -> str:
    """responses.create(stream=True): created, text deltas, completed with usage"""
    events = list(client.responses.create(model=MODEL, input="Say hello in five words.", stream=True))
    kinds = [event.type for event in events]
    check(kinds[0] == "response.created" and kinds[-1] == "response.completed", f"events: {kinds}")
    text = "".join(event.delta for event in events if event.type == "response.output_text.delta")
    final = events[-1].response
    check(text and text == final.output_text, "the deltas are not the completed text")
    check(final.usage and final.usage.output_tokens > 0, f"no usage: {final.usage}")
    return f"{len(events)} events"


def responses_tools() -> str:
    """responses.create with a function tool; its output sent with previous_response_id"""
    tools = [{"type": "function", **WEATHER}]
    first = client.responses.create(model=MODEL, input="What is the weather in Paris?", tools=tools)
    calls = [item for item in first.output if item.type == "function_call"]
    check(calls and calls[0].name == "get_weather", f"no function call: {first.output}")
    second = client.responses.create(
        model=MODEL,
        previous_response_id=first.id,
        input=[{"type": "function_call_output", "call_id": calls[0].call_id, "output": "18 C, sunny"}],
        tools=tools,
    )
    check(second.output_text, f"no text after the output: {second.output}")
    return f"get_weather({calls[0].arguments}), then text"


def responses_parse() -> str:
    """responses.parse (text_format, strict json_schema)"""
    response = client.responses.parse(model=MODEL, input="Name a large city.", text_format=City)
    check(isinstance(response.output_parsed, City), f"not parsed: {response.output}")
    return short(response.output_parsed.model_dump_json())


def responses_claude() -> str:
    """responses.create with a Claude model (translated to Messages), streamed"""
    events = list(client.responses.create(model="claude-haiku-4-5", input="Say hello.", stream=True))
    check(events[-1].type == "response.completed", f"last event: {events[-1].type}")
    check(events[-1].response.output_text, "no text")
    return short(events[-1].response.output_text)


def models() -> str:
    """models.list, models.retrieve"""
    names = [model.id for model in client.models.list()]
    check(MODEL in names, f"{MODEL} not listed: {names}")
    check(client.models.retrieve(MODEL).id == MODEL, "retrieve answered another model")
    return f"{len(names)} models"


if __name__ == "__main__":
    main(
        "openai (Python SDK)",
        lambda: version_of("openai"),
        [
            chat_plain,
            chat_stream,
            chat_tools,
            chat_parse,
            responses_plain,
            responses_stream,
            responses_tools,
            responses_parse,
            responses_claude,
            models,
        ],
    )
