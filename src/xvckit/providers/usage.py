"""Token usage as the gateway records it, whatever dialect reported it."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(slots=True)
class Usage:
    input_tokens: int = 0
    output_tokens: int = 0
    cached_tokens: int = 0  # input tokens read from the provider's prompt cache
    cache_write_tokens: int = 0  # input tokens written to it (Anthropic bills these apart)


def counts(usage: object) -> dict:
    """An upstream's usage object (absent: empty); ValueError for anything but an object."""
    if not usage:
        return {}
    if not isinstance(usage, dict):
        raise ValueError("a usage is an object")
    return usage


def count(usage: dict, name: str) -> int:
    """One count of a usage object (absent: 0); ValueError for anything but a non-negative
    integer: a string, a fraction or a negative count would corrupt the ledger and the windows."""
    value = usage.get(name)
    if value is None:
        return 0
    if type(value) is not int or value < 0:
        raise ValueError(f"usage count '{name}' is not a non-negative integer")
    return value
