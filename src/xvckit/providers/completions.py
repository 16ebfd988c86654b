"""OpenAI's legacy completions (`POST /v1/completions`) as the chat completion they ask for,
and the chat answer as a completion, so that `translate` can carry them to and from an
upstream that has no legacy endpoint (Anthropic's Messages). Pure functions and a stream
state machine, no I/O.

Formats (https://platform.openai.com/docs/api-reference/completions): a completion is
`{id: "cmpl-...", object: "text_completion", created, model, system_fingerprint, choices:
[{text, index, logprobs, finish_reason: stop | length | content_filter}], usage}`; streamed
and whole answers share that shape: each chunk is a `text_completion` with the next piece of
`text` and `finish_reason` null until the last; with `stream_options.include_usage` every
chunk has `usage: null` and a chunk with `choices: []` and the usage comes before
`data: [DONE]`.

What maps: `prompt` (a string, or a list of one string) -> one user message; `max_tokens`
(`DEFAULT_MAX_TOKENS`, the API's 16, when absent or null); temperature, top_p, stop, seed,
the penalties, logit_bias, user, stream and stream_options as they are (`translate` drops
what the upstream has no counterpart for). The answer's message text -> `choices[0].text`,
finish reasons and usage as they are, `chatcmpl-X` -> `cmpl-X`. Refused with
`InvalidRequest` (a 400): several prompts or token-array prompts, `n` or `best_of` above 1,
`echo`, `logprobs`, `suffix`: a chat model has nothing to answer them with (a provider
that speaks legacy completions itself is sent the request untouched).
"""

from __future__ import annotations

from typing import Any

from xvckit.providers import sse
from xvckit.providers.translate_request import InvalidRequest

DEFAULT_MAX_TOKENS = 16  # the API's default `max_tokens`
_PASSED = (
    "model",
    "temperature",
    "top_p",
    "stop",
    "seed",
    "frequency_penalty",
    "presence_penalty",
    "logit_bias",
    "user",
    "stream",
    "stream_options",
)
# Fields a chat model cannot answer, and the value each may have all the same.
_UNTRANSLATABLE = (("echo", (None, False)), ("logprobs", (None,)), ("suffix", (None, "")))


def _prompt(value: Any) -> str:
    if isinstance(value, list) and len(value) == 1:
        value = value[0]
    if not isinstance(value, str) or not value:
        raise InvalidRequest(
            "'prompt' must be one non-empty string for a model served through chat "
            "(several prompts and token arrays need a provider that speaks legacy completions)"
        )
    return value


def to_chat_request(body: dict[str, Any]) -> dict[str, Any]:
    """The chat completions request that asks what the completions request `body` asks."""
    for field in ("n", "best_of"):
        if body.get(field) not in (None, 1):
            raise InvalidRequest(f"'{field}' must be 1 for a model served through chat")
    for field, allowed in _UNTRANSLATABLE:
        if body.get(field) not in allowed:
            raise InvalidRequest(
                f"'{field}' needs a provider that speaks legacy completions; "
                "this model is served through chat"
            )
    chat = {field: body[field] for field in _PASSED if field in body}
    chat["messages"] = [{"role": "user", "content": _prompt(body.get("prompt"))}]
    limit = body.get("max_tokens")
    chat["max_tokens"] = DEFAULT_MAX_TOKENS if limit is None else limit
    return chat


def completion_id(chat_id: Any) -> str:
    """`chatcmpl-X` -> `cmpl-X`: same suffix, so a log line can be traced to the upstream id."""
    return "cmpl-" + (chat_id if isinstance(chat_id, str) else "").removeprefix("chatcmpl-")


def from_chat_response(chat: dict[str, Any]) -> dict[str, Any]:
    """A chat.completion (its first choice) as a text_completion."""
    choice = (chat.get("choices") or [{}])[0]
    text = (choice.get("message") or {}).get("content")
    return {
        "id": completion_id(chat.get("id")),
        "object": "text_completion",
        "created": chat.get("created"),
        "model": chat.get("model"),
        "system_fingerprint": chat.get("system_fingerprint"),
        "choices": [
            {
                "text": text if isinstance(text, str) else "",
                "index": 0,
                "logprobs": None,
                "finish_reason": choice.get("finish_reason"),
            }
        ],
        "usage": chat.get("usage"),
    }


def from_chat_chunk(chunk: dict[str, Any]) -> dict[str, Any] | None:
    """A chat.completion.chunk as a text_completion chunk; None for one that carries nothing a
    completion has (the role-only first chunk)."""
    choices = []
    for choice in chunk.get("choices") or ():
        text = (choice.get("delta") or {}).get("content")
        finish = choice.get("finish_reason")
        if text or finish:
            index = choice.get("index", 0)
            choices.append({"text": text or "", "index": index, "logprobs": None, "finish_reason": finish})
    if not choices and not chunk.get("usage"):
        return None
    out = {
        "id": completion_id(chunk.get("id")),
        "object": "text_completion",
        "created": chunk.get("created"),
        "model": chunk.get("model"),
        "system_fingerprint": chunk.get("system_fingerprint"),
        "choices": choices,
    }
    if "usage" in chunk:
        out["usage"] = chunk["usage"]
    return out


class ChatToCompletionStream:
    """Chat chunk events in (one or several per `feed`), text_completion chunk events out;
    `data: [DONE]` and error events pass as they are."""

    __slots__ = ("_splitter",)

    def __init__(self) -> None:
        self._splitter = sse.EventSplitter()

    def feed(self, data: bytes) -> bytes:
        out = []
        for event in self._splitter.feed(data):
            chunk = sse.event_json(event)
            if chunk is None or "error" in chunk:
                out.append(event)
                continue
            completion = from_chat_chunk(chunk)
            if completion is not None:
                out.append(sse.encode(completion))
        return b"".join(out)
