"""A request's tokens, estimated before the call so pacing can reserve them (settled after).

What is counted: the text a model reads (message and system text, tool-call arguments, tool
results, tool definitions as JSON, `prompt` / `input` / `instructions`), a few tokens of
framing per message, and the output the request may produce (`max_tokens`,
`max_completion_tokens` or `max_output_tokens`, else `DEFAULT_OUTPUT_TOKENS`; none for
embeddings). Nothing else of the body is serialised or walked. Both are capped at the model's
context window (`providers.models`; DEFAULT_WINDOW for a model not in the table): a client's
`max_tokens: 500000` or 2**63-1 is never more than the model could use.

Encoders: `o200k_base` for the gpt-4o / gpt-4.1 / gpt-4.5 / gpt-5 / o-series families,
`cl100k_base` for everything else, Claude included (Anthropic publishes no tokenizer for
its current models, so this is only an approximation; Claude's count is often higher, which
the settle and the scale-up below absorb). Each encoder is loaded once
(from `$TIKTOKEN_CACHE_DIR` when set); if it cannot be loaded (no cache, no network) the
estimate falls back to characters / 4 and says so once in the log. Loading one takes
0.2-0.6 s, so the gateway loads those its models need in a thread as it starts (`preload`):
on the event loop it would hold every request in flight that long. A request that needs one
before the thread has it waits for the rest of that load only.

Cost: tiktoken encodes about 10-17 MB/s (60-90 µs per KB of text on the development
machine), all of it holding the event loop. Up to `EXACT_CHARS` of text is encoded whole;
beyond that `SAMPLES` evenly spread samples of `SAMPLE_CHARS` each are encoded and the
tokens-per-character ratio extrapolated, so a call never encodes more than about 6 KB.
Measured (`tests/test_pacing.py::test_estimate_cost`): ~5 µs for a short chat, ~230 µs at
the exact limit (4 KB), ~400 µs for a 1 MB body (most of it joining the text). Sampling error
on mixed source and prose (80 random concatenations of this repository's files): median 1.8%,
worst -6% / +6%. Pacing settles the real count after the call, and a lane whose calls keep
using more than estimated scales its estimates up (`Pacer.settle`).
"""

from __future__ import annotations

import functools
import logging
import math
import threading
from collections.abc import Callable, Iterable

from xvckit.providers.message_text import (
    MESSAGE_OVERHEAD,
    REPLY_PRIMING,
    content_parts,
    json_text,
    message_parts,
)
from xvckit.providers.models import DEFAULT_WINDOW, max_output, model_info
from xvckit.providers.sse import EventSplitter, event_json

log = logging.getLogger("xvckit.gateway.pacing")

DEFAULT_OUTPUT_TOKENS = 1024  # a request that names no output limit
EXACT_CHARS = 4_200  # text up to this length is encoded whole
SAMPLES = 12  # beyond it: this many samples, evenly spread, and the ratio extrapolated
SAMPLE_CHARS = 500

_encoders: dict[str, Callable[[str], int] | None] = {}
_loads: dict[str, threading.Lock] = {}  # one per encoder: it is loaded once, whichever thread asks


@functools.lru_cache(maxsize=256)
def model_limits(model: str) -> tuple[str, int, int]:
    """(tiktoken encoding, context window, most output a request may ask for) used to estimate
    `model`; cl100k_base for a model not in the table (open models' tokenizers make more tokens
    than o200k_base: it errs high)."""
    encoding, window = model_info(model) or ("cl100k_base", DEFAULT_WINDOW)
    return encoding, window, max_output(model)


def encoding_name(model: str) -> str:
    return model_limits(model)[0]


def _counter(name: str) -> Callable[[str], int] | None:
    if name in _encoders:
        return _encoders[name]
    with _loads.setdefault(name, threading.Lock()):
        if name not in _encoders:
            _encoders[name] = _load(name)
    return _encoders[name]


def _load(name: str) -> Callable[[str], int] | None:
    counter = None
    try:
        import tiktoken

        encode = tiktoken.get_encoding(name).encode_ordinary

        def counter(text: str) -> int:
            return len(encode(text))

    except Exception as exc:  # no cache and no network, or tiktoken missing
        log.warning("token estimates use characters/4: tiktoken's %s is unavailable (%s)", name, exc)
    return counter


def preload(models: Iterable[str]) -> threading.Thread:
    """Load the encoders `models` need, in a thread of its own."""
    names = sorted({encoding_name(model) for model in models} - _encoders.keys())
    thread = threading.Thread(target=lambda: [_counter(name) for name in names], name="xvckit-tokenizers")
    thread.daemon = True
    thread.start()
    return thread


def count_text(text: str, model: str) -> int:
    """Tokens in `text` for `model`'s encoding; long text is sampled (see the module docs)."""
    if not text:
        return 0
    counter = _counter(encoding_name(model))
    if counter is None:
        return math.ceil(len(text) / 4)
    size = len(text)
    if size <= EXACT_CHARS:
        return counter(text)
    step = (size - SAMPLE_CHARS) // (SAMPLES - 1)
    sampled = sum(counter(text[i * step : i * step + SAMPLE_CHARS]) for i in range(SAMPLES))
    return math.ceil(sampled * size / (SAMPLES * SAMPLE_CHARS))


def estimate_parts(body: dict, model: str, default_output: int = DEFAULT_OUTPUT_TOKENS) -> tuple[int, int]:
    """(input tokens, output it may produce) of an OpenAI or Anthropic request body: pacing
    reserves their sum, a budget their price."""
    parts: list[str] = []
    extra = 0
    messages = body.get("messages")
    if isinstance(messages, list):
        extra += REPLY_PRIMING
        for message in messages:
            if isinstance(message, dict):
                extra += MESSAGE_OVERHEAD + message_parts(message, parts)
    for field in ("system", "instructions", "prompt", "input"):
        value = body.get(field)
        if value is not None:
            extra += content_parts(value, parts)  # a string, or blocks / Responses API items
            if isinstance(value, list):
                extra += MESSAGE_OVERHEAD * sum(
                    1 for item in value if isinstance(item, dict) and "role" in item
                )
    tools = body.get("tools") or body.get("functions")
    if tools:
        parts.append(json_text(tools))
    text = "\n".join(parts)
    window = model_limits(model)[1]
    given = count_text(text, model) + extra
    if given > window:
        given = window
    allowed = asked_output(body)
    if allowed is None:
        embedding = "messages" not in body and "input" in body and "embed" in model.lower()
        allowed = 0 if embedding else default_output
    room = window - given
    return given, allowed if allowed < room else room


def asked_output(body: dict) -> int | None:
    """The output limit the request names (`max_completion_tokens`, `max_tokens` or
    `max_output_tokens`), None when it names none."""
    for field in ("max_completion_tokens", "max_tokens", "max_output_tokens"):
        value = body.get(field)
        if type(value) is int and value > 0:
            return value
    return None


def output_ceiling(body: dict, model: str, allowed: int) -> int:
    """The most output a request can produce, what a budget must reserve for: `allowed` (from
    `estimate_parts`) when it names a limit, else the model's own maximum."""
    return allowed if asked_output(body) is not None else model_limits(model)[2]


def streamed_output_tokens(data: bytes, openai_stream: bool, model: str) -> int:
    """Output tokens in `data`, the start of an upstream's SSE stream (in its dialect): the text,
    tool names and arguments, refusals and thinking of its deltas, a legacy completion's text,
    a Responses API event's delta.
    For a stream that ended without reporting its usage (broken off, or its client left): not
    on the hot path."""
    parts: list[str] = []
    for event in EventSplitter().feed(data):
        chunk = event_json(event)
        if chunk is not None:
            _delta_texts(chunk, openai_stream, parts)
    return count_text("".join(parts), model)


def _delta_texts(chunk: dict, openai_stream: bool, parts: list[str]) -> None:
    kind = chunk.get("type")
    if isinstance(kind, str) and kind.startswith("response.") and kind.endswith(".delta"):
        _texts(chunk, ("delta",), parts)  # a Responses API event: text, refusal, reasoning, arguments
    elif openai_stream:
        choices = chunk.get("choices")
        for choice in choices if isinstance(choices, list) else ():
            if not isinstance(choice, dict):
                continue
            _texts(choice, ("text",), parts)  # a legacy completion's chunk
            delta = choice.get("delta")
            if isinstance(delta, dict):
                _texts(delta, ("content", "refusal", "reasoning_content", "reasoning"), parts)
                calls = delta.get("tool_calls")
                for call in calls if isinstance(calls, list) else ():
                    function = call.get("function") if isinstance(call, dict) else None
                    if isinstance(function, dict):
                        _texts(function, ("name", "arguments"), parts)
    elif chunk.get("type") == "content_block_delta" and isinstance(chunk.get("delta"), dict):
        _texts(chunk["delta"], ("text", "partial_json", "thinking"), parts)
    elif chunk.get("type") == "content_block_start" and isinstance(chunk.get("content_block"), dict):
        _texts(chunk["content_block"], ("text", "name"), parts)


def _texts(obj: dict, fields: tuple[str, ...], parts: list[str]) -> None:
    for field in fields:
        value = obj.get(field)
        if isinstance(value, str):
            parts.append(value)
