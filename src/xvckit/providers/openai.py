"""OpenAI wire format: error bodies, usage in bodies and stream chunks.

Reference: https://platform.openai.com/docs/api-reference (chat, embeddings, errors).
"""

from __future__ import annotations

import orjson

from xvckit.providers.usage import Usage, count, counts

NAME = "openai"

# The `type` OpenAI uses for an error of each status; the SDK maps status to exception class.
_ERROR_TYPES = {
    400: "invalid_request_error",
    401: "invalid_request_error",
    403: "permission_error",
    404: "invalid_request_error",
    408: "timeout",
    413: "invalid_request_error",
    415: "invalid_request_error",
    422: "invalid_request_error",
    429: "rate_limit_exceeded",
    500: "server_error",
    502: "server_error",
    503: "server_error",
    504: "timeout",
}


def error_object(status: int, message: str, code: str | None = None, param: str | None = None) -> dict:
    return {
        "error": {
            "message": message,
            "type": _ERROR_TYPES.get(status, "server_error" if status >= 500 else "invalid_request_error"),
            "param": param,
            "code": code,
        }
    }


def error_body(status: int, message: str, code: str | None = None, param: str | None = None) -> bytes:
    return orjson.dumps(error_object(status, message, code, param))


def stream_error_event(status: int, message: str, code: str | None = None) -> bytes:
    """What ends a stream that broke: OpenAI sends an `error` object as a data event."""
    return b"data: " + error_body(status, message, code) + b"\n\n"


def usage_from_obj(usage: object) -> Usage:
    """Read an OpenAI `usage` object (chat, embeddings; cached tokens in the details);
    ValueError for one that is malformed."""
    usage = counts(usage)
    return Usage(
        input_tokens=count(usage, "prompt_tokens"),
        output_tokens=count(usage, "completion_tokens"),
        cached_tokens=count(counts(usage.get("prompt_tokens_details")), "cached_tokens"),
    )


def usage_from_response(usage: object) -> Usage:
    """Read a Responses API `usage` object (`input_tokens` includes the cached ones);
    ValueError for one that is malformed."""
    usage = counts(usage)
    return Usage(
        input_tokens=count(usage, "input_tokens"),
        output_tokens=count(usage, "output_tokens"),
        cached_tokens=count(counts(usage.get("input_tokens_details")), "cached_tokens"),
    )


def usage_from_body(body: dict) -> Usage:
    return usage_from_obj(body.get("usage"))


def is_usage_only_chunk(chunk: dict) -> bool:
    """The chunk `stream_options.include_usage` adds at the end: usage and no choices."""
    return not chunk.get("choices") and bool(chunk.get("usage"))


def rate_limit_error_body(message: str, limit: str) -> bytes:
    """A 429 as OpenAI sends it: `type` names the exhausted limit ("requests" or "tokens")."""
    return orjson.dumps(
        {"error": {"message": message, "type": limit, "param": None, "code": "rate_limit_exceeded"}}
    )
