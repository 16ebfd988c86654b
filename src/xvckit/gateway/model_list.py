"""`GET /v1/models` and `GET /v1/models/{id}`: the models a caller's key may use, in the dialect
the client speaks (an `anthropic-version` header: Anthropic's shapes, else OpenAI's). Both SDKs'
`models.list()` and `models.retrieve(id)` call these; a model the key may not use is answered
as one that does not exist, so a key learns nothing about routes it cannot call."""

from __future__ import annotations

import fnmatch

import orjson

from xvckit.asgi import Scope, Send, respond
from xvckit.gateway.dialects import ANTHROPIC, OPENAI, GatewayError
from xvckit.gateway.keyring import Keyring, Principal
from xvckit.gateway.routing import Router

PREFIXES = ("/v1/models/", "/models/")


def may_use(who: Principal, model: str) -> bool:
    """The key's and its team's model patterns (those set) all allow `model`."""
    return all(
        limits.models is None or any(fnmatch.fnmatchcase(model, pattern) for pattern in limits.models)
        for _, limits in who.scopes
    )


def _openai(name: str, provider: str) -> dict:
    return {"id": name, "object": "model", "created": 0, "owned_by": provider}


def _anthropic(name: str) -> dict:
    return {"type": "model", "id": name, "display_name": name, "created_at": "1970-01-01T00:00:00Z"}


async def answer(scope: Scope, send: Send, keyring: Keyring, router: Router) -> None:
    """The list (`/v1/models`) or one model (`/v1/models/{id}`) for the caller's key."""
    anthropic_client = any(name == b"anthropic-version" for name, _ in scope["headers"])
    dialect = ANTHROPIC if anthropic_client else OPENAI
    try:
        who = await keyring.authenticate(scope)
    except GatewayError as exc:
        await respond(send, exc.status, dialect.error_body(exc.status, exc.message, exc.code, ""))
        return
    models = [(name, provider) for name, provider in router.listed_models() if may_use(who, name)]
    path = scope["path"]
    wanted = next((path[len(prefix) :] for prefix in PREFIXES if path.startswith(prefix)), None)
    if wanted is not None:
        found = next((m for m in models if m[0] == wanted), None)
        if found is None:
            message = f"The model '{wanted[:256]}' does not exist or you do not have access to it."
            await respond(send, 404, dialect.error_body(404, message, "model_not_found", ""))
            return
        body = _anthropic(found[0]) if anthropic_client else _openai(*found)
    elif anthropic_client:
        data = [_anthropic(name) for name, _ in models]
        body = {
            "data": data,
            "has_more": False,
            "first_id": data[0]["id"] if data else None,
            "last_id": data[-1]["id"] if data else None,
        }
    else:
        body = {"object": "list", "data": [_openai(name, provider) for name, provider in models]}
    await respond(send, 200, orjson.dumps(body))
