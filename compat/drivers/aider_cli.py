"""aider (`aider --message`), with the OpenAI pair for an OpenAI model and the Anthropic pair for
an `anthropic/` model (its LiteLLM knows too few bare Claude names). aider exits 0 after a
failed call too, so a case passes on its token line, which only an answer prints."""

from __future__ import annotations

import re

from harness import CLIENTS, WORK, check, main, run, version_of

AIDER = str(CLIENTS / "aider" / "bin" / "aider")
QUIET = ["--yes", "--no-git", "--no-check-update", "--no-show-release-notes", "--analytics-disable"]


def aider(model: str) -> str:
    (WORK / "calc.py").write_text("def add(a, b):\n    return a + b\n")
    output = run([AIDER, "--model", model, "--message", "Say hello in five words.", *QUIET, "calc.py"])
    tokens = re.search(r"Tokens: (\S+) sent, (\S+) received", output)
    check(tokens and tokens.group(2) != "0", f"no answer: {output.strip().splitlines()[-1]}")
    return tokens.group(0)


def openai_model() -> str:
    """aider --model gpt-4o (OPENAI_BASE_URL, OPENAI_API_KEY)"""
    return aider("gpt-4o")


def anthropic_model() -> str:
    """aider --model anthropic/claude-sonnet-4-6 (ANTHROPIC_BASE_URL, ANTHROPIC_API_KEY)"""
    return aider("anthropic/claude-sonnet-4-6")


if __name__ == "__main__":
    main("aider", lambda: version_of("aider-chat"), [openai_model, anthropic_model], timeout_s=240)
