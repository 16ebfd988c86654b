"""Models by name: the tiktoken encoding that counts their tokens, their context window, and
the most output one request may ask of them.

One table for the gateway's token estimates, the context packer and the simulator's limits.
Claude's tokenizer is not public; it makes more tokens of the same text than o200k_base, so
cl100k_base (which also makes more) is the closer stand-in and errs on the side of a fuller
window.

Sources: each model's page in OpenAI's model docs (platform.openai.com/docs/models) and
Anthropic's (platform.claude.com/docs/en/models/<model>/overview: "Context window: 1M tokens ·
Max output: 128K tokens" for Opus 4.6 and Sonnet 4.6, 200K / 64K for Sonnet 4.5, Haiku 4.5 and
Opus 4.5; Opus 4.7 and 4.8 as Opus 4.6, the limit the API itself reports for them; the
Claude 5 models 1M / 128K).
"""

from __future__ import annotations

# Model name prefix -> (encoding, context window in tokens). Longest matching prefix wins.
MODELS: dict[str, tuple[str, int]] = {
    "gpt-3.5-turbo": ("cl100k_base", 16_385),
    "gpt-4": ("cl100k_base", 8_192),
    "gpt-4-32k": ("cl100k_base", 32_768),
    "gpt-4-turbo": ("cl100k_base", 128_000),
    "gpt-4o": ("o200k_base", 128_000),
    "chatgpt-4o": ("o200k_base", 128_000),
    "gpt-4.1": ("o200k_base", 1_047_576),
    "gpt-4.5": ("o200k_base", 128_000),
    "gpt-5": ("o200k_base", 400_000),
    "gpt-5.4": ("o200k_base", 1_050_000),
    "gpt-5.4-mini": ("o200k_base", 400_000),
    "gpt-oss": ("o200k_base", 131_072),
    "o1": ("o200k_base", 200_000),
    "o1-mini": ("o200k_base", 128_000),
    "o3": ("o200k_base", 200_000),
    "o4-mini": ("o200k_base", 200_000),
    "claude": ("cl100k_base", 200_000),
    "claude-opus-4-6": ("cl100k_base", 1_000_000),
    "claude-opus-4-7": ("cl100k_base", 1_000_000),
    "claude-opus-4-8": ("cl100k_base", 1_000_000),
    "claude-sonnet-4-6": ("cl100k_base", 1_000_000),
    "claude-opus-5": ("cl100k_base", 1_000_000),
    "claude-sonnet-5": ("cl100k_base", 1_000_000),
    "gemini": ("o200k_base", 1_048_576),
}

# Model name prefix -> the most output tokens a request may ask for (OpenAI's
# `max_completion_tokens`, Anthropic's `max_tokens`), as the providers document them.
MAX_OUTPUT: dict[str, int] = {
    "gpt-3.5-turbo": 4_096,
    "gpt-4": 8_192,
    "gpt-4-32k": 32_768,
    "gpt-4-turbo": 4_096,
    "gpt-4o": 16_384,
    "chatgpt-4o": 16_384,
    "gpt-4.1": 32_768,
    "gpt-4.5": 16_384,
    "gpt-5": 128_000,
    "gpt-oss": 131_072,
    "o1": 100_000,
    "o1-mini": 65_536,
    "o3": 100_000,
    "o4-mini": 100_000,
    "claude": 64_000,
    "claude-3-": 4_096,
    "claude-3-5": 8_192,
    "claude-3-7": 64_000,
    "claude-opus-4": 32_000,
    "claude-opus-4-5": 64_000,
    "claude-opus-4-6": 128_000,
    "claude-opus-4-7": 128_000,
    "claude-opus-4-8": 128_000,
    "claude-sonnet-4-6": 128_000,
    "claude-opus-5": 128_000,
    "claude-sonnet-5": 128_000,
    "gemini": 65_536,
}

DEFAULT_WINDOW = 128_000  # a model not in the tables
DEFAULT_MAX_OUTPUT = 16_384


def _prefix(table: dict, model: str) -> str | None:
    """The longest key of `table` that `model` (a `provider/` prefix ignored) starts with."""
    name = model.lower().rsplit("/", 1)[-1]
    return max((prefix for prefix in table if name.startswith(prefix)), key=len, default=None)


def model_info(model: str) -> tuple[str, int] | None:
    """(encoding, context window) of `model` (a `provider/` prefix is ignored), None if unknown."""
    best = _prefix(MODELS, model)
    return MODELS[best] if best else None


def max_output(model: str) -> int:
    """The most output tokens `model` produces for one request (DEFAULT_MAX_OUTPUT if unknown)."""
    best = _prefix(MAX_OUTPUT, model)
    return MAX_OUTPUT[best] if best else DEFAULT_MAX_OUTPUT
