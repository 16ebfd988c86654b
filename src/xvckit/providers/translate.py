"""Cross-dialect translation, so an OpenAI-dialect client can be served by an Anthropic model
and the reverse (issue 4, fallbacks across dialects). Pure functions and stream state
machines, no I/O.

    openai_to_anthropic_request(body, model)    chat.completions request -> Messages request
    anthropic_to_openai_request(body, model)    Messages request -> chat.completions request
                                                (both raise InvalidRequest for a field of the
                                                wrong type)
    anthropic_to_openai_response(body, model)   Messages response -> chat.completion
    openai_to_anthropic_response(body, model)   chat.completion -> Messages response
    openai_to_anthropic_error(status, body)     upstream OpenAI error body -> Anthropic's
    anthropic_to_openai_error(status, body)     upstream Anthropic error body -> OpenAI's
    AnthropicToOpenAIStream(model, include_usage).feed(event) -> bytes
    OpenAIToAnthropicStream(model).feed(event) -> bytes

`model` is always the model name to put in the output: the upstream model id for a request,
the name the client asked for in a response. Streams take one whole SSE event per `feed`
(as `sse.EventSplitter` yields them) and return zero or more whole events.

What maps: system prompts (system/developer messages <-> `system`), text and image content
(data URLs <-> base64 sources, URLs <-> url sources), inline PDFs, tool definitions, tool
choice (auto/none/required/named <-> auto/none/any/tool, `parallel_tool_calls: false` <->
`disable_parallel_tool_use`), assistant tool calls (JSON-string arguments <-> object input,
ids kept), tool results (`tool` messages <-> `tool_result` blocks of one user turn), output
limit (Anthropic requires one: DEFAULT_MAX_TOKENS when the OpenAI request has none),
temperature, top_p, stop sequences, streaming, end user id, JSON-schema output, stop reasons,
usage (Anthropic `input_tokens` excludes cached tokens, OpenAI `prompt_tokens` includes
them), ids (`msg_X` <-> `chatcmpl-X`) and error bodies.

What has no counterpart is dropped; each function's docstring names what it drops. In short:
OpenAI `n` (first choice only), penalties, `logit_bias`, logprobs, `seed`, `reasoning_effort`,
audio, predictions, `store`, OpenAI `metadata`, `service_tier`, legacy `functions`, custom
tools; Anthropic `top_k`, `thinking` and thinking blocks, `cache_control`, citations,
`is_error`, server and Anthropic-defined tools, containers, MCP servers, `stop_sequence`, file
references in either dialect, and in streams `ping`s.
"""

from __future__ import annotations

from xvckit.providers.translate_request import (
    DEFAULT_MAX_TOKENS,
    InvalidRequest,
    anthropic_to_openai_request,
    openai_to_anthropic_request,
)
from xvckit.providers.translate_response import (
    anthropic_to_openai_error,
    anthropic_to_openai_response,
    openai_to_anthropic_error,
    openai_to_anthropic_response,
)
from xvckit.providers.translate_stream import AnthropicToOpenAIStream, OpenAIToAnthropicStream

__all__ = [
    "DEFAULT_MAX_TOKENS",
    "AnthropicToOpenAIStream",
    "InvalidRequest",
    "OpenAIToAnthropicStream",
    "anthropic_to_openai_error",
    "anthropic_to_openai_request",
    "anthropic_to_openai_response",
    "openai_to_anthropic_error",
    "openai_to_anthropic_request",
    "openai_to_anthropic_response",
]
