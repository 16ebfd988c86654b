"""The exact response cache: an answer given once is given again, from memory or Redis, without
an upstream call (issue 4). The gateway decides when a request may use it (`x-xvckit-cache: on`,
per key, per model); this module keys, stores and replays.

Keys (`cache_key`): SHA-256 over the endpoint, the upstream model id, a scope (the gateway
gives the caller's team, else its key, else the master key's own: a hit must never tell one
caller what another asked), the request headers that change an answer (`KEY_HEADERS`:
`anthropic-beta`, `anthropic-version`, `openai-beta`) and the payload, normalized:

- top-level keys sorted; nested values kept as sent (in a JSON schema the order of the
  properties is the order the model writes them, so it can change the answer);
- left out, because they do not change the answer (`IGNORED_FIELDS`): `stream` and
  `stream_options` (streamed and whole requests share one entry; the replay makes either),
  `user`, `safety_identifier`, `metadata` (end-user ids and tags), `store`, `prompt_cache_key`,
  `service_tier` (where and how the provider runs and bills the call), and `n` when it is 1;
  but a Responses API answer echoes those fields, so for it only the stream fields are left out;
  `model` is replaced by the upstream model id, so aliases of one model share entries;
- a top-level number that is integral is written as an integer (`temperature: 1` and `1.0`
  are one key). Other defaults are not filled in: `temperature` absent and `temperature: 1`
  are two keys (a provider's defaults can change).

Everything else stays: messages, system, tools, tool_choice, temperature, top_p, max_tokens,
seed, stop, response_format, logprobs, `n` > 1 ...

Entries (`CachedResponse`): status, the headers worth replaying (`stored_headers`), and the
body: the whole JSON answer, or for an answer that was streamed the SSE events as the upstream
sent them (the gateway stores complete, error-free streams only, with OpenAI's usage chunk,
which it always asks for). `replay` serves an entry to either kind of request:

- whole body -> stream (`replay_as_stream`): OpenAI: per choice a chunk with the role, content,
  refusal, annotations and logprobs, a chunk per tool call, a finish chunk; with
  `include_usage` every chunk carries `usage: null` and a usage chunk comes before
  `data: [DONE]`. Anthropic: `message_start`, per content block `content_block_start`, its
  deltas (`text_delta` and `citations_delta`s, `thinking_delta` and `signature_delta`,
  `input_json_delta` for tool_use / server_tool_use; other blocks whole in the start event),
  `content_block_stop`, then `message_delta` (stop reason, full usage) and `message_stop`.
- stream -> stream: the stored events; OpenAI's usage chunk dropped or added to follow the
  request's `stream_options.include_usage`.
- stream -> whole body (`replay_as_body`): OpenAI: deltas accumulated per choice (content,
  refusal, tool calls by index with their arguments, logprobs, annotations), the usage chunk's
  usage; Anthropic: `message_start`'s message with the blocks rebuilt from their deltas (tool
  input parsed from the JSON fragments) and `message_delta`'s stop reason and usage.

Responses API answers (`responses` dialect): whole -> stream as the events that stream the
response (`providers/responses_events.py`); stream -> whole as the response its
`response.completed` event carries; stream -> stream as stored.

Body -> stream -> body gives back the same JSON object (tests/test_cache.py checks it for both
dialects, and that the official SDKs read every replay as they read the provider).

Stores: `ResponseCache`, in memory: LRU bounded by total bytes (`max_bytes`), a TTL per entry,
entries larger than `max_entry_bytes` not stored; sizes are the entries' encoded sizes.
`RedisResponseCache`, shared by replicas: one string per entry, `SET <prefix><key> <value> PX
<ttl>`, the value `CachedResponse.to_bytes()` (a fixed binary header, the headers, the raw body:
no JSON or base64 around the body). Redis bounds its memory with its own `maxmemory` and an LRU
policy (`volatile-lru` or `allkeys-lru`: every entry has a TTL). Redis unavailable: the replica
carries on with a local `ResponseCache` and says so (`degraded`), and uses Redis again when a
background probe finds it back (shared_state.py).

Cost of a lookup: `cache_key` ~4 us for a small chat request, ~80 us for 100 KB of messages
(one orjson.dumps and a SHA-256); then a dict lookup, or one Redis GET round trip.

The replay functions are protocol knowledge without I/O; they live here until another room
needs them (then `xvckit.providers`).
"""

from __future__ import annotations

import hashlib
import logging
import struct
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

import orjson
from redis.asyncio import Redis

from xvckit.asgi import EVENT_STREAM, JSON, Headers
from xvckit.gateway.shared_state import ERRORS, RedisLink
from xvckit.providers import Usage, openai, responses_events, sse

log = logging.getLogger("xvckit.gateway.cache")

Dialect = Literal["openai", "anthropic", "responses"]

# Request fields that do not change the answer: left out of the key.
IGNORED_FIELDS = frozenset(
    {
        "stream",
        "stream_options",
        "user",
        "safety_identifier",
        "metadata",
        "store",
        "prompt_cache_key",
        "service_tier",
    }
)
# Request headers that do change it (beta features, API version): part of the key.
KEY_HEADERS = (b"anthropic-beta", b"anthropic-version", b"openai-beta")
# Response headers kept with an entry; the rest (request ids, rate limits, dates, cookies) are
# about the original call, not the answer.
STORED_HEADERS = frozenset({b"content-type", b"openai-model", b"openai-version"})

DEFAULT_MAX_BYTES = 64 << 20
DEFAULT_MAX_ENTRY_BYTES = 1 << 20
SWEEP_S = 10.0  # how often a local store drops its expired entries

_KEY_VERSION = "xvckit-cache-1"
_DROPPED = IGNORED_FIELDS | {"model"}
# The Responses API echoes `user`, `metadata`, `store` and the rest in its answer: a hit must
# not hand one caller's to another, so for it only the stream fields are left out.
_RESPONSES_DROPPED = frozenset({"stream", "stream_options", "model"})
_MAX_SAFE_INT = 2**53
_DONE = b"data: [DONE]\n\n"


# --- keys ------------------------------------------------------------------------------------


def canonical(payload: Mapping[str, Any], ignore: frozenset[str] = frozenset()) -> bytes:
    """`payload` as bytes that do not depend on the order of its top-level keys: sorted
    `[name, value]` pairs, without the fields in `ignore` (and without `n` when it is 1),
    integral top-level numbers as integers."""
    items = []
    for name in sorted(payload):
        if name in ignore:
            continue
        value = payload[name]
        if type(value) is float and value.is_integer() and abs(value) < _MAX_SAFE_INT:
            value = int(value)
        if name == "n" and value == 1 and type(value) is int:
            continue
        items.append((name, value))
    return orjson.dumps(items)


def cache_key(
    endpoint: str,
    model: str,
    payload: Mapping[str, Any],
    *,
    headers: Mapping[bytes, bytes] | None = None,
    scope: str = "",
) -> str:
    """The cache key of a request (64 hex digits): see the module docstring for what counts.

    `endpoint` names the API (the gateway's endpoint name, e.g. "chat" or "messages"), `model`
    the upstream model id, `headers` the request's headers (lower-case names, as the proxy's
    header dict has them), `scope` who may share the entry ("" for everyone; the proxy passes
    the caller's team or key)."""
    headers = headers or {}
    variant = [headers.get(name, b"").decode("latin-1") for name in KEY_HEADERS]
    digest = hashlib.sha256(orjson.dumps([_KEY_VERSION, endpoint, model, scope, variant]))
    digest.update(canonical(payload, _RESPONSES_DROPPED if endpoint == "responses" else _DROPPED))
    return digest.hexdigest()


# --- entries ---------------------------------------------------------------------------------

# magic, format version, status, flags (1: streamed), created_at, cost_usd, input, output,
# cached and cache-write tokens, number of headers. Then per header: name and value lengths,
# name, value. Then the body, to the end.
_HEAD = struct.Struct("<2sBHBdd4QH")
_HEADER = struct.Struct("<HI")
_MAGIC = b"xc"
_FORMAT = 1


@dataclass(frozen=True, slots=True)
class CachedResponse:
    """An answer as the gateway can give it again. `body` is the whole JSON body, or, when
    `streamed`, the SSE events as received (each ending in a blank line). `usage` and
    `cost_usd` are what the original call used and cost: what a hit saves."""

    status: int
    headers: Headers
    body: bytes
    streamed: bool = False
    usage: Usage = field(default_factory=Usage)
    cost_usd: float = 0.0
    created_at: float = field(default_factory=time.time)  # wall clock, for the `age` header

    @property
    def size(self) -> int:
        """Bytes this entry takes encoded (`len(self.to_bytes())`): what the size limits count."""
        return _HEAD.size + sum(_HEADER.size + len(n) + len(v) for n, v in self.headers) + len(self.body)

    def to_bytes(self) -> bytes:
        u = self.usage
        parts = [
            _HEAD.pack(
                _MAGIC,
                _FORMAT,
                self.status,
                1 if self.streamed else 0,
                self.created_at,
                self.cost_usd,
                max(0, u.input_tokens),
                max(0, u.output_tokens),
                max(0, u.cached_tokens),
                max(0, u.cache_write_tokens),
                len(self.headers),
            )
        ]
        for name, value in self.headers:
            parts += (_HEADER.pack(len(name), len(value)), name, value)
        parts.append(self.body)
        return b"".join(parts)

    @classmethod
    def from_bytes(cls, data: bytes) -> CachedResponse:
        """The entry `to_bytes` wrote; ValueError for anything else (another format version)."""
        try:
            magic, version, status, flags, created, cost, i, o, c, w, count = _HEAD.unpack_from(data)
            if magic != _MAGIC or version != _FORMAT:
                raise ValueError(f"not a cached response of format {_FORMAT}")
            at = _HEAD.size
            headers = []
            for _ in range(count):
                name_len, value_len = _HEADER.unpack_from(data, at)
                at += _HEADER.size
                name, value = data[at : at + name_len], data[at + name_len : at + name_len + value_len]
                if len(name) != name_len or len(value) != value_len:
                    raise ValueError("truncated cached response")
                headers.append((bytes(name), bytes(value)))
                at += name_len + value_len
        except struct.error as exc:
            raise ValueError(f"truncated cached response: {exc}") from None
        return cls(status, headers, bytes(data[at:]), bool(flags & 1), Usage(i, o, c, w), cost, created)


def stored_headers(headers: Iterable[tuple[bytes, bytes]]) -> Headers:
    """The response headers worth keeping with an entry (`STORED_HEADERS`)."""
    return [(name, value) for name, value in headers if name.lower() in STORED_HEADERS]


# --- replay ----------------------------------------------------------------------------------


def replay(
    entry: CachedResponse,
    dialect: Dialect,
    *,
    stream: bool,
    include_usage: bool = False,
    now: float | None = None,
) -> tuple[int, Headers, bytes]:
    """Status, headers and body to answer a request with `entry`: as SSE when the request
    streams, else as one JSON body. An error entry (status other than 200) is given as it was
    stored. The headers are the stored ones with `content-type`, `content-length` and `age`
    (seconds since the answer was made) set; the caller adds its own (request id, ...)."""
    if entry.status != 200:
        body, content_type = entry.body, _stored_content_type(entry)
    elif stream:
        body, content_type = replay_as_stream(entry, dialect, include_usage), EVENT_STREAM
    else:
        body, content_type = replay_as_body(entry, dialect), JSON
    age = max(0, int((time.time() if now is None else now) - entry.created_at))
    headers = [(n, v) for n, v in entry.headers if n.lower() not in (b"content-type", b"content-length")]
    headers += [
        (b"content-type", content_type),
        (b"content-length", str(len(body)).encode()),
        (b"age", str(age).encode()),
    ]
    return entry.status, headers, body


def replay_as_stream(entry: CachedResponse, dialect: Dialect, include_usage: bool = False) -> bytes:
    """A 200 entry as the SSE events of `dialect` (`include_usage`: OpenAI's
    `stream_options.include_usage` of the request being answered; Anthropic always has usage)."""
    _check_ok(entry)
    if entry.streamed:
        if dialect == "openai":
            return _openai_restream(entry, include_usage)
        return entry.body
    body = _json_object(entry.body)
    if dialect == "openai":
        return _openai_body_to_stream(body, include_usage)
    if dialect == "responses":
        return responses_events.events_of(body)
    return _anthropic_body_to_stream(body)


def replay_as_body(entry: CachedResponse, dialect: Dialect) -> bytes:
    """A 200 entry as one JSON body of `dialect` (rebuilt from the events when it was streamed)."""
    _check_ok(entry)
    if not entry.streamed:
        return entry.body
    events = _split(entry.body)
    if dialect == "responses":
        return orjson.dumps(responses_events.response_from_events(events))
    body = _openai_stream_to_body(events) if dialect == "openai" else _anthropic_stream_to_body(events)
    return orjson.dumps(body)


def _check_ok(entry: CachedResponse) -> None:
    if entry.status != 200:
        raise ValueError(f"only a 200 answer can be replayed as another kind, not {entry.status}")


def _stored_content_type(entry: CachedResponse) -> bytes:
    for name, value in entry.headers:
        if name.lower() == b"content-type":
            return value
    return EVENT_STREAM if entry.streamed else JSON


def _json_object(body: bytes) -> dict[str, Any]:
    value = orjson.loads(body)
    if not isinstance(value, dict):
        raise ValueError("a cached answer must be a JSON object")
    return value


def _split(stream: bytes) -> list[bytes]:
    splitter = sse.EventSplitter()
    events = splitter.feed(stream)
    if splitter.pending.strip():
        events.append(splitter.pending + b"\n\n")
    return events


# OpenAI ---------------------------------------------------------------------------------------

_CHUNK_EVERY = ("service_tier", "system_fingerprint")  # top-level fields every chunk repeats
_CHUNK_OWN = frozenset({"id", "object", "created", "model", "choices", "usage", "obfuscation"})
_CHOICE_OWN = frozenset({"index", "message", "delta", "logprobs", "finish_reason"})


def _openai_body_to_stream(body: dict[str, Any], include_usage: bool) -> bytes:
    base: dict[str, Any] = {
        "id": body.get("id"),
        "object": "chat.completion.chunk",
        "created": body.get("created"),
        "model": body.get("model"),
    }
    base.update((name, body[name]) for name in _CHUNK_EVERY if name in body)
    if include_usage:
        base["usage"] = None
    extra = {k: v for k, v in body.items() if k not in _CHUNK_OWN and k not in _CHUNK_EVERY}
    out: list[bytes] = []

    def chunk(choice: dict[str, Any], **fields: Any) -> None:
        data = {**base, "choices": [choice]}
        if not out:
            data.update(extra)  # e.g. Azure's prompt_filter_results, once
        data.update(fields)
        out.append(sse.encode(data))

    for choice in body.get("choices") or ():
        if not isinstance(choice, dict):
            continue
        index = choice.get("index", 0)
        message = choice.get("message") or {}
        delta = {
            "role": message.get("role") or "assistant",
            "content": message.get("content"),
            "refusal": message.get("refusal"),
        }
        delta.update((k, v) for k, v in message.items() if k not in delta and k not in _CALLS)
        first = {"index": index, "delta": delta, "logprobs": choice.get("logprobs"), "finish_reason": None}
        first.update((k, v) for k, v in choice.items() if k not in _CHOICE_OWN)
        chunk(first)
        for position, call in enumerate(message.get("tool_calls") or ()):
            tool_delta = {"tool_calls": [{"index": position, **call}]}
            chunk({"index": index, "delta": tool_delta, "logprobs": None, "finish_reason": None})
        if message.get("function_call"):
            legacy = {"function_call": message["function_call"]}
            chunk({"index": index, "delta": legacy, "logprobs": None, "finish_reason": None})
        chunk({"index": index, "delta": {}, "logprobs": None, "finish_reason": choice.get("finish_reason")})
    if include_usage:
        out.append(sse.encode({**base, "choices": [], "usage": body.get("usage")}))
    out.append(_DONE)
    return b"".join(out)


_CALLS = frozenset({"tool_calls", "function_call"})


def _openai_stream_to_body(events: list[bytes]) -> dict[str, Any]:
    body: dict[str, Any] = {"id": None, "object": "chat.completion", "created": None, "model": None}
    choices: dict[int, dict[str, Any]] = {}
    usage = None
    for event in events:
        chunk = sse.event_json(event)
        if chunk is None or "choices" not in chunk:
            continue  # [DONE], or an error event (not stored in a cache)
        for name, value in chunk.items():
            if name not in _CHUNK_OWN or (name in ("id", "created", "model") and body[name] is None):
                body[name] = value
        if chunk.get("usage"):
            usage = chunk["usage"]
        for choice in chunk["choices"] or ():
            index = choice.get("index", 0)
            acc = choices.get(index)
            if acc is None:
                acc = choices[index] = {
                    "index": index,
                    "message": {},
                    "logprobs": None,
                    "finish_reason": None,
                }
            for name, value in choice.items():
                if name == "delta":
                    _accumulate(acc["message"], value or {})
                elif name == "logprobs":
                    if value:
                        acc["logprobs"] = _accumulate(acc["logprobs"] or {}, value)
                elif name == "finish_reason":
                    acc["finish_reason"] = value or acc["finish_reason"]
                elif name != "index":
                    acc[name] = value
    for acc in choices.values():
        message = acc["message"]
        message.setdefault("role", "assistant")
        message.setdefault("content", None)
        message.setdefault("refusal", None)
        for call in message.get("tool_calls") or ():
            call.pop("index", None)  # a whole answer's tool calls have no index
    body.setdefault("system_fingerprint", None)
    body["choices"] = [choices[index] for index in sorted(choices)]
    body["usage"] = usage
    return body


def _accumulate(acc: dict[str, Any], delta: dict[str, Any]) -> dict[str, Any]:
    """Merge one chunk's delta into what came before, as the OpenAI SDK does: strings append,
    objects merge, lists of `index`-ed objects merge by index, other lists extend; `index`,
    `type`, `id` and `role` are set, not appended."""
    for name, value in delta.items():
        old = acc.get(name)
        if _indexed(value):
            acc[name] = _merge_indexed(old if isinstance(old, list) else [], value)
        elif old is None or (name in ("index", "type", "id", "role") and value is not None):
            acc[name] = value
        elif isinstance(old, str) and isinstance(value, str):
            acc[name] = old + value
        elif isinstance(old, dict) and isinstance(value, dict):
            _accumulate(old, value)
        elif isinstance(old, list) and isinstance(value, list):
            old.extend(value)
        elif value is not None:
            acc[name] = value
    return acc


def _indexed(value: Any) -> bool:
    return (
        isinstance(value, list) and bool(value) and all(isinstance(v, dict) and "index" in v for v in value)
    )


def _merge_indexed(acc: list[dict[str, Any]], entries: list[dict[str, Any]]) -> list[dict[str, Any]]:
    for entry in entries:
        for old in acc:
            if old.get("index") == entry["index"]:
                _accumulate(old, entry)
                break
        else:
            acc.append(_accumulate({}, entry))
    return acc


def _openai_restream(entry: CachedResponse, include_usage: bool) -> bytes:
    """The stored events, with the usage chunk there or not as this request asked."""
    out: list[bytes] = []
    usage_chunk: bytes | None = None
    first: dict[str, Any] | None = None
    for event in _split(entry.body):
        if event.startswith(_DONE[:12]):
            continue
        chunk = sse.event_json(event)
        if chunk is not None and openai.is_usage_only_chunk(chunk):
            usage_chunk = event
            continue
        if first is None and chunk is not None:
            first = chunk
        out.append(event)
    if include_usage:
        if usage_chunk is None:  # stored without one: made from the entry's usage
            base = {k: (first or {}).get(k) for k in ("id", "object", "created", "model")}
            usage_chunk = sse.encode({**base, "choices": [], "usage": _openai_usage(entry.usage)})
        out.append(usage_chunk)
    out.append(_DONE)
    return b"".join(out)


def _openai_usage(usage: Usage) -> dict[str, Any]:
    return {
        "prompt_tokens": usage.input_tokens,
        "completion_tokens": usage.output_tokens,
        "total_tokens": usage.input_tokens + usage.output_tokens,
        "prompt_tokens_details": {"cached_tokens": usage.cached_tokens},
    }


# Anthropic ------------------------------------------------------------------------------------

_STREAMED_INPUT = frozenset({"tool_use", "server_tool_use"})  # input sent as input_json_delta
_MESSAGE_END = ("stop_reason", "stop_sequence", "stop_details")


def _event(data: dict[str, Any]) -> bytes:
    return sse.encode(data, data["type"])


def _anthropic_body_to_stream(body: dict[str, Any]) -> bytes:
    usage = body.get("usage") or {}
    start = {k: v for k, v in body.items() if k != "content" and k not in _MESSAGE_END}
    start.update(
        content=[],
        stop_reason=None,
        stop_sequence=None,
        usage={**usage, "output_tokens": min(1, usage.get("output_tokens") or 0)},
    )
    out = [_event({"type": "message_start", "message": start})]
    for index, block in enumerate(body.get("content") or ()):
        opening, deltas = _block_events(block)
        out.append(_event({"type": "content_block_start", "index": index, "content_block": opening}))
        out += (_event({"type": "content_block_delta", "index": index, "delta": d}) for d in deltas)
        out.append(_event({"type": "content_block_stop", "index": index}))
    delta = {"stop_reason": body.get("stop_reason"), "stop_sequence": body.get("stop_sequence")}
    if "stop_details" in body:
        delta["stop_details"] = body["stop_details"]
    out.append(_event({"type": "message_delta", "delta": delta, "usage": usage}))
    out.append(_event({"type": "message_stop"}))
    return b"".join(out)


def _block_events(block: dict[str, Any]) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """A content block's `content_block_start` payload and its deltas."""
    kind = block.get("type")
    if kind == "text":
        deltas = [{"type": "text_delta", "text": block["text"]}] if block.get("text") else []
        opening = {**block, "text": ""}
        citations = block.get("citations")
        if citations:
            opening["citations"] = []
            deltas += ({"type": "citations_delta", "citation": c} for c in citations)
        return opening, deltas
    if kind == "thinking":
        deltas = [{"type": "thinking_delta", "thinking": block["thinking"]}] if block.get("thinking") else []
        if block.get("signature"):
            deltas.append({"type": "signature_delta", "signature": block["signature"]})
        return {**block, "thinking": "", "signature": ""}, deltas
    if kind in _STREAMED_INPUT:
        given = block.get("input")
        deltas = [{"type": "input_json_delta", "partial_json": orjson.dumps(given).decode()}] if given else []
        return {**block, "input": {}}, deltas
    return block, []  # redacted thinking, tool results, ...: whole in the start event


def _anthropic_stream_to_body(events: list[bytes]) -> dict[str, Any]:
    message: dict[str, Any] = {}
    blocks: dict[int, dict[str, Any]] = {}
    inputs: dict[int, str] = {}
    for event in events:
        data = sse.event_json(event)
        kind = data.get("type") if data else None
        if kind == "message_start":
            message = dict(data.get("message") or {})
            message["usage"] = dict(message.get("usage") or {})
        elif kind == "content_block_start":
            blocks[data.get("index", 0)] = dict(data.get("content_block") or {})
        elif kind == "content_block_delta":
            index = data.get("index", 0)
            block, delta = blocks.setdefault(index, {}), data.get("delta") or {}
            what = delta.get("type")
            if what == "text_delta":
                block["text"] = (block.get("text") or "") + (delta.get("text") or "")
            elif what == "input_json_delta":
                inputs[index] = inputs.get(index, "") + (delta.get("partial_json") or "")
            elif what == "thinking_delta":
                block["thinking"] = (block.get("thinking") or "") + (delta.get("thinking") or "")
            elif what == "signature_delta":
                block["signature"] = delta.get("signature")
            elif what == "citations_delta":
                block["citations"] = [*(block.get("citations") or ()), delta.get("citation")]
        elif kind == "message_delta":
            for name, value in (data.get("delta") or {}).items():
                if value is not None or name in _MESSAGE_END:
                    message[name] = value
            usage = message.setdefault("usage", {})
            usage.update((k, v) for k, v in (data.get("usage") or {}).items() if v is not None)
    for index, text in inputs.items():
        try:
            blocks[index]["input"] = orjson.loads(text) if text.strip() else {}
        except orjson.JSONDecodeError:
            blocks[index]["input"] = {}
    message["content"] = [blocks[index] for index in sorted(blocks)]
    return message


# --- stores ----------------------------------------------------------------------------------


@dataclass(slots=True)
class _Slot:
    entry: CachedResponse
    size: int
    expires_at: float


class ResponseCache:
    """Entries in this process: least recently used first out when the total passes
    `max_bytes`, each for its TTL; an entry above `max_entry_bytes` is not stored."""

    def __init__(
        self,
        max_bytes: int = DEFAULT_MAX_BYTES,
        max_entry_bytes: int = DEFAULT_MAX_ENTRY_BYTES,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.max_bytes = max_bytes
        self.max_entry_bytes = min(max_entry_bytes, max_bytes)
        self.clock = clock
        self._slots: OrderedDict[str, _Slot] = OrderedDict()
        self._bytes = 0
        self._sweep_at = clock() + SWEEP_S
        self._counts = dict.fromkeys(("hits", "misses", "stores", "too_large", "evictions", "expired"), 0)

    async def get(self, key: str) -> CachedResponse | None:
        slot = self._slots.get(key)
        if slot is not None and slot.expires_at <= self.clock():
            self._drop(key, "expired")
            slot = None
        if slot is None:
            self._counts["misses"] += 1
            return None
        self._slots.move_to_end(key)
        self._counts["hits"] += 1
        return slot.entry

    async def put(self, key: str, entry: CachedResponse, ttl_s: float) -> bool:
        """Keep `entry` under `key` for `ttl_s` seconds; False when it is too large (or ttl_s <= 0)."""
        size = entry.size
        if size > self.max_entry_bytes:
            self._counts["too_large"] += 1
            return False
        if ttl_s <= 0:
            return False
        now = self.clock()
        if now >= self._sweep_at:
            self._sweep(now)
        if key in self._slots:
            self._drop(key, None)
        self._slots[key] = _Slot(entry, size, now + ttl_s)
        self._bytes += size
        self._counts["stores"] += 1
        while self._bytes > self.max_bytes:
            self._drop(next(iter(self._slots)), "evictions")
        return True

    async def delete(self, key: str) -> None:
        if key in self._slots:
            self._drop(key, None)

    def _drop(self, key: str, reason: str | None) -> None:
        slot = self._slots.pop(key)
        self._bytes -= slot.size
        if reason:
            self._counts[reason] += 1

    def _sweep(self, now: float) -> None:
        self._sweep_at = now + SWEEP_S
        for key in [key for key, slot in self._slots.items() if slot.expires_at <= now]:
            self._drop(key, "expired")

    def stats(self) -> dict[str, int]:
        """hits, misses, stores, too_large, evictions, expired; bytes and entries held now."""
        return {**self._counts, "bytes": self._bytes, "entries": len(self._slots)}

    def clear(self) -> None:
        self._slots.clear()
        self._bytes = 0

    async def aclose(self) -> None:
        self.clear()


class RedisResponseCache:
    """`ResponseCache` shared by replicas through Redis (`SET ... PX`); local when Redis is not
    there. `max_bytes` bounds the local fallback only (Redis has `maxmemory`); `stats()` counts
    this replica's hits and misses, and `bytes`/`entries` held locally."""

    def __init__(
        self,
        redis: str | Redis,
        *,
        prefix: str = "xvckit:cache:",
        max_bytes: int = DEFAULT_MAX_BYTES,
        max_entry_bytes: int = DEFAULT_MAX_ENTRY_BYTES,
        timeout_s: float = 0.25,
        retry_s: float = 2.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.local = ResponseCache(max_bytes, max_entry_bytes, clock=clock)
        self.max_entry_bytes = max_entry_bytes
        self._prefix = prefix
        self._link = RedisLink(
            redis,
            what="response cache",
            log=log,
            timeout_s=timeout_s,
            retry_s=retry_s,
            clock=clock,
            on_recover=self._recovered,
        )
        self._counts = dict.fromkeys(("hits", "misses", "stores", "too_large"), 0)

    @property
    def degraded(self) -> str | None:
        """Why the cache is this replica's own for now (for /readyz and logs), or None."""
        return self._link.degraded

    async def get(self, key: str) -> CachedResponse | None:
        if self._link.local():
            return self._count(await self.local.get(key))
        try:
            data = await self._link.redis.get(self._prefix + key)
        except ERRORS as exc:
            self._link.fail(exc)
            return self._count(await self.local.get(key))
        if data is None:
            return self._count(None)
        try:
            return self._count(CachedResponse.from_bytes(data))
        except ValueError as exc:  # another format (a newer or older replica): a miss
            log.debug("cache entry %s unreadable: %s", key, exc)
            return self._count(None)

    async def put(self, key: str, entry: CachedResponse, ttl_s: float) -> bool:
        """Keep `entry` under `key` for `ttl_s` seconds; False when it is too large (or ttl_s <= 0)."""
        if entry.size > self.max_entry_bytes:
            self._counts["too_large"] += 1
            return False
        if ttl_s <= 0:
            return False
        if self._link.local():
            return self._stored(await self.local.put(key, entry, ttl_s))
        try:
            await self._link.redis.set(self._prefix + key, entry.to_bytes(), px=max(1, round(ttl_s * 1000)))
        except ERRORS as exc:
            self._link.fail(exc)
            return self._stored(await self.local.put(key, entry, ttl_s))
        return self._stored(True)

    async def delete(self, key: str) -> None:
        await self.local.delete(key)
        if not self._link.local():
            try:
                await self._link.redis.delete(self._prefix + key)
            except ERRORS as exc:
                self._link.fail(exc)

    def _count(self, entry: CachedResponse | None) -> CachedResponse | None:
        self._counts["hits" if entry is not None else "misses"] += 1
        return entry

    def _stored(self, stored: bool) -> bool:
        self._counts["stores"] += stored
        return stored

    async def _recovered(self) -> None:
        self.local.clear()  # what was kept meanwhile stays this replica's; Redis answers again

    def stats(self) -> dict[str, int | str | None]:
        local = self.local.stats()
        return {
            **self._counts,
            "bytes": local["bytes"],
            "entries": local["entries"],
            "degraded": self.degraded,
        }

    async def aclose(self) -> None:
        await self._link.aclose()
        self.local.clear()
