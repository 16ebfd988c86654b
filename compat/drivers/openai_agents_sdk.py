"""The OpenAI Agents SDK, configured by OPENAI_BASE_URL and OPENAI_API_KEY, its traces off
(OPENAI_AGENTS_DISABLE_TRACING: they go to api.openai.com, with that key, whatever the base URL)."""

from __future__ import annotations

import asyncio
import os

os.environ["OPENAI_AGENTS_DISABLE_TRACING"] = "1"  # before the SDK reads it

from agents import Agent, Runner, function_tool, set_default_openai_api
from harness import check, main, short, version_of
from pydantic import BaseModel

ASK = "Say hello in five words."
asked: list[str] = []


class City(BaseModel):
    name: str
    population: int


@function_tool
def get_weather(city: str) -> str:
    """The weather in a city now."""
    asked.append(city)
    return "18 C, sunny"


def default_model() -> str:
    """Runner.run_sync, the default model on the Responses API"""
    result = Runner.run_sync(Agent(name="greeter", instructions="Be brief."), ASK)
    check(isinstance(result.final_output, str) and result.final_output, f"output: {result.final_output!r}")
    return short(result.final_output)


def output_type() -> str:
    """Agent(output_type=...): structured output"""
    agent = Agent(name="geographer", model="gpt-4o-mini", output_type=City)
    result = Runner.run_sync(agent, "Name a large city.")
    check(isinstance(result.final_output, City), f"output: {result.final_output!r}")
    return short(result.final_output.model_dump_json())


def tool_call() -> str:
    """a @function_tool called, then text"""
    agent = Agent(name="forecaster", model="gpt-4o-mini", tools=[get_weather])
    result = Runner.run_sync(agent, "What is the weather in Paris?")
    check(asked and result.final_output, f"tool asked {asked}, output {result.final_output!r}")
    return f"get_weather({asked[0]!r}), then text"


def chat_completions_api() -> str:
    """set_default_openai_api("chat_completions"), Runner.run_streamed"""
    set_default_openai_api("chat_completions")

    async def run() -> tuple[int, object]:
        streamed = Runner.run_streamed(Agent(name="greeter", model="gpt-4o-mini"), ASK)
        events = [event async for event in streamed.stream_events()]
        return len(events), streamed.final_output

    events, output = asyncio.run(run())
    check(output, "no output")
    return f"{events} stream events"


if __name__ == "__main__":
    main(
        "openai-agents (Agents SDK)",
        lambda: version_of("openai-agents"),
        [default_model, output_type, tool_call, chat_completions_api],
    )
