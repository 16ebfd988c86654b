"""LangChain's ChatOpenAI (chat completions and the Responses API) and ChatAnthropic, configured
by the four variables alone."""

from __future__ import annotations

from harness import check, main, short, version_of
from langchain_anthropic import ChatAnthropic
from langchain_openai import ChatOpenAI
from pydantic import BaseModel

ASK = "Say hello in five words."


class City(BaseModel):
    name: str
    population: int


def get_weather(city: str) -> str:
    """The weather in a city now."""
    return "18 C, sunny"


def openai_chat() -> str:
    """ChatOpenAI.invoke"""
    reply = ChatOpenAI(model="gpt-4o-mini", max_retries=0).invoke(ASK)
    check(reply.text and reply.usage_metadata["output_tokens"] > 0, f"reply: {reply}")
    return short(reply.text)


def openai_stream() -> str:
    """ChatOpenAI.stream"""
    chunks = list(ChatOpenAI(model="gpt-4o-mini", max_retries=0).stream(ASK))
    check("".join(chunk.text for chunk in chunks), "no text streamed")
    return f"{len(chunks)} chunks"


def openai_responses() -> str:
    """ChatOpenAI(use_responses_api=True).invoke"""
    reply = ChatOpenAI(model="gpt-4o-mini", use_responses_api=True, max_retries=0).invoke(ASK)
    check(reply.text and reply.usage_metadata["output_tokens"] > 0, f"reply: {reply}")
    return short(reply.text)


def openai_structured() -> str:
    """ChatOpenAI.with_structured_output (json_schema), chat and Responses"""
    for responses in (False, True):
        model = ChatOpenAI(model="gpt-4o-mini", use_responses_api=responses, max_retries=0)
        city = model.with_structured_output(City).invoke("Name a large city.")
        check(isinstance(city, City), f"use_responses_api={responses}: {city!r}")
    return short(city.model_dump_json())


def anthropic_chat() -> str:
    """ChatAnthropic.invoke"""
    reply = ChatAnthropic(model="claude-sonnet-4-5", max_retries=0).invoke(ASK)
    check(reply.text and reply.usage_metadata["output_tokens"] > 0, f"reply: {reply}")
    return short(reply.text)


def anthropic_tools() -> str:
    """ChatAnthropic.bind_tools, then stream"""
    model = ChatAnthropic(model="claude-haiku-4-5", max_retries=0)
    reply = model.bind_tools([get_weather]).invoke("What is the weather in Paris?")
    check(reply.tool_calls and reply.tool_calls[0]["name"] == "get_weather", f"reply: {reply}")
    chunks = list(model.stream(ASK))
    check("".join(chunk.text for chunk in chunks), "no text streamed")
    return f"get_weather({reply.tool_calls[0]['args']}); {len(chunks)} chunks"


if __name__ == "__main__":
    main(
        "LangChain",
        lambda: f"openai {version_of('langchain-openai')}, anthropic {version_of('langchain-anthropic')}",
        [openai_chat, openai_stream, openai_responses, openai_structured, anthropic_chat, anthropic_tools],
    )
