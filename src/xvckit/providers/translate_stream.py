"""Streams from one dialect to the other, one whole SSE event in, zero or more events out.

Formats:
- Anthropic: https://docs.anthropic.com/en/api/messages-streaming. Named events:
  `message_start` (the message, empty content, input usage), per block `content_block_start`,
  `content_block_delta`s (`text_delta`; `input_json_delta` with `partial_json` for tool_use;
  `thinking_delta`, `signature_delta`, `citations_delta`) and `content_block_stop`;
  `message_delta` (stop_reason, cumulative usage), `message_stop`; `ping`s anywhere; `error`.
- OpenAI: https://platform.openai.com/docs/api-reference/chat/streaming. `data: {chunk}`
  events: the first delta carries the role, tool calls open with `{index, id, type, function:
  {name, arguments: ""}}` and continue with `{index, function: {arguments}}`, the last choice
  chunk has `finish_reason`; with `stream_options.include_usage` every chunk has
  `usage: null` and one more chunk, `choices: []` with the usage, comes before `data: [DONE]`.
  A failure mid-stream is a `data: {"error": {...}}` event.
"""

from __future__ import annotations

import time
from typing import Any

from xvckit.providers import anthropic, openai, sse
from xvckit.providers.translate_response import (
    anthropic_error_status,
    anthropic_id,
    anthropic_usage,
    finish_reason,
    openai_error_status,
    openai_id,
    openai_usage,
    stop_reason,
)

_DONE = b"data: [DONE]\n\n"


def _events(data: bytes) -> list[bytes]:
    """The events in `data`: normally exactly one, but a caller may hand over several."""
    if b"\r" in data:
        data = data.replace(b"\r\n", b"\n")
    return [event for event in data.split(b"\n\n") if event.strip()]


class AnthropicToOpenAIStream:
    """Anthropic stream events in, OpenAI chat.completion.chunk events out, ending with
    `data: [DONE]` after `message_stop`.

    `include_usage` is the client's `stream_options.include_usage`: then every chunk carries
    `usage: null` and a usage chunk (prompt tokens including cached ones) precedes `[DONE]`.
    The role chunk goes out with the first content block; tool_use blocks become tool calls
    numbered in order; the finish chunk is sent at `message_stop` (Anthropic may send more than
    one `message_delta`). Dropped: `ping`s, thinking and signature deltas, citations,
    server-tool blocks, `stop_sequence`. An `error` event becomes OpenAI's error event and ends
    the stream.
    """

    __slots__ = (
        "_created",
        "_done",
        "_id",
        "_include_usage",
        "_model",
        "_started",
        "_stop",
        "_tools",
        "_usage",
    )

    def __init__(self, model: str, include_usage: bool = False, *, created: int | None = None) -> None:
        self._model = model
        self._include_usage = include_usage
        self._created = int(time.time()) if created is None else created
        self._id = openai_id(None)
        self._usage: dict[str, Any] = {}
        self._stop: str | None = None
        self._tools: dict[int, list[int]] = {}  # block index -> [tool call index, argument characters sent]
        self._started = False
        self._done = False

    def feed(self, event: bytes) -> bytes:
        return b"".join(self._one(e) for e in _events(event))

    def _one(self, event: bytes) -> bytes:
        data = sse.event_json(event)
        if data is None or self._done:
            return b""
        kind = data.get("type")
        if kind == "message_start":
            message = data.get("message") or {}
            self._id = openai_id(message.get("id"))
            self._usage.update(message.get("usage") or {})
            return b""
        if kind == "content_block_start":
            return self._block_start(data.get("index", 0), data.get("content_block") or {})
        if kind == "content_block_delta":
            return self._block_delta(data.get("index", 0), data.get("delta") or {})
        if kind == "content_block_stop":
            tool = self._tools.get(data.get("index", 0))
            if tool and not tool[1]:  # a tool without parameters: OpenAI sends "{}", never ""
                return self._chunk({"tool_calls": [{"index": tool[0], "function": {"arguments": "{}"}}]})
            return b""
        if kind == "message_delta":
            self._stop = (data.get("delta") or {}).get("stop_reason") or self._stop
            self._usage.update({k: v for k, v in (data.get("usage") or {}).items() if v is not None})
            return b""
        if kind == "message_stop":
            return self._finish()
        if kind == "error":
            self._done = True
            error = data.get("error") or {}
            status = anthropic_error_status(error)
            return openai.stream_error_event(status, error.get("message") or "upstream stream error")
        return b""  # ping, and event types added later

    def _chunk(self, delta: dict[str, Any], finish: str | None = None) -> bytes:
        chunk: dict[str, Any] = {
            "id": self._id,
            "object": "chat.completion.chunk",
            "created": self._created,
            "model": self._model,
            "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}],
        }
        if self._include_usage:
            chunk["usage"] = None
        return sse.encode(chunk)

    def _role(self, delta: dict[str, Any]) -> dict[str, Any]:
        """`delta` with the role added if this is the stream's first chunk."""
        if self._started:
            return delta
        self._started = True
        return {"role": "assistant", "content": delta.pop("content", ""), "refusal": None, **delta}

    def _block_start(self, index: int, block: dict[str, Any]) -> bytes:
        if block.get("type") == "tool_use":
            call = {
                "index": len(self._tools),
                "id": block.get("id") or f"call_{len(self._tools)}",
                "type": "function",
                "function": {"name": block.get("name") or "", "arguments": ""},
            }
            self._tools[index] = [call["index"], 0]
            return self._chunk(self._role({"content": None, "tool_calls": [call]}))
        text = block.get("text") if block.get("type") == "text" else None
        if not self._started:
            return self._chunk(self._role({"content": text or ""}))
        return self._chunk({"content": text}) if text else b""

    def _block_delta(self, index: int, delta: dict[str, Any]) -> bytes:
        kind = delta.get("type")
        if kind == "text_delta" and delta.get("text"):
            return self._chunk(self._role({"content": delta["text"]}))
        tool = self._tools.get(index)
        if kind == "input_json_delta" and tool and delta.get("partial_json"):
            tool[1] += len(delta["partial_json"])
            return self._chunk(
                {"tool_calls": [{"index": tool[0], "function": {"arguments": delta["partial_json"]}}]}
            )
        return b""

    def _finish(self) -> bytes:
        self._done = True
        out = [
            b"" if self._started else self._chunk(self._role({})),
            self._chunk({}, finish_reason(self._stop)),
        ]
        if self._include_usage:
            usage = {
                "id": self._id,
                "object": "chat.completion.chunk",
                "created": self._created,
                "model": self._model,
                "choices": [],
                "usage": openai_usage(self._usage),
            }
            out.append(sse.encode(usage))
        out.append(_DONE)
        return b"".join(out)


class OpenAIToAnthropicStream:
    """OpenAI chat.completion.chunk events in, the Anthropic event sequence out: `message_start`
    with the first chunk, a text block or tool_use block (with `input_json_delta`s) per run of
    content or per tool call, and at `data: [DONE]` the `message_delta` (stop_reason, usage)
    and `message_stop`.

    Usage is known only at the end of an OpenAI stream (the request should ask for
    `stream_options.include_usage`, as the request translator does), so `message_start` reports
    zero input tokens and `message_delta` the full usage, input included, as Anthropic's own
    cumulative `message_delta` usage may. Only the first choice is kept; logprobs,
    `system_fingerprint`, `service_tier` and audio are dropped. A refusal is streamed as text
    with stop_reason `refusal`. An `error` event becomes Anthropic's `error` event and ends the
    stream.
    """

    __slots__ = ("_done", "_finish", "_model", "_next", "_open", "_refused", "_started", "_tools", "_usage")

    def __init__(self, model: str) -> None:
        self._model = model
        self._started = False
        self._done = False
        self._open: int | None = None  # index of the open content block
        self._next = 0  # index of the next content block
        self._tools: dict[int, int] = {}  # OpenAI tool call index -> block index
        self._finish: str | None = None
        self._refused = False
        self._usage: dict[str, Any] | None = None

    def feed(self, event: bytes) -> bytes:
        return b"".join(self._one(e) for e in _events(event))

    def _one(self, event: bytes) -> bytes:
        if self._done:
            return b""
        data = sse.event_field(event, b"data")
        if data is None:
            return b""
        if data.strip() == b"[DONE]":
            return self._end()
        chunk = sse.event_json(event)
        if chunk is None:
            return b""
        error = chunk.get("error")
        if isinstance(error, dict) and not chunk.get("choices"):
            self._done = True
            message = error.get("message") or "upstream stream error"
            return anthropic.stream_error_event(openai_error_status(error), message)
        out = [] if self._started else [self._start(chunk)]
        if chunk.get("usage"):
            self._usage = chunk["usage"]
        for choice in chunk.get("choices") or ():
            if not isinstance(choice, dict) or choice.get("index", 0) != 0:
                continue
            delta = choice.get("delta") or {}
            if delta.get("content"):
                out.append(self._text(delta["content"]))
            if delta.get("refusal"):
                self._refused = True
                out.append(self._text(delta["refusal"]))
            for call in delta.get("tool_calls") or ():
                if isinstance(call, dict):
                    out.append(self._tool(call))
            if choice.get("finish_reason"):
                self._finish = choice["finish_reason"]
                out.append(self._close())
        return b"".join(out)

    @staticmethod
    def _event(data: dict[str, Any]) -> bytes:
        return sse.encode(data, data["type"])

    def _start(self, chunk: dict[str, Any]) -> bytes:
        self._started = True
        message = {
            "id": anthropic_id(chunk.get("id")),
            "type": "message",
            "role": "assistant",
            "model": self._model,
            "content": [],
            "stop_reason": None,
            "stop_sequence": None,
            "usage": {"input_tokens": 0, "output_tokens": 0},
        }
        return self._event({"type": "message_start", "message": message})

    def _close(self) -> bytes:
        if self._open is None:
            return b""
        index, self._open = self._open, None
        return self._event({"type": "content_block_stop", "index": index})

    def _open_block(self, block: dict[str, Any]) -> bytes:
        closed = self._close()
        self._open, self._next = self._next, self._next + 1
        return closed + self._event(
            {"type": "content_block_start", "index": self._open, "content_block": block}
        )

    def _text(self, text: str) -> bytes:
        opened = b""
        if self._open is None or self._open in self._tools.values():
            opened = self._open_block({"type": "text", "text": ""})
        delta = {"type": "text_delta", "text": text}
        return opened + self._event({"type": "content_block_delta", "index": self._open, "delta": delta})

    def _tool(self, call: dict[str, Any]) -> bytes:
        function = call.get("function") or {}
        position = call.get("index", 0)
        opened = b""
        if position not in self._tools:
            block = {
                "type": "tool_use",
                "id": call.get("id") or f"toolu_{self._next}",
                "name": function.get("name") or "",
                "input": {},
            }
            opened = self._open_block(block)
            self._tools[position] = self._open
        arguments = function.get("arguments")
        if not arguments:
            return opened
        # A late fragment of an earlier call keeps that call's block index (the SDKs accumulate
        # by index); OpenAI streams one call after another, so this is only defensive.
        delta = {"type": "input_json_delta", "partial_json": arguments}
        return opened + self._event(
            {"type": "content_block_delta", "index": self._tools[position], "delta": delta}
        )

    def _end(self) -> bytes:
        self._done = True
        out = [] if self._started else [self._start({})]
        out.append(self._close())
        usage = anthropic_usage(self._usage) if self._usage else {"output_tokens": 0}
        reason = "refusal" if self._refused else stop_reason(self._finish)
        out.append(
            self._event(
                {
                    "type": "message_delta",
                    "delta": {"stop_reason": reason, "stop_sequence": None},
                    "usage": usage,
                }
            )
        )
        out.append(self._event({"type": "message_stop"}))
        return b"".join(out)
