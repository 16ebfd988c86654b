"""The team's prompt library, served by the gateway to its keys.

Routes (any usable key; what it sees is the library's rule: its team's prompts, every prompt
for admins and the master key, and a prompt it may not use answers 404 as a missing one):

- `GET /v1/xvckit/prompts`: the prompts, with their labels, variables and model;
- `GET /v1/xvckit/prompts/{name}`: one prompt's labels and versions (`{name}@{label|version}`:
  that one version);
- `POST /v1/xvckit/prompts/{name}[@label|@version]/render`, body `{"variables": {...}}`: the
  rendered text, the version rendered (`name@N`), and its model and parameters.

And on `POST /v1/chat/completions`, `/v1/messages` and `/v1/responses`, the header
`x-xvckit-prompt: name@label|name@version` (`render_into`): the gateway renders that prompt with
the body's `xvckit_prompt_variables` (taken out of the body: no upstream sees it) into the
request as its system prompt (before any the request has), fills the model and the parameters
the request did not set from the prompt's version, and the ledger records `name@N`. A label is
read on every use, so a moved label serves its new version at once.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any, Protocol

import orjson

from xvckit.asgi import BodyTooLarge, ClientGone, Receive, Scope, Send, read_body, respond
from xvckit.errors import NotFound, UserError
from xvckit.gateway.dialects import OPENAI, GatewayError
from xvckit.gateway.keyring import Keyring, Principal

log = logging.getLogger("xvckit.gateway")

PREFIX = "/v1/xvckit/prompts"
HEADER = b"x-xvckit-prompt"
VARIABLES_FIELD = "xvckit_prompt_variables"
MAX_REF_CHARS = 140  # a name (100 characters), '@', a label (32) or a version number
MAX_RENDER_BODY = 512 * 1024  # the library bounds the variables themselves (256 KiB as JSON)


class PromptLibrary(Protocol):
    """The prompts a caller may use. Synchronous (the gateway calls it in a worker thread);
    raises `xvckit.errors.NotFound` for a prompt, label or version the caller cannot have (a
    prompt of another team exactly as a missing one), `UserError` for a bad reference or
    variables."""

    def prompts(self, caller: Any) -> list[dict[str, Any]]: ...

    def show(self, caller: Any, name: str) -> dict[str, Any]: ...

    def prompt(self, caller: Any, ref: str) -> dict[str, Any]: ...

    def render(self, caller: Any, ref: str, variables: dict[str, Any]) -> dict[str, Any]: ...


def serves(path: str) -> bool:
    return path == PREFIX or path.startswith(PREFIX + "/")


async def answer(
    scope: Scope, receive: Receive, send: Send, keyring: Keyring, library: PromptLibrary
) -> None:
    """One of the routes, for the caller of the request's key."""
    try:
        who = await keyring.authenticate(scope)
        result = await _route(scope, receive, who, library)
    except GatewayError as exc:
        headers = [(name.encode(), value.encode()) for name, value in exc.headers.items()]
        await respond(
            send, exc.status, OPENAI.error_body(exc.status, exc.message, exc.code, ""), headers=headers
        )
        return
    await respond(send, 200, orjson.dumps(result))


async def _route(scope: Scope, receive: Receive, who: Principal, library: PromptLibrary) -> Any:
    path, method = scope["path"], scope["method"]
    ref, _, action = path[len(PREFIX) + 1 :].partition("/")
    if not ref and not action:
        _allow(method, "GET", path)
        return await _call(library.prompts, who)
    if len(ref) > MAX_REF_CHARS:
        raise GatewayError(400, f"a prompt reference is at most {MAX_REF_CHARS} characters", "invalid_prompt")
    if not action:
        _allow(method, "GET", path)
        return await _call(library.prompt if "@" in ref else library.show, who, ref)
    if action == "render":
        _allow(method, "POST", path)
        body = await _render_body(scope, receive)
        return await _call(library.render, who, ref, body.get("variables", {}))
    raise GatewayError(404, f"no such endpoint: {method} {path[:256]}", "not_found")


def _allow(method: str, allowed: str, path: str) -> None:
    if method != allowed:
        raise GatewayError(
            405, f"{method} is not allowed on {path[:256]}; use {allowed}", "method_not_allowed"
        )


async def _render_body(scope: Scope, receive: Receive) -> dict[str, Any]:
    """`{"variables": {...}}`, or nothing for a prompt that takes no variables."""
    try:
        data = await read_body(scope, receive, MAX_RENDER_BODY)
    except BodyTooLarge:
        raise GatewayError(
            413, f"the request body is larger than {MAX_RENDER_BODY // 1024} KiB", "request_too_large"
        ) from None
    except ClientGone:
        raise GatewayError(400, "the client left before its body arrived", "client_disconnected") from None
    if not data.strip():
        return {}
    try:
        body = orjson.loads(data)
    except orjson.JSONDecodeError:
        body = None
    if not isinstance(body, dict):
        raise GatewayError(400, 'the body must be a JSON object: {"variables": {...}}', "invalid_json")
    unknown = sorted(set(body) - {"variables"})
    if unknown:
        raise GatewayError(
            400, f"unknown field {unknown[0][:64]!r}: the body takes 'variables' only", "invalid_json"
        )
    return body


async def _call(method: Callable[..., Any], *args: Any) -> Any:
    """The library's answer, from a worker thread; its refusals as the gateway's errors."""
    try:
        return await asyncio.to_thread(method, *args)
    except NotFound as exc:
        raise GatewayError(404, str(exc), "prompt_not_found") from None
    except UserError as exc:
        raise GatewayError(400, str(exc), "invalid_prompt") from None
    except Exception:
        log.exception("prompt library failed")
        raise GatewayError(
            500, "the prompt library failed (an internal error, logged)", "internal_error"
        ) from None


async def render_into(
    library: PromptLibrary | None, who: Principal, header: bytes | None, payload: dict, endpoint: str
) -> str | None:
    """Render the prompt a model request names (`header`) into its body (`payload`, changed in
    place); returns the version rendered, `name@N`. The variables field without the header is
    a 400: it is the gateway's, and no upstream would take it."""
    variables = payload.pop(VARIABLES_FIELD, {})
    if header is None:
        raise GatewayError(
            400, f"{VARIABLES_FIELD} is only taken with an x-xvckit-prompt header", "invalid_prompt"
        )
    place = _PLACES.get(endpoint)
    if place is None:
        raise GatewayError(
            400,
            "x-xvckit-prompt is taken on /v1/chat/completions, /v1/messages and /v1/responses only",
            "invalid_prompt",
        )
    if library is None:
        raise GatewayError(400, "this gateway serves no prompt library (x-xvckit-prompt)", "invalid_prompt")
    if not isinstance(variables, dict):
        raise GatewayError(400, f"{VARIABLES_FIELD}: a JSON object of names and values", "invalid_prompt")
    ref = header.decode("latin-1").strip()
    if len(ref) > MAX_REF_CHARS:
        raise GatewayError(400, f"x-xvckit-prompt is at most {MAX_REF_CHARS} characters", "invalid_prompt")
    rendered = await _call(library.render, who, ref, variables)
    place(payload, rendered["text"])
    if payload.get("model") is None and rendered["model"]:
        payload["model"] = rendered["model"]
    for name, value in rendered["parameters"].items():
        payload.setdefault(name, value)
    return rendered["prompt"]


def _chat(payload: dict, text: str) -> None:
    messages = payload.get("messages", [])
    if not isinstance(messages, list):
        raise GatewayError(400, "messages must be a list", "invalid_request")
    payload["messages"] = [{"role": "system", "content": text}, *messages]


def _messages(payload: dict, text: str) -> None:
    system = payload.get("system")
    if system is None or system == "":
        payload["system"] = text
    elif isinstance(system, str):
        payload["system"] = f"{text}\n\n{system}"
    elif isinstance(system, list):
        payload["system"] = [{"type": "text", "text": text}, *system]
    else:
        raise GatewayError(400, "system must be a string or a list of text blocks", "invalid_request")


def _responses(payload: dict, text: str) -> None:
    instructions = payload.get("instructions")
    if instructions is None or instructions == "":
        payload["instructions"] = text
    elif isinstance(instructions, str):
        payload["instructions"] = f"{text}\n\n{instructions}"
    else:
        raise GatewayError(400, "instructions must be a string", "invalid_request")


# Where each endpoint takes a system prompt: the prompt goes first, the request's own after it.
_PLACES: dict[str, Callable[[dict, str], None]] = {
    "chat": _chat,
    "messages": _messages,
    "responses": _responses,
}
