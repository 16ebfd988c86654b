"""Requests from one dialect to the other: OpenAI chat.completions <-> Anthropic Messages.

Formats:
- OpenAI: https://platform.openai.com/docs/api-reference/chat/create. `messages` of roles
  system / developer / user / assistant / tool; content a string or parts (`text`,
  `image_url {url, detail}`, `input_audio`, `file {file_data | file_id, filename}`); assistant
  `tool_calls[] {id, type: "function", function: {name, arguments: "<json>"}}`; tool results
  are `{role: "tool", tool_call_id, content}` messages; `tools[] {type: "function", function:
  {name, description, parameters, strict}}`; `tool_choice` none | auto | required |
  `{type: "function", function: {name}}`; `parallel_tool_calls`.
- Anthropic: https://docs.anthropic.com/en/api/messages and
  https://docs.anthropic.com/en/docs/build-with-claude/tool-use. Top-level `system` (string or
  text blocks); user / assistant turns of blocks (`text`, `image {source: base64 | url}`,
  `document`, `tool_use {id, name, input}`, `tool_result {tool_use_id, content, is_error}`,
  the tool results first in their user turn); `tools[] {name, description, input_schema}`;
  `tool_choice {type: auto | any | tool | none, name, disable_parallel_tool_use}`;
  `max_tokens` required.

Every field the translation reads is checked for its type as it is read: one of the wrong
type (`{"type": "tool_result", "content": 5}`) raises `InvalidRequest`, which the gateway
answers with a 400 in the client's dialect. What it does not read passes unchecked (the
upstream judges it).
"""

from __future__ import annotations

import base64
import re
import urllib.parse
from typing import Any

from xvckit.providers.translate_response import arguments_object, openai_tool_call

DEFAULT_MAX_TOKENS = 4096  # what an OpenAI request without a limit gets from an Anthropic model
OPENAI_MAX_STOP = 4  # OpenAI accepts at most four stop sequences
_EMPTY_SCHEMA = {"type": "object", "properties": {}}
_ID_UNSAFE = re.compile(r"[^a-zA-Z0-9_-]")  # Anthropic tool ids match ^[a-zA-Z0-9_-]+$


# --- shared ----------------------------------------------------------------------------------


class InvalidRequest(ValueError):
    """A field of the client's request has the wrong type (the client's mistake: a 400)."""


_KINDS = {
    dict: "an object",
    list: "a list",
    str: "a string",
    bool: "a boolean",
    int: "a number",
    float: "a number",
}


def _wrong(field: str, wanted: str, value: Any) -> InvalidRequest:
    return InvalidRequest(f"'{field}' must be {wanted}, not {_KINDS.get(type(value), 'null')}")


def _list(value: Any, field: str) -> list[Any]:
    """A list field; absent or null is empty."""
    if value is None:
        return []
    if isinstance(value, list):
        return value
    raise _wrong(field, "a list", value)


def _text(value: Any, field: str) -> str:
    """A string field; absent or null is empty."""
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    raise _wrong(field, "a string", value)


def _flag(value: Any, field: str) -> bool:
    """A boolean field; absent or null is false."""
    if value is None or isinstance(value, bool):
        return value is True
    raise _wrong(field, "a boolean", value)


def _content(value: Any, field: str) -> str | list[Any]:
    """Message content: a string or a list of parts (blocks); absent or null is empty."""
    if value is None:
        return ""
    if isinstance(value, str | list):
        return value
    raise _wrong(field, "a string or a list of content blocks", value)


def _data_url(url: str) -> tuple[str, str] | None:
    """(media type, base64 data) of a `data:` URL, or None for any other URL."""
    if not url.startswith("data:") or "," not in url:
        return None
    header, payload = url[5:].split(",", 1)
    media_type = header.split(";", 1)[0] or "text/plain"
    if ";base64" not in header:
        payload = base64.b64encode(urllib.parse.unquote_to_bytes(payload)).decode()
    return media_type, payload


def _mapping(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _tool_use_id(value: Any) -> str:
    """An OpenAI tool call id in the form Anthropic accepts; applied to the call and to its
    result alike, so they still match."""
    return _ID_UNSAFE.sub("_", str(value or "")) or "call_unknown"


# --- OpenAI -> Anthropic ---------------------------------------------------------------------


def _anthropic_image(url: str) -> dict[str, Any]:
    data = _data_url(url)
    if data:
        media_type, payload = data
        return {"type": "image", "source": {"type": "base64", "media_type": media_type, "data": payload}}
    return {"type": "image", "source": {"type": "url", "url": url}}


def _anthropic_file(file: dict[str, Any]) -> dict[str, Any] | None:
    """An OpenAI `file` part with inline data: PDFs become documents, images images; a
    `file_id` refers to OpenAI's file store and has no counterpart."""
    data = _data_url(_text(file.get("file_data"), "messages[].content[].file.file_data"))
    if not data:
        return None
    media_type, payload = data
    if media_type.startswith("image/"):
        return {"type": "image", "source": {"type": "base64", "media_type": media_type, "data": payload}}
    if media_type != "application/pdf":
        return None
    block: dict[str, Any] = {
        "type": "document",
        "source": {"type": "base64", "media_type": media_type, "data": payload},
    }
    title = _text(file.get("filename"), "messages[].content[].file.filename")
    if title:
        block["title"] = title
    return block


def _anthropic_blocks(content: Any) -> list[dict[str, Any]]:
    """OpenAI message content (a string or parts) as Anthropic content blocks; empty texts are
    left out (Anthropic refuses empty text blocks), and so is audio."""
    content = _content(content, "messages[].content")
    if isinstance(content, str):
        return [{"type": "text", "text": content}] if content else []
    blocks: list[dict[str, Any]] = []
    for part in content:
        if not isinstance(part, dict):
            continue
        kind = part.get("type")
        if kind in ("text", "refusal"):
            text = _text(part.get(kind), f"messages[].content[].{kind}")
            if text:
                blocks.append({"type": "text", "text": text})
        elif kind == "image_url":
            image = part.get("image_url")
            url = image.get("url") if isinstance(image, dict) else image
            if isinstance(url, str) and url:
                blocks.append(_anthropic_image(url))
        elif kind == "file":
            block = _anthropic_file(_mapping(part.get("file")))
            if block:
                blocks.append(block)
    return blocks


def _tool_result(message: dict[str, Any]) -> dict[str, Any]:
    block: dict[str, Any] = {"type": "tool_result", "tool_use_id": _tool_use_id(message.get("tool_call_id"))}
    content = message.get("content")
    if isinstance(content, str):
        if content:
            block["content"] = content
    else:
        parts = _anthropic_blocks(content)
        if parts:
            block["content"] = parts
    return block


def _assistant_blocks(message: dict[str, Any]) -> list[dict[str, Any]]:
    blocks = _anthropic_blocks(message.get("content"))
    for call in _list(message.get("tool_calls"), "messages[].tool_calls"):
        if not isinstance(call, dict) or call.get("type", "function") != "function":
            continue
        function = _mapping(call.get("function"))
        blocks.append(
            {
                "type": "tool_use",
                "id": _tool_use_id(call.get("id")),
                "name": _text(function.get("name"), "messages[].tool_calls[].function.name"),
                "input": arguments_object(function.get("arguments")),
            }
        )
    return blocks


def _compact(content: list[dict[str, Any]]) -> str | list[dict[str, Any]]:
    """One plain text block as a string, as people write it; anything else stays blocks."""
    if len(content) == 1 and content[0].get("type") == "text" and len(content[0]) == 2:
        return content[0]["text"]
    return content


def _anthropic_conversation(messages: list[Any]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(system blocks, turns). System and developer messages, wherever they stand, go to the
    top-level system prompt in order; tool messages become tool_result blocks of a user turn;
    turns of the same role in a row merge (so consecutive tool results share one user turn),
    with tool results first in a user turn as Anthropic requires."""
    system: list[dict[str, Any]] = []
    turns: list[dict[str, Any]] = []

    def add(role: str, blocks: list[dict[str, Any]]) -> None:
        if not blocks:
            return
        if turns and turns[-1]["role"] == role:
            turns[-1]["content"].extend(blocks)
        else:
            turns.append({"role": role, "content": blocks})

    for message in messages:
        if not isinstance(message, dict):
            continue
        role = message.get("role")
        if role in ("system", "developer"):
            system.extend(_anthropic_blocks(message.get("content")))
        elif role == "user":
            add("user", _anthropic_blocks(message.get("content")))
        elif role == "assistant":
            add("assistant", _assistant_blocks(message))
        elif role == "tool":
            add("user", [_tool_result(message)])
    for turn in turns:
        blocks = turn["content"]
        if turn["role"] == "user" and any(b["type"] == "tool_result" for b in blocks):
            blocks.sort(key=lambda b: b["type"] != "tool_result")  # stable: order kept otherwise
        turn["content"] = _compact(blocks)
    return system, turns


def _anthropic_tool(function: dict[str, Any]) -> dict[str, Any]:
    schema = function.get("parameters")
    schema = dict(schema) if isinstance(schema, dict) and schema else dict(_EMPTY_SCHEMA)
    schema.setdefault("type", "object")
    tool: dict[str, Any] = {
        "name": _text(function.get("name"), "tools[].function.name"),
        "input_schema": schema,
    }
    description = _text(function.get("description"), "tools[].function.description")
    if description:
        tool["description"] = description
    if function.get("strict") is True:
        tool["strict"] = True
    return tool


def _anthropic_tool_choice(choice: Any, parallel: Any) -> dict[str, Any] | None:
    if choice == "none":
        return {"type": "none"}
    result: dict[str, Any] | None
    if choice == "required":
        result = {"type": "any"}
    elif isinstance(choice, dict) and choice.get("type") == "function":
        result = {
            "type": "tool",
            "name": _text(_mapping(choice.get("function")).get("name"), "tool_choice.function.name"),
        }
    elif isinstance(choice, dict) and choice.get("type") == "allowed_tools":
        mode = _mapping(choice.get("allowed_tools")).get("mode")
        result = {"type": "any" if mode == "required" else "auto"}
    elif choice is not None or parallel is False:
        result = {"type": "auto"}
    else:
        result = None
    if result is not None and parallel is False:
        result["disable_parallel_tool_use"] = True
    return result


def _output_limit(body: dict[str, Any]) -> int:
    """`max_completion_tokens`, else `max_tokens`, else DEFAULT_MAX_TOKENS (Anthropic needs one)."""
    for field in ("max_completion_tokens", "max_tokens"):
        value = body.get(field)
        if value is None:
            continue
        if type(value) is not int or value < 1:
            raise InvalidRequest(f"'{field}' must be a positive integer")
        return value
    return DEFAULT_MAX_TOKENS


def openai_to_anthropic_request(body: dict[str, Any], model: str) -> dict[str, Any]:
    """An OpenAI chat.completions request as an Anthropic Messages request for `model`.

    Mapped: system/developer messages -> `system`; user/assistant text, images (data URLs ->
    base64 sources, other URLs -> url sources) and inline PDF files; `tool_calls` ->
    tool_use blocks (arguments parsed to an object); tool messages -> tool_result blocks;
    `tools` -> `input_schema` tools (`strict: true` kept); `tool_choice` auto/none/required/named
    -> auto/none/any/tool; `parallel_tool_calls: false` -> `disable_parallel_tool_use`;
    `max_completion_tokens` or `max_tokens` -> `max_tokens` (DEFAULT_MAX_TOKENS when absent);
    `temperature` (clamped to Anthropic's 0..1), `top_p`; `stop` -> `stop_sequences`; `stream`;
    `user` or `safety_identifier` -> `metadata.user_id`; `response_format` json_schema ->
    `output_config.format`.

    Dropped (no counterpart): `n`, `frequency_penalty`, `presence_penalty`, `logit_bias`,
    `logprobs`, `top_logprobs`, `seed`, `reasoning_effort`, `verbosity`, `modalities`, `audio`,
    `prediction`, `store`, `metadata` (OpenAI's), `service_tier`, `prompt_cache_key`,
    `web_search_options`, `stream_options` (Anthropic streams always carry usage; the stream
    translator takes `include_usage` instead), `response_format` json_object, message `name`s,
    audio parts, `file_id` files, custom (non-function) tools, the tool list of an
    `allowed_tools` choice (its mode is kept), the legacy `functions`/`function_call` and
    `function`-role messages, and image `detail`.
    """
    system, turns = _anthropic_conversation(_list(body.get("messages"), "messages"))
    result: dict[str, Any] = {"model": model, "max_tokens": _output_limit(body), "messages": turns}
    if system:
        result["system"] = _compact(system)
    tools = [
        _anthropic_tool(_mapping(tool.get("function")))
        for tool in _list(body.get("tools"), "tools")
        if isinstance(tool, dict) and tool.get("type", "function") == "function"
    ]
    if tools:
        result["tools"] = tools
        choice = _anthropic_tool_choice(body.get("tool_choice"), body.get("parallel_tool_calls"))
        if choice:
            result["tool_choice"] = choice
    if isinstance(body.get("temperature"), int | float):
        result["temperature"] = min(max(float(body["temperature"]), 0.0), 1.0)
    if isinstance(body.get("top_p"), int | float):
        result["top_p"] = body["top_p"]
    stop = body.get("stop")
    stop = [stop] if isinstance(stop, str) else stop
    if isinstance(stop, list) and (sequences := [s for s in stop if isinstance(s, str) and s]):
        result["stop_sequences"] = sequences
    if _flag(body.get("stream"), "stream"):
        result["stream"] = True
    user = body.get("user") or body.get("safety_identifier")
    if isinstance(user, str) and user:
        result["metadata"] = {"user_id": user}
    response_format = _mapping(body.get("response_format"))
    if response_format.get("type") == "json_schema":
        schema = _mapping(response_format.get("json_schema")).get("schema")
        if isinstance(schema, dict):
            result["output_config"] = {"format": {"type": "json_schema", "schema": schema}}
    return result


# --- Anthropic -> OpenAI ---------------------------------------------------------------------


def _openai_image(source: dict[str, Any]) -> dict[str, Any] | None:
    if source.get("type") == "base64":
        media_type = _text(source.get("media_type"), "messages[].content[].source.media_type")
        data = _text(source.get("data"), "messages[].content[].source.data")
        url = f"data:{media_type or 'image/png'};base64,{data}"
    elif source.get("type") == "url" and source.get("url"):
        url = _text(source["url"], "messages[].content[].source.url")
    else:
        return None  # a `file` source refers to Anthropic's file store
    return {"type": "image_url", "image_url": {"url": url}}


def _openai_document(block: dict[str, Any]) -> dict[str, Any] | None:
    """Inline PDFs become `file` parts, plain-text documents text; URL and file-store
    documents have no counterpart."""
    source = _mapping(block.get("source"))
    if source.get("type") == "base64" and source.get("media_type") == "application/pdf":
        data = _text(source.get("data"), "messages[].content[].source.data")
        return {
            "type": "file",
            "file": {
                "filename": _text(block.get("title"), "messages[].content[].title") or "document.pdf",
                "file_data": f"data:application/pdf;base64,{data}",
            },
        }
    if source.get("type") == "text" and source.get("data"):
        return {"type": "text", "text": _text(source["data"], "messages[].content[].source.data")}
    if source.get("type") == "content":
        blocks = _list(source.get("content"), "messages[].content[].source.content")
        texts = [
            _text(b.get("text"), "messages[].content[].source.content[].text")
            for b in blocks
            if isinstance(b, dict)
        ]
        texts = [text for text in texts if text]
        return {"type": "text", "text": "\n".join(texts)} if texts else None
    return None


def _openai_part(block: dict[str, Any]) -> dict[str, Any] | None:
    kind = block.get("type")
    if kind == "text":
        return {"type": "text", "text": _text(block.get("text"), "messages[].content[].text")}
    if kind == "image":
        return _openai_image(_mapping(block.get("source")))
    if kind == "document":
        return _openai_document(block)
    return None


def _openai_content(parts: list[dict[str, Any]]) -> str | list[dict[str, Any]]:
    """Parts as OpenAI content: only text becomes one string, anything else stays parts."""
    if all(part["type"] == "text" for part in parts):
        return "".join(part["text"] for part in parts) if len(parts) == 1 else parts
    return parts


def _openai_user_messages(content: Any) -> list[dict[str, Any]]:
    """One Anthropic user turn as OpenAI messages: a tool message per tool_result first (they
    must directly follow the assistant's tool calls), then one user message with the rest.
    Images inside tool results (OpenAI tool messages carry text only) join that user message."""
    content = _content(content, "messages[].content")
    if isinstance(content, str):
        return [{"role": "user", "content": content}]
    tools: list[dict[str, Any]] = []
    from_tools: list[dict[str, Any]] = []
    parts: list[dict[str, Any]] = []
    for block in content:
        if not isinstance(block, dict):
            continue
        if block.get("type") == "tool_result":
            result = _content(block.get("content"), "messages[].content[].content")
            if isinstance(result, str):
                text: str | list[dict[str, Any]] = result
            else:
                inner = [p for b in result if isinstance(b, dict) and (p := _openai_part(b))]
                texts = [p for p in inner if p["type"] == "text"]
                from_tools.extend(p for p in inner if p["type"] != "text")
                text = texts[0]["text"] if len(texts) == 1 else (texts or "")
            tools.append({"role": "tool", "tool_call_id": block.get("tool_use_id") or "", "content": text})
        elif part := _openai_part(block):
            parts.append(part)
    messages = tools
    if from_tools or parts:
        messages.append({"role": "user", "content": _openai_content(from_tools + parts)})
    return messages


def _openai_assistant_message(content: Any) -> dict[str, Any] | None:
    content = _content(content, "messages[].content")
    if isinstance(content, str):
        return {"role": "assistant", "content": content} if content else None
    texts: list[str] = []
    calls: list[dict[str, Any]] = []
    for block in content:
        if not isinstance(block, dict):
            continue
        if block.get("type") == "text":
            texts.append(_text(block.get("text"), "messages[].content[].text"))
        elif block.get("type") == "tool_use":
            calls.append(openai_tool_call(block, len(calls)))
    text = "".join(texts)
    if not text and not calls:
        return None
    message: dict[str, Any] = {"role": "assistant", "content": text or None}
    if calls:
        message["tool_calls"] = calls
    return message


def _openai_system(system: Any) -> dict[str, Any] | None:
    system = _content(system, "system")
    if isinstance(system, str):
        return {"role": "system", "content": system} if system else None
    texts = [
        _text(b.get("text"), "system[].text")
        for b in system
        if isinstance(b, dict) and b.get("type") == "text"
    ]
    parts = [{"type": "text", "text": text} for text in texts if text]
    if not parts:
        return None
    return {"role": "system", "content": parts[0]["text"] if len(parts) == 1 else parts}


def _openai_tool_choice(choice: dict[str, Any]) -> Any:
    kind = _text(choice.get("type"), "tool_choice.type")
    if kind == "tool":
        return {"type": "function", "function": {"name": _text(choice.get("name"), "tool_choice.name")}}
    return {"any": "required", "none": "none"}.get(kind, "auto")


def anthropic_to_openai_request(body: dict[str, Any], model: str) -> dict[str, Any]:
    """An Anthropic Messages request as an OpenAI chat.completions request for `model`.

    Mapped: `system` -> a leading system message; text, images (base64 -> data URLs, url
    sources -> URLs), inline PDF documents -> `file` parts, plain-text documents -> text;
    tool_use blocks -> `tool_calls` (input serialized to a JSON string); tool_result blocks ->
    `tool` messages; custom `tools` -> function tools (`strict` kept); `tool_choice`
    auto/any/tool/none -> auto/required/named/none; `disable_parallel_tool_use` ->
    `parallel_tool_calls: false`; `max_tokens` -> `max_completion_tokens`; `temperature`,
    `top_p`; `stop_sequences` -> `stop` (OpenAI takes at most four: the first four are kept);
    `stream` (with `stream_options.include_usage`, so the translated stream can report usage);
    `metadata.user_id` -> `user`; `output_config.format` -> `response_format` json_schema.

    Dropped (no counterpart): `top_k`, `thinking` and thinking blocks, `output_config.effort`,
    `service_tier`, `container`, `mcp_servers`, `context_management`, `inference_geo`, `speed`,
    `cache_control` marks, citations settings, `is_error` on tool results, server tools and
    Anthropic-defined client tools (bash, text editor, computer, web search/fetch, code
    execution, memory ...) and their result blocks, search-result blocks, file-store and URL
    documents, file-store images. A trailing assistant turn (a prefill) is sent as a prior
    assistant message: OpenAI answers after it rather than continuing it.
    """
    messages: list[dict[str, Any]] = []
    if system := _openai_system(body.get("system")):
        messages.append(system)
    for turn in _list(body.get("messages"), "messages"):
        if not isinstance(turn, dict):
            continue
        if turn.get("role") == "assistant":
            if message := _openai_assistant_message(turn.get("content")):
                messages.append(message)
        else:
            messages.extend(_openai_user_messages(turn.get("content")))
    result: dict[str, Any] = {"model": model, "messages": messages}
    if isinstance(body.get("max_tokens"), int):
        result["max_completion_tokens"] = body["max_tokens"]
    for name in ("temperature", "top_p"):
        if isinstance(body.get(name), int | float):
            result[name] = body[name]
    stop = [s for s in _list(body.get("stop_sequences"), "stop_sequences") if isinstance(s, str) and s]
    if stop:
        result["stop"] = stop[:OPENAI_MAX_STOP]
    tools = []
    for tool in _list(body.get("tools"), "tools"):
        if not isinstance(tool, dict) or tool.get("type") not in (None, "custom"):
            continue
        function: dict[str, Any] = {
            "name": _text(tool.get("name"), "tools[].name"),
            "parameters": tool.get("input_schema") or dict(_EMPTY_SCHEMA),
        }
        description = _text(tool.get("description"), "tools[].description")
        if description:
            function["description"] = description
        if tool.get("strict") is True:
            function["strict"] = True
        tools.append({"type": "function", "function": function})
    if tools:
        result["tools"] = tools
        choice = body.get("tool_choice")
        if isinstance(choice, dict):
            result["tool_choice"] = _openai_tool_choice(choice)
            if choice.get("disable_parallel_tool_use") is True:
                result["parallel_tool_calls"] = False
    if _flag(body.get("stream"), "stream"):
        result["stream"] = True
        result["stream_options"] = {"include_usage": True}
    user = _mapping(body.get("metadata")).get("user_id")
    if isinstance(user, str) and user:
        result["user"] = user
    output_format = _mapping(_mapping(body.get("output_config")).get("format"))
    if output_format.get("type") == "json_schema" and isinstance(output_format.get("schema"), dict):
        result["response_format"] = {
            "type": "json_schema",
            "json_schema": {"name": "response", "schema": output_format["schema"]},
        }
    return result
