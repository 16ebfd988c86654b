"""The admin REST API under /admin (FastAPI; OpenAPI at /admin/docs).

Roles: the master key and `admin` keys may do everything; a `team-admin` key manages its
own team's keys and sees its team's usage; a `member` key sees its own key and usage. No key
sees, rotates or revokes a key of a higher role (admin > team-admin > member), and a lookup
by name finds only keys the caller may see, so a 404 never tells what exists beyond them.
Input is checked at the edge: a value the store could not hold is a 4xx naming the field.
The key is checked before anything else is read, so without a usable one every route answers
the same 401, whatever it names or sends. Store work runs in worker threads; a key change
reloads the gateway's keyring at once.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Annotated, Any, Literal

from fastapi import Depends, FastAPI, HTTPException, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from starlette.exceptions import HTTPException as StarletteHTTPException

from xvckit.asgi import ASGIApp, Receive, Scope, Send
from xvckit.errors import UserError
from xvckit.gateway.dialects import GatewayError
from xvckit.gateway.keyring import Keyring, Principal
from xvckit.store import Store, audit, keys
from xvckit.store.ledger import usage_report
from xvckit.store.secrets import SecretBox, put_secret
from xvckit.timespec import EARLIEST, LATEST

_CALLER = "xvckit.admin.caller"  # in the scope: the principal `authenticated_first` found
_PUBLIC = frozenset({"/admin/openapi.json", "/admin/docs"})
# epoch seconds a query may name: what a date can say (a wider number is a mistake)
Moment = Annotated[float | None, Query(ge=EARLIEST, le=LATEST, allow_inf_nan=False)]


class LimitsIn(BaseModel):
    models: list[str] | None = Field(None, description="allowed models; globs allowed")
    rpm: int | None = Field(None, gt=0, le=keys.MAX_INT)
    tpm: int | None = Field(None, gt=0, le=keys.MAX_INT)
    budget_usd: float | None = Field(None, ge=0, allow_inf_nan=False)
    budget_period: Literal["day", "week", "month"] = "month"

    def limits(self) -> keys.Limits:
        return keys.Limits(
            tuple(self.models) if self.models is not None else None,
            self.rpm,
            self.tpm,
            self.budget_usd,
            self.budget_period if self.budget_usd is not None else None,
        )


class KeyIn(LimitsIn):
    name: str = Field(min_length=1, max_length=200)
    team: str | None = Field(None, description="team id or name")
    role: Literal["admin", "team-admin", "member"] = "member"
    expires_in_s: float | None = Field(
        None, gt=0, le=keys.MAX_LIFETIME_S, allow_inf_nan=False, description="lifetime in seconds"
    )
    priority: Literal["interactive", "batch"] | None = Field(
        None, description="batch waits behind interactive"
    )
    cache: Literal["on", "off", "deterministic"] | None = Field(
        None, description="response cache for this key"
    )


class TeamIn(LimitsIn):
    name: str = Field(min_length=1, max_length=200)


class SecretIn(BaseModel):
    value: str = Field(min_length=1)


def caller(request: Request) -> Principal:
    return request.scope[_CALLER]


Caller = Annotated[Principal, Depends(caller)]


def sees(who: Principal, key: keys.ApiKey) -> bool:
    """A caller sees its own key; an admin every other; a team-admin its team's keys of no
    higher role; a member nothing else."""
    if key.id == who.key_id:
        return True
    if who.role == "member" or keys.outranks(key.role, who.role):
        return False
    return who.role == "admin" or key.team_id == who.team_id


def error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": {"message": message}}, status_code=status)


def authenticated_first(app: ASGIApp, keyring: Keyring) -> ASGIApp:
    """`app` behind a key check made before its route, body or query is read: a caller
    without a usable key learns nothing from a 404, a 405 or a validation error."""

    async def admin(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["path"] not in _PUBLIC:
            try:
                scope[_CALLER] = keyring.authenticate(scope)
            except GatewayError as exc:
                await error(exc.status, exc.message)(scope, receive, send)
                return
        await app(scope, receive, send)

    return admin


def create_admin_app(store: Store, keyring: Keyring) -> ASGIApp:
    app = FastAPI(
        title="xvckit admin API",
        docs_url="/admin/docs",
        openapi_url="/admin/openapi.json",
        redoc_url=None,
        swagger_ui_oauth2_redirect_url=None,
    )

    async def run(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        return await asyncio.to_thread(fn, store, *args, **kwargs)

    async def changed(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        result = await run(fn, *args, **kwargs)
        await keyring.reload()
        return result

    def require_admin(who: Principal) -> None:
        if who.role != "admin":
            raise HTTPException(403, "this needs an admin key")

    async def visible_key(who: Principal, ref: str) -> keys.ApiKey:
        return keys.one_key(ref, [k for k in await run(keys.find_keys, ref) if sees(who, k)])

    async def visible_keys(who: Principal, team_id: str | None) -> list[dict]:
        return [k.public() for k in await run(keys.list_keys, team_id) if sees(who, k)]

    @app.exception_handler(UserError)
    async def user_error(_request: Request, exc: UserError) -> JSONResponse:
        return error(404 if str(exc).startswith("no ") else 400, str(exc))

    @app.exception_handler(StarletteHTTPException)  # FastAPI's and the router's own (404, 405)
    async def http_error(_request: Request, exc: StarletteHTTPException) -> JSONResponse:
        return error(exc.status_code, exc.detail)

    @app.exception_handler(RequestValidationError)
    async def invalid(_request: Request, exc: RequestValidationError) -> JSONResponse:
        """Each problem with where it is and what is wrong, not the value given: a NaN or an
        infinity could not be written as JSON (FastAPI's own answer would be a 500)."""
        detail = [{"loc": e["loc"], "msg": e["msg"], "type": e["type"]} for e in exc.errors()]
        message = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in detail)
        return JSONResponse({"error": {"message": message}, "detail": detail}, status_code=422)

    @app.get("/admin/keys", summary="List keys (never the keys themselves)")
    async def list_keys(who: Caller) -> list[dict]:
        return await visible_keys(who, None if who.role == "admin" else who.team_id)

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
        expires_at = time.time() + body.expires_in_s if body.expires_in_s else None
        key, raw = await changed(
            keys.create_key,
            body.name,
            who.actor,
            team=team,
            role=body.role,
            limits=body.limits(),
            expires_at=expires_at,
            priority=body.priority,
            cache=body.cache,
        )
        return {**key.public(), "key": raw}

    @app.get("/admin/keys/{ref}", summary="One key")
    async def show_key(ref: str, who: Caller) -> dict:
        return (await visible_key(who, ref)).public()

    @app.post("/admin/keys/{ref}/revoke", summary="Revoke a key")
    async def revoke_key(ref: str, who: Caller) -> dict:
        key = await visible_key(who, ref)
        if who.role == "member":
            raise HTTPException(403, "this needs an admin or team-admin key")
        return (await changed(keys.revoke_key, key.id, who.actor)).public()

    @app.post("/admin/keys/{ref}/rotate", summary="New secret for a key; the old one stops working")
    async def rotate_key(ref: str, who: Caller) -> dict:
        key = await visible_key(who, ref)
        if who.role == "member":
            raise HTTPException(403, "this needs an admin or team-admin key")
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
        return (await changed(keys.create_team, body.name, body.limits(), who.actor)).public()

    @app.get("/admin/teams/{ref}", summary="One team and its keys")
    async def show_team(ref: str, who: Caller) -> dict:
        team = await run(keys.get_team, ref)
        if who.role != "admin" and team.id != who.team_id:
            raise HTTPException(404, f"no team {ref!r}")
        return {**team.public(), "keys": await visible_keys(who, team.id)}

    @app.get("/admin/usage", summary="Usage totals and breakdowns")
    async def usage(
        who: Caller,
        by: Literal["key", "team", "model", "day"] | None = None,
        since: Moment = None,
        until: Moment = None,
    ) -> list[dict]:
        filters: dict[str, str | None] = {}
        if who.role == "team-admin":
            filters["team_id"] = who.team_id
        elif who.role == "member":
            filters["key_id"] = who.key_id
        return await run(usage_report, by, since, until, **filters)

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
