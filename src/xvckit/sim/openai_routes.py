"""The OpenAI side of the simulator: chat completions (plain, streamed, tool calls), embeddings,
the model list, and OpenAI's errors and rate-limit headers.

What the official SDK and the docs expect, and the simulator sends:
- Chat completion and chunk objects: https://platform.openai.com/docs/api-reference/chat/object,
  https://platform.openai.com/docs/api-reference/chat/streaming. A stream is `data: {chunk}`
  events, the first delta carrying the role, the last an empty delta with `finish_reason`, then
  `data: [DONE]`. With `stream_options: {"include_usage": true}` one more chunk, with
  `"choices": []` and the usage, comes before `[DONE]`, and every other chunk has
  `"usage": null` (API reference, `stream_options.include_usage`).
- Tool calls: https://platform.openai.com/docs/guides/function-calling. Non-streaming,
  `message.tool_calls[] = {id, type: "function", function: {name, arguments}}` with content null
  and `finish_reason: "tool_calls"`; streamed, the first delta has `tool_calls[0]` with index,
  id, type and name and empty arguments, later deltas only `{index, function: {arguments}}`.
- Embeddings: https://platform.openai.com/docs/api-reference/embeddings/create. The Python SDK
  sends `encoding_format: "base64"` unless told otherwise (openai/openai-python#1490) and decodes
  base64 of little-endian float32 values; vectors are unit length.
- Models: https://platform.openai.com/docs/api-reference/models/list,
  `{"object": "list", "data": [{"id", "object": "model", "created", "owned_by"}]}`.
- Errors: https://platform.openai.com/docs/guides/error-codes. `{"error": {"message", "type",
  "param", "code"}}`; a wrong key is 401 code `invalid_api_key`; a 429 has type `requests` or
  `tokens` and code `rate_limit_exceeded`; context overflow is 400 code `context_length_exceeded`,
  param `messages`. Each response carries `x-request-id`
  (https://platform.openai.com/docs/api-reference/debugging-requests).
"""

from __future__ import annotations

import base64
import hashlib
import math
import sys
import time
from array import array
from typing import Any

import orjson

from xvckit.providers import openai, ratelimit
from xvckit.providers.ratelimit import RateLimits
from xvckit.sim.exchange import Headers, Reply, Request, Route, Simulator, bearer_token, phrase
from xvckit.sim.limiter import Verdict
from xvckit.sim.schemas import JSON_OBJECT, instance, strict_problem
from xvckit.sim.text import (
    CHARS_PER_TOKEN,
    DEFAULT_REPLY_TOKENS,
    TOKENS_PER_MESSAGE,
    estimate_tokens,
    pieces,
    reply_text,
)
from xvckit.sim.tools import pick_tool

FINGERPRINT = "fp_xvcsim"
EMBEDDING_LATENCY_SHARE = 0.1  # embeddings answer in a tenth of a chat reply's time to first token
MODELS_CREATED = 1_715_367_049  # a fixed `created` for the listed models
_RATE_LIMITS_URL = "https://platform.openai.com/account/rate-limits"
_ORGANIZATION = "org-xvcsim"
_STATUS_MESSAGES = {
    429: "Rate limit reached for requests (forced by x-sim-fail).",
    500: "The server had an error while processing your request. Sorry about that!",
    503: "The engine is currently overloaded, please try again later.",
}


class OpenAIDialect:
    request_id_header = b"x-request-id"
    server_errors = (b"500",)

    def api_key(self, headers: dict[bytes, bytes]) -> bytes | None:
        return bearer_token(headers)

    def error(
        self, status: int, message: str, request_id: str, code: str | None = None, param: str | None = None
    ) -> bytes:
        return openai.error_body(status, message, code, param)

    def auth_error(self, missing: bool, request_id: str) -> bytes:
        if missing:
            return openai.error_body(
                401,
                "You didn't provide an API key. You need to provide your API key in an Authorization header "
                "using Bearer auth (i.e. Authorization: Bearer YOUR_KEY).",
            )
        # OpenAI echoes part of the key; the simulator never repeats a secret.
        return openai.error_body(
            401,
            "Incorrect API key provided. You can find your API key at https://platform.openai.com/account/api-keys.",
            "invalid_api_key",
        )

    def model_not_found(self, model: str, request_id: str) -> bytes:
        message = f"The model `{model}` does not exist or you do not have access to it."
        return openai.error_body(404, message, "model_not_found")

    def status_error(self, status: int, request_id: str) -> bytes:
        message = _STATUS_MESSAGES.get(status) or phrase(status)
        if status == 429:
            return openai.rate_limit_error_body(message, "requests")
        return openai.error_body(status, message)

    def rate_limited(self, verdict: Verdict, model: str, request_id: str) -> bytes:
        what = "requests per min (RPM)" if verdict.refused == "requests" else "tokens per min (TPM)"
        where = f"for {model} in organization {_ORGANIZATION} on {what}: Limit {verdict.limit}"
        if verdict.too_large:
            message = (
                f"Request too large {where}, Requested {verdict.requested}. The input or output tokens "
                f"must be reduced in order to run successfully. Visit {_RATE_LIMITS_URL} to learn more."
            )
        else:
            wait = ratelimit.format_duration(verdict.limits.retry_after_s or 0)
            message = (
                f"Rate limit reached {where}, Used {verdict.used}, Requested {verdict.requested}. "
                f"Please try again in {wait}. Visit {_RATE_LIMITS_URL} to learn more."
            )
        return openai.rate_limit_error_body(message, verdict.refused or "requests")

    def rate_limit_headers(self, limits: RateLimits) -> Headers:
        return ratelimit.openai_headers(limits)


DIALECT = OpenAIDialect()


# --- chat completions ------------------------------------------------------------------------


def _content_text(content: Any) -> str:
    """The text of a message's `content`: a string, or a list of parts of which text counts."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return " ".join(part.get("text") or "" for part in content if isinstance(part, dict))
    return ""


def _read_messages(messages: list[Any]) -> tuple[str, str, bool]:
    """All the text (for the token count), the last user text (to derive the reply from) and
    whether a tool result came after the model's last turn (system messages and user text
    may follow it, as Claude Code's reminders do)."""
    texts = []
    last_user = ""
    after_tool = False
    for message in messages:
        if not isinstance(message, dict):
            continue
        text = _content_text(message.get("content"))
        texts.append(text)
        for call in message.get("tool_calls") or ():
            texts.append(str((call.get("function") or {}).get("arguments") or ""))
        role = message.get("role")
        if role == "user":
            last_user = text
        elif role == "assistant":
            after_tool = False
        elif role == "tool":
            after_tool = True
    return " ".join(texts), last_user, after_tool


def _tool_choice(choice: Any) -> tuple[str, str | None]:
    """OpenAI's `tool_choice` as (mode, forced tool name)."""
    if isinstance(choice, dict):
        return "required", (choice.get("function") or {}).get("name")
    return (choice if choice in ("none", "auto", "required") else "auto"), None


def _usage(prompt: int, completion: int) -> dict[str, Any]:
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
        "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
        "completion_tokens_details": {
            "reasoning_tokens": 0,
            "audio_tokens": 0,
            "accepted_prediction_tokens": 0,
            "rejected_prediction_tokens": 0,
        },
    }


def _output_schema(req: Request, response_format: Any, text: str) -> tuple[Any, Reply | None]:
    """The schema the reply must follow (None: prose), or the 400 OpenAI sends for the
    `response_format`: json_object needs the word "json" in the messages, a strict json_schema
    the strict-mode rules."""
    if not isinstance(response_format, dict) or response_format.get("type") in (None, "text"):
        return None, None
    kind = response_format.get("type")
    if kind == "json_object":
        if "json" not in text.lower():
            message = (
                "'messages' must contain the word 'json' in some form, to use 'response_format' of type "
                "'json_object'."
            )
            return None, req.fail(400, message, param="messages")
        return JSON_OBJECT, None
    if kind != "json_schema":
        message = f"Invalid value: '{kind}'. Supported values are: 'json_object', 'json_schema', and 'text'."
        return None, req.fail(400, message, "invalid_value", "response_format.type")
    spec = response_format.get("json_schema")
    name = spec.get("name") if isinstance(spec, dict) else None
    if not isinstance(name, str) or not name:
        param = "response_format.json_schema.name"
        return None, req.fail(
            400, f"Missing required parameter: '{param}'.", "missing_required_parameter", param
        )
    schema = spec.get("schema", {})
    problem = strict_problem(schema) if spec.get("strict") is True else None
    if problem:
        return None, req.fail(
            400, f"Invalid schema for response_format '{name}': {problem}", param="response_format"
        )
    return schema, None


def _strict_tool_problem(req: Request, tools: list[dict[str, Any]]) -> Reply | None:
    """The 400 for a `strict` function whose parameters break the strict-mode rules."""
    for index, tool in enumerate(tools):
        problem = strict_problem(tool.get("parameters")) if tool.get("strict") is True else None
        if problem:
            message = f"Invalid schema for function '{tool.get('name')}': {problem}"
            return req.fail(400, message, "invalid_function_parameters", f"tools[{index}].parameters")
    return None


def _over_window(req: Request, window: int, prompt_tokens: int, max_tokens: int | None) -> Reply:
    if max_tokens:
        message = (
            f"This model's maximum context length is {window} tokens. However, you requested "
            f"{prompt_tokens + max_tokens} tokens ({prompt_tokens} in the messages, {max_tokens} in the "
            "completion). Please reduce the length of the messages or completion."
        )
    else:
        message = (
            f"This model's maximum context length is {window} tokens. However, your messages resulted in "
            f"{prompt_tokens} tokens. Please reduce the length of the messages."
        )
    return req.fail(400, message, "context_length_exceeded", "messages")


async def chat_completions(sim: Simulator, req: Request) -> Reply:
    body = req.json
    model = body.get("model")
    if not isinstance(model, str) or not model:
        return req.fail(400, "you must provide a model parameter")
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        return req.fail(400, "[] is too short - 'messages'", param="messages")
    text, last_user, after_tool = _read_messages(messages)
    tools = [tool.get("function") or {} for tool in body.get("tools") or () if isinstance(tool, dict)]
    schema, refused = _output_schema(req, body.get("response_format"), text)
    refused = refused or _strict_tool_problem(req, tools) or sim.unknown_model(req, model)
    if refused:
        return refused
    prompt_tokens = estimate_tokens(text) + TOKENS_PER_MESSAGE * len(messages)
    if tools:
        prompt_tokens += estimate_tokens(orjson.dumps(tools))
    limits = sim.catalog.limits(model)
    max_tokens = body.get("max_completion_tokens") or body.get("max_tokens")
    if max_tokens is not None and (not isinstance(max_tokens, int) or max_tokens < 1):
        return req.fail(400, "Invalid 'max_tokens': integer below minimum value.", "integer_below_min_value")
    if max_tokens and max_tokens > limits.max_output:
        message = (
            f"max_tokens is too large: {max_tokens}. This model supports at most {limits.max_output} "
            f"completion tokens, whereas you provided {max_tokens}."
        )
        return req.fail(400, message, "invalid_value", "max_tokens")
    if prompt_tokens + (max_tokens or 0) > limits.window:
        return _over_window(req, limits.window, prompt_tokens, max_tokens)

    mode, forced = _tool_choice(body.get("tool_choice"))
    chosen = pick_tool([tool.get("name") or "" for tool in tools], mode, forced, after_tool)
    room = min(max_tokens or limits.max_output, limits.window - prompt_tokens)
    if chosen is not None:
        tool = tools[chosen]
        call = {
            "id": sim.new_id("call_"),
            "type": "function",
            "function": {
                "name": tool.get("name") or "",
                "arguments": orjson.dumps(instance(tool.get("parameters") or {})).decode(),
            },
        }
        content = None
        completion_tokens = estimate_tokens(call["function"]["name"] + call["function"]["arguments"])
        finish = "tool_calls"
    else:
        call = None
        content, completion_tokens, finish = _reply(req, last_user or text, schema, room)

    refusal = sim.admit(req, model, prompt_tokens + completion_tokens)
    if refusal:
        return refusal
    await sim.delay(req)
    head = {
        "id": sim.new_id("chatcmpl-"),
        "created": int(time.time()),
        "model": model,
        "system_fingerprint": FINGERPRINT,
    }
    usage = _usage(prompt_tokens, completion_tokens)
    if body.get("stream"):
        include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
        events = _chunks(head, content, call, finish, usage if include_usage else None)
        return Reply(200, events, stream=True, tokens=completion_tokens)
    message: dict[str, Any] = {"role": "assistant", "content": content, "refusal": None, "annotations": []}
    if call:
        message["tool_calls"] = [call]
    completion = {
        **head,
        "object": "chat.completion",
        "choices": [{"index": 0, "message": message, "logprobs": None, "finish_reason": finish}],
        "usage": usage,
        "service_tier": "default",
    }
    return Reply(200, [orjson.dumps(completion)], tokens=completion_tokens)


def _reply(req: Request, prompt: str, schema: Any, room: int) -> tuple[str, int, str]:
    """A text reply (JSON valid for `schema` when one is given) within `room` tokens: the
    text, its tokens and the finish reason ("length" when cut short)."""
    if schema is None:
        wanted = req.control(b"x-sim-output-tokens")
        wanted = DEFAULT_REPLY_TOKENS if wanted is None else wanted
        tokens = min(wanted, room)
        return reply_text(prompt, tokens), tokens, "length" if wanted > room else "stop"
    content = orjson.dumps(instance(schema)).decode()
    tokens = estimate_tokens(content)
    if tokens > room:
        return content[: room * CHARS_PER_TOKEN], room, "length"
    return content, tokens, "stop"


def _chunks(
    head: dict[str, Any], content: str | None, call: dict[str, Any] | None, finish: str, usage: dict | None
) -> list[bytes]:
    """The stream's events; `usage` given means include_usage was asked for."""
    base = {**head, "object": "chat.completion.chunk"}
    if usage is not None:
        base["usage"] = None

    def chunk(delta: dict[str, Any], finish_reason: str | None = None) -> bytes:
        choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish_reason}
        return b"data: " + orjson.dumps({**base, "choices": [choice]}) + b"\n\n"

    if call is None:
        events = [chunk({"role": "assistant", "content": "", "refusal": None})]
        events += [chunk({"content": piece}) for piece in pieces(content or "")]
    else:
        function = call["function"]
        opening = {**call, "index": 0, "function": {"name": function["name"], "arguments": ""}}
        events = [chunk({"role": "assistant", "content": None, "tool_calls": [opening], "refusal": None})]
        events += [
            chunk({"tool_calls": [{"index": 0, "function": {"arguments": piece}}]})
            for piece in pieces(function["arguments"])
        ]
    events.append(chunk({}, finish))
    if usage is not None:
        events.append(b"data: " + orjson.dumps({**base, "choices": [], "usage": usage}) + b"\n\n")
    events.append(b"data: [DONE]\n\n")
    return events


# --- embeddings ------------------------------------------------------------------------------


def _vector(text: str, dimensions: int) -> array:
    """A unit-length float32 vector that depends only on the text."""
    raw = hashlib.shake_256(text.encode()).digest(dimensions)
    values = [byte - 127.5 for byte in raw]
    scale = 1 / math.sqrt(sum(v * v for v in values))
    return array("f", [v * scale for v in values])


def _base64(vector: array) -> str:
    """The wire form of `encoding_format: "base64"`: little-endian float32 bytes."""
    if sys.byteorder == "big":
        vector = array("f", vector)
        vector.byteswap()
    return base64.b64encode(vector.tobytes()).decode()


def _is_token_array(value: Any) -> bool:
    return isinstance(value, list) and bool(value) and all(isinstance(v, int) for v in value)


def _embedding_inputs(value: Any) -> list[str] | None:
    """The texts to embed: a string, a token array, or a list of either; None if malformed."""
    if isinstance(value, str) or _is_token_array(value):
        value = [value]
    if not isinstance(value, list) or not value:
        return None
    texts = []
    for item in value:
        if isinstance(item, str) and item:
            texts.append(item)
        elif _is_token_array(item):
            texts.append(" ".join(map(str, item)))
        else:
            return None
    return texts


async def embeddings(sim: Simulator, req: Request) -> Reply:
    body = req.json
    model = body.get("model")
    if not isinstance(model, str) or not model:
        return req.fail(400, "you must provide a model parameter")
    texts = _embedding_inputs(body.get("input"))
    if texts is None:
        return req.fail(
            400, "'input' must be a non-empty string, array of strings or token arrays", param="input"
        )
    encoding = body.get("encoding_format") or "float"
    if encoding not in ("float", "base64"):
        return req.fail(400, f"'{encoding}' is not one of ['float', 'base64'] - 'encoding_format'")
    dimensions = body.get("dimensions") or (3072 if "large" in model else 1536)
    if not isinstance(dimensions, int) or dimensions < 1:
        return req.fail(400, "'dimensions' must be a positive integer", param="dimensions")
    unknown = sim.unknown_model(req, model)
    if unknown:
        return unknown
    tokens = sum(estimate_tokens(text) for text in texts)
    refusal = sim.admit(req, model, tokens)
    if refusal:
        return refusal
    await sim.delay(req, EMBEDDING_LATENCY_SHARE)
    data = []
    for index, text in enumerate(texts):
        vector = _vector(text, dimensions)
        encoded = _base64(vector) if encoding == "base64" else vector.tolist()
        data.append({"object": "embedding", "index": index, "embedding": encoded})
    usage = {"prompt_tokens": tokens, "total_tokens": tokens}
    return Reply(200, [orjson.dumps({"object": "list", "data": data, "model": model, "usage": usage})])


# --- models ----------------------------------------------------------------------------------


async def models(sim: Simulator, req: Request) -> Reply:
    listed = [
        {"id": model, "object": "model", "created": MODELS_CREATED, "owned_by": "system"}
        for model in sim.catalog.openai_ids()
    ]
    return Reply(200, [orjson.dumps({"object": "list", "data": listed})])


CHAT = Route("chat_completions", DIALECT, chat_completions)
EMBEDDINGS = Route("embeddings", DIALECT, embeddings)
MODEL_LIST = Route("models", DIALECT, models)
ROUTES = {
    ("POST", "/v1/chat/completions"): CHAT,
    ("POST", "/v1/embeddings"): EMBEDDINGS,
    ("GET", "/v1/models"): MODEL_LIST,
}
