"""`Idempotency-Key`: a retried request gets the first answer, never a second upstream call
(issue 4). The gateway asks the store before calling upstream:

    key = scoped_key(principal.key_id, headers[b"idempotency-key"])   # 400 if malformed
    digest = request_hash(payload)              # before the gateway changes the payload
    while True:
        begun = await store.begin(key, digest, ttl_s=86400)
        match begun.kind:
            case "first":                        # this request makes the call
                try: ... answer, then await store.finish(key, CachedResponse(...))
                except: await store.abandon(key); raise
            case "replay":  answer with begun.response (cache.replay)
            case "conflict": raise conflict_error()                  # 422
            case "wait":                        # the same request is in flight elsewhere
                response = await store.wait_for(key, timeout_s=...)
                if response: answer with it
                elif past the deadline: raise in_progress_error()    # 409
                # else the owner gave up or timed out: begin again

What to finish and what to abandon: an answer the client may keep (2xx; a 4xx that says the
request is wrong) is finished and replayed for `ttl_s`; a failure worth retrying (gateway
errors, 408/409/429/5xx, a stream that broke) is abandoned, so the retry calls upstream. A
streamed answer is stored as its events (`CachedResponse.streamed`) and replayed with
`cache.replay`, which turns it into a whole body or back into a stream as the retry asks.

Keys are per caller: `scoped_key` hashes the caller's key id with the header value, so two
callers' keys never meet (nobody can read another's answers by guessing a key). The body hash
(`request_hash`) is over the payload as the client sent it, top-level key order aside.

Records: pending (the owner's lease, `lease_s`: a replica that dies while calling upstream
releases the key when it runs out; set it above the gateway's longest request) or finished
(the response, kept `ttl_s` from `finish`). `IdempotencyStore` holds them in this process,
finished ones bounded by `max_bytes` (oldest out first; a retry after that calls upstream
again). Checking and reserving happen with no await in between, so of concurrent begins with
one key exactly one is `first`.

`RedisIdempotencyStore` shares them across replicas: one hash per key, `<prefix><key>`, fields
`s` (state: `p` pending, `d` done), `h` (body hash), `o` (owner token, while pending), `r`
(the response, `CachedResponse.to_bytes()`), with the lease and then the TTL as its expiry.
Begin, finish, abandon and the hand-over of local results are one Lua script each (atomic: of
concurrent begins across replicas exactly one is first). Only the owner finishes or abandons
a pending record; an owner whose lease ran out still stores its result if the key is free.
Waiters poll the record (10 ms, doubling to `poll_s`); those in the owner's own process are
woken at once. Redis unavailable: the replica carries on with a local store (`degraded` says
so; during the outage a key is only known to the replica that saw it), keeps serving the keys
it knows locally after Redis returns, and hands the results it finished meanwhile to Redis.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import itertools
import logging
import math
import os
import time
from collections import OrderedDict
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, ClassVar, Literal

from redis.asyncio import Redis

from xvckit.gateway.cache import CachedResponse, canonical
from xvckit.gateway.dialects import GatewayError
from xvckit.gateway.shared_state import ERRORS, RedisLink

log = logging.getLogger("xvckit.gateway.idempotency")

HEADER = b"idempotency-key"
MAX_KEY_LENGTH = 255
DEFAULT_TTL_S = 24 * 3600.0
DEFAULT_LEASE_S = 600.0
DEFAULT_MAX_BYTES = 64 << 20
SWEEP_S = 10.0

_KEY_CHARS = frozenset(range(0x20, 0x7F))


def scoped_key(owner: str | None, value: bytes | str) -> str:
    """The store key for an `Idempotency-Key` header `value` sent by `owner` (the caller's key
    id; None for the master key). GatewayError 400 unless the value is 1 to 255 printable
    ASCII characters."""
    raw = value.encode("latin-1") if isinstance(value, str) else value
    if not 0 < len(raw) <= MAX_KEY_LENGTH or not all(b in _KEY_CHARS for b in raw):
        raise GatewayError(
            400,
            f"the Idempotency-Key header must be 1 to {MAX_KEY_LENGTH} printable ASCII characters",
            "invalid_idempotency_key",
        )
    return hashlib.sha256((owner or "").encode() + b"\0" + raw).hexdigest()


def request_hash(payload: Mapping[str, Any]) -> str:
    """The hash a retry's body must match: every field counts; the order of top-level keys,
    `n: 1` against no `n`, and `1` against `1.0` at the top level do not."""
    return hashlib.sha256(canonical(payload)).hexdigest()


def conflict_error() -> GatewayError:
    return GatewayError(
        422,
        "this Idempotency-Key was already used with a different request body",
        "idempotency_key_reused",
    )


def in_progress_error(retry_after_s: int = 1) -> GatewayError:
    return GatewayError(
        409,
        "a request with this Idempotency-Key is still in progress; retry later",
        "idempotency_key_in_progress",
        {"retry-after": str(retry_after_s)},
    )


@dataclass(frozen=True, slots=True)
class Begin:
    """What `begin` found: `Begin.first` (proceed: the caller owns the key and must `finish`
    or `abandon` it), `Begin.replay(response)` (answered before: answer with `response`),
    `Begin.wait` (in flight: `wait_for` it), `Begin.conflict` (another body: 422)."""

    kind: Literal["first", "replay", "wait", "conflict"]
    response: CachedResponse | None = None

    first: ClassVar[Begin]
    wait: ClassVar[Begin]
    conflict: ClassVar[Begin]

    @staticmethod
    def replay(response: CachedResponse) -> Begin:
        return Begin("replay", response)


Begin.first = Begin("first")
Begin.wait = Begin("wait")
Begin.conflict = Begin("conflict")


# --- in this process -------------------------------------------------------------------------


@dataclass(slots=True, eq=False)
class _Record:
    body_hash: str
    ttl_s: float
    expires_at: float  # the lease's end while pending, the result's when finished
    response: CachedResponse | None = None
    size: int = 0
    done: asyncio.Future | None = None  # waiters: the response, or None when there is none to give


class IdempotencyStore:
    """Idempotency records in this process (see the module docstring)."""

    def __init__(
        self,
        *,
        lease_s: float = DEFAULT_LEASE_S,
        max_bytes: int = DEFAULT_MAX_BYTES,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.lease_s = lease_s
        self.max_bytes = max_bytes
        self.clock = clock
        self._records: OrderedDict[str, _Record] = OrderedDict()
        self._bytes = 0
        self._sweep_at = clock() + SWEEP_S

    def _live(self, key: str, now: float) -> _Record | None:
        record = self._records.get(key)
        if record is not None and record.expires_at <= now:
            self._drop(key, record)
            return None
        return record

    def __contains__(self, key: str) -> bool:
        return self._live(key, self.clock()) is not None

    async def begin(self, key: str, body_hash: str, ttl_s: float = DEFAULT_TTL_S) -> Begin:
        """Claim `key` for this request, or say why not. `ttl_s`: how long the result is kept."""
        now = self.clock()
        if now >= self._sweep_at:
            self._sweep(now)
        record = self._live(key, now)
        if record is None:
            self._records[key] = _Record(body_hash, ttl_s, now + self.lease_s)
            return Begin.first
        if record.body_hash != body_hash:
            return Begin.conflict
        if record.response is not None:
            return Begin.replay(record.response)
        return Begin.wait

    async def wait_for(self, key: str, timeout_s: float) -> CachedResponse | None:
        """The response once the owner finishes; None when it abandons, its lease runs out, or
        `timeout_s` passes first (then `begin` again)."""
        now = self.clock()
        record = self._live(key, now)
        if record is None or record.response is not None:
            return record.response if record else None
        if record.done is None:
            record.done = asyncio.get_running_loop().create_future()
        try:
            return await asyncio.wait_for(
                asyncio.shield(record.done), max(0.0, min(timeout_s, record.expires_at - now))
            )
        except TimeoutError:
            return None

    async def finish(self, key: str, response: CachedResponse) -> None:
        """The owner's answer: replayed to retries for the `ttl_s` given to `begin`."""
        record = self._records.get(key)
        if record is None or record.response is not None:
            return  # the lease ran out and the record is gone, or someone finished it already
        self._finished(key, record, response)

    async def abandon(self, key: str) -> None:
        """The owner failed: the next `begin` with this key is `first`."""
        record = self._records.get(key)
        if record is not None and record.response is None:
            self._drop(key, record)

    def remember(self, key: str, body_hash: str, response: CachedResponse, ttl_s: float) -> None:
        """Keep a finished result made elsewhere (e.g. by a call that began in Redis)."""
        record = self._records.get(key)
        if record is not None:
            if record.response is not None or record.body_hash != body_hash:
                return
        else:
            record = self._records[key] = _Record(body_hash, ttl_s, 0.0)
        record.ttl_s = ttl_s
        self._finished(key, record, response)

    def finished(self) -> Iterator[tuple[str, str, CachedResponse, float]]:
        """(key, body hash, response, seconds left) of every finished record still kept."""
        now = self.clock()
        for key, record in list(self._records.items()):
            if record.response is not None and record.expires_at > now:
                yield key, record.body_hash, record.response, record.expires_at - now

    def _finished(self, key: str, record: _Record, response: CachedResponse) -> None:
        record.response = response
        record.expires_at = self.clock() + record.ttl_s
        record.size = response.size
        self._bytes += record.size
        self._records.move_to_end(key)
        if record.done is not None and not record.done.done():
            record.done.set_result(response)
        if self._bytes > self.max_bytes:
            for old_key, old in list(self._records.items()):
                if old.response is not None:
                    self._drop(old_key, old)
                    if self._bytes <= self.max_bytes:
                        break

    def _drop(self, key: str, record: _Record) -> None:
        del self._records[key]
        self._bytes -= record.size
        if record.done is not None and not record.done.done():
            record.done.set_result(record.response)

    def _sweep(self, now: float) -> None:
        self._sweep_at = now + SWEEP_S
        for key, record in [(k, r) for k, r in self._records.items() if r.expires_at <= now]:
            self._drop(key, record)

    def stats(self) -> dict[str, int]:
        finished = sum(1 for record in self._records.values() if record.response is not None)
        return {"pending": len(self._records) - finished, "finished": finished, "bytes": self._bytes}

    async def aclose(self) -> None:
        for key, record in list(self._records.items()):
            self._drop(key, record)


# --- shared through Redis --------------------------------------------------------------------

# KEYS: record. ARGV: body hash, owner token, lease ms.
# Returns {1} first, {2, response} replay, {3} wait, {4} conflict.
BEGIN_LUA = """
local cur = redis.call('HMGET', KEYS[1], 's', 'h')
if not cur[1] then
  redis.call('HSET', KEYS[1], 's', 'p', 'h', ARGV[1], 'o', ARGV[2])
  redis.call('PEXPIRE', KEYS[1], ARGV[3])
  return {1}
end
if cur[2] ~= ARGV[1] then return {4} end
if cur[1] == 'd' then return {2, redis.call('HGET', KEYS[1], 'r')} end
return {3}
"""

# KEYS: record. ARGV: owner token, response, ttl ms, body hash. Stores the result when the
# record is this owner's pending one, or gone (the lease ran out and nobody took the key).
FINISH_LUA = """
local cur = redis.call('HMGET', KEYS[1], 's', 'o')
if cur[1] == 'd' or (cur[1] == 'p' and cur[2] ~= ARGV[1]) then return 0 end
redis.call('HSET', KEYS[1], 's', 'd', 'h', ARGV[4], 'r', ARGV[2])
redis.call('HDEL', KEYS[1], 'o')
redis.call('PEXPIRE', KEYS[1], ARGV[3])
return 1
"""

# KEYS: record. ARGV: owner token. Frees the key if this owner still holds it.
ABANDON_LUA = """
local cur = redis.call('HMGET', KEYS[1], 's', 'o')
if cur[1] == 'p' and cur[2] == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""

# KEYS: record. ARGV: body hash, response, ttl ms, owner token ('' if none). A result finished
# while Redis was away, stored unless the key has a record already other than the pending one
# of the same owner (who began in Redis and finished during the outage).
ADOPT_LUA = """
local cur = redis.call('HMGET', KEYS[1], 's', 'o')
if cur[1] and not (cur[1] == 'p' and cur[2] == ARGV[4]) then return 0 end
redis.call('HSET', KEYS[1], 's', 'd', 'h', ARGV[1], 'r', ARGV[2])
redis.call('HDEL', KEYS[1], 'o')
redis.call('PEXPIRE', KEYS[1], ARGV[3])
return 1
"""


@dataclass(slots=True)
class _Owned:
    token: str | None  # None: begun in the local store
    body_hash: str
    ttl_s: float


@dataclass(slots=True, eq=False)
class _Wake:
    """This process's waiters for a key held in Redis: woken at once when the owner is here too."""

    future: asyncio.Future  # the response, or None: look in Redis again
    waiters: int = 0


def _ms(seconds: float) -> int:
    return max(1, math.ceil(seconds * 1000))


class RedisIdempotencyStore:
    """`IdempotencyStore` shared by replicas through Redis; local when Redis is not there."""

    def __init__(
        self,
        redis: str | Redis,
        *,
        prefix: str = "xvckit:idem:",
        lease_s: float = DEFAULT_LEASE_S,
        max_bytes: int = DEFAULT_MAX_BYTES,
        poll_s: float = 0.1,
        timeout_s: float = 0.25,
        retry_s: float = 2.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.local = IdempotencyStore(lease_s=lease_s, max_bytes=max_bytes, clock=clock)
        self.lease_s = lease_s
        self._prefix = prefix
        self._poll_s = poll_s
        self._link = RedisLink(
            redis,
            what="idempotency",
            log=log,
            timeout_s=timeout_s,
            retry_s=retry_s,
            clock=clock,
            on_recover=self._hand_over,
        )
        redis_client = self._link.redis
        self._begin = redis_client.register_script(BEGIN_LUA)
        self._finish = redis_client.register_script(FINISH_LUA)
        self._abandon = redis_client.register_script(ABANDON_LUA)
        self._adopt = redis_client.register_script(ADOPT_LUA)
        self._replica = f"{os.getpid():x}.{os.urandom(3).hex()}"
        self._ids = itertools.count()
        self._owned: dict[str, _Owned] = {}
        self._unsent: dict[str, str] = {}  # key -> owner token: finished locally, pending in Redis
        self._wake: dict[str, _Wake] = {}

    @property
    def degraded(self) -> str | None:
        """Why keys are this replica's own for now (for /readyz and logs), or None."""
        return self._link.degraded

    def _on_local(self, key: str) -> bool:
        return self._link.local() or key in self.local

    async def begin(self, key: str, body_hash: str, ttl_s: float = DEFAULT_TTL_S) -> Begin:
        if not self._on_local(key):
            token = f"{self._replica}:{next(self._ids)}"
            try:
                found = await self._begin(
                    keys=[self._prefix + key], args=[body_hash, token, _ms(self.lease_s)]
                )
            except ERRORS as exc:
                self._link.fail(exc)
            else:
                return self._begun(key, found, token, body_hash, ttl_s)
        begun = await self.local.begin(key, body_hash, ttl_s)
        if begun is Begin.first:
            self._owned[key] = _Owned(None, body_hash, ttl_s)
        return begun

    def _begun(self, key: str, found: list, token: str, body_hash: str, ttl_s: float) -> Begin:
        kind = int(found[0])
        if kind == 1:
            self._owned[key] = _Owned(token, body_hash, ttl_s)
            return Begin.first
        if kind == 3:
            return Begin.wait
        if kind == 4:
            return Begin.conflict
        try:
            return Begin.replay(CachedResponse.from_bytes(found[1]))
        except ValueError as exc:  # written by another version: answer by calling upstream
            log.warning("idempotency record %s unreadable (%s); calling upstream", key, exc)
            return Begin.first

    async def wait_for(self, key: str, timeout_s: float) -> CachedResponse | None:
        if self._on_local(key):
            return await self.local.wait_for(key, timeout_s)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        pause = 0.01
        wake = self._wake.get(key)
        if wake is None:
            wake = self._wake[key] = _Wake(loop.create_future())
        wake.waiters += 1
        try:
            while True:
                if wake.future.done() and wake.future.result() is not None:
                    return wake.future.result()  # finished in this process
                try:
                    state, data = await self._link.redis.hmget(self._prefix + key, "s", "r")
                except ERRORS as exc:
                    self._link.fail(exc)
                    return None
                if state is None:
                    return None  # abandoned or expired: begin again
                if state == b"d":
                    try:
                        return CachedResponse.from_bytes(data)
                    except ValueError:
                        return None
                left = deadline - loop.time()
                if left <= 0:
                    return None
                if wake.future.done():  # abandoned here, yet the key is taken again: plain polling
                    await asyncio.sleep(min(pause, left))
                else:
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(asyncio.shield(wake.future), min(pause, left))
                pause = min(pause * 2, self._poll_s)
        finally:
            wake.waiters -= 1
            if wake.waiters == 0 and self._wake.get(key) is wake:
                del self._wake[key]

    def _wake_waiters(self, key: str, response: CachedResponse | None) -> None:
        wake = self._wake.pop(key, None)
        if wake is not None and not wake.future.done():
            wake.future.set_result(response)

    async def finish(self, key: str, response: CachedResponse) -> None:
        owned = self._owned.pop(key, None)
        if owned is None:
            return
        if owned.token is None:
            await self.local.finish(key, response)
            if not self._link.local():  # Redis is back: others may ask for it
                try:
                    await self._hand(key, owned.body_hash, response, owned.ttl_s)
                except ERRORS as exc:
                    self._link.fail(exc)
        else:
            try:
                await self._finish(
                    keys=[self._prefix + key],
                    args=[owned.token, response.to_bytes(), _ms(owned.ttl_s), owned.body_hash],
                )
            except ERRORS as exc:
                self._link.fail(exc)
                self.local.remember(key, owned.body_hash, response, owned.ttl_s)
                self._unsent[key] = owned.token  # Redis holds our pending record: replace it later
        self._wake_waiters(key, response)

    async def abandon(self, key: str) -> None:
        owned = self._owned.pop(key, None)
        if owned is None:
            return
        if owned.token is None:
            await self.local.abandon(key)
        else:
            try:
                await self._abandon(keys=[self._prefix + key], args=[owned.token])
            except ERRORS as exc:
                self._link.fail(exc)  # the lease frees the key when it runs out
        self._wake_waiters(key, None)

    async def _hand(self, key: str, body_hash: str, response: CachedResponse, ttl_s: float) -> None:
        """One result finished locally, to Redis (unless the key is taken there)."""
        token = self._unsent.get(key, "")
        args = [body_hash, response.to_bytes(), _ms(ttl_s), token]
        await self._adopt(keys=[self._prefix + key], args=args)
        self._unsent.pop(key, None)

    async def _hand_over(self) -> None:
        """Redis is back: the results finished locally meanwhile go to Redis (errors propagate:
        the probe then stays degraded and tries again later)."""
        for key, body_hash, response, left in self.local.finished():
            await self._hand(key, body_hash, response, left)
        self._unsent.clear()  # what is left expired locally

    def stats(self) -> dict[str, int | str | None]:
        return {**self.local.stats(), "owned": len(self._owned), "degraded": self.degraded}

    async def aclose(self) -> None:
        await self._link.aclose()
        await self.local.aclose()
