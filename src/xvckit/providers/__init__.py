"""Protocol knowledge with no I/O: the OpenAI and Anthropic wire formats."""

from xvckit.providers.usage import Usage

__all__ = ["Usage"]
