"""Anthropic wire format: error bodies and usage in bodies and stream events.

Reference: https://docs.anthropic.com/en/api/errors and /en/api/messages-streaming.
"""

from __future__ import annotations

import orjson

from xvckit.providers.usage import Usage, count, counts

NAME = "anthropic"
VERSION = "2023-06-01"

_ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    402: "billing_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    415: "invalid_request_error",
    422: "invalid_request_error",
    429: "rate_limit_error",
    500: "api_error",
    502: "api_error",
    503: "api_error",
    504: "timeout_error",
    529: "overloaded_error",
}


def error_type(status: int) -> str:
    return _ERROR_TYPES.get(status, "api_error" if status >= 500 else "invalid_request_error")


def error_object(status: int, message: str, request_id: str | None = None) -> dict:
    body: dict = {"type": "error", "error": {"type": error_type(status), "message": message}}
    if request_id:
        body["request_id"] = request_id
    return body


def error_body(status: int, message: str, request_id: str | None = None) -> bytes:
    return orjson.dumps(error_object(status, message, request_id))


def stream_error_event(status: int, message: str, request_id: str | None = None) -> bytes:
    """Anthropic reports a failure inside a stream as an `error` event."""
    return b"event: error\ndata: " + error_body(status, message, request_id) + b"\n\n"


def usage_from_obj(usage: object) -> Usage:
    """Read an Anthropic `usage` object (`input_tokens` excludes cache reads and writes);
    ValueError for one that is malformed."""
    usage = counts(usage)
    read = count(usage, "cache_read_input_tokens")
    write = count(usage, "cache_creation_input_tokens")
    return Usage(
        input_tokens=count(usage, "input_tokens") + read + write,
        output_tokens=count(usage, "output_tokens"),
        cached_tokens=read,
        cache_write_tokens=write,
    )


def usage_from_body(body: dict) -> Usage:
    return usage_from_obj(body.get("usage"))


def usage_after_event(so_far: dict, event: dict) -> dict:
    """The usage object as of `event`: `message_start` opens it, each `message_delta` carries
    cumulative counts (the input among them, now) that replace those it names."""
    kind = event.get("type")
    if kind == "message_start":
        usage = (event.get("message") or {}).get("usage")
        return dict(usage) if isinstance(usage, dict) else {}
    if kind == "message_delta" and isinstance(event.get("usage"), dict):
        return {**so_far, **{k: v for k, v in event["usage"].items() if v is not None}}
    return so_far
