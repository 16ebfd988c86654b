"""The Anthropic side of the simulator: Messages (plain, streamed, tool use), token counting,
the model list, and Anthropic's errors and rate-limit headers.

What the official SDK and the docs expect, and the simulator sends:
- Messages: https://docs.anthropic.com/en/api/messages. `{id, type: "message", role, model,
  content: [blocks], stop_reason: end_turn | max_tokens | tool_use, stop_sequence, usage}`;
  `max_tokens` is required, and so is the `anthropic-version` header
  (https://docs.anthropic.com/en/api/versioning).
- Streaming: https://docs.anthropic.com/en/api/messages-streaming. Named SSE events:
  `message_start` (the message with empty content and the input usage), then per content block
  `content_block_start`, `content_block_delta`s (`text_delta`, or `input_json_delta` with
  `partial_json` fragments for tool_use) and `content_block_stop`, with `ping`s anywhere (one
  after the first block start, as in the docs' example); then `message_delta` with
  `stop_reason` and the output usage, and `message_stop`.
- Tool use: https://docs.anthropic.com/en/docs/build-with-claude/tool-use. A `tool_use` block
  `{id: "toolu_...", name, input}`; `tool_choice` is `{type: auto | any | tool | none}`.
- Token counting: https://docs.anthropic.com/en/api/messages-count-tokens, `{"input_tokens": N}`.
- Models: https://docs.anthropic.com/en/api/models-list, `{data: [{type: "model", id,
  display_name, created_at}], has_more, first_id, last_id}`.
- Errors: https://docs.anthropic.com/en/api/errors. `{"type": "error", "error": {type, message},
  "request_id"}`, the id also in the `request-id` header; 401 authentication_error, 429
  rate_limit_error, 500 api_error, 529 overloaded_error; a prompt over the context window is 400
  invalid_request_error "prompt is too long: N tokens > M maximum".
"""

from __future__ import annotations

import dataclasses
import time
from typing import Any

import orjson

from xvckit.providers import anthropic, ratelimit, sse
from xvckit.providers.ratelimit import RateLimits
from xvckit.sim.exchange import Headers, Reply, Request, Route, Simulator, bearer_token, phrase
from xvckit.sim.limiter import Verdict
from xvckit.sim.schemas import instance
from xvckit.sim.text import (
    CHARS_PER_TOKEN,
    DEFAULT_REPLY_TOKENS,
    TOKENS_PER_MESSAGE,
    estimate_tokens,
    pieces,
    reply_text,
)
from xvckit.sim.tools import pick_tool

MODELS_CREATED_AT = "2026-01-01T00:00:00Z"  # a fixed placeholder for the listed models
_STATUS_MESSAGES = {
    429: "Number of requests has exceeded your rate limit (forced by x-sim-fail).",
    500: "Internal server error",
    529: "Overloaded",
}
_TOOL_MODES = {"auto": "auto", "any": "required", "tool": "required", "none": "none"}


class AnthropicDialect:
    request_id_header = b"request-id"
    server_errors = (b"500", b"529")

    def api_key(self, headers: dict[bytes, bytes]) -> bytes | None:
        # The API's documented header is x-api-key; the installed SDK (2.x) sends the key as a
        # bearer token instead, so both are accepted.
        return headers.get(b"x-api-key") or bearer_token(headers)

    def error(
        self, status: int, message: str, request_id: str, code: str | None = None, param: str | None = None
    ) -> bytes:
        return anthropic.error_body(status, message, request_id)

    def auth_error(self, missing: bool, request_id: str) -> bytes:
        message = "x-api-key header is required" if missing else "invalid x-api-key"
        return anthropic.error_body(401, message, request_id)

    def model_not_found(self, model: str, request_id: str) -> bytes:
        return anthropic.error_body(404, f"model: {model}", request_id)

    def status_error(self, status: int, request_id: str) -> bytes:
        return anthropic.error_body(status, _STATUS_MESSAGES.get(status) or phrase(status), request_id)

    def rate_limited(self, verdict: Verdict, model: str, request_id: str) -> bytes:
        message = (
            f"This request would exceed the rate limit for your organization of {verdict.limit:,} "
            f"{verdict.refused} per minute. For details, refer to: "
            "https://docs.anthropic.com/en/api/rate-limits. You can see the response headers for current "
            "usage. Please reduce the prompt length or the maximum tokens requested, or try again later."
        )
        return anthropic.error_body(429, message, request_id)

    def rate_limit_headers(self, limits: RateLimits) -> Headers:
        # One token budget binds input and output alike, so each token family reports it.
        both = dataclasses.replace(limits, input_tokens=limits.tokens, output_tokens=limits.tokens)
        return ratelimit.anthropic_headers(both, time.time())


DIALECT = AnthropicDialect()


# --- reading a request -----------------------------------------------------------------------


def _block_text(content: Any) -> str:
    """The text a model would read in `content`: a string, or blocks of text, tool input and
    tool results (which nest content of their own)."""
    if isinstance(content, str):
        return content
    if not isinstance(content, list):
        return ""
    texts = []
    for block in content:
        if not isinstance(block, dict):
            continue
        kind = block.get("type")
        if kind == "text":
            texts.append(block.get("text") or "")
        elif kind == "tool_use":
            texts.append(orjson.dumps(block.get("input")).decode())
        elif kind == "tool_result":
            texts.append(_block_text(block.get("content")))
    return " ".join(texts)


def _after_tool_result(messages: list[Any]) -> bool:
    """Whether a tool result came after the model's last turn (text may follow it in the same
    user message, as Claude Code's reminders do)."""
    for message in reversed(messages):
        if not isinstance(message, dict) or message.get("role") == "assistant":
            return False
        content = message.get("content")
        if isinstance(content, list) and any(
            isinstance(block, dict) and block.get("type") == "tool_result" for block in content
        ):
            return True
    return False


def _invalid(req: Request, need_max_tokens: bool) -> Reply | None:
    """The 400 for a request the Messages API would refuse before reading it, if any."""
    if b"anthropic-version" not in req.headers:
        return req.fail(400, "anthropic-version: header is required")
    body = req.json
    if not isinstance(body.get("model"), str) or not body["model"]:
        return req.fail(400, "model: Field required")
    if need_max_tokens:
        max_tokens = body.get("max_tokens")
        if max_tokens is None:
            return req.fail(400, "max_tokens: Field required")
        if not isinstance(max_tokens, int) or max_tokens < 1:
            return req.fail(400, "max_tokens: Input should be greater than or equal to 1")
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        return req.fail(400, "messages: at least one message is required")
    return None


def _input_tokens(body: dict[str, Any]) -> int:
    messages = body["messages"]
    text = " ".join(_block_text(m.get("content")) for m in messages if isinstance(m, dict))
    tokens = (
        estimate_tokens(text)
        + estimate_tokens(_block_text(body.get("system")))
        + TOKENS_PER_MESSAGE * len(messages)
    )
    if body.get("tools"):
        tokens += estimate_tokens(orjson.dumps(body["tools"]))
    return tokens


def _last_user_text(messages: list[Any]) -> str:
    for message in reversed(messages):
        if isinstance(message, dict) and message.get("role") == "user":
            return _block_text(message.get("content"))
    return ""


# --- messages --------------------------------------------------------------------------------


def _output_schema(body: dict[str, Any]) -> Any:
    """The schema of `output_config.format` (structured outputs), None for prose."""
    config = body.get("output_config")
    format_ = config.get("format") if isinstance(config, dict) else None
    if isinstance(format_, dict) and format_.get("type") == "json_schema":
        return format_.get("schema", {})
    return None


async def messages(sim: Simulator, req: Request) -> Reply:
    invalid = _invalid(req, need_max_tokens=True)
    if invalid:
        return invalid
    body = req.json
    model, max_tokens, conversation = body["model"], body["max_tokens"], body["messages"]
    unknown = sim.unknown_model(req, model)
    if unknown:
        return unknown
    limits = sim.catalog.limits(model)
    if max_tokens > limits.max_output:
        return req.fail(
            400,
            f"max_tokens: {max_tokens} > {limits.max_output}, which is the maximum allowed number of output "
            f"tokens for {model}",
        )
    input_tokens = _input_tokens(body)
    if input_tokens > limits.window:
        return req.fail(400, f"prompt is too long: {input_tokens} tokens > {limits.window} maximum")
    # Current models take a max_tokens past the window and stop at its end
    # ("model_context_window_exceeded"), so a client may ask for the most a model can give.
    room = min(max_tokens, limits.window - input_tokens)
    cut = "max_tokens" if room == max_tokens else "model_context_window_exceeded"

    tools = [tool for tool in body.get("tools") or () if isinstance(tool, dict)]
    choice = body.get("tool_choice") or {}
    chosen = pick_tool(
        [tool.get("name") or "" for tool in tools],
        _TOOL_MODES.get(choice.get("type"), "auto"),
        choice.get("name") if choice.get("type") == "tool" else None,
        _after_tool_result(conversation),
    )
    schema = _output_schema(body)
    if chosen is not None:
        tool = tools[chosen]
        block: dict[str, Any] = {
            "type": "tool_use",
            "id": sim.new_id("toolu_"),
            "name": tool.get("name") or "",
            "input": instance(tool.get("input_schema") or {}),
        }
        output_tokens = estimate_tokens(block["name"] + orjson.dumps(block["input"]).decode())
        stop_reason = "tool_use"
    elif schema is not None:
        text = orjson.dumps(instance(schema)).decode()
        output_tokens = min(estimate_tokens(text), room)
        stop_reason = "end_turn" if output_tokens == estimate_tokens(text) else cut
        block = {"type": "text", "text": text[: output_tokens * CHARS_PER_TOKEN]}
    else:
        wanted = req.control(b"x-sim-output-tokens")
        wanted = DEFAULT_REPLY_TOKENS if wanted is None else wanted
        output_tokens = min(wanted, room)
        block = {"type": "text", "text": reply_text(_last_user_text(conversation), output_tokens)}
        stop_reason = cut if wanted > room else "end_turn"

    refusal = sim.admit(req, model, input_tokens + output_tokens)
    if refusal:
        return refusal
    await sim.delay(req)
    message = {
        "id": sim.new_id("msg_"),
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": [block],
        "stop_reason": stop_reason,
        "stop_sequence": None,
        "usage": {
            "input_tokens": input_tokens,
            "cache_creation_input_tokens": 0,
            "cache_read_input_tokens": 0,
            "output_tokens": output_tokens,
            "service_tier": "standard",
        },
    }
    if body.get("stream"):
        return Reply(200, _events(message), stream=True, tokens=output_tokens)
    return Reply(200, [orjson.dumps(message)], tokens=output_tokens)


def _event(data: dict[str, Any]) -> bytes:
    return sse.encode(data, data["type"])


def _events(message: dict[str, Any]) -> list[bytes]:
    """The stream of one finished message, as Anthropic sends it."""
    block = message["content"][0]
    usage = message["usage"]
    if block["type"] == "text":
        opening = {"type": "text", "text": ""}
        deltas = [{"type": "text_delta", "text": piece} for piece in pieces(block["text"])]
    else:
        opening = {**block, "input": {}}
        arguments = orjson.dumps(block["input"]).decode()
        deltas = [{"type": "input_json_delta", "partial_json": piece} for piece in pieces(arguments)]
    start = {**message, "content": [], "stop_reason": None, "usage": {**usage, "output_tokens": 1}}
    return [
        _event({"type": "message_start", "message": start}),
        _event({"type": "content_block_start", "index": 0, "content_block": opening}),
        _event({"type": "ping"}),
        *(_event({"type": "content_block_delta", "index": 0, "delta": delta}) for delta in deltas),
        _event({"type": "content_block_stop", "index": 0}),
        _event(
            {
                "type": "message_delta",
                "delta": {"stop_reason": message["stop_reason"], "stop_sequence": None},
                # Cumulative counts, input included, as the API sends them now.
                "usage": {k: v for k, v in usage.items() if k != "service_tier"},
            }
        ),
        _event({"type": "message_stop"}),
    ]


# --- token counting and models ---------------------------------------------------------------


async def count_tokens(sim: Simulator, req: Request) -> Reply:
    """Free and unthrottled by the message limits, as Anthropic's own counter is."""
    invalid = _invalid(req, need_max_tokens=False)
    if invalid:
        return invalid
    return Reply(200, [orjson.dumps({"input_tokens": _input_tokens(req.json)})])


async def models(sim: Simulator, req: Request) -> Reply:
    listed = sim.catalog.anthropic_models()
    page = {
        "data": [
            {"type": "model", "id": id_, "display_name": name, "created_at": MODELS_CREATED_AT}
            for id_, name in listed
        ],
        "has_more": False,
        "first_id": listed[0][0],
        "last_id": listed[-1][0],
    }
    return Reply(200, [orjson.dumps(page)])


MESSAGES = Route("messages", DIALECT, messages)
COUNT_TOKENS = Route("count_tokens", DIALECT, count_tokens)
MODEL_LIST = Route("models", DIALECT, models)
ROUTES = {
    ("POST", "/v1/messages"): MESSAGES,
    ("POST", "/v1/messages/count_tokens"): COUNT_TOKENS,
}
