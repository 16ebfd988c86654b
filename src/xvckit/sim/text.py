"""The simulator's words: token estimates, replies derived from the prompt, stream pieces.

Token counts are estimated at 4 characters per token, OpenAI's rule of thumb for English
(https://help.openai.com/en/articles/4936856-what-are-tokens-and-how-to-count-them), plus
3 tokens of framing per message (role and separators, as in OpenAI's cookbook
"How to count tokens with tiktoken"). Close enough to exercise budgets and context limits,
and cheap: the simulator is a benchmark baseline.
"""

from __future__ import annotations

import zlib

CHARS_PER_TOKEN = 4
TOKENS_PER_MESSAGE = 3
DEFAULT_REPLY_TOKENS = 32
PIECE_TOKENS = 4  # tokens per stream event: several events even for a short reply

_FILLER = (
    "The simulated provider answers every prompt with plain words chosen by the prompt itself, "
    "so the same question always gets the same reply and tests can compare them byte for byte. "
    "It counts four characters as one token, honours the limits of its tier, and streams the "
    "reply in small pieces the way a real model does, one event after another, until it stops. "
)


def estimate_tokens(text: str | bytes) -> int:
    return -(-len(text) // CHARS_PER_TOKEN)


def reply_text(prompt: str, tokens: int) -> str:
    """Exactly `tokens` tokens of text (by `estimate_tokens`), the same for the same prompt."""
    size = tokens * CHARS_PER_TOKEN
    if size <= 0:
        return ""
    start = _FILLER.find(" ", zlib.crc32(prompt.encode()) % len(_FILLER)) + 1  # at a word
    echo = " ".join(prompt[:200].split()[:8])
    rotated = _FILLER[start:] + _FILLER[:start]
    source = f"Re: {echo} - {rotated}" if echo else rotated
    while len(source) < size:
        source += source
    return source[:size]


def pieces(text: str) -> list[str]:
    """`text` cut into stream events of about PIECE_TOKENS tokens; at least one piece."""
    step = PIECE_TOKENS * CHARS_PER_TOKEN
    return [text[i : i + step] for i in range(0, len(text), step)] or [""]
