"""The Codex CLI (`codex exec`), which speaks only the Responses API. Its built-in `openai`
provider ignores OPENAI_BASE_URL and OPENAI_API_KEY, so the gateway is a provider of its own in
~/.codex/config.toml, as the README shows; the key is still OPENAI_API_KEY's. Its default
settings stay: the web search tool and the sub-agent tools it sends as a `namespace` go through
the gateway's translation (and the simulator) too."""

from __future__ import annotations

import json

from harness import CLIENTS, OPENAI_URL, WORK, check, main, npm_version, run, short

CODEX = str(CLIENTS / "npm" / "node_modules" / ".bin" / "codex")
CONFIG = f"""model = "gpt-4o"
model_provider = "xvckit"

[model_providers.xvckit]
name = "xvckit"
base_url = "{OPENAI_URL}"
env_key = "OPENAI_API_KEY"
wire_api = "responses"
"""
COLOUR = {
    "type": "object",
    "properties": {"colour": {"type": "string"}},
    "required": ["colour"],
    "additionalProperties": False,
}


def codex(prompt: str, *options: str) -> str:
    """The last message of a `codex exec` run."""
    (WORK / ".codex").mkdir(exist_ok=True)
    (WORK / ".codex" / "config.toml").write_text(CONFIG)
    last = WORK / "last-message.txt"
    run([CODEX, "exec", "--skip-git-repo-check", "-o", str(last), *options, prompt])
    check(last.exists() and last.read_text().strip(), "no last message")
    return last.read_text().strip()


def exec_plain() -> str:
    """codex exec (a tool call, then text)"""
    return short(codex("Say hello in five words."))


def exec_output_schema() -> str:
    """codex exec --output-schema (structured output)"""
    (WORK / "schema.json").write_text(json.dumps(COLOUR))
    answer = json.loads(codex("Name a colour.", "--output-schema", str(WORK / "schema.json")))
    check(isinstance(answer.get("colour"), str), f"not the schema's shape: {answer}")
    return json.dumps(answer)


def exec_claude() -> str:
    """codex exec -m claude-sonnet-4-6 (translated to Messages)"""
    return short(codex("Say hello in five words.", "-m", "claude-sonnet-4-6"))


if __name__ == "__main__":
    main(
        "Codex CLI",
        lambda: npm_version("@openai/codex"),
        [exec_plain, exec_output_schema, exec_claude],
        timeout_s=300,
    )
