"""The two API dialects a client may speak, and how each one phrases an error."""

from __future__ import annotations

from dataclasses import dataclass

from xvckit.providers import anthropic, openai, sse


@dataclass(frozen=True, slots=True)
class Dialect:
    name: str

    def error_body(self, status: int, message: str, code: str | None, request_id: str) -> bytes:
        if self.name == anthropic.NAME:
            return anthropic.error_body(status, message, request_id)
        return openai.error_body(status, message, code)

    def stream_error_event(self, status: int, message: str, code: str | None, request_id: str) -> bytes:
        if self.name == anthropic.NAME:
            return anthropic.stream_error_event(status, message, request_id)
        if self.name == RESPONSES_NAME:
            return sse.encode(
                {"type": "error", "code": code, "message": message, "param": None}, event="error"
            )
        return openai.stream_error_event(status, message, code)


RESPONSES_NAME = "responses"  # OpenAI's Responses API: OpenAI's errors, its own stream events
OPENAI = Dialect(openai.NAME)
ANTHROPIC = Dialect(anthropic.NAME)
RESPONSES = Dialect(RESPONSES_NAME)


# Refusals that waiting will not cure (a budget that resets in weeks, an expired key): the OpenAI
# and Anthropic SDKs retry a 429 after its retry-after (one slept 10 hours on `retry-after:
# 35865`) unless told not to by this header.
NO_RETRY = {"x-should-retry": "false"}


class GatewayError(Exception):
    """A failure the client should see as an API error in its own dialect."""

    def __init__(
        self, status: int, message: str, code: str | None = None, headers: dict[str, str] | None = None
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.code = code
        self.headers = headers or {}
