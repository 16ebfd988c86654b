"""Models by name: the tiktoken encoding that counts their tokens and their context window.

One table for the gateway's token estimates and the context packer. Claude's tokenizer is
not public; it makes more tokens of the same text than o200k_base, so cl100k_base (which
also makes more) is the closer stand-in and errs on the side of a fuller window.
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
    "gpt-oss": ("o200k_base", 131_072),
    "o1": ("o200k_base", 200_000),
    "o3": ("o200k_base", 200_000),
    "o4-mini": ("o200k_base", 200_000),
    "claude": ("cl100k_base", 200_000),
    "gemini": ("o200k_base", 1_048_576),
}


def model_info(model: str) -> tuple[str, int] | None:
    """(encoding, context window) of `model` (a `provider/` prefix is ignored), None if unknown."""
    name = model.lower().rsplit("/", 1)[-1]
    best = max((prefix for prefix in MODELS if name.startswith(prefix)), key=len, default=None)
    return MODELS[best] if best else None
