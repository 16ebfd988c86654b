"""A chat completion (whole or streamed) as OpenAI's Responses API answer: the `response`
object and its SSE event sequence (`response.created`, `response.in_progress`, then per output
item `response.output_item.added`, its deltas and `...done` events, and
`response.completed` / `response.incomplete` with usage). Pure, no I/O.

Output items made: `message` (one `output_text` part), `reasoning` (from the
`reasoning_content` / `reasoning` that vLLM and others send, as `reasoning_text` content),
`function_call` (one per tool call, its `call_id` the chat call's id). A chat error event ends
the stream with an `error` event.
"""

from __future__ import annotations

import os
import time
from typing import Any

from xvckit.providers import sse
from xvckit.providers.responses_request import namespaces, split_tool_name

# Finish reasons that leave a response incomplete, and the reason the Responses API gives.
_INCOMPLETE = {"length": "max_output_tokens", "content_filter": "content_filter"}


def new_id(prefix: str) -> str:
    return f"{prefix}_{os.urandom(16).hex()}"


def response_object(
    request: dict[str, Any],
    response_id: str,
    model: str,
    output: list[dict[str, Any]],
    *,
    status: str = "completed",
    usage: dict[str, Any] | None = None,
    incomplete: str | None = None,
    created_at: int | None = None,
) -> dict[str, Any]:
    """The `response` object, echoing the request's settings as the API does."""
    text = request.get("text") if isinstance(request.get("text"), dict) else {}
    return {
        "id": response_id,
        "object": "response",
        "created_at": int(time.time()) if created_at is None else created_at,
        "status": status,
        "background": False,
        "error": None,
        "incomplete_details": {"reason": incomplete} if incomplete else None,
        "instructions": request.get("instructions"),
        "max_output_tokens": request.get("max_output_tokens"),
        "model": model,
        "output": output,
        "parallel_tool_calls": request.get("parallel_tool_calls", True),
        "previous_response_id": request.get("previous_response_id"),
        "reasoning": request.get("reasoning") or {"effort": None, "summary": None},
        "store": request.get("store", True),
        "temperature": request.get("temperature", 1.0),
        "text": {"format": {"type": "text"}, **text},
        "tool_choice": request.get("tool_choice", "auto"),
        "tools": request.get("tools") or [],
        "top_p": request.get("top_p", 1.0),
        "truncation": request.get("truncation", "disabled"),
        "usage": usage,
        "user": request.get("user"),
        "metadata": request.get("metadata") or {},
    }


def usage_object(chat_usage: dict[str, Any] | None) -> dict[str, Any]:
    """Chat usage (`prompt_tokens`, details) in the Responses API's shape."""
    chat_usage = chat_usage or {}
    given = chat_usage.get("prompt_tokens") or 0
    made = chat_usage.get("completion_tokens") or 0
    cached = (chat_usage.get("prompt_tokens_details") or {}).get("cached_tokens") or 0
    reasoning = (chat_usage.get("completion_tokens_details") or {}).get("reasoning_tokens") or 0
    return {
        "input_tokens": given,
        "input_tokens_details": {"cached_tokens": cached},
        "output_tokens": made,
        "output_tokens_details": {"reasoning_tokens": reasoning},
        "total_tokens": given + made,
    }


def _message(text: str, status: str = "completed", item_id: str | None = None) -> dict[str, Any]:
    return {
        "type": "message",
        "id": item_id or new_id("msg"),
        "status": status,
        "role": "assistant",
        "content": [{"type": "output_text", "text": text, "annotations": [], "logprobs": []}],
    }


def _reasoning(text: str, item_id: str | None = None) -> dict[str, Any]:
    return {
        "type": "reasoning",
        "id": item_id or new_id("rs"),
        "summary": [],
        "content": [{"type": "reasoning_text", "text": text}],
    }


def _function_call(
    call_id: str, name: str, arguments: str, known: set[str], status: str = "completed"
) -> dict[str, Any]:
    """A `function_call` item; a name `<namespace>__<name>` of a namespace in `known` is given
    back as the function and its `namespace`."""
    namespace, name = split_tool_name(name, known)
    item = {
        "type": "function_call",
        "id": new_id("fc"),
        "call_id": call_id,
        "name": name,
        "arguments": arguments,
        "status": status,
    }
    if namespace is not None:
        item["namespace"] = namespace
    return item


def from_chat_response(
    chat: dict[str, Any], request: dict[str, Any], response_id: str, model: str
) -> dict[str, Any]:
    """A whole chat completion as a `response` object."""
    choice = (chat.get("choices") or [{}])[0]
    message = choice.get("message") or {}
    output = []
    known = namespaces(request)
    reasoning = message.get("reasoning_content") or message.get("reasoning")
    if isinstance(reasoning, str) and reasoning:
        output.append(_reasoning(reasoning))
    if message.get("content"):
        output.append(_message(message["content"]))
    if message.get("refusal"):
        item = _message("")
        item["content"] = [{"type": "refusal", "refusal": message["refusal"]}]
        output.append(item)
    for call in message.get("tool_calls") or ():
        function = call.get("function") or {}
        output.append(
            _function_call(
                call.get("id") or new_id("call"),
                function.get("name") or "",
                function.get("arguments") or "{}",
                known,
            )
        )
    incomplete = _INCOMPLETE.get(choice.get("finish_reason"))
    return response_object(
        request,
        response_id,
        model,
        output,
        status="incomplete" if incomplete else "completed",
        usage=usage_object(chat.get("usage")),
        incomplete=incomplete,
        created_at=chat.get("created"),
    )


class ChatToResponsesStream:
    """Chat completion chunks in (one whole SSE event per `feed`), Responses API events out.
    The closing events and `response.completed` go out at `[DONE]`, after the usage chunk;
    `response` is the finished object then (to keep for `previous_response_id`)."""

    def __init__(self, request: dict[str, Any], response_id: str, model: str) -> None:
        self._request = request
        self._namespaces = namespaces(request)
        self._id = response_id
        self._model = model
        self._created = int(time.time())
        self._seq = 0
        self._output: list[dict[str, Any]] = []
        self._open: dict[str, Any] | None = None  # the item whose deltas are arriving
        self._calls: dict[int, dict[str, Any]] = {}  # chat tool-call index -> function_call item
        self._finish: str | None = None
        self._usage: dict[str, Any] | None = None
        self._started = False
        self.response: dict[str, Any] | None = None

    def feed(self, event: bytes) -> bytes:
        if self.response is not None:
            return b""
        out = [] if self._started else self._start()
        if sse.event_field(event, b"data") == b"[DONE]":
            out += self._end()
            return b"".join(out)
        chunk = sse.event_json(event)
        if chunk is None:
            return b"".join(out)
        if isinstance(chunk.get("error"), dict):
            error = chunk["error"]
            self.response = {}
            out.append(
                self._event(
                    "error",
                    code=error.get("code"),
                    message=error.get("message") or "upstream error",
                    param=error.get("param"),
                )
            )
            return b"".join(out)
        if chunk.get("usage"):
            self._usage = chunk["usage"]
        for choice in chunk.get("choices") or ():
            delta = choice.get("delta") or {}
            reasoning = delta.get("reasoning_content") or delta.get("reasoning")
            if isinstance(reasoning, str) and reasoning:
                out += self._text("reasoning", reasoning)
            if delta.get("content"):
                out += self._text("message", delta["content"])
            for call in delta.get("tool_calls") or ():
                out += self._tool_call(call)
            if choice.get("finish_reason"):
                self._finish = choice["finish_reason"]
        return b"".join(out)

    def _event(self, kind: str, **fields: Any) -> bytes:
        data = {"type": kind, "sequence_number": self._seq, **fields}
        self._seq += 1
        return sse.encode(data, event=kind)

    def _snapshot(self, status: str, **extra: Any) -> dict[str, Any]:
        return response_object(
            self._request,
            self._id,
            self._model,
            self._output,
            status=status,
            created_at=self._created,
            **extra,
        )

    def _start(self) -> list[bytes]:
        self._started = True
        snapshot = self._snapshot("in_progress")
        return [
            self._event("response.created", response=snapshot),
            self._event("response.in_progress", response=snapshot),
        ]

    def _add(self, item: dict[str, Any]) -> list[bytes]:
        out = self._close()
        self._output.append(item)
        self._open = item
        return [
            *out,
            self._event("response.output_item.added", output_index=len(self._output) - 1, item=dict(item)),
        ]

    def _text(self, kind: str, text: str) -> list[bytes]:
        out: list[bytes] = []
        if self._open is None or self._open["type"] != kind:
            item = _message("", "in_progress") if kind == "message" else _reasoning("")
            part = dict(item["content"][0])
            out += self._add(item)
            out.append(self._part_event("response.content_part.added", part))
        self._open["content"][0]["text"] += text
        name = "response.output_text.delta" if kind == "message" else "response.reasoning_text.delta"
        extra = {"logprobs": []} if kind == "message" else {}
        out.append(
            self._event(
                name,
                item_id=self._open["id"],
                output_index=len(self._output) - 1,
                content_index=0,
                delta=text,
                **extra,
            )
        )
        return out

    def _part_event(self, kind: str, part: dict[str, Any]) -> bytes:
        return self._event(
            kind, item_id=self._open["id"], output_index=len(self._output) - 1, content_index=0, part=part
        )

    def _tool_call(self, call: dict[str, Any]) -> list[bytes]:
        index = call.get("index", 0)
        function = call.get("function") or {}
        out: list[bytes] = []
        item = self._calls.get(index)
        if item is None:
            call_id = call.get("id") or new_id("call")
            item = _function_call(call_id, function.get("name") or "", "", self._namespaces, "in_progress")
            self._calls[index] = item
            out += self._add(item)
        arguments = function.get("arguments")
        if arguments:
            item["arguments"] += arguments
            position = self._output.index(item)
            out.append(
                self._event(
                    "response.function_call_arguments.delta",
                    item_id=item["id"],
                    output_index=position,
                    delta=arguments,
                )
            )
        return out

    def _close(self) -> list[bytes]:
        """The events that finish the open item."""
        item, self._open = self._open, None
        if item is None:
            return []
        position = self._output.index(item)
        out = []
        if item["type"] == "function_call":
            item["arguments"] = item["arguments"] or "{}"
            out.append(
                self._event(
                    "response.function_call_arguments.done",
                    item_id=item["id"],
                    output_index=position,
                    name=item["name"],
                    arguments=item["arguments"],
                )
            )
        else:
            part = item["content"][0]
            if item["type"] == "message":
                out.append(
                    self._event(
                        "response.output_text.done",
                        item_id=item["id"],
                        output_index=position,
                        content_index=0,
                        text=part["text"],
                        logprobs=[],
                    )
                )
            else:
                out.append(
                    self._event(
                        "response.reasoning_text.done",
                        item_id=item["id"],
                        output_index=position,
                        content_index=0,
                        text=part["text"],
                    )
                )
            out.append(
                self._event(
                    "response.content_part.done",
                    item_id=item["id"],
                    output_index=position,
                    content_index=0,
                    part=part,
                )
            )
        if "status" in item:
            item["status"] = "completed"
        out.append(self._event("response.output_item.done", output_index=position, item=item))
        return out

    def _end(self) -> list[bytes]:
        out = self._close()
        incomplete = _INCOMPLETE.get(self._finish)
        self.response = self._snapshot(
            "incomplete" if incomplete else "completed",
            usage=usage_object(self._usage),
            incomplete=incomplete,
        )
        kind = "response.incomplete" if incomplete else "response.completed"
        out.append(self._event(kind, response=self.response))
        return out
