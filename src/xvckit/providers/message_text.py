"""The text a model reads of an OpenAI or Anthropic message, and the framing tokens around it:
what the gateway's token estimate samples and `xvckit context window` counts exactly."""

from __future__ import annotations

import orjson

MESSAGE_OVERHEAD = 4  # role and separators around each message (OpenAI's cookbook: 3-4)
REPLY_PRIMING = 3
IMAGE_TOKENS = 765  # a high-detail 512x512-tile image, OpenAI's figure; Claude is similar


def content_parts(value: object, parts: list[str]) -> int:
    """Collects the text of a message content (string or list of blocks); returns image tokens."""
    if isinstance(value, str):
        parts.append(value)
        return 0
    if not isinstance(value, list):
        return 0
    images = 0
    for block in value:
        if isinstance(block, str):
            parts.append(block)
            continue
        if not isinstance(block, dict):
            continue
        kind = block.get("type")
        if kind in ("image", "image_url", "input_image"):
            images += IMAGE_TOKENS
            continue
        for field in ("text", "refusal", "file_data"):  # file_data: base64, counted as text (more)
            value = block.get(field)
            if isinstance(value, str):
                parts.append(value)
        if kind == "tool_use":  # Anthropic: the call's input as JSON
            parts.append(json_text(block.get("input")))
            parts.append(str(block.get("name", "")))
        elif kind == "tool_result":
            images += content_parts(block.get("content"), parts)
        elif kind in ("function_call", "function_call_output"):  # OpenAI Responses items
            parts.append(str(block.get("arguments") or block.get("output") or ""))
        elif kind == "thinking":
            parts.append(str(block.get("thinking", "")))
        if "content" in block and kind != "tool_result":
            images += content_parts(block["content"], parts)
    return images


def message_parts(message: dict, parts: list[str]) -> int:
    """Collects the text a model reads of one OpenAI or Anthropic message (content, name, tool
    calls); returns its image tokens."""
    images = content_parts(message.get("content"), parts)
    name = message.get("name")
    if isinstance(name, str):
        parts.append(name)
    calls = message.get("tool_calls")
    for call in calls if isinstance(calls, list) else ():
        function = call.get("function") if isinstance(call, dict) else None
        if isinstance(function, dict):
            parts.append(str(function.get("name", "")))
            parts.append(str(function.get("arguments", "")))
    return images


def json_text(value: object) -> str:
    if value is None:
        return ""
    try:
        return orjson.dumps(value).decode()
    except TypeError:
        return str(value)
