"""A rendered prompt as the request its dialect sends, and the answer read back.

OpenAI-dialect models go to `/v1/chat/completions`, Claude models to `/v1/messages` (the
gateway serves either model from either endpoint; the dialect only picks the wire format).
A request's key is the SHA-256 of its endpoint and its body (sorted keys): the journal's item
key and, prefixed, the `Idempotency-Key` the gateway replays a resent request from.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

import orjson

from xvckit.providers import anthropic, openai
from xvckit.providers.message_text import MESSAGE_OVERHEAD, REPLY_PRIMING
from xvckit.providers.usage import Usage

IDEMPOTENCY_PREFIX = "xvckit-batch-"


@dataclass(frozen=True, slots=True)
class Dialect:
    name: str
    path: str  # the endpoint, below the gateway's root URL
    output_field: str

    def body(
        self, model: str, prompt: str, max_tokens: int, temperature: float | None, extra: dict | None = None
    ) -> dict:
        body = {
            "model": model,
            "messages": [{"role": "user", "content": prompt}],
            self.output_field: max_tokens,
        }
        if temperature is not None:
            body["temperature"] = temperature
        return body | (extra or {})

    def auth(self, key: str) -> dict[str, str]:
        if self is ANTHROPIC:
            return {"x-api-key": key, "anthropic-version": anthropic.VERSION}
        return {"authorization": f"Bearer {key}"}

    def answer(self, body: dict) -> tuple[str, Usage]:
        """The answer's text and usage; ValueError when the body is not an answer."""
        if self is ANTHROPIC:
            blocks = body.get("content")
            if not isinstance(blocks, list):
                raise ValueError("no content in the answer")
            text = "".join(
                b.get("text") or "" for b in blocks if isinstance(b, dict) and b.get("type") == "text"
            )
            return text, anthropic.usage_from_body(body)
        choices = body.get("choices")
        if not isinstance(choices, list) or not choices or not isinstance(choices[0], dict):
            raise ValueError("no choices in the answer")
        message = choices[0].get("message") or {}
        return message.get("content") or "", openai.usage_from_body(body)


OPENAI = Dialect("openai", "/v1/chat/completions", "max_completion_tokens")
ANTHROPIC = Dialect("anthropic", "/v1/messages", "max_tokens")
DIALECTS = {d.name: d for d in (OPENAI, ANTHROPIC)}


def dialect_for(model: str, asked: str | None = None) -> Dialect:
    """The dialect asked for, else Anthropic's for Claude models and OpenAI's for the rest."""
    if asked:
        return DIALECTS[asked]
    return ANTHROPIC if model.lower().rsplit("/", 1)[-1].startswith("claude") else OPENAI


@dataclass(frozen=True, slots=True)
class Request:
    """One item's request, ready to send: what the engine, the journal and a sink need."""

    item_id: str
    seq: int  # the item's place in the run
    dialect: Dialect
    model: str
    body: bytes
    hash: str
    input_tokens: int  # estimated, with the model's tokenizer
    max_tokens: int
    names: dict = field(default_factory=dict)  # the item's path variables, for output names

    @property
    def idempotency_key(self) -> str:
        return IDEMPOTENCY_PREFIX + self.hash


def build(
    item_id: str,
    seq: int,
    dialect: Dialect,
    model: str,
    prompt: str,
    *,
    max_tokens: int,
    temperature: float | None,
    prompt_tokens: int,
    names: dict | None = None,
    extra: dict | None = None,
) -> Request:
    """The request for one rendered prompt (`prompt_tokens`: its count with the model's encoding;
    `extra`: more fields of the body, such as a review's structured-output schema)."""
    body = orjson.dumps(
        dialect.body(model, prompt, max_tokens, temperature, extra), option=orjson.OPT_SORT_KEYS
    )
    digest = hashlib.sha256(dialect.path.encode() + b"\n" + body).hexdigest()
    tokens = prompt_tokens + MESSAGE_OVERHEAD + REPLY_PRIMING
    return Request(item_id, seq, dialect, model, body, digest, tokens, max_tokens, names or {})
