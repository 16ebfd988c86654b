"""Who a key belongs to, answered from memory: every key by hash, refreshed when the
store's key version changes (the CLI, the admin API or another replica changed a key).

A key not in memory may be one created since the last refresh: it is looked up in the store
at once (in a worker thread), so a new key works at its first request. What the store does
not know is remembered for a while (a bounded number of hashes), and only a few lookups run
at once, answering 429 beyond them: a flood of made-up keys neither hammers the store nor
grows memory. A key found in memory pays nothing for any of this (`known`).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from xvckit.asgi import Scope
from xvckit.background import stopped
from xvckit.gateway.dialects import NO_RETRY, GatewayError
from xvckit.store import Store
from xvckit.store.keys import KEY_PREFIX, ApiKey, Limits, Team, by_hash, hash_key, read_version, snapshot

if TYPE_CHECKING:
    from xvckit.gateway.admission import Scope as AdmissionScope

log = logging.getLogger("xvckit.gateway")

REFRESH_EVERY_S = 1.0
MISSES_KEPT = 10_000  # hashes the store did not know (the oldest go first)
MISS_TTL_S = 60.0  # how long one is remembered
LOOKUPS_AT_ONCE = 4  # store lookups of keys not in memory; a request beyond them gets a 429


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
        self._reloads = 0  # a lookup that overlapped a reload may have read what it replaced
        self._refresher: asyncio.Task[None] | None = None
        self._misses: OrderedDict[str, float] = OrderedDict()  # hash -> when forgotten (monotonic)
        self._lookups: dict[str, asyncio.Future[Principal | None]] = {}  # hash -> its lookup in flight

    async def start(self) -> None:
        await self.reload()
        self._refresher = asyncio.create_task(self._refresh_forever())

    async def close(self) -> None:
        await stopped(self._refresher)

    async def reload(self) -> None:
        keys, self._teams, self._version = await asyncio.to_thread(snapshot, self._store)
        self._reloads += 1
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

    def known(self, scope: Scope) -> Principal | None:
        """The caller when its key is the master key or one in memory (revoked or expired: a
        GatewayError); None otherwise. Nothing awaited: the path of nearly every request."""
        raw = presented_key(scope)
        if raw is None:
            return None
        digest = hash_key(raw)
        if digest == self._master_hash:
            return self._master
        found = self._keys.get(digest)
        if found is not None and found.may_lapse:
            _check_usable(found.key)
        return found

    async def authenticate(self, scope: Scope) -> Principal:
        """The caller of any key: `known`, else looked up in the store; a GatewayError when
        there is no usable key. (The proxy calls `known` first and this only on a miss.)"""
        return self.known(scope) or await self._look_up(presented_key(scope))

    async def _look_up(self, raw: bytes | None) -> Principal:
        if raw is None:
            raise GatewayError(
                401,
                "missing API key: send it as 'Authorization: Bearer <key>' or 'x-api-key: <key>'",
                "missing_api_key",
            )
        if not raw.startswith(KEY_PREFIX.encode()):
            raise GatewayError(
                401, f"malformed API key: xvckit keys start with '{KEY_PREFIX}'", "invalid_api_key"
            )
        digest = hash_key(raw)
        pending = self._lookups.get(digest)
        if pending is None:
            if self._missed(digest):
                raise _invalid()
            if len(self._lookups) >= LOOKUPS_AT_ONCE:
                raise GatewayError(
                    429,
                    "too many unknown API keys are being checked at once; retry in a second",
                    "rate_limit_exceeded",
                    {"retry-after": "1"},
                )
            pending = self._lookups[digest] = asyncio.get_running_loop().create_future()
            try:
                pending.set_result(await self._from_store(digest))
            except BaseException as exc:
                pending.set_exception(exc)
                pending.exception()  # retrieved here: waiters, if any, get it too
                raise
            finally:
                del self._lookups[digest]
        found = await asyncio.shield(pending)
        if found is None:
            raise _invalid()
        if found.may_lapse:
            _check_usable(found.key)
        return found

    def _missed(self, digest: str) -> bool:
        """Did the store lately not know this hash? (An expired entry is dropped.)"""
        until = self._misses.get(digest)
        if until is None:
            return False
        if until > time.monotonic():
            return True
        del self._misses[digest]
        return False

    async def _from_store(self, digest: str) -> Principal | None:
        """The key's caller, kept in memory until the next reload; None, remembered, when the
        store does not know the hash."""
        reloads = self._reloads
        try:
            found = await asyncio.to_thread(by_hash, self._store, digest)
        except Exception as exc:
            log.warning("key lookup failed: %s", str(exc).splitlines()[0] if str(exc) else type(exc).__name__)
            raise GatewayError(
                503, "cannot check this API key now: the key store is unavailable", "store_unavailable"
            ) from None
        current = reloads == self._reloads  # else a revoke or rotate may have come in between
        if found is None:
            if not current:
                return None
            if len(self._misses) >= MISSES_KEPT:
                self._misses.popitem(last=False)
            self._misses[digest] = time.monotonic() + MISS_TTL_S
            return None
        key, team = found
        if team is not None and current:
            self._teams.setdefault(team.id, team)
        who = principal(key, self.team(key.team_id) or team, self._scope_for)
        if current:  # kept until the next reload replaces it
            self._keys[digest] = who
        return who


def _invalid() -> GatewayError:
    return GatewayError(401, "invalid API key", "invalid_api_key")


def _check_usable(key: ApiKey) -> None:
    if key.revoked_at is not None:
        raise GatewayError(401, f"API key {key.id} was revoked", "revoked_api_key", {**NO_RETRY})
    if key.expires_at is not None and key.expires_at <= time.time():
        expired = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(key.expires_at))
        raise GatewayError(401, f"API key {key.id} expired at {expired}", "expired_api_key", {**NO_RETRY})
