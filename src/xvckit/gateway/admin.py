"""The admin REST API under /admin (FastAPI; OpenAPI at /admin/openapi.json, Swagger UI at
/admin/docs, served from the swagger-ui-bundle-v2 package so it works offline).

Roles: the master key and `admin` keys may do everything; a `team-admin` key manages its
own team's keys (never above its team's limits, never an admin key) and sees its team's
usage; a `member` key sees its own key and usage. No key sees, changes, rotates or revokes a
key of a higher role (admin > team-admin > member), and a lookup by name finds only keys the
caller may see, so a 404 never tells what exists beyond them.
Input is checked at the edge as strictly as the CLI checks it: an unknown field or query
parameter is a 422, durations are written as the CLI writes them (`30d`, `since=7d`), and a
value the store could not hold is a 4xx naming the field. Every refusal has one shape:
{"error": {"type", "message"}} (a 422 adds "detail").
The key is checked before anything else is read, so without a usable one every route answers
the same 401, whatever it names or sends; a body is at most MAX_BODY_BYTES. Store work runs
in worker threads; a key change reloads the gateway's keyring at once.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Callable
from typing import Annotated, Any, Literal

from fastapi import Depends, FastAPI, HTTPException, Query, Request, Security
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse, JSONResponse
from fastapi.security import APIKeyHeader, HTTPBearer
from pydantic import AfterValidator, BaseModel, ConfigDict, Field
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.staticfiles import StaticFiles
from swagger_ui_bundle import swagger_ui_path

from xvckit.asgi import ASGIApp, Receive, Scope, Send
from xvckit.config import Config
from xvckit.errors import Conflict, NotAllowed, NotFound, UserError
from xvckit.gateway.dialects import GatewayError
from xvckit.gateway.keyring import Keyring, Principal
from xvckit.gateway.model_patterns import warnings
from xvckit.store import Store, audit, keys
from xvckit.store.ledger import usage_report
from xvckit.store.secrets import SecretBox, put_secret
from xvckit.timespec import EARLIEST, LATEST, parse_duration, parse_moment

log = logging.getLogger("xvckit.gateway")

_CALLER = "xvckit.admin.caller"  # in the scope: the principal `authenticated_first` found
_DOCS = "/admin/docs"
_STATIC = "/admin/docs/static"  # the Swagger UI's own files
_PUBLIC = frozenset({"/admin/openapi.json", _DOCS})
MAX_BODY_BYTES = 64 * 1024  # the largest body an admin request needs is a secret's value
_TYPES = {
    400: "invalid_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "too_large",
    422: "invalid_request",
    429: "rate_limited",
    500: "internal_error",
    503: "unavailable",
}
_STATUS = {NotFound: 404, Conflict: 409, NotAllowed: 403}


def _lifetime(value: float | str) -> float:
    seconds = parse_duration(value) if isinstance(value, str) else value
    if seconds is None:
        raise ValueError(f"not a duration: {value!r} (use e.g. 30d, 12h, 15m, or a number of seconds)")
    if not (math.isfinite(seconds) and 0 < seconds <= keys.MAX_LIFETIME_S):
        raise ValueError(f"must be more than 0 s and at most {keys.MAX_LIFETIME_S // 86400} days")
    return seconds


def _moment(text: str | None) -> float | None:
    """Epoch seconds, or what the CLI's --since takes: a duration ago (7d) or a UTC date/time."""
    if text is None:
        return None
    try:
        value = float(text)
    except ValueError:
        return parse_moment(text)
    if not EARLIEST <= value <= LATEST:  # NaN too
        raise ValueError("epoch seconds must be a time between the years 1 and 9999")
    return value


Lifetime = Annotated[
    float | str,
    AfterValidator(_lifetime),
    Field(description="a lifetime as the CLI writes it (30d, 12h, 15m, 2w) or a number of seconds"),
]
Moment = Annotated[
    str | None,
    Query(description="7d, 24h, 30m (that long ago), a UTC date/time (2026-11-01) or epoch seconds"),
    AfterValidator(_moment),
]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class LimitsIn(_Strict):
    models: list[str] | None = Field(None, description="allowed models; globs allowed")
    rpm: int | None = Field(None, gt=0, le=keys.MAX_INT)
    tpm: int | None = Field(None, gt=0, le=keys.MAX_INT)
    budget_usd: float | None = Field(None, ge=0, allow_inf_nan=False)
    budget_period: Literal["day", "week", "month"] | None = Field(None, description="default: month")

    def changes(self) -> dict:
        """The fields the request gave (null: remove that limit), as the store takes them."""
        return self.model_dump(include=self.model_fields_set)

    def limits(self) -> keys.Limits:
        given = {k: v for k, v in self.changes().items() if k in keys.LIMIT_FIELDS}
        return keys.merged_limits(keys.Limits(), given)


class KeyIn(LimitsIn):
    name: str = Field(min_length=1, max_length=200)
    team: str | None = Field(None, description="team id or name")
    role: Literal["admin", "team-admin", "member"] = "member"
    expires_in: Lifetime | None = None
    priority: Literal["interactive", "batch"] | None = Field(
        None, description="batch waits behind interactive"
    )
    cache: Literal["on", "off", "deterministic"] | None = Field(
        None, description="response cache for this key"
    )


class KeyChange(LimitsIn):
    """The fields to change; the others stay. null removes a limit or the expiry. (`name` and
    `role` default to None without taking it: null is refused for them.)"""

    name: str = Field(None, min_length=1, max_length=200)  # type: ignore[assignment]
    role: Literal["admin", "team-admin", "member"] = None  # type: ignore[assignment]
    expires_in: Lifetime | None = Field(None, description="from now; null: never expires")
    priority: Literal["interactive", "batch"] | None = None
    cache: Literal["on", "off", "deterministic"] | None = None

    def changes(self) -> dict:
        given = super().changes()
        if "expires_in" in given:
            lifetime = given.pop("expires_in")
            given["expires_at"] = None if lifetime is None else time.time() + lifetime
        return given


class TeamIn(LimitsIn):
    name: str = Field(min_length=1, max_length=200)


class TeamChange(LimitsIn):
    """The fields to change; the others stay. null removes a limit."""

    name: str = Field(None, min_length=1, max_length=200)  # type: ignore[assignment]


class SecretIn(_Strict):
    value: str = Field(min_length=1)


def caller(request: Request) -> Principal:
    return request.scope[_CALLER]


Caller = Annotated[Principal, Depends(caller)]


def no_unknown_query(request: Request) -> None:
    """A query parameter the route does not take is refused, as the CLI refuses an unknown
    option (`?sinse=7d` would otherwise report all time)."""
    taken = {p.alias for p in request.scope["route"].dependant.query_params}  # the route's own
    unknown = [name for name in request.query_params if name not in taken]
    if unknown:
        raise RequestValidationError(
            [
                {"loc": ("query", name), "msg": "unknown parameter", "type": "extra_forbidden"}
                for name in unknown
            ]
        )


def sees(who: Principal, key: keys.ApiKey) -> bool:
    """A caller sees its own key; an admin every other; a team-admin its team's keys of no
    higher role; a member nothing else."""
    if key.id == who.key_id:
        return True
    if who.role == "member" or keys.outranks(key.role, who.role):
        return False
    return who.role == "admin" or key.team_id == who.team_id


def error(
    status: int,
    message: str,
    kind: str | None = None,
    headers: dict[str, str] | None = None,
    detail: list | None = None,
) -> JSONResponse:
    """The one shape of every refusal."""
    body: dict[str, Any] = {"type": kind or _TYPES.get(status, "error"), "message": message}
    if detail is not None:
        body["detail"] = detail
    return JSONResponse({"error": body}, status_code=status, headers=headers)


def authenticated_first(app: ASGIApp, keyring: Keyring) -> ASGIApp:
    """`app` behind a key check made before its route, body or query is read: a caller
    without a usable key learns nothing from a 404, a 405 or a validation error. The body is
    read here, at most MAX_BODY_BYTES of it."""

    async def admin(scope: Scope, receive: Receive, send: Send) -> None:
        path = scope["path"]
        if path not in _PUBLIC and not path.startswith(_STATIC + "/"):
            try:
                scope[_CALLER] = await keyring.authenticate(scope)
            except GatewayError as exc:
                await error(exc.status, exc.message, exc.code, exc.headers)(scope, receive, send)
                return
            body = await _bounded_body(receive)
            if body is None:
                await error(413, f"the request body is over {MAX_BODY_BYTES} bytes")(scope, receive, send)
                return
            receive = _replay(body, receive)
        try:
            await app(scope, receive, send)
        except Exception:  # answered already (`internal`); logged here, the connection kept
            log.exception("admin API: %s %s failed", scope["method"], path)

    return admin


async def _bounded_body(receive: Receive) -> bytes | None:
    """The whole body, or None past MAX_BODY_BYTES."""
    chunks, size = [], 0
    while True:
        message = await receive()
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > MAX_BODY_BYTES:
            return None
        chunks.append(chunk)
        if message["type"] != "http.request" or not message.get("more_body"):
            return b"".join(chunks)


def _replay(body: bytes, receive: Receive) -> Receive:
    sent = False

    async def again() -> dict:
        nonlocal sent
        if sent:
            return await receive()
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    return again


def create_admin_app(store: Store, keyring: Keyring, config: Config) -> ASGIApp:
    app = FastAPI(
        title="xvckit admin API",
        docs_url=None,
        redoc_url=None,
        openapi_url="/admin/openapi.json",
        swagger_ui_oauth2_redirect_url=None,
        # what the key check (`authenticated_first`) takes, declared so "Authorize" works
        dependencies=[
            Security(HTTPBearer(auto_error=False, description="the master key or an xvckit key")),
            Security(APIKeyHeader(name="x-api-key", auto_error=False)),
            Depends(no_unknown_query),
        ],
    )
    app.mount(_STATIC, StaticFiles(directory=swagger_ui_path), name="swagger-ui")

    async def docs(_request: Request) -> HTMLResponse:
        return get_swagger_ui_html(
            openapi_url="/admin/openapi.json",
            title="xvckit admin API",
            swagger_js_url=f"{_STATIC}/swagger-ui-bundle.js",
            swagger_css_url=f"{_STATIC}/swagger-ui.css",
            swagger_favicon_url=f"{_STATIC}/favicon-32x32.png",
            swagger_ui_parameters={"validatorUrl": None},  # no badge fetched from the internet
        )

    app.add_route(_DOCS, docs, include_in_schema=False)

    async def run(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        return await asyncio.to_thread(fn, store, *args, **kwargs)

    async def changed(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        result = await run(fn, *args, **kwargs)
        await keyring.reload()
        return result

    def require_admin(who: Principal) -> None:
        if who.role != "admin":
            raise HTTPException(403, "this needs an admin key")

    def require_manager(who: Principal) -> None:
        if who.role == "member":
            raise HTTPException(403, "this needs an admin or team-admin key")

    def ceiling(who: Principal) -> keys.Team | None:
        """A team-admin gives no key more than its team has."""
        return who.team if who.role == "team-admin" else None

    async def visible_key(who: Principal, ref: str, team_id: str | None = None) -> keys.ApiKey:
        found = await run(keys.find_keys, ref)
        return keys.one_key(ref, [k for k in found if sees(who, k) and team_id in (None, k.team_id)])

    async def visible_keys(who: Principal, team_id: str | None) -> list[keys.ApiKey]:
        return [k for k in await run(keys.list_keys, team_id) if sees(who, k)]

    async def visible_team(who: Principal, ref: str) -> keys.Team:
        team = await run(keys.get_team, ref)
        if who.role != "admin" and team.id != who.team_id:
            raise NotFound(f"no team {ref!r}")
        return team

    @app.exception_handler(UserError)
    async def user_error(_request: Request, exc: UserError) -> JSONResponse:
        return error(_STATUS.get(type(exc), 400), str(exc))

    @app.exception_handler(StarletteHTTPException)  # FastAPI's and the router's own (404, 405)
    async def http_error(_request: Request, exc: StarletteHTTPException) -> JSONResponse:
        return error(exc.status_code, str(exc.detail), headers=exc.headers)

    @app.exception_handler(RequestValidationError)
    async def invalid(_request: Request, exc: RequestValidationError) -> JSONResponse:
        """Each problem with where it is and what is wrong, not the value given: a NaN or an
        infinity could not be written as JSON (FastAPI's own answer would be a 500)."""
        detail = [{"loc": e["loc"], "msg": e["msg"], "type": e["type"]} for e in exc.errors()]
        message = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in detail)
        return error(422, message, detail=detail)

    @app.exception_handler(Exception)  # the answer; Starlette raises it on (`authenticated_first`)
    async def internal(_request: Request, _exc: Exception) -> JSONResponse:
        return error(500, "internal error: see the gateway's log")

    @app.get("/admin/keys", summary="List keys (never the keys themselves)")
    async def list_keys(who: Caller) -> list[dict]:
        return [k.public() for k in await visible_keys(who, None if who.role == "admin" else who.team_id)]

    @app.post(
        "/admin/keys", status_code=201, summary="Create a key; the response is the only time it is shown"
    )
    async def create_key(body: KeyIn, who: Caller) -> dict:
        team = body.team
        if who.role == "team-admin":
            if body.role == "admin" or (team and team not in (who.team.id, who.team.name)):
                raise HTTPException(
                    403, "a team-admin key may create member and team-admin keys of its own team"
                )
            team = who.team_id
        elif who.role != "admin":
            raise HTTPException(403, "this needs an admin or team-admin key")
        limits = body.limits()
        key, raw = await changed(
            keys.create_key,
            body.name,
            who.actor,
            team=team,
            role=body.role,
            limits=limits,
            expires_at=time.time() + body.expires_in if body.expires_in else None,
            priority=body.priority,
            cache=body.cache,
            ceiling=ceiling(who),
        )
        return {**key.public(), "key": raw, "warnings": warnings(limits.models, config)}

    @app.get("/admin/keys/{ref}", summary="One key, with its spend and budget left this period")
    async def show_key(ref: str, who: Caller) -> dict:
        key = await visible_key(who, ref)
        return {**key.public(), "spend": await run(keys.spend, key)}

    @app.patch("/admin/keys/{ref}", summary="Change some of a key's settings; the others stay")
    async def update_key(ref: str, body: KeyChange, who: Caller) -> dict:
        key = await visible_key(who, ref)
        require_manager(who)
        changes = body.changes()
        if who.role == "team-admin" and changes.get("role") == "admin":
            raise HTTPException(403, "a team-admin key may not give the admin role")
        updated = await changed(keys.update_key, key.id, changes, who.actor, ceiling=ceiling(who))
        return {**updated.public(), "warnings": warnings(changes.get("models"), config)}

    @app.post("/admin/keys/{ref}/revoke", summary="Revoke a key")
    async def revoke_key(ref: str, who: Caller) -> dict:
        key = await visible_key(who, ref)
        require_manager(who)
        return (await changed(keys.revoke_key, key.id, who.actor)).public()

    @app.post("/admin/keys/{ref}/rotate", summary="New secret for a key; the old one stops working")
    async def rotate_key(ref: str, who: Caller) -> dict:
        key = await visible_key(who, ref)
        require_manager(who)
        rotated, raw = await changed(keys.rotate_key, key.id, who.actor)
        return {**rotated.public(), "key": raw}

    @app.get("/admin/teams", summary="List teams")
    async def list_teams(who: Caller) -> list[dict]:
        if who.role == "admin":
            return [t.public() for t in await run(keys.list_teams)]
        return [who.team.public()] if who.team else []

    @app.post("/admin/teams", status_code=201, summary="Create a team")
    async def create_team(body: TeamIn, who: Caller) -> dict:
        require_admin(who)
        limits = body.limits()
        team = await changed(keys.create_team, body.name, limits, who.actor)
        return {**team.public(), "warnings": warnings(limits.models, config)}

    @app.get("/admin/teams/{ref}", summary="One team and its keys")
    async def show_team(ref: str, who: Caller) -> dict:
        team = await visible_team(who, ref)
        return {**team.public(), "keys": [k.public() for k in await visible_keys(who, team.id)]}

    @app.patch("/admin/teams/{ref}", summary="Change some of a team's settings; the others stay")
    async def update_team(ref: str, body: TeamChange, who: Caller) -> dict:
        require_admin(who)
        changes = body.changes()
        team = await changed(keys.update_team, ref, changes, who.actor)
        return {**team.public(), "warnings": warnings(changes.get("models"), config)}

    @app.get("/admin/usage", summary="Usage totals and breakdowns, with key and team names")
    async def usage(
        who: Caller,
        by: Literal["key", "team", "model", "day", "prompt"] | None = None,
        since: Moment = None,
        until: Moment = None,
        key: Annotated[str | None, Query(description="only this key (id or name)")] = None,
        team: Annotated[str | None, Query(description="only this team (id or name)")] = None,
    ) -> list[dict]:
        filters: dict[str, str | None] = {}
        if team is not None:
            filters["team_id"] = (await visible_team(who, team)).id
        if key is not None:
            filters["key_id"] = (await visible_key(who, key, filters.get("team_id"))).id
        if who.role == "team-admin":
            filters["team_id"] = who.team_id
        elif who.role == "member":
            filters["key_id"] = who.key_id
        rows = await run(usage_report, by, since, until, **filters)
        if by not in ("key", "team"):
            return rows
        all_teams = who.role == "admin"
        teams = await run(keys.list_teams) if all_teams else [who.team] if who.team else []
        return keys.with_names(rows, await visible_keys(who, None if all_teams else who.team_id), teams)

    @app.get("/admin/audit", summary="Audit entries, newest last")
    async def audit_list(who: Caller, limit: Annotated[int, Query(ge=1, le=1000)] = 100) -> list[dict]:
        require_admin(who)
        return [e.to_json() for e in await run(audit.entries, limit=limit)]

    @app.get("/admin/audit/verify", summary="Check the audit hash chain")
    async def audit_verify(who: Caller) -> dict:
        require_admin(who)
        return (await run(audit.verify)).to_json()

    @app.put("/admin/secrets/{name}", summary="Store a secret, encrypted at rest; it is never returned")
    async def store_secret(name: str, body: SecretIn, who: Caller) -> dict:
        require_admin(who)
        box = await asyncio.to_thread(SecretBox.for_store, store)
        await run(put_secret, box, name, body.value, who.actor)
        return {"name": name, "stored": True}

    return authenticated_first(app, keyring)
