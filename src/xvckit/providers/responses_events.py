"""A finished Responses API `response` as the events that stream it, and back: what the
response cache and Idempotency-Key replays need when an answer kept whole is asked for as a
stream, or one kept as a stream is asked for whole. Pure, no I/O.

The events are those OpenAI sends (https://platform.openai.com/docs/api-reference/responses-streaming):
`response.created` and `response.in_progress` (the response with no output yet), then per output
item `response.output_item.added`, its content (`response.content_part.added`, one
`response.output_text.delta` / `response.reasoning_text.delta` / `response.refusal.delta` with
the whole text, its `.done`, `response.content_part.done`; a function call's
`response.function_call_arguments.delta` and `.done`), `response.output_item.done`, and
`response.completed` (or `response.incomplete`) with the whole response.
"""

from __future__ import annotations

import itertools
from typing import Any

from xvckit.providers import sse

# content part type -> (the event family that streams it, the field holding its text)
_PART_EVENTS = {
    "output_text": ("response.output_text", "text"),
    "reasoning_text": ("response.reasoning_text", "text"),
    "refusal": ("response.refusal", "refusal"),
}
_ENDS = ("response.completed", "response.incomplete")


def events_of(response: dict[str, Any]) -> bytes:
    """The SSE events of a finished `response`."""
    numbers = itertools.count()

    def event(kind: str, **fields: Any) -> bytes:
        return sse.encode({"type": kind, "sequence_number": next(numbers), **fields}, event=kind)

    opening = {**response, "status": "in_progress", "output": [], "usage": None, "incomplete_details": None}
    out = [event("response.created", response=opening), event("response.in_progress", response=opening)]
    for index, item in enumerate(response.get("output") or ()):
        where = {"item_id": item.get("id"), "output_index": index}
        out.append(event("response.output_item.added", output_index=index, item=_opened(item)))
        if item.get("type") == "function_call":
            arguments = item.get("arguments") or ""
            out.append(event("response.function_call_arguments.delta", **where, delta=arguments))
            out.append(
                event(
                    "response.function_call_arguments.done",
                    **where,
                    name=item.get("name"),
                    arguments=arguments,
                )
            )
        for content_index, part in enumerate(_parts(item)):
            at = {**where, "content_index": content_index}
            family, field = _PART_EVENTS.get(part.get("type"), (None, "text"))
            out.append(event("response.content_part.added", **at, part={**part, field: ""}))
            if family:
                text = part.get(field) or ""
                extra = {"logprobs": []} if family == "response.output_text" else {}
                out.append(event(f"{family}.delta", **at, delta=text, **extra))
                out.append(event(f"{family}.done", **at, **{field: text}, **extra))
            out.append(event("response.content_part.done", **at, part=part))
        out.append(event("response.output_item.done", output_index=index, item=item))
    end = "response.incomplete" if response.get("status") == "incomplete" else "response.completed"
    out.append(event(end, response=response))
    return b"".join(out)


def response_from_events(events: list[bytes]) -> dict[str, Any]:
    """The finished response a stream's last `response.completed` / `response.incomplete` event
    carries; ValueError when the stream has none."""
    for raw in reversed(events):
        data = sse.event_json(raw)
        if data and data.get("type") in _ENDS and isinstance(data.get("response"), dict):
            return data["response"]
    raise ValueError("the stream has no response.completed event")


def _opened(item: dict[str, Any]) -> dict[str, Any]:
    """An output item as `response.output_item.added` shows it: nothing written yet."""
    opened = {**item, "status": "in_progress"} if "status" in item else dict(item)
    if isinstance(item.get("content"), list):
        opened["content"] = []
    if item.get("type") == "function_call":
        opened["arguments"] = ""
    return opened


def _parts(item: dict[str, Any]) -> list[dict[str, Any]]:
    content = item.get("content")
    return [part for part in content if isinstance(part, dict)] if isinstance(content, list) else []
