"""OpenAI's Responses API (`POST /v1/responses`) for every model the gateway routes.

A provider that serves `/responses` itself (OpenAI's own API, or `responses_api: true`) gets
the request as the client sent it; any other is sent a translation, and its answer, whole or
streamed, comes back as a `response` (`providers/responses_*`): chat completions for other
OpenAI-dialect servers, chat completions then Messages for Anthropic.

The conversation is the gateway's to keep, whatever served it: each stored response (the
request's `store`, true by default) is kept with the input it was given under its caller's key
(`Conversations`, in the response cache's kind of store: this process, or Redis for all
replicas). `previous_response_id` is resolved here into the earlier turns, sent as input items
to every upstream, so that a conversation may move between deployments (a fallback, another
provider); `GET` / `DELETE /v1/responses/{id}` and `.../input_items` are answered from it. A
key sees only its own responses: another key's id is 404 like one that never existed.

A record is two entries: the response as answered (a GET sends its bytes as they are, no
parsing) and the input items, messages and function calls with the fields the API defines
only (a client's extra fields would cost memory at every read, and no upstream is sent them
by translation); other items are kept whole, for a native provider to read again.
"""

from __future__ import annotations

from typing import Any

import orjson

from xvckit.asgi import Scope, Send, respond
from xvckit.config import Provider
from xvckit.gateway.cache import CachedResponse
from xvckit.gateway.dialects import OPENAI, GatewayError
from xvckit.gateway.keyring import Keyring, Principal
from xvckit.providers import sse, translate
from xvckit.providers.responses_request import input_items, to_chat_request
from xvckit.providers.responses_response import ChatToResponsesStream, from_chat_response, new_id
from xvckit.providers.translate import InvalidRequest

PATH = "/responses"  # after the provider's base_url
PREFIXES = ("/v1/responses/", "/responses/")
MAX_ID_CHARS = 128
# The wire an upstream answers a Responses request in: its own, or what it was translated to.
NATIVE, CHAT, MESSAGES = "responses", "openai", "anthropic"
_ENDS = (b"event: response.completed", b"event: response.incomplete", b"event: response.failed")
_WITH_RESPONSE = (
    *_ENDS,
    b"event: response.created",
    b"event: response.in_progress",
    b"event: response.queued",
)


def speaks_responses(provider: Provider) -> bool:
    """Whether the provider serves `/responses` itself: as configured, else only OpenAI's own API
    (vLLM, Ollama, llama.cpp and most OpenAI-compatible servers speak chat completions only)."""
    if provider.kind != "openai":
        return False
    if provider.responses_api is not None:
        return provider.responses_api
    return "://api.openai.com" in provider.base_url


def wire(provider: Provider) -> str:
    if provider.kind == "anthropic":
        return MESSAGES
    return NATIVE if speaks_responses(provider) else CHAT


def owner(who: Principal) -> str:
    """Whose responses these are: the key's (the master key's own)."""
    return who.key_id or "master"


def _not_found(response_id: str, param: str | None = None) -> GatewayError:
    if param:
        return GatewayError(
            404, f"Previous response with id '{response_id}' not found.", "previous_response_not_found"
        )
    return GatewayError(404, f"No response found with id '{response_id}'.", "not_found")


def _checked_id(value: Any, param: str | None = None) -> str:
    if not isinstance(value, str) or not value or len(value) > MAX_ID_CHARS or not value.isprintable():
        raise GatewayError(
            400,
            f"'{param or 'id'}' must be a response id (a string of at most {MAX_ID_CHARS} characters)",
            "invalid_request",
        )
    return value


class Conversations:
    """Stored responses with the input they answered, per caller, in a `ResponseCache` or
    `RedisResponseCache` of their own (bounded in bytes, each for `ttl_s`)."""

    def __init__(self, store, ttl_s: float, cache=None) -> None:
        self._store = store
        self._ttl_s = ttl_s
        self._cache = cache  # the response cache: a deleted response leaves it too

    async def response(self, who: str, response_id: str) -> bytes | None:
        entry = await self._store.get(f"{who}:{response_id}")
        return entry.body if entry is not None else None

    async def input(self, who: str, response_id: str) -> list[dict[str, Any]] | None:
        entry = await self._store.get(f"{who}:{response_id}:input")
        return _items(entry.body) if entry is not None else None

    async def earlier(self, who: str, payload: dict) -> list[dict[str, Any]]:
        """The turns before this request: what `previous_response_id` was given and answered."""
        previous = payload.get("previous_response_id")
        if previous is None:
            return []
        response_id = _checked_id(previous, "previous_response_id")
        given, answered = await self.input(who, response_id), await self.response(who, response_id)
        output = _items(answered, "output") if answered is not None else None
        if given is None or output is None:
            raise _not_found(previous, "previous_response_id")
        return [*given, *output]

    async def keep(
        self, who: str, items: list[dict[str, Any]], response: dict[str, Any], cache_key: str | None = None
    ) -> None:
        """Keep a response and the whole input it answered (the earlier turns included), and
        the response cache entry it is in, if any."""
        numbered = [
            item if "id" in item else {**item, "id": new_id("msg" if _kind(item) == "message" else "item")}
            for item in map(_kept, items)
        ]
        key = f"{who}:{response['id']}"
        if cache_key is not None:
            await self._store.put(f"{key}:cache", CachedResponse(200, [], cache_key.encode()), self._ttl_s)
        await self._store.put(f"{key}:input", CachedResponse(200, [], orjson.dumps(numbered)), self._ttl_s)
        await self._store.put(key, CachedResponse(200, [], orjson.dumps(response)), self._ttl_s)

    async def forget(self, who: str, response_id: str) -> None:
        key = f"{who}:{response_id}"
        cached = await self._store.get(f"{key}:cache")
        if cached is not None and self._cache is not None:
            await self._cache.delete(cached.body.decode())
        for entry in (key, f"{key}:input", f"{key}:cache"):
            await self._store.delete(entry)

    async def aclose(self) -> None:
        await self._store.aclose()

    async def answer(self, scope: Scope, send: Send, keyring: Keyring) -> None:
        """GET / DELETE /v1/responses/{id}, GET /v1/responses/{id}/input_items."""
        try:
            who = owner(keyring.known(scope) or await keyring.authenticate(scope))
            rest = scope["path"].split("/responses/", 1)[1]
            response_id, _, tail = rest.partition("/")
            _checked_id(response_id)
            method = scope["method"]
            if (
                tail not in ("", "input_items")
                or (tail and method != "GET")
                or method not in ("GET", "DELETE")
            ):
                raise GatewayError(404, f"no such endpoint: {method} {scope['path']}", "not_found")
            found = await self.response(who, response_id)
            if found is None:
                raise _not_found(response_id)
            if method == "DELETE":
                await self.forget(who, response_id)
                body = orjson.dumps({"id": response_id, "object": "response", "deleted": True})
            elif tail:
                page = _item_page(await self.input(who, response_id) or [], scope.get("query_string", b""))
                body = orjson.dumps(page)
            else:
                body = found
        except GatewayError as exc:
            await respond(send, exc.status, OPENAI.error_body(exc.status, exc.message, exc.code, ""))
            return
        await respond(send, 200, body)


_MESSAGE_FIELDS = ("type", "id", "role", "content", "status")
_PART_FIELDS = (
    "type",
    "text",
    "refusal",
    "annotations",
    "logprobs",
    "image_url",
    "detail",
    "file_id",
    "file_data",
    "file_url",
    "filename",
)
_CALL_FIELDS = {
    "function_call": ("type", "id", "call_id", "name", "namespace", "arguments", "status"),
    "function_call_output": ("type", "id", "call_id", "output", "status"),
}


def _kind(item: dict[str, Any]) -> str:
    return item.get("type", "message")


def _kept(item: dict[str, Any]) -> dict[str, Any]:
    """An input item as it is kept: a message or function call with the API's fields only."""
    kind = _kind(item)
    if kind == "message":
        kept = _fields(item, _MESSAGE_FIELDS)
        if isinstance(kept.get("content"), list):
            kept["content"] = [_fields(part, _PART_FIELDS) for part in kept["content"]]
        return kept
    fields = _CALL_FIELDS.get(kind)
    return _fields(item, fields) if fields else item


def _fields(value: Any, names: tuple[str, ...]) -> Any:
    return {name: value[name] for name in names if name in value} if isinstance(value, dict) else value


def _items(data: bytes, field: str | None = None) -> list[dict[str, Any]] | None:
    """The list of items in a kept entry (or in its `field`); None when it holds no such list
    (written by an upstream that answered oddly): such a record is as good as missing."""
    try:
        found = orjson.loads(data)
    except orjson.JSONDecodeError:
        return None
    if field is not None:
        found = found.get(field) if isinstance(found, dict) else None
    if isinstance(found, list) and all(isinstance(item, dict) for item in found):
        return found
    return None


def _item_page(items: list[dict[str, Any]], query: bytes) -> dict[str, Any]:
    """One page of input items: `order` (desc, the API's default, or asc), `after`, `limit` (1-100)."""
    from urllib.parse import parse_qs

    args = {k: v[-1] for k, v in parse_qs(query.decode("latin-1")).items()}
    order = args.get("order", "desc")
    if order not in ("asc", "desc"):
        raise GatewayError(400, "'order' must be asc or desc", "invalid_request")
    try:
        limit = int(args.get("limit", "20"))
    except ValueError:
        limit = 0
    if not 1 <= limit <= 100:
        raise GatewayError(400, "'limit' must be an integer from 1 to 100", "invalid_request")
    ordered = items if order == "asc" else items[::-1]
    after = args.get("after")
    if after is not None:
        ids = [item.get("id") for item in ordered]
        ordered = ordered[ids.index(after) + 1 :] if after in ids else []
    page = ordered[:limit]
    return {
        "object": "list",
        "data": page,
        "first_id": page[0]["id"] if page else None,
        "last_id": page[-1]["id"] if page else None,
        "has_more": len(ordered) > limit,
    }


# Request fields naming state the provider keeps for the whole organisation (every key would
# share it), or work it does after answering (never ledgered): refused, whatever the upstream.
_REFUSED_FIELDS = {
    "conversation": "'conversation' is not supported through the gateway: use previous_response_id",
    "prompt": "'prompt' (a template stored at the provider) is not supported through the gateway",
}
# Chat completions' output limits, which the Responses API does not take.
_CHAT_LIMITS = ("max_tokens", "max_completion_tokens")


def _refuse_what_the_gateway_cannot_hold(payload: dict, items: list[dict[str, Any]]) -> None:
    for field, message in _REFUSED_FIELDS.items():
        if payload.get(field) is not None:
            raise GatewayError(400, message, "unsupported_parameter")
    if payload.get("background") is True:
        raise GatewayError(
            400,
            "background responses are not supported through the gateway: stream instead",
            "unsupported_parameter",
        )
    for field in _CHAT_LIMITS:
        if field in payload:
            raise GatewayError(
                400,
                f"Unsupported parameter: '{field}'. In the Responses API, this parameter has moved to "
                "'max_output_tokens'.",
                "unsupported_parameter",
            )
    if any(item.get("type") == "item_reference" for item in items):
        raise GatewayError(
            400, "item_reference input items are not supported through the gateway", "unsupported_parameter"
        )


class ResponsesCall:
    """One Responses request on its way: what each deployment is sent, and its answer as a
    `response` (whole or as events) in the client's shape, kept afterwards when asked to."""

    def __init__(self, payload: dict, body: bytes, earlier: list[dict[str, Any]], who: str) -> None:
        try:
            self.items = [*earlier, *input_items(payload)]
        except InvalidRequest as exc:
            raise GatewayError(400, str(exc), "invalid_request") from None
        _refuse_what_the_gateway_cannot_hold(payload, self.items)
        self.payload = payload
        self.raw = body  # as the client sent it
        self.earlier = earlier
        # the gateway resolved a previous_response_id: no upstream is sent it (on a native
        # provider it would name a response of the provider's, shared by every key)
        self.continued = payload.get("previous_response_id") is not None
        self.owner = who
        self.response_id = new_id("resp")
        self.final: dict[str, Any] | None = None  # the finished response, to keep
        self.cache_key: str | None = None  # its response cache entry, dropped with it

    def whole_request(self) -> dict[str, Any]:
        """The request with the earlier turns in its input: what the input estimate reads."""
        return {**self.payload, "input": self.items} if self.continued else self.payload

    def request_for(self, deployment, changed: bool) -> tuple[str, bytes]:
        kind = wire(deployment.provider)
        payload = self.payload
        if kind == NATIVE:
            if not self.continued and deployment.model == payload["model"] and not changed:
                return PATH, self.raw
            sent = {**payload, "model": deployment.model}
            if self.continued:
                sent["input"] = self.items
                del sent["previous_response_id"]
            return PATH, orjson.dumps(sent)
        try:
            chat = to_chat_request(payload, deployment.model, self.items)
            if kind == CHAT:
                return "/chat/completions", orjson.dumps(chat)
            return "/v1/messages", orjson.dumps(translate.openai_to_anthropic_request(chat, deployment.model))
        except InvalidRequest as exc:
            raise GatewayError(400, str(exc), "invalid_request") from None

    def answer(self, kind: str, status: int, data: bytes) -> bytes:
        """A whole answer (or error) from an upstream speaking `kind`, as the client reads it."""
        if status != 200:
            return data if kind != MESSAGES else translate.anthropic_to_openai_error(status, data)
        answer = orjson.loads(data)
        if kind == NATIVE:
            self.final = answer
            if not self.continued:
                return data
            answer["previous_response_id"] = self.payload["previous_response_id"]
            return orjson.dumps(answer)
        if kind == MESSAGES:
            answer = translate.anthropic_to_openai_response(answer, self.payload["model"])
        self.final = from_chat_response(answer, self.payload, self.response_id, self.payload["model"])
        return orjson.dumps(self.final)

    def stream(self, kind: str):
        """What turns each whole upstream event into the client's events (and finds the end)."""
        if kind == NATIVE:
            return self._watch
        events = ChatToResponsesStream(self.payload, self.response_id, self.payload["model"])
        if kind == CHAT:
            return lambda event: self._ended(events, events.feed(event))
        chat = translate.AnthropicToOpenAIStream(self.payload["model"], include_usage=True)
        return lambda event: self._ended(events, b"".join(events.feed(e) for e in _split(chat.feed(event))))

    def _ended(self, events: ChatToResponsesStream, out: bytes) -> bytes:
        if events.response:
            self.final = events.response
        return out

    def _watch(self, event: bytes) -> bytes:
        """A native stream's events as they are, but for the response objects they carry: the
        last is kept, and each says which `previous_response_id` the gateway resolved."""
        ends = event.startswith(_ENDS)
        if not (ends or (self.continued and event.startswith(_WITH_RESPONSE))):
            return event
        data = sse.event_json(event)
        response = data.get("response") if data else None
        if not isinstance(response, dict):
            return event
        if ends:
            self.final = response
        if not self.continued:
            return event
        response["previous_response_id"] = self.payload["previous_response_id"]
        return sse.encode(data, event=data.get("type"))

    async def keep(self, conversations: Conversations) -> None:
        """Keep the finished response, when asked to and it is one: a string id, a status that
        ends it, a list of output items (an upstream that answered oddly leaves nothing)."""
        final = self.final
        if (
            final
            and isinstance(final.get("id"), str)
            and self.payload.get("store") is not False
            and final.get("status") in ("completed", "incomplete")
            and isinstance(final.get("output"), list)
            and all(isinstance(item, dict) for item in final["output"])
        ):
            await conversations.keep(self.owner, self.items, final, self.cache_key)


def _split(data: bytes) -> list[bytes]:
    return sse.EventSplitter().feed(data) if data else []
