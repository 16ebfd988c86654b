"""The official Anthropic Python SDK, configured only by ANTHROPIC_BASE_URL and ANTHROPIC_API_KEY:
messages plain, streamed and with a tool."""

from __future__ import annotations

import anthropic
from harness import check, main, short, version_of

client = anthropic.Anthropic(max_retries=0, timeout=60)
MODEL = "claude-sonnet-4-5"
ASK = [{"role": "user", "content": "Say hello in five words."}]
WEATHER = {
    "name": "get_weather",
    "description": "The weather in a city now",
    "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
}


def messages_plain() -> str:
    """messages.create"""
    message = client.messages.create(model=MODEL, max_tokens=1024, messages=ASK)
    check(message.content and message.content[0].type == "text", f"no text: {message}")
    check(message.usage.output_tokens > 0, f"no usage: {message.usage}")
    return short(message.content[0].text)


def messages_stream() -> str:
    """messages.stream: text deltas, final message with usage"""
    with client.messages.stream(model=MODEL, max_tokens=1024, messages=ASK) as stream:
        text = "".join(stream.text_stream)
        final = stream.get_final_message()
    check(text and final.content[0].text == text, "the deltas are not the final text")
    check(final.usage.input_tokens > 0 and final.usage.output_tokens > 0, f"usage: {final.usage}")
    return f"{final.usage.output_tokens} tokens streamed"


def messages_tools() -> str:
    """messages.create with a tool: tool_use, then text on its tool_result"""
    messages = [{"role": "user", "content": "What is the weather in Paris?"}]
    first = client.messages.create(model=MODEL, max_tokens=1024, messages=messages, tools=[WEATHER])
    uses = [block for block in first.content if block.type == "tool_use"]
    check(first.stop_reason == "tool_use" and uses, f"no tool_use: {first}")
    messages += [
        {"role": "assistant", "content": [block.model_dump() for block in first.content]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": uses[0].id, "content": "18 C"}]},
    ]
    second = client.messages.create(model=MODEL, max_tokens=1024, messages=messages, tools=[WEATHER])
    check(second.stop_reason == "end_turn" and second.content[0].type == "text", f"then: {second}")
    return f"get_weather({uses[0].input}), then text"


def models() -> str:
    """models.list, models.retrieve"""
    names = [model.id for model in client.models.list()]
    check("claude-haiku-4-5" in names, f"claude-haiku-4-5 not listed: {names}")
    check(client.models.retrieve("claude-haiku-4-5").id == "claude-haiku-4-5", "retrieve answered another")
    return f"{len(names)} models"


if __name__ == "__main__":
    main(
        "anthropic (Python SDK)",
        lambda: version_of("anthropic"),
        [messages_plain, messages_stream, messages_tools, models],
    )
