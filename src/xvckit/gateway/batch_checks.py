"""A batch's requests checked before they go to a provider, as the gateway's live requests are:
each names a model the gateway routes (to a provider of the batch API's kind, one provider for
the whole batch), with a sane `custom_id` (unique, `[A-Za-z0-9_-]{1,64}`: it names the
request's ledger row), no stream, and each model becomes the id its provider knows. What the
batch may cost, every request at its most output and at the batch price, is what admission
reserves against the caller's budgets when the batch is made.

CPU work (parsing, token counts): called in a worker thread."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import orjson

from xvckit.config import Provider
from xvckit.gateway.dialects import GatewayError
from xvckit.gateway.routing import Router
from xvckit.gateway.token_estimate import estimate_parts, output_ceiling
from xvckit.providers import batches as api
from xvckit.providers.prices import PriceTable

MAX_MODEL_CHARS = 256


@dataclass
class Checked:
    provider: Provider | None = None
    models: dict[str, str] = field(default_factory=dict)  # as asked -> as the provider names it
    worst_usd: dict[str, float | None] = field(default_factory=dict)  # per model as asked; None: no price
    requests: int = 0
    model_of: dict[str, str] = field(default_factory=dict)  # custom_id -> model as asked

    def detail(self) -> dict:
        """What the gateway's record keeps of it: the model of each request only when there are
        several (an errored result does not say its model)."""
        detail = {"models": self.models, "worst_usd": self.worst_usd, "requests": self.requests}
        return {**detail, "model_of": self.model_of} if len(self.models) > 1 else detail


def _refused(where: str, message: str, status: int = 400, code: str = "invalid_batch") -> GatewayError:
    return GatewayError(status, f"{where}: {message}", code)


def _request(
    checked: Checked, where: str, custom_id: str, body: Any, kind: str, router: Router, prices: PriceTable
) -> dict:
    """One request's body as its provider gets it; the batch's provider, models and cost so far."""
    if not isinstance(body, dict):
        raise _refused(where, "the request's body must be a JSON object")
    if body.get("stream") is not None and body.get("stream") is not False:
        raise _refused(where, "a batch request cannot stream")
    model = body.get("model")
    if not isinstance(model, str) or not 0 < len(model) <= MAX_MODEL_CHARS or not model.isprintable():
        raise _refused(where, f"'model' must be a model name (1-{MAX_MODEL_CHARS} printable characters)")
    try:
        deployment = router.resolve(model)
    except GatewayError as exc:
        raise _refused(where, exc.message, exc.status, exc.code or "model_not_found") from None
    provider = deployment.provider
    if provider.kind != kind:
        raise _refused(where, f"model '{model}' is served by the {provider.kind} provider '{provider.name}'")
    if checked.provider is None:
        checked.provider = provider
    elif provider.name != checked.provider.name:
        raise _refused(
            where,
            f"model '{model}' is served by '{provider.name}', the batch's first request's by "
            f"'{checked.provider.name}': a batch goes to one provider",
        )
    upstream = deployment.model
    checked.models[model] = upstream
    checked.model_of[custom_id] = model
    given, allowed = estimate_parts(body, upstream)
    usd = prices.estimate_usd(upstream, given, output_ceiling(body, upstream, allowed))
    so_far = checked.worst_usd.setdefault(model, 0.0)
    checked.worst_usd[model] = None if usd is None or so_far is None else so_far + usd * api.PRICE_SHARE
    checked.requests += 1
    return body if upstream == model else {**body, "model": upstream}


def _custom_id(value: Any, seen: set[str], where: str) -> str:
    if not isinstance(value, str) or not api.CUSTOM_ID.fullmatch(value):
        raise _refused(where, "'custom_id' must be 1-64 letters, digits, '_' or '-'")
    if value in seen:
        raise _refused(where, f"custom_id '{value}' is used twice")
    seen.add(value)
    return value


def openai_file(data: bytes, router: Router, prices: PriceTable) -> tuple[bytes, Checked]:
    """An OpenAI batch input file (JSONL of `{custom_id, method, url, body}`) as its provider gets
    it, and what it holds; a 400 naming the line for anything the gateway would not send."""
    checked, seen, out = Checked(), set(), []
    try:
        lines = api.jsonl(data)
        for number, line in lines:
            where = f"line {number}"
            if checked.requests >= api.OPENAI_MAX_REQUESTS:
                raise _refused(where, f"a batch file holds at most {api.OPENAI_MAX_REQUESTS:,} requests")
            if not isinstance(line, dict):
                raise _refused(where, "each line must be a JSON object")
            custom_id = _custom_id(line.get("custom_id"), seen, where)
            if line.get("method") != "POST" or line.get("url") != api.CHAT_URL:
                raise _refused(where, f"only POST {api.CHAT_URL} requests go through the gateway's batches")
            body = _request(checked, where, custom_id, line.get("body"), "openai", router, prices)
            out.append(
                _encoded({"custom_id": custom_id, "method": "POST", "url": api.CHAT_URL, "body": body}, where)
            )
    except ValueError as exc:  # a line that is not JSON
        raise _refused("the file", str(exc)) from None
    if not out:
        raise _refused("the file", "no request in it")
    return b"\n".join(out) + b"\n", checked


def anthropic_batch(payload: Any, router: Router, prices: PriceTable) -> tuple[bytes, Checked]:
    """An Anthropic Message Batches create body as its provider gets it, and what it holds."""
    if not isinstance(payload, dict) or not isinstance(payload.get("requests"), list):
        raise _refused("the body", "'requests' must be a list of {custom_id, params}")
    requests = payload["requests"]
    if not 0 < len(requests) <= api.ANTHROPIC_MAX_REQUESTS:
        raise _refused("requests", f"a batch holds 1 to {api.ANTHROPIC_MAX_REQUESTS:,} requests")
    checked, seen, out = Checked(), set(), []
    for index, item in enumerate(requests):
        where = f"requests.{index}"
        if not isinstance(item, dict):
            raise _refused(where, "each request must be a JSON object {custom_id, params}")
        custom_id = _custom_id(item.get("custom_id"), seen, where)
        params = _request(checked, where, custom_id, item.get("params"), "anthropic", router, prices)
        out.append({"custom_id": custom_id, "params": params})
    return _encoded({**payload, "requests": out}, "the body"), checked


def _encoded(value: dict, where: str) -> bytes:
    try:
        return orjson.dumps(value)
    except orjson.JSONEncodeError:
        raise _refused(where, "nested too deep") from None
