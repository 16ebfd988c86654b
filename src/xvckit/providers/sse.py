"""Server-sent events: split a byte stream into whole events without copying more than needed."""

from __future__ import annotations

import orjson


class EventSplitter:
    """Feed raw bytes, get back complete events (each ending in a blank line).

    Events are forwarded whole as soon as they are complete: a client can do nothing
    with half an event, and whole events are what let the gateway drop or read one.
    """

    __slots__ = ("_buffer",)

    def __init__(self) -> None:
        self._buffer = b""

    def feed(self, data: bytes) -> list[bytes]:
        buffer = self._buffer + data if self._buffer else data
        if b"\r" in buffer:
            buffer = buffer.replace(b"\r\n", b"\n")
        events = []
        start = 0
        while (end := buffer.find(b"\n\n", start)) != -1:
            events.append(buffer[start : end + 2])
            start = end + 2
        self._buffer = buffer[start:]
        return events

    @property
    def pending(self) -> bytes:
        """Bytes of an event that never completed (the upstream stopped mid-event)."""
        return self._buffer


def event_field(event: bytes, name: bytes) -> bytes | None:
    """The value of one field (`event` or `data`) of a single event; data lines are joined."""
    values = []
    for line in event.split(b"\n"):
        if line.startswith(name + b":"):
            value = line[len(name) + 1 :]
            values.append(value[1:] if value.startswith(b" ") else value)
    return b"\n".join(values) if values else None


def event_json(event: bytes) -> dict | None:
    """The event's data parsed as a JSON object, or None (e.g. `[DONE]` or not JSON)."""
    data = event_field(event, b"data")
    if not data or data == b"[DONE]":
        return None
    try:
        obj = orjson.loads(data)
    except orjson.JSONDecodeError:
        return None
    return obj if isinstance(obj, dict) else None


def encode(data: dict, event: str | None = None) -> bytes:
    """One SSE event with a JSON payload; `event:` line only when named (Anthropic style)."""
    head = f"event: {event}\n".encode() if event else b""
    return head + b"data: " + orjson.dumps(data) + b"\n\n"
