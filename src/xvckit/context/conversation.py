"""A chat conversation in the OpenAI or the Anthropic message format, and what windowing needs
to know of it in either: its pinned part, its turns, its tool outputs and its tokens.

Both formats are kept as they came (plain dicts) and written back in the same shape, so
fields this module does not know about pass through untouched.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any

from xvckit.context import tokens
from xvckit.errors import UserError
from xvckit.providers.message_text import (
    MESSAGE_OVERHEAD,
    REPLY_PRIMING,
    content_parts,
    json_text,
    message_parts,
)

OPENAI, ANTHROPIC = "openai", "anthropic"
_PINNED_ROLES = ("system", "developer")  # OpenAI's instructions: kept first, verbatim
_OPENAI_ONLY_BLOCKS = {"image_url", "input_audio", "file", "refusal"}
_ANTHROPIC_ONLY_BLOCKS = {"tool_use", "tool_result", "thinking", "redacted_thinking", "image", "document"}


class Tokenizer:
    """Exact counts in one encoding: `model` is a tiktoken encoding name or a model (its
    encoding from `providers.models`); o200k_base when none. A budget must hold exactly, so
    nothing is sampled, and an unknown model or a missing encoding is an error, not a guess."""

    def __init__(self, model: str | None = None) -> None:
        import tiktoken

        if not model:
            self.name = tokens.DEFAULT_ENCODING
        elif model in tiktoken.list_encoding_names():
            self.name = model
        elif known := tokens.model_info(model):
            self.name = known[0]
        else:
            encodings = ", ".join(tiktoken.list_encoding_names())
            raise UserError(f"--model {model}: unknown model; name a known one or an encoding ({encodings})")
        tokens.encoding(self.name)  # a missing encoding is a one-line error now, not mid-fit

    def count(self, text: str) -> int:
        return tokens.count(text, self.name) if text else 0

    def clamp(self, text: str, limit: int) -> str:
        """`text` cut to at most `limit` tokens."""
        return tokens.truncate(text, limit, self.name)

    def message(self, message: dict) -> int:
        """A message's tokens as the provider reads them: framing, text, tool calls, images."""
        parts: list[str] = []
        return MESSAGE_OVERHEAD + self._total(message_parts(message, parts), parts)

    def content(self, value: object) -> int:
        """Tokens of a message content or tool output (a string or blocks), without framing."""
        parts: list[str] = []
        return self._total(content_parts(value, parts), parts)

    def _total(self, image_tokens: int, parts: list[str]) -> int:
        return image_tokens + sum(self.count(part) for part in parts)


@dataclass
class Conversation:
    """`pinned` (OpenAI's leading system messages; Anthropic keeps its system outside the
    messages) is never windowed; `messages` is everything after it."""

    format: str
    source: dict | list
    pinned: list[dict]
    messages: list[dict]

    @classmethod
    def read(cls, data: Any) -> Conversation:
        messages = data.get("messages") if isinstance(data, dict) else data
        if not isinstance(messages, list):
            raise UserError('a conversation is {"messages": [...]} or a list of messages')
        for number, message in enumerate(messages):
            if not isinstance(message, dict) or not isinstance(message.get("role"), str):
                raise UserError(f"message {number} has no role")
        form = _detect(data, messages)
        pinned = 0
        if form == OPENAI:
            while pinned < len(messages) and messages[pinned]["role"] in _PINNED_ROLES:
                pinned += 1
        return cls(form, data, messages[:pinned], messages[pinned:])

    def with_messages(self, messages: list[dict]) -> dict | list:
        """The conversation in its own shape, with `messages` after the pinned part."""
        every = self.pinned + messages
        if isinstance(self.source, list):
            return every
        return {key: every if key == "messages" else value for key, value in self.source.items()}

    def fixed_tokens(self, tokenizer: Tokenizer) -> int:
        """Tokens that windowing cannot reduce: the system part, tool definitions, reply priming."""
        tokens = REPLY_PRIMING + sum(tokenizer.message(message) for message in self.pinned)
        envelope = self.source if isinstance(self.source, dict) else {}
        if envelope.get("system"):
            tokens += tokenizer.message({"content": envelope["system"]})
        tools = envelope.get("tools") or envelope.get("functions")
        if tools:
            tokens += tokenizer.count(json_text(tools))
        return tokens

    def turns(self) -> list[range]:
        """Message ranges, each from a user prompt up to the next one. A tool call and its
        results always fall in one turn, so whole turns can be summarized away safely."""
        starts = [i for i, message in enumerate(self.messages) if i == 0 or is_prompt(message)]
        return [
            range(start, end) for start, end in zip(starts, [*starts[1:], len(self.messages)], strict=True)
        ]

    def tool_names(self) -> dict[str, str]:
        """Tool call id -> tool name, from OpenAI's tool_calls and Anthropic's tool_use blocks."""
        names = {}
        for message in self.messages:
            for call in message.get("tool_calls") or ():
                names[call.get("id")] = (call.get("function") or {}).get("name", "tool")
            for block in blocks(message):
                if block.get("type") == "tool_use":
                    names[block.get("id")] = block.get("name", "tool")
        return names


def _detect(data: Any, messages: list[dict]) -> str:
    """Anthropic when a top-level system or an Anthropic-only block says so; else OpenAI (plain
    user/assistant text reads the same in both)."""
    if isinstance(data, dict) and "system" in data:
        return ANTHROPIC
    for message in messages:
        if message["role"] in ("system", "developer", "tool") or "tool_calls" in message:
            return OPENAI
        for block in blocks(message):
            if block.get("type") in _ANTHROPIC_ONLY_BLOCKS:
                return ANTHROPIC
            if block.get("type") in _OPENAI_ONLY_BLOCKS:
                return OPENAI
    return OPENAI


def blocks(message: dict) -> list[dict]:
    content = message.get("content")
    return [block for block in content if isinstance(block, dict)] if isinstance(content, list) else []


def is_prompt(message: dict) -> bool:
    """A user message that starts a turn: not one that carries Anthropic tool results."""
    return message["role"] == "user" and not any(
        block.get("type") == "tool_result" for block in blocks(message)
    )


def tool_outputs(message: dict) -> list[dict]:
    """The parts of `message` holding tool output: an OpenAI tool message, Anthropic tool_result blocks."""
    if message["role"] == "tool":
        return [message]
    return [block for block in blocks(message) if block.get("type") == "tool_result"]


def call_id(output: dict) -> str | None:
    return output.get("tool_call_id") or output.get("tool_use_id")


def pruned(message: dict, names: dict[str, str], tokenizer: Tokenizer) -> dict:
    """`message` with each tool output replaced by a marker naming the tool and the output's
    size, where the marker is smaller; the call id stays, so the pairing holds."""
    copied = copy.deepcopy(message)
    for output in tool_outputs(copied):
        size = tokenizer.content(output.get("content"))
        tool = names.get(call_id(output), "tool")
        marker = f"[tool output pruned to fit the context window: {tool}, {size:,} tokens]"
        if tokenizer.count(marker) < size:
            output["content"] = marker
    return copied


def with_leading_text(message: dict, text: str) -> dict:
    """`message` with `text` as a first text block (a text block is the same in both formats);
    its own content follows unchanged."""
    content = message.get("content") or []
    rest = [{"type": "text", "text": content}] if isinstance(content, str) else list(content)
    return {**message, "content": [{"type": "text", "text": text}, *rest]}
