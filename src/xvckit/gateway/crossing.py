"""Serving a client from a provider of the other dialect (an OpenAI-dialect tool on a Claude
model, or the reverse): the request, the answer and the stream are translated with
`xvckit.providers.translate`. Only chat completions and messages have a counterpart; legacy
completions (`completions=True`) cross as the chat request they ask for
(`xvckit.providers.completions`), their answer coming back as a chat answer made a completion."""

from __future__ import annotations

from collections.abc import Callable

import orjson

from xvckit.providers import completions as legacy
from xvckit.providers import translate

# Where each dialect's chat call goes, after the provider's base_url.
CHAT_PATH = {"openai": "/chat/completions", "anthropic": "/v1/messages"}


def request_body(upstream_kind: str, payload: dict, model: str, completions: bool = False) -> bytes:
    """The client's request in the upstream's dialect, for `model`."""
    if completions:
        payload = legacy.to_chat_request(payload)
    if upstream_kind == "anthropic":
        return orjson.dumps(translate.openai_to_anthropic_request(payload, model))
    return orjson.dumps(translate.anthropic_to_openai_request(payload, model))


def response_body(client_kind: str, status: int, data: bytes, model: str, completions: bool = False) -> bytes:
    """A whole upstream answer (or error) in the client's dialect."""
    if status != 200:
        if client_kind == "openai":
            return translate.anthropic_to_openai_error(status, data)
        return translate.openai_to_anthropic_error(status, data)
    try:
        body = orjson.loads(data)
    except orjson.JSONDecodeError:
        return data
    if client_kind == "openai":
        chat = translate.anthropic_to_openai_response(body, model)
        return orjson.dumps(legacy.from_chat_response(chat) if completions else chat)
    return orjson.dumps(translate.openai_to_anthropic_response(body, model))


def stream_translator(
    client_kind: str, model: str, include_usage: bool, completions: bool = False
) -> Callable[[bytes], bytes]:
    """Turns each whole upstream SSE event into zero or more events of the client's dialect."""
    if client_kind == "openai":
        chat = translate.AnthropicToOpenAIStream(model, include_usage=include_usage).feed
        if completions:
            text = legacy.ChatToCompletionStream().feed
            return lambda event: text(chat(event))
        return chat
    return translate.OpenAIToAnthropicStream(model).feed
