"""simonw's `llm`: its OpenAI models follow OPENAI_BASE_URL and OPENAI_API_KEY; any other model of
the gateway is a line in extra-openai-models.yaml (in LLM_USER_PATH), as the README shows."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from harness import OPENAI_URL, WORK, check, main, run, short, version_of

LLM = str(Path(sys.executable).parent / "llm")
EXTRA_MODELS = f"""- model_id: xvckit-claude
  model_name: claude-haiku-4-5
  api_base: "{OPENAI_URL}"
  api_key_name: openai
  supports_schema: true
"""


def llm(*args: str) -> str:
    (WORK / "llm").mkdir(exist_ok=True)
    (WORK / "llm" / "extra-openai-models.yaml").write_text(EXTRA_MODELS)
    output = run([LLM, *args], LLM_USER_PATH=str(WORK / "llm")).strip()
    check(output, "no answer")
    return output


def city(model: str) -> str:
    answer = json.loads(llm("-m", model, "--schema", "name, population int", "Name a large city."))
    check(
        isinstance(answer.get("name"), str) and isinstance(answer.get("population"), int), f"shape: {answer}"
    )
    return json.dumps(answer)


def openai_model() -> str:
    """llm -m gpt-4o-mini"""
    return short(llm("-m", "gpt-4o-mini", "Say hello in five words."))


def openai_schema() -> str:
    """llm -m gpt-4o-mini --schema"""
    return city("gpt-4o-mini")


def extra_model() -> str:
    """llm -m xvckit-claude (extra-openai-models.yaml: claude-haiku-4-5)"""
    return short(llm("-m", "xvckit-claude", "Say hello in five words."))


def extra_model_schema() -> str:
    """llm -m xvckit-claude --schema"""
    return city("xvckit-claude")


if __name__ == "__main__":
    main("llm", lambda: version_of("llm"), [openai_model, openai_schema, extra_model, extra_model_schema])
