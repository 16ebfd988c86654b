"""Claude Code (`claude -p`), configured by ANTHROPIC_BASE_URL and ANTHROPIC_API_KEY. The
simulator answers its tools with a call to the first one (Claude Code asks before it runs a
command, which `-p` refuses), then text: each case is a whole agent loop."""

from __future__ import annotations

import json

from harness import CLIENTS, check, main, npm_version, run, short

CLAUDE = str(CLIENTS / "npm" / "node_modules" / ".bin" / "claude")
# No update checks, telemetry or error reports: the gateway is the only host it may reach.
OFFLINE = {"DISABLE_AUTOUPDATER": "1", "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1"}
COLOUR = {"type": "object", "properties": {"colour": {"type": "string"}}, "required": ["colour"]}


def claude(prompt: str, *options: str) -> dict:
    result = json.loads(run([CLAUDE, "-p", prompt, *options, "--output-format", "json"], **OFFLINE))
    check(not result["is_error"], f"is_error ({result.get('api_error_status')}): {short(result['result'])}")
    return result


def default_model() -> str:
    """claude -p with its default model"""
    result = claude("Say hello in five words.")
    check(result["result"], "no result text")
    return f"{', '.join(result['modelUsage'])}: {result['num_turns']} turns"


def sonnet() -> str:
    """claude -p --model claude-sonnet-4-5"""
    result = claude("Say hello in five words.", "--model", "claude-sonnet-4-5")
    check(result["result"], "no result text")
    return f"{result['num_turns']} turns"


def haiku_reading() -> str:
    """claude -p --model claude-haiku-4-5 --tools Read: a tool run, then text"""
    result = claude("What is in notes.txt?", "--model", "claude-haiku-4-5", "--tools", "Read")
    check(result["num_turns"] >= 2 and result["result"], f"no tool turn: {result['num_turns']} turns")
    return f"{result['num_turns']} turns"


def structured() -> str:
    """claude -p --json-schema (its StructuredOutput tool)"""
    result = claude(
        "Name a colour.", "--model", "claude-sonnet-4-6", "--tools", "", "--json-schema", json.dumps(COLOUR)
    )
    output = result.get("structured_output")
    check(isinstance(output, dict) and isinstance(output.get("colour"), str), f"structured_output: {output}")
    return json.dumps(output)


if __name__ == "__main__":
    main(
        "Claude Code",
        lambda: npm_version("@anthropic-ai/claude-code"),
        [default_model, sonnet, haiku_reading, structured],
        timeout_s=300,
    )
