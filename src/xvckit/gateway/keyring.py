"""Who a key belongs to, answered from memory: every key by hash, refreshed when the
store's key version changes (the CLI, the admin API or another replica changed a key)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from xvckit.asgi import Scope
from xvckit.gateway.dialects import GatewayError
from xvckit.store import Store
from xvckit.store.keys import KEY_PREFIX, ApiKey, Limits, Team, hash_key, read_version, snapshot

if TYPE_CHECKING:
    from xvckit.gateway.admission import Scope as AdmissionScope

log = logging.getLogger("xvckit.gateway")

REFRESH_EVERY_S = 1.0


def presented_key(scope: Scope) -> bytes | None:
    """The credential a client sent, whichever of the two dialects' headers carries it."""
    for name, value in scope["headers"]:
        if name == b"authorization":
            scheme, _, token = value.partition(b" ")
            if scheme.lower() == b"bearer" and token.strip():
                return token.strip()
        elif name == b"x-api-key" and value:
            return value
    return None


@dataclass(frozen=True, slots=True)
class Principal:
    """The caller of one request: the master key (admin, no limits) or a virtual key."""

    role: str
    key: ApiKey | None = None
    team: Team | None = None
    # What admission holds the caller to: (the state of the key or the team, its limits) for
    # each of the two that has any limit, the key's first (`principal` makes them).
    scopes: tuple[tuple[AdmissionScope, Limits], ...] = ()
    # Made once, read by every request (which then need not touch the key itself):
    key_id: str | None = field(init=False, compare=False)
    team_id: str | None = field(init=False, compare=False)
    priority: int = field(init=False, compare=False)  # 0 batch, 1 interactive (`x-xvckit-priority`)
    may_lapse: bool = field(init=False, compare=False)  # revoked, or with an expiry to check

    def __post_init__(self) -> None:
        key = self.key
        object.__setattr__(self, "key_id", key.id if key else None)
        object.__setattr__(self, "team_id", self.team.id if self.team else None)
        object.__setattr__(self, "priority", 0 if key and key.priority == "batch" else 1)
        lapses = key is not None and (key.revoked_at is not None or key.expires_at is not None)
        object.__setattr__(self, "may_lapse", lapses)

    @property
    def actor(self) -> str:
        return f"key:{self.key.id}" if self.key else "admin"


ScopeFor = Callable[[str], "AdmissionScope"]  # "key:<id>" or "team:<id>" -> its scope (`Admission.scope`)


def principal(key: ApiKey, team: Team | None, scope_for: ScopeFor) -> Principal:
    """A virtual key's caller, with the admission scopes of the key and its team."""
    scopes = []
    if key.limits.limited:
        scopes.append((scope_for(f"key:{key.id}"), key.limits))
    if team is not None and team.limits.limited:
        scopes.append((scope_for(f"team:{team.id}"), team.limits))
    return Principal(key.role, key, team, tuple(scopes))


class Keyring:
    def __init__(self, store: Store, master_key: str, scope_for: ScopeFor) -> None:
        self._store = store
        self._scope_for = scope_for
        self._master = Principal("admin")
        self._master_hash = hash_key(master_key)
        self._keys: dict[str, Principal] = {}  # by the key's hash, made at each reload
        self._teams: dict[str, Team] = {}
        self._version: str | None = None
        self._refresher: asyncio.Task[None] | None = None

    async def start(self) -> None:
        await self.reload()
        self._refresher = asyncio.create_task(self._refresh_forever())

    async def close(self) -> None:
        if self._refresher:
            self._refresher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._refresher

    async def reload(self) -> None:
        keys, self._teams, self._version = await asyncio.to_thread(snapshot, self._store)
        self._keys = {
            digest: principal(key, self.team(key.team_id), self._scope_for) for digest, key in keys.items()
        }

    async def _refresh_forever(self) -> None:
        while True:
            await asyncio.sleep(REFRESH_EVERY_S)
            try:
                if await asyncio.to_thread(self._read_version) != self._version:
                    await self.reload()
            except Exception as exc:  # the store may be briefly away; keep serving what we know
                log.warning(
                    "key refresh failed: %s", str(exc).splitlines()[0] if str(exc) else type(exc).__name__
                )

    def _read_version(self) -> str | None:
        with self._store.engine.connect() as conn:
            return read_version(conn)

    def team(self, team_id: str | None) -> Team | None:
        return self._teams.get(team_id) if team_id else None

    def authenticate(self, scope: Scope) -> Principal:
        raw = presented_key(scope)
        if raw is None:
            raise GatewayError(
                401,
                "missing API key: send it as 'Authorization: Bearer <key>' or 'x-api-key: <key>'",
                "missing_api_key",
            )
        digest = hash_key(raw)
        if digest == self._master_hash:
            return self._master
        found = self._keys.get(digest)
        if found is None:
            if not raw.startswith(KEY_PREFIX.encode()):
                raise GatewayError(
                    401, f"malformed API key: xvckit keys start with '{KEY_PREFIX}'", "invalid_api_key"
                )
            raise GatewayError(401, "invalid API key", "invalid_api_key")
        if found.may_lapse:
            _check_usable(found.key)
        return found


def _check_usable(key: ApiKey) -> None:
    if key.revoked_at is not None:
        raise GatewayError(401, f"API key {key.id} was revoked", "revoked_api_key")
    if key.expires_at is not None and key.expires_at <= time.time():
        expired = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(key.expires_at))
        raise GatewayError(401, f"API key {key.id} expired at {expired}", "expired_api_key")
