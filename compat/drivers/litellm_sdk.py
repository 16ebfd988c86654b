"""The LiteLLM SDK with `openai/` and `anthropic/` model names, which read the four variables, and
its cost map from the package (LITELLM_LOCAL_MODEL_COST_MAP: no download at import)."""

from __future__ import annotations

import os

os.environ["LITELLM_LOCAL_MODEL_COST_MAP"] = "True"  # before the import reads it

import litellm
from harness import check, main, short, version_of

ASK = [{"role": "user", "content": "Say hello in five words."}]


def completion_openai() -> str:
    """litellm.completion("openai/gpt-4o-mini")"""
    reply = litellm.completion(model="openai/gpt-4o-mini", messages=ASK)
    check(reply.choices[0].message.content and reply.usage.completion_tokens > 0, f"reply: {reply}")
    return short(reply.choices[0].message.content)


def completion_anthropic_stream() -> str:
    """litellm.completion("anthropic/claude-sonnet-4-5", stream=True)"""
    chunks = list(litellm.completion(model="anthropic/claude-sonnet-4-5", messages=ASK, stream=True))
    check("".join(chunk.choices[0].delta.content or "" for chunk in chunks), "no text streamed")
    return f"{len(chunks)} chunks"


def responses_openai() -> str:
    """litellm.responses("openai/gpt-4o-mini")"""
    response = litellm.responses(model="openai/gpt-4o-mini", input="Say hello in five words.")
    texts = [part.text for item in response.output if item.type == "message" for part in item.content]
    check(texts and texts[0] and response.usage.output_tokens > 0, f"response: {response}")
    return short(texts[0])


def responses_anthropic() -> str:
    """litellm.responses("anthropic/claude-haiku-4-5") (LiteLLM's own translation)"""
    response = litellm.responses(model="anthropic/claude-haiku-4-5", input="Say hello in five words.")
    texts = [part.text for item in response.output if item.type == "message" for part in item.content]
    check(texts and texts[0], f"response: {response}")
    return short(texts[0])


if __name__ == "__main__":
    main(
        "LiteLLM (SDK)",
        lambda: version_of("litellm"),
        [completion_openai, completion_anthropic_stream, responses_openai, responses_anthropic],
    )
