"""Token usage as the gateway records it, whatever dialect reported it."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(slots=True)
class Usage:
    input_tokens: int = 0
    output_tokens: int = 0
    cached_tokens: int = 0  # input tokens read from the provider's prompt cache
    cache_write_tokens: int = 0  # input tokens written to it (Anthropic bills these apart)

    def add(self, other: Usage) -> None:
        self.input_tokens = max(self.input_tokens, other.input_tokens)
        self.output_tokens = max(self.output_tokens, other.output_tokens)
        self.cached_tokens = max(self.cached_tokens, other.cached_tokens)
        self.cache_write_tokens = max(self.cache_write_tokens, other.cache_write_tokens)
