"""Whole responses and error bodies from one dialect to the other, and the small mappings the
streams share with them: stop reasons, usage, message ids, tool arguments.

Formats (as the installed SDKs parse them):
- OpenAI chat.completion: https://platform.openai.com/docs/api-reference/chat/object
  `{id: "chatcmpl-...", object, created, model, choices: [{index, message: {role, content,
  refusal, tool_calls: [{id, type: "function", function: {name, arguments: "<json>"}}]},
  logprobs, finish_reason: stop | length | tool_calls | content_filter}], usage}`.
- Anthropic message: https://docs.anthropic.com/en/api/messages `{id: "msg_...", type: "message",
  role, model, content: [text | tool_use {id, name, input: {...}} | ...], stop_reason: end_turn |
  max_tokens | stop_sequence | tool_use | pause_turn | refusal | model_context_window_exceeded,
  stop_sequence, usage}`.
- Usage: OpenAI's `prompt_tokens` counts every input token, the cached ones included
  (`prompt_tokens_details.cached_tokens`, and `cache_write_tokens` where reported); Anthropic's
  `input_tokens` excludes both `cache_read_input_tokens` and `cache_creation_input_tokens`.
"""

from __future__ import annotations

import time
from typing import Any

import orjson

from xvckit.providers import anthropic, openai

# Anthropic stop_reason -> OpenAI finish_reason.
_FINISH_REASONS = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "pause_turn": "stop",
    "max_tokens": "length",
    "model_context_window_exceeded": "length",
    "tool_use": "tool_calls",
    "refusal": "content_filter",
}
# OpenAI finish_reason -> Anthropic stop_reason.
_STOP_REASONS = {
    "stop": "end_turn",
    "length": "max_tokens",
    "tool_calls": "tool_use",
    "function_call": "tool_use",
    "content_filter": "refusal",
}
# Anthropic error `type` -> the HTTP status it comes with (for errors inside a stream).
_ANTHROPIC_ERROR_STATUS = {
    "invalid_request_error": 400,
    "authentication_error": 401,
    "billing_error": 402,
    "permission_error": 403,
    "not_found_error": 404,
    "request_too_large": 413,
    "rate_limit_error": 429,
    "api_error": 500,
    "timeout_error": 504,
    "overloaded_error": 529,
}
# OpenAI error `type` or `code` -> status (for errors inside a stream, which carry no status).
_OPENAI_ERROR_STATUS = {
    "invalid_request_error": 400,
    "context_length_exceeded": 400,
    "invalid_api_key": 401,
    "authentication_error": 401,
    "permission_error": 403,
    "not_found_error": 404,
    "rate_limit_exceeded": 429,
    "insufficient_quota": 429,
    "requests": 429,
    "tokens": 429,
    "timeout": 504,
    "server_error": 500,
}
# Words Anthropic uses when a prompt does not fit the context window (a 400 either way).
_CONTEXT_OVERFLOW = ("prompt is too long", "exceed context limit")


def finish_reason(stop_reason: str | None) -> str:
    """Anthropic `stop_reason` as an OpenAI `finish_reason`."""
    return _FINISH_REASONS.get(stop_reason or "", "stop")


def stop_reason(finish_reason: str | None) -> str:
    """OpenAI `finish_reason` as an Anthropic `stop_reason`."""
    return _STOP_REASONS.get(finish_reason or "", "end_turn")


def openai_id(anthropic_id: str | None) -> str:
    """`msg_X` -> `chatcmpl-X`: same suffix, so a log line can be traced to the upstream id."""
    return "chatcmpl-" + (anthropic_id or "").removeprefix("msg_")


def anthropic_id(openai_id: str | None) -> str:
    """`chatcmpl-X` -> `msg_X`."""
    return "msg_" + (openai_id or "").removeprefix("chatcmpl-")


def arguments_json(value: Any) -> str:
    """A tool_use `input` object as OpenAI's JSON-string `arguments`."""
    return orjson.dumps(value if value is not None else {}).decode()


def arguments_object(arguments: Any) -> dict[str, Any]:
    """OpenAI's `arguments` string as the object Anthropic requires for `input`; `{}` when the
    model produced nothing or something that is not a JSON object."""
    if isinstance(arguments, dict):
        return arguments
    if not isinstance(arguments, str | bytes) or not arguments.strip():
        return {}
    try:
        value = orjson.loads(arguments)
    except orjson.JSONDecodeError:
        return {}
    return value if isinstance(value, dict) else {}


def openai_tool_call(block: dict[str, Any], position: int) -> dict[str, Any]:
    """An Anthropic tool_use block as an OpenAI tool call; the id is kept as it is, so the
    client's tool result refers to the id the upstream gave."""
    return {
        "id": block.get("id") or f"call_{position}",
        "type": "function",
        "function": {"name": block.get("name") or "", "arguments": arguments_json(block.get("input"))},
    }


def openai_usage(usage: dict[str, Any] | None) -> dict[str, Any]:
    """An Anthropic `usage` object as OpenAI's: cache reads and writes go back into the prompt
    count; thinking tokens become reasoning tokens."""
    usage = usage or {}
    read = usage.get("cache_read_input_tokens") or 0
    write = usage.get("cache_creation_input_tokens") or 0
    prompt = (usage.get("input_tokens") or 0) + read + write
    completion = usage.get("output_tokens") or 0
    details: dict[str, int] = {"cached_tokens": read}
    if write:
        details["cache_write_tokens"] = write
    result: dict[str, Any] = {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
        "prompt_tokens_details": details,
    }
    thinking = (usage.get("output_tokens_details") or {}).get("thinking_tokens")
    if thinking:
        result["completion_tokens_details"] = {"reasoning_tokens": thinking}
    return result


def anthropic_usage(usage: dict[str, Any] | None) -> dict[str, Any]:
    """An OpenAI `usage` object as Anthropic's: `input_tokens` without the cached ones."""
    usage = usage or {}
    details = usage.get("prompt_tokens_details") or {}
    read = details.get("cached_tokens") or 0
    write = details.get("cache_write_tokens") or 0
    result: dict[str, Any] = {
        "input_tokens": max((usage.get("prompt_tokens") or 0) - read - write, 0),
        "output_tokens": usage.get("completion_tokens") or 0,
        "cache_creation_input_tokens": write,
        "cache_read_input_tokens": read,
    }
    reasoning = (usage.get("completion_tokens_details") or {}).get("reasoning_tokens")
    if reasoning:
        result["output_tokens_details"] = {"thinking_tokens": reasoning}
    return result


# --- responses -------------------------------------------------------------------------------


def anthropic_to_openai_response(body: dict[str, Any], model: str, *, created: int | None = None) -> dict:
    """An Anthropic message as an OpenAI chat.completion named `model` (the name the client
    asked for). Text blocks are joined into `content`; tool_use blocks become `tool_calls`;
    thinking, citations, server-tool blocks and `stop_sequence` have no counterpart."""
    texts: list[str] = []
    calls: list[dict[str, Any]] = []
    for block in body.get("content") or ():
        if not isinstance(block, dict):
            continue
        kind = block.get("type")
        if kind == "text":
            texts.append(block.get("text") or "")
        elif kind == "tool_use":
            calls.append(openai_tool_call(block, len(calls)))
    message: dict[str, Any] = {
        "role": "assistant",
        "content": "".join(texts) if texts else None,
        "refusal": None,
        "annotations": [],
    }
    if calls:
        message["tool_calls"] = calls
    return {
        "id": openai_id(body.get("id")),
        "object": "chat.completion",
        "created": int(time.time()) if created is None else created,
        "model": model,
        "choices": [
            {
                "index": 0,
                "message": message,
                "logprobs": None,
                "finish_reason": finish_reason(body.get("stop_reason")),
            }
        ],
        "usage": openai_usage(body.get("usage")),
        "system_fingerprint": None,
    }


def _message_text(content: Any) -> str:
    """An OpenAI message `content`: a string, or (rarely, in responses) a list of text parts."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(p.get("text") or "" for p in content if isinstance(p, dict))
    return ""


def openai_to_anthropic_response(body: dict[str, Any], model: str) -> dict:
    """An OpenAI chat.completion as an Anthropic message named `model`. Only the first choice
    is kept (Anthropic has no `n`); a refusal becomes text with stop_reason `refusal`; logprobs,
    annotations, audio, `system_fingerprint` and `service_tier` have no counterpart."""
    choices = body.get("choices") or [{}]
    choice = choices[0] if isinstance(choices[0], dict) else {}
    message = choice.get("message") or {}
    message_id = anthropic_id(body.get("id"))
    content: list[dict[str, Any]] = []
    text = _message_text(message.get("content"))
    if text:
        content.append({"type": "text", "text": text})
    refusal = message.get("refusal")
    if refusal:
        content.append({"type": "text", "text": refusal})
    for n, call in enumerate(message.get("tool_calls") or ()):
        if not isinstance(call, dict) or call.get("type", "function") != "function":
            continue
        function = call.get("function") or {}
        content.append(
            {
                "type": "tool_use",
                "id": call.get("id") or f"toolu_{message_id.removeprefix('msg_')}_{n}",
                "name": function.get("name") or "",
                "input": arguments_object(function.get("arguments")),
            }
        )
    return {
        "id": message_id,
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": content,
        "stop_reason": "refusal" if refusal else stop_reason(choice.get("finish_reason")),
        "stop_sequence": None,
        "usage": anthropic_usage(body.get("usage")),
    }


# --- errors ----------------------------------------------------------------------------------


def _error_parts(body: bytes) -> tuple[str, dict[str, Any]]:
    """The message of a provider error body (either dialect) and its `error` object."""
    try:
        parsed = orjson.loads(body) if body else None
    except orjson.JSONDecodeError:
        parsed = None
    error = parsed.get("error") if isinstance(parsed, dict) else None
    if isinstance(error, dict) and isinstance(error.get("message"), str) and error["message"]:
        return error["message"], error
    if isinstance(error, str) and error:
        return error, {}
    text = body.decode("utf-8", "replace").strip() if body else ""
    return text[:1000], {}


def openai_to_anthropic_error(status: int, body: bytes) -> bytes:
    """An OpenAI error body (from the upstream) as the Anthropic error body of the same status.

    The message is kept; the Anthropic `type` follows the status (429 rate_limit_error, 529
    overloaded_error, ...); OpenAI's `code` and `param` have no counterpart."""
    message, _ = _error_parts(body)
    return anthropic.error_body(status, message or f"upstream error (HTTP {status})")


def anthropic_to_openai_error(status: int, body: bytes) -> bytes:
    """An Anthropic error body (from the upstream) as the OpenAI error body of the same status.

    The message is kept; a 400 that says the prompt does not fit gets OpenAI's code
    `context_length_exceeded` (param `messages`), a 429 `rate_limit_exceeded`, a 401
    `invalid_api_key`, so clients that branch on the code still do; `request_id` is dropped."""
    message, _ = _error_parts(body)
    message = message or f"upstream error (HTTP {status})"
    code = param = None
    if status == 400 and any(words in message for words in _CONTEXT_OVERFLOW):
        code, param = "context_length_exceeded", "messages"
    elif status == 429:
        code = "rate_limit_exceeded"
    elif status == 401:
        code = "invalid_api_key"
    return openai.error_body(status, message, code, param)


def anthropic_error_status(error: dict[str, Any]) -> int:
    """The status an Anthropic `error` object (as sent inside a stream) stands for."""
    return _ANTHROPIC_ERROR_STATUS.get(error.get("type") or "", 500)


def openai_error_status(error: dict[str, Any]) -> int:
    """The status an OpenAI `error` object (as sent inside a stream) most likely stands for."""
    for key in ("code", "type"):
        status = _OPENAI_ERROR_STATUS.get(str(error.get(key) or ""))
        if status:
            return status
    return 500
