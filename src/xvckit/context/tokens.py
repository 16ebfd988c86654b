"""Token counts as the model will see them: tiktoken encodings and the models' context windows.

Packs are fitted by counting the rendered text with the encoding of the model it is for.
Claude's tokenizer is not public; o200k_base (gpt-4o's) is the closest public encoding and
the default. The window table is the one source of context sizes in `xvckit.context`.
"""

from __future__ import annotations

from functools import cache

DEFAULT_ENCODING = "o200k_base"

# Model name prefix -> (encoding, context window in tokens). Longest matching prefix wins.
MODELS: dict[str, tuple[str, int]] = {
    "gpt-3.5-turbo": ("cl100k_base", 16_385),
    "gpt-4": ("cl100k_base", 8_192),
    "gpt-4-32k": ("cl100k_base", 32_768),
    "gpt-4-turbo": ("cl100k_base", 128_000),
    "gpt-4o": ("o200k_base", 128_000),
    "gpt-4.1": ("o200k_base", 1_047_576),
    "gpt-5": ("o200k_base", 400_000),
    "o1": ("o200k_base", 200_000),
    "o3": ("o200k_base", 200_000),
    "o4-mini": ("o200k_base", 200_000),
    "claude": ("o200k_base", 200_000),
    "gemini": ("o200k_base", 1_048_576),
}


def model_info(model: str) -> tuple[str, int] | None:
    """(encoding, context window) of `model` (a `provider/` prefix is ignored), None if unknown."""
    name = model.lower().rsplit("/", 1)[-1]
    best = max((prefix for prefix in MODELS if name.startswith(prefix)), key=len, default=None)
    return MODELS[best] if best else None


@cache
def encoding(name: str = DEFAULT_ENCODING):
    """The tiktoken encoding `name` (loaded once per process)."""
    import tiktoken

    return tiktoken.get_encoding(name)


def count(text: str, encoding_name: str = DEFAULT_ENCODING) -> int:
    """Tokens in `text`; special-token strings in code count as ordinary text."""
    return len(encoding(encoding_name).encode_ordinary(text))


def truncate(text: str, limit: int, encoding_name: str = DEFAULT_ENCODING) -> str:
    """The longest prefix of `text` (cut at a token) that counts at most `limit` tokens."""
    enc = encoding(encoding_name)
    ids = enc.encode_ordinary(text)
    if len(ids) <= limit:
        return text
    cut = enc.decode(ids[: max(limit, 0)])
    while cut and count(cut, encoding_name) > limit:  # a decode can merge differently: shrink
        cut = cut[:-1]
    return cut
