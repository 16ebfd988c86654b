"""The providers' batch APIs as every side reads and writes them (no I/O): the simulator serves
them, the gateway passes them on and ledgers their results, `xvckit batch --mode
provider-batch` submits to them.

OpenAI's Batch API (https://platform.openai.com/docs/guides/batch): a JSONL file uploaded to
`POST /v1/files` (multipart/form-data, `purpose=batch`), one request a line,
`{custom_id, method: "POST", url, body}`; `POST /v1/batches {input_file_id, endpoint,
completion_window: "24h"}`; the batch's `status` (validating, in_progress, finalizing,
completed, failed, expired, cancelling, cancelled) and `request_counts {total, completed,
failed}`; once it has ended, `output_file_id` and `error_file_id` name JSONL files of
`{id, custom_id, response: {status_code, request_id, body} | null, error: {code, message} |
null}` (`batch_expired`, `batch_cancelled` for requests never run).

Anthropic's Message Batches (https://docs.anthropic.com/en/api/creating-message-batches):
`POST /v1/messages/batches {requests: [{custom_id, params}]}`; `processing_status`
(in_progress, canceling, ended), `request_counts {processing, succeeded, errored, canceled,
expired}`, and once ended `results_url`, a JSONL file of `{custom_id, result: {type:
succeeded, message} | {type: errored, error} | {type: canceled} | {type: expired}}`.

Both providers bill batch work at half their prices (`PRICE_SHARE`).
"""

from __future__ import annotations

import email.message
import email.utils
import re
import secrets
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import orjson

PRICE_SHARE = 0.5  # of the price table: what both providers bill for batch work
CHAT_URL = "/v1/chat/completions"  # the one OpenAI batch endpoint the gateway passes on
OPENAI_MAX_REQUESTS = 50_000  # per input file (OpenAI's limit)
ANTHROPIC_MAX_REQUESTS = 100_000  # per batch (Anthropic's limit)
OPENAI_ENDED = frozenset({"completed", "failed", "expired", "cancelled"})
ANTHROPIC_ENDED = "ended"
EXPIRED_CODE, CANCELLED_CODE = "batch_expired", "batch_cancelled"
# Anthropic's custom_id rule; ids of other shapes are refused by the gateway for both APIs.
CUSTOM_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")
MAX_ERROR_CHARS = 500
# What an errored Anthropic result's error type means as an HTTP status (its errors page).
ANTHROPIC_ERROR_STATUS = {
    "invalid_request_error": 400,
    "authentication_error": 401,
    "billing_error": 402,
    "permission_error": 403,
    "not_found_error": 404,
    "request_too_large": 413,
    "rate_limit_error": 429,
    "api_error": 500,
    "overloaded_error": 529,
}

SUCCEEDED, ERRORED, CANCELED, EXPIRED = "succeeded", "errored", "canceled", "expired"


def form_parts(content_type: bytes, body: bytes) -> dict[str, tuple[str | None, bytes]]:
    """The fields of a multipart/form-data body: name -> (file name or None, bytes). ValueError
    for a body that is not one (a missing boundary, a part without its headers or name)."""
    header = content_type.decode("latin-1")
    if header.partition(";")[0].strip().lower() != "multipart/form-data":
        raise ValueError("the body must be multipart/form-data")
    boundary = _param(header, "boundary")
    if not boundary:
        raise ValueError("multipart/form-data without a boundary")
    chunks = body.split(b"--" + boundary.encode("latin-1"))
    parts: dict[str, tuple[str | None, bytes]] = {}
    for chunk in chunks[1:]:
        if chunk.startswith(b"--"):
            return parts
        head, blank, data = chunk.removeprefix(b"\r\n").partition(b"\r\n\r\n")
        if not blank:
            raise ValueError("a form part without its headers")
        disposition = ""
        for line in head.decode("latin-1").split("\r\n"):
            name, _, value = line.partition(":")
            if name.strip().lower() == "content-disposition":
                disposition = value.strip()
        field = _param(disposition, "name")
        if not field:
            raise ValueError("a form part without a name")
        parts[field] = (_param(disposition, "filename"), data.removesuffix(b"\r\n"))
    raise ValueError("the multipart body does not end with its closing boundary")


def _param(header: str, name: str) -> str | None:
    message = email.message.Message()
    message["x"] = header
    value = message.get_param(name, header="x")
    return email.utils.collapse_rfc2231_value(value) if value is not None else None


def form_body(fields: dict[str, str], file_field: str, filename: str, data: bytes) -> tuple[bytes, bytes]:
    """(content type, body) of a multipart/form-data upload of `data` with `fields`; the file
    name has quotes, backslashes and control characters replaced (no header can be forged)."""
    boundary = secrets.token_hex(16).encode()
    out = []
    for name, value in fields.items():
        out += [b"--", boundary, b'\r\nContent-Disposition: form-data; name="', name.encode(), b'"\r\n\r\n']
        out += [value.encode(), b"\r\n"]
    quoted = "".join(c if c.isprintable() and c not in '"\\' else "_" for c in filename).encode()
    out += [b"--", boundary, b'\r\nContent-Disposition: form-data; name="', file_field.encode()]
    out += [b'"; filename="', quoted, b'"\r\nContent-Type: application/octet-stream\r\n\r\n']
    out += [data, b"\r\n--", boundary, b"--\r\n"]
    return b"multipart/form-data; boundary=" + boundary, b"".join(out)


def jsonl(data: bytes) -> Iterator[tuple[int, Any]]:
    """(line number from 1, value) of each non-empty line; ValueError naming a line that is
    not JSON."""
    for number, line in enumerate(data.split(b"\n"), 1):
        if line.strip():
            try:
                yield number, orjson.loads(line)
            except orjson.JSONDecodeError:
                raise ValueError(f"line {number} is not JSON") from None


class Lines:
    """Whole lines out of a body read in chunks; a line longer than `limit` is a ValueError."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._pending = b""

    def feed(self, data: bytes) -> list[bytes]:
        *lines, self._pending = (self._pending + data).split(b"\n")
        if len(self._pending) > self.limit:
            raise ValueError(f"a line longer than {self.limit} bytes")
        return [line for line in lines if line.strip()]

    def end(self) -> list[bytes]:
        rest, self._pending = self._pending, b""
        return [rest] if rest.strip() else []


@dataclass(frozen=True, slots=True)
class Result:
    """One request's outcome in a batch's results: `body` is the answer (succeeded) or the
    provider's error body; `status` its HTTP status (0 when it never ran)."""

    custom_id: str
    kind: str  # SUCCEEDED, ERRORED, CANCELED or EXPIRED
    status: int
    body: dict | None
    error: str | None = None


def openai_result(line: Any) -> Result:
    """A line of an OpenAI batch's output or error file; ValueError when it is not one."""
    if not isinstance(line, dict) or not isinstance(line.get("custom_id"), str):
        raise ValueError("a result line without its custom_id")
    custom_id, response, error = line["custom_id"], line.get("response"), line.get("error")
    if isinstance(response, dict) and type(response.get("status_code")) is int:
        status, body = response["status_code"], response.get("body")
        body = body if isinstance(body, dict) else None
        if status == 200 and body is not None:
            return Result(custom_id, SUCCEEDED, 200, body)
        return Result(custom_id, ERRORED, status, body, _error_message(body) or f"status {status}")
    if isinstance(error, dict):
        code = error.get("code")
        kind = {EXPIRED_CODE: EXPIRED, CANCELLED_CODE: CANCELED}.get(code, ERRORED)
        message = str(error.get("message") or code or "error")[:MAX_ERROR_CHARS]
        return Result(custom_id, kind, 0, None, message)
    raise ValueError(f"result {custom_id!r} has neither a response nor an error")


def anthropic_result(line: Any) -> Result:
    """A line of an Anthropic batch's results; ValueError when it is not one."""
    if not isinstance(line, dict) or not isinstance(line.get("custom_id"), str):
        raise ValueError("a result line without its custom_id")
    custom_id, result = line["custom_id"], line.get("result")
    kind = result.get("type") if isinstance(result, dict) else None
    if kind == SUCCEEDED and isinstance(result.get("message"), dict):
        return Result(custom_id, SUCCEEDED, 200, result["message"])
    if kind == ERRORED:
        body = result.get("error") if isinstance(result.get("error"), dict) else None
        inner = body.get("error") if body else None
        status = ANTHROPIC_ERROR_STATUS.get(inner.get("type"), 500) if isinstance(inner, dict) else 500
        return Result(custom_id, ERRORED, status, body, _error_message(body) or "errored")
    if kind in (CANCELED, EXPIRED):
        return Result(custom_id, kind, 0, None, kind)
    raise ValueError(f"result {custom_id!r} of unknown type {kind!r}")


def _error_message(body: dict | None) -> str | None:
    error = body.get("error") if body else None
    message = error.get("message") if isinstance(error, dict) else None
    return " ".join(str(message).split())[:MAX_ERROR_CHARS] if message else None
