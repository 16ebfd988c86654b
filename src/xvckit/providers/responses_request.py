"""OpenAI's Responses API request as a chat completions request, for upstreams that speak only
chat completions (vLLM, Ollama, llama.cpp, most OpenAI-compatible servers) and, through
`translate`, Anthropic's Messages. Pure functions, no I/O.

What maps: `instructions` (a system message first), `input` as a string or items: messages
of every role with `input_text` / `output_text` / `refusal` / `input_image` / `input_file`
(inline data) parts, `function_call` items (an assistant message's tool calls; consecutive
calls are one message), `function_call_output` items (tool messages); function tools and
`tool_choice`; `text.format` (`json_object`, `json_schema` with strict); `max_output_tokens`;
temperature, top_p, `parallel_tool_calls`, `reasoning.effort`, `user` / `safety_identifier`,
`stream` (usage asked for: the answer's usage is the Responses API's). A `namespace` tool
(function tools grouped under a name, as the Codex CLI sends its sub-agent tools) becomes its
functions named `<namespace>__<name>`; calls named so are given back with their `namespace`
(`split_tool_name`). Dropped: `store`, `metadata`, `include`, `truncation`, `service_tier`,
`prompt_cache_key`, `background`, reasoning items (a chat model cannot read another model's
reasoning), and the `web_search` tool, which clients such as the Codex CLI add to every request:
the model answers without searching, as it would if the client had not offered it. Refused
with `InvalidRequest` (a 400): other built-in tools (file search, computer use, code
interpreter, ...) and a `tool_choice` that forces one, `item_reference` items, `prompt`
templates, `conversation`: only the provider has them.
"""

from __future__ import annotations

from typing import Any

from xvckit.providers.translate_request import InvalidRequest

_PASSED = ("temperature", "top_p", "parallel_tool_calls", "top_logprobs")
NAMESPACE_SEPARATOR = "__"
_LEFT_OUT_TOOLS = ("web_search", "web_search_preview")  # offered by default, never needed to answer


def input_items(body: dict[str, Any]) -> list[dict[str, Any]]:
    """The request's `input` as a list of items (a string is one user message)."""
    value = body.get("input")
    if value is None:
        return []
    if isinstance(value, str):
        return [{"type": "message", "role": "user", "content": [{"type": "input_text", "text": value}]}]
    if not isinstance(value, list) or not all(isinstance(item, dict) for item in value):
        raise InvalidRequest("'input' must be a string or a list of input items (objects)")
    return value


def to_chat_request(body: dict[str, Any], model: str, items: list[dict[str, Any]]) -> dict[str, Any]:
    """A chat completions request for `model` that asks what the Responses request `body` asks,
    over the conversation `items` (earlier turns, then this request's input)."""
    messages: list[dict[str, Any]] = []
    instructions = body.get("instructions")
    if isinstance(instructions, str) and instructions:
        messages.append({"role": "system", "content": instructions})
    elif instructions is not None and not isinstance(instructions, str):
        raise InvalidRequest("'instructions' must be a string")
    for item in items:
        _add_item(messages, item)
    chat: dict[str, Any] = {"model": model, "messages": messages}
    for field in _PASSED:
        if body.get(field) is not None:
            chat[field] = body[field]
    if type(body.get("max_output_tokens")) is int:
        chat["max_tokens"] = body["max_output_tokens"]
    user = body.get("safety_identifier") or body.get("user")
    if isinstance(user, str):
        chat["user"] = user
    effort = (body.get("reasoning") or {}).get("effort") if isinstance(body.get("reasoning"), dict) else None
    if isinstance(effort, str):
        chat["reasoning_effort"] = effort
    tools = _chat_tools(_list(body.get("tools"), "tools"))
    if tools:
        chat["tools"] = tools
    if body.get("tool_choice") is not None:
        chat["tool_choice"] = _chat_tool_choice(body["tool_choice"])
    text = body.get("text")
    if isinstance(text, dict) and isinstance(text.get("format"), dict):
        response_format = _response_format(text["format"])
        if response_format:
            chat["response_format"] = response_format
    if body.get("stream") is True:
        chat["stream"] = True
        chat["stream_options"] = {"include_usage": True}
    for field in ("prompt", "conversation"):
        if body.get(field) is not None:
            raise InvalidRequest(f"'{field}' needs a provider that speaks the Responses API itself")
    return chat


def _list(value: Any, field: str) -> list[Any]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise InvalidRequest(f"'{field}' must be a list")
    return value


def _add_item(messages: list[dict[str, Any]], item: dict[str, Any]) -> None:
    kind = item.get("type", "message")
    if kind == "message":
        role = item.get("role")
        if role not in ("user", "assistant", "system", "developer"):
            raise InvalidRequest(
                f"an input message's role must be user, assistant, system or developer, not {role!r}"
            )
        messages.append(
            {
                "role": "system" if role == "developer" else role,
                "content": _content(item.get("content"), role),
            }
        )
    elif kind == "function_call":
        call = {
            "id": _text(item.get("call_id"), "function_call.call_id"),
            "type": "function",
            "function": {
                "name": _joined(item.get("namespace"), _text(item.get("name"), "function_call.name")),
                "arguments": item.get("arguments") or "{}",
            },
        }
        last = messages[-1] if messages else None
        if last is not None and last["role"] == "assistant" and "tool_calls" in last:
            last["tool_calls"].append(call)
        elif last is not None and last["role"] == "assistant":
            last["tool_calls"] = [call]
        else:
            messages.append({"role": "assistant", "content": None, "tool_calls": [call]})
    elif kind == "function_call_output":
        output = item.get("output")
        messages.append(
            {
                "role": "tool",
                "tool_call_id": _text(item.get("call_id"), "function_call_output.call_id"),
                "content": output if isinstance(output, str) else _content(output, "tool"),
            }
        )
    elif kind != "reasoning":
        raise InvalidRequest(
            f"input items of type '{kind}' need a provider that speaks the Responses API itself"
        )


def _text(value: Any, field: str) -> str:
    if not isinstance(value, str) or not value:
        raise InvalidRequest(f"'{field}' must be a non-empty string")
    return value


def _content(content: Any, role: str) -> str | list[dict[str, Any]]:
    """A message's content: a string stays one; parts become chat parts (assistant and system
    messages take text only)."""
    if isinstance(content, str):
        return content
    parts = []
    for part in _list(content, "content"):
        if not isinstance(part, dict):
            raise InvalidRequest("each content part must be an object")
        kind = part.get("type")
        if kind in ("input_text", "output_text", "text"):
            parts.append({"type": "text", "text": _part_text(part, "text")})
        elif kind == "refusal":
            parts.append({"type": "text", "text": _part_text(part, "refusal")})
        elif kind == "input_image" and role in ("user", "tool"):
            if not isinstance(part.get("image_url"), str):
                raise InvalidRequest("an input_image needs an image_url (file ids are the provider's own)")
            image = {"url": part["image_url"]}
            if part.get("detail") in ("low", "high", "auto"):
                image["detail"] = part["detail"]
            parts.append({"type": "image_url", "image_url": image})
        elif kind == "input_file" and role == "user" and isinstance(part.get("file_data"), str):
            file = {"file_data": part["file_data"]}
            if isinstance(part.get("filename"), str):
                file["filename"] = part["filename"]
            parts.append({"type": "file", "file": file})
        else:
            raise InvalidRequest(f"content parts of type '{kind}' cannot be sent in a {role} message here")
    if role != "user" and all(part["type"] == "text" for part in parts):
        return "".join(part["text"] for part in parts)
    return parts


def _part_text(part: dict[str, Any], field: str) -> str:
    text = part.get(field)
    if text is None:
        return ""
    if not isinstance(text, str):
        raise InvalidRequest(f"a content part's '{field}' must be a string")
    return text


def namespaces(body: dict[str, Any]) -> set[str]:
    """The names of the request's `namespace` tools."""
    tools = body.get("tools")
    listed = tools if isinstance(tools, list) else ()
    return {
        tool["name"]
        for tool in listed
        if isinstance(tool, dict) and tool.get("type") == "namespace" and isinstance(tool.get("name"), str)
    }


def split_tool_name(name: str, known: set[str]) -> tuple[str | None, str]:
    """(namespace, function name) of a chat tool call's name, as `_joined` made it (a namespace
    may hold the separator itself: each place it occurs is tried, a set lookup each)."""
    at = name.find(NAMESPACE_SEPARATOR)
    while at > 0:
        if name[:at] in known:
            return name[:at], name[at + len(NAMESPACE_SEPARATOR) :]
        at = name.find(NAMESPACE_SEPARATOR, at + 1)
    return None, name


def _joined(namespace: Any, name: str) -> str:
    if namespace is None:
        return name
    return _text(namespace, "namespace") + NAMESPACE_SEPARATOR + name


def _chat_tools(tools: list[Any]) -> list[dict[str, Any]]:
    chat = []
    for tool in tools:
        kind = tool.get("type") if isinstance(tool, dict) else type(tool).__name__
        if kind == "namespace":
            namespace = _text(tool.get("name"), "tools[].name")
            chat += [_chat_tool(inner, namespace) for inner in _list(tool.get("tools"), "tools[].tools")]
        elif kind not in _LEFT_OUT_TOOLS:
            chat.append(_chat_tool(tool))
    return chat


def _chat_tool(tool: Any, namespace: str | None = None) -> dict[str, Any]:
    if not isinstance(tool, dict) or tool.get("type") != "function":
        kind = tool.get("type") if isinstance(tool, dict) else type(tool).__name__
        raise InvalidRequest(f"tools of type '{kind}' need a provider that speaks the Responses API itself")
    function = {"name": _joined(namespace, _text(tool.get("name"), "tools[].name"))}
    for field in ("description", "parameters", "strict"):
        if tool.get(field) is not None:
            function[field] = tool[field]
    return {"type": "function", "function": function}


def _chat_tool_choice(choice: Any) -> Any:
    if choice in ("auto", "none", "required"):
        return choice
    if isinstance(choice, dict) and choice.get("type") == "function":
        name = _joined(choice.get("namespace"), _text(choice.get("name"), "tool_choice.name"))
        return {"type": "function", "function": {"name": name}}
    raise InvalidRequest("'tool_choice' must be auto, none, required or a function tool here")


def _response_format(format_: dict[str, Any]) -> dict[str, Any] | None:
    kind = format_.get("type")
    if kind == "json_schema":
        schema = {
            "name": _text(format_.get("name"), "text.format.name"),
            "schema": format_.get("schema") or {},
        }
        for field in ("strict", "description"):
            if format_.get(field) is not None:
                schema[field] = format_[field]
        return {"type": "json_schema", "json_schema": schema}
    if kind == "json_object":
        return {"type": "json_object"}
    if kind in ("text", None):
        return None
    raise InvalidRequest(f"text.format type '{kind}' is not one of text, json_object, json_schema")
