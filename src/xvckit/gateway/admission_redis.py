"""Admission shared by several gateway replicas through Redis, so together they admit exactly
what one would: the rpm, tpm and budget of a key and of its team are checked and reserved by
one Lua script, as `RedisPacer` does for provider limits (pacing_redis.py).

Each scope (a key "key:<id>" or a team "team:<id>") has, under the prefix:

    <scope>:w          ZSET   requests of the last minute: "<replica>:<n>|<tokens>" -> leaves (ms)
    <scope>:r          ZSET   running requests' reservations: "<replica>:<n>|<usd>" -> lease end (ms)
    <scope>:s          HASH   t (the window's tokens), h (the reservations' USD)
    <scope>:b:<start>  STRING what the budget period starting at <start> has spent (USD)

Times are Redis server time, so the replicas' clocks need not agree (budget periods are
calendar periods of each replica's clock, as on one replica). A period's spend is read from
the ledger once: the script finds no `:b:` key, a replica reads the ledger and sets it with
SET NX, so every replica counts from the same figure; each settle adds its request's cost. A
reservation is a lease that its replica renews while the request runs, so the reservations
of a replica that dies are gone within `lease_s`. The script holds the key's and the team's
state together: one Redis (or a primary with its replicas), not a cluster.

`try_admit` cannot await the script, so while Redis serves it raises `AskRedis`, a
`BudgetNotLoaded`: the proxy's existing fallback for a budget to load then awaits `admit`,
which runs the script (one EVALSHA round trip). Settling is sent in the background.

Redis unreachable or failing (the `RedisLink` contract, shared_state.py): the replica admits
on its own state with a 1/`replicas` share of each limit (of a budget: of what the ledger
says is left) and `degraded` says so (/readyz). When Redis answers again, the requests it
admitted meanwhile join the shared windows and their costs the shared budgets, and its own
budgets are read from the ledger again at the next outage.
"""

from __future__ import annotations

import asyncio
import functools
import itertools
import logging
import math
import os
import time
from dataclasses import dataclass, replace

from redis.asyncio import Redis

from xvckit.gateway.admission import (
    WINDOW_S,
    Admission,
    Budget,
    BudgetNotLoaded,
    Scopes,
    SpentLoader,
    Ticket,
    _budget_exceeded,
    _check_model,
    _rate_limited,
    _unpriced,
    period_bounds,
)
from xvckit.gateway.dialects import GatewayError
from xvckit.gateway.pacing_redis import SERVER_NOW_LUA
from xvckit.gateway.shared_state import ERRORS, RedisLink
from xvckit.store.keys import Limits

log = logging.getLogger("xvckit.gateway.admission")

_COMMON = (
    SERVER_NOW_LUA
    + """
local function weight(member) return tonumber(string.match(member, '|([^|]+)$')) end
"""
)

# KEYS: window, reservations, sums, period's spend of each scope (4 each). ARGV: member id,
# tokens, USD, window ms, lease ms, key lifetime ms; per scope: rpm, tpm (0: none), budget (-1:
# none). Returns {'ok', per scope the budget used with this request (-1: none)}, {'seed', scope}
# (no spend for the period yet), or {'budget' | 'rpm' | 'tpm', scope, USD used | ms to wait}.
ADMIT_LUA = (
    _COMMON
    + """
-- The total weight zset z holds once its expired members are gone (kept in field f of hash s).
local function live(z, s, f, now)
  if redis.call('HEXISTS', s, f) == 0 then
    local total = 0
    for _, m in ipairs(redis.call('ZRANGE', z, 0, -1)) do total = total + weight(m) end
    redis.call('HSET', s, f, total)
  end
  local gone = redis.call('ZRANGEBYSCORE', z, '-inf', now)
  if #gone > 0 then
    redis.call('ZREMRANGEBYSCORE', z, '-inf', now)
    if redis.call('ZCARD', z) == 0 then
      redis.call('HSET', s, f, 0)
    else
      local w = 0
      for i = 1, #gone do w = w + weight(gone[i]) end
      redis.call('HINCRBYFLOAT', s, f, 0 - w)
    end
  end
  return tonumber(redis.call('HGET', s, f))
end

-- When the oldest requests of window w will have freed `excess` tokens (ms from now).
local function freed(w, excess, now, span)
  local start = 0
  while true do
    local batch = redis.call('ZRANGE', w, start, start + 99, 'WITHSCORES')
    if #batch == 0 then return span end
    for i = 1, #batch, 2 do
      excess = excess - weight(batch[i])
      if excess <= 0 then return tonumber(batch[i + 1]) - now end
    end
    start = start + 100
  end
end

local now, id = server_now(), ARGV[1]
local tokens, usd = tonumber(ARGV[2]), tonumber(ARGV[3])
local span, lease, keep = tonumber(ARGV[4]), tonumber(ARGV[5]), tonumber(ARGV[6])
local scopes, used = #KEYS / 4, {}
for i = 1, scopes do
  local w, r, s, b = KEYS[4 * i - 3], KEYS[4 * i - 2], KEYS[4 * i - 1], KEYS[4 * i]
  local rpm, tpm, budget = tonumber(ARGV[3 * i + 4]), tonumber(ARGV[3 * i + 5]), tonumber(ARGV[3 * i + 6])
  used[i] = -1
  if budget >= 0 then
    local spent = redis.call('GET', b)
    if not spent then return {'seed', i} end
    used[i] = tonumber(spent) + live(r, s, 'h', now)
    if used[i] + usd > budget then return {'budget', i, tostring(used[i])} end
  end
  if rpm > 0 or tpm > 0 then
    local total, count = live(w, s, 't', now), redis.call('ZCARD', w)
    if count > 0 and rpm > 0 and count >= rpm then
      local at = redis.call('ZRANGE', w, count - rpm, count - rpm, 'WITHSCORES')
      return {'rpm', i, tostring(tonumber(at[2]) - now)}
    end
    if count > 0 and tpm > 0 and total + tokens > tpm then
      return {'tpm', i, tostring(freed(w, total + tokens - tpm, now, span))}
    end
  end
end
for i = 1, scopes do
  local w, r, s = KEYS[4 * i - 3], KEYS[4 * i - 2], KEYS[4 * i - 1]
  if used[i] >= 0 then
    redis.call('ZADD', r, now + lease, id .. '|' .. ARGV[3])
    redis.call('HINCRBYFLOAT', s, 'h', usd)
    used[i] = tostring(used[i] + usd)
  end
  if tonumber(ARGV[3 * i + 4]) > 0 or tonumber(ARGV[3 * i + 5]) > 0 then
    redis.call('ZADD', w, now + span, id .. '|' .. ARGV[2])
    redis.call('HINCRBYFLOAT', s, 't', tokens)
  end
  redis.call('PEXPIRE', w, keep)
  redis.call('PEXPIRE', r, keep)
  redis.call('PEXPIRE', s, keep)
end
return {'ok', unpack(used)}
"""
)

# KEYS: as ADMIT_LUA's. ARGV: member id, tokens reserved, tokens used, USD reserved, cost; per
# scope 1 if it holds a reservation, else 0. The window entry keeps its place with its real
# tokens; the reservation goes and the cost is added to the period's spend (if it is there:
# one read from the ledger later has it).
SETTLE_LUA = (
    _COMMON
    + """
local now, id = server_now(), ARGV[1]
local entry, real, lease = id .. '|' .. ARGV[2], id .. '|' .. ARGV[3], id .. '|' .. ARGV[4]
for i = 1, #KEYS / 4 do
  local w, r, s, b = KEYS[4 * i - 3], KEYS[4 * i - 2], KEYS[4 * i - 1], KEYS[4 * i]
  local score = redis.call('ZSCORE', w, entry)
  if entry ~= real and score and tonumber(score) > now and redis.call('HEXISTS', s, 't') == 1 then
    redis.call('ZREM', w, entry)
    redis.call('ZADD', w, score, real)
    redis.call('HINCRBYFLOAT', s, 't', tonumber(ARGV[3]) - tonumber(ARGV[2]))
  end
  if ARGV[5 + i] == '1' then
    if redis.call('ZREM', r, lease) == 1 then
      if redis.call('ZCARD', r) == 0 then
        redis.call('HSET', s, 'h', 0)
      elseif redis.call('HEXISTS', s, 'h') == 1 then
        redis.call('HINCRBYFLOAT', s, 'h', 0 - tonumber(ARGV[4]))
      end
    end
    if redis.call('EXISTS', b) == 1 then redis.call('INCRBYFLOAT', b, ARGV[5]) end
  end
end
return 1
"""
)

# KEYS: reservations, sums of each lease (2 each). ARGV: lease ms, key lifetime ms, then each
# lease's member. A lease already expired (and dropped) stays gone.
RENEW_LUA = (
    _COMMON
    + """
local until_ms, keep = server_now() + tonumber(ARGV[1]), tonumber(ARGV[2])
for i = 1, #KEYS / 2 do
  redis.call('ZADD', KEYS[2 * i - 1], 'XX', until_ms, ARGV[i + 2])
  redis.call('PEXPIRE', KEYS[2 * i - 1], keep)
  redis.call('PEXPIRE', KEYS[2 * i], keep)
end
return 1
"""
)

# KEYS: periods' spend. ARGV: USD to add to each (one not there is read from the ledger).
ADD_SPEND_LUA = """
for i = 1, #KEYS do
  if redis.call('EXISTS', KEYS[i]) == 1 then redis.call('INCRBYFLOAT', KEYS[i], ARGV[i]) end
end
return 1
"""

# KEYS: window, sums. ARGV: key lifetime ms, then member, ms-left pairs: requests admitted
# while Redis was away (a member already there is not added twice).
REPLAY_LUA = (
    _COMMON
    + """
local now, added = server_now(), 0
for i = 2, #ARGV, 2 do
  if redis.call('ZADD', KEYS[1], 'NX', now + tonumber(ARGV[i + 1]), ARGV[i]) == 1 then
    added = added + weight(ARGV[i])
  end
end
if redis.call('HEXISTS', KEYS[2], 't') == 1 then redis.call('HINCRBYFLOAT', KEYS[2], 't', added) end
redis.call('PEXPIRE', KEYS[1], tonumber(ARGV[1]))
redis.call('PEXPIRE', KEYS[2], tonumber(ARGV[1]))
return 1
"""
)

_SPEND_KEPT_S = 86400  # a period's spend outlives the period by a day (late settles land there)


class AskRedis(BudgetNotLoaded):
    """`try_admit`'s answer while the limits are in Redis: the proxy's fallback for a
    `BudgetNotLoaded` awaits `admit`, which asks Redis."""

    def __init__(self) -> None:
        Exception.__init__(self, "admission is shared through Redis")


@dataclass(slots=True, eq=False)
class SharedTicket:
    """What an admitted request holds in Redis until it settles."""

    keys: list[str]  # ADMIT_LUA's keys
    member: str
    tokens: int
    usd: str  # the reservation as sent: it names the lease
    leased: list[int]  # per scope: 1 if it holds a reservation
    renewed: float  # when its lease was last renewed (monotonic)


@dataclass(slots=True)
class _Checked:
    """A scope's limits to send to Redis, and its budget period."""

    name: str
    limits: Limits
    start: float
    end: float


class RedisAdmission:
    """`Admission` with its windows and budgets in Redis, and the replica's own share of each
    limit while Redis is away. `scope` makes the keyring's scopes: the local state."""

    def __init__(
        self,
        redis: str | Redis,
        load_spent: SpentLoader,
        *,
        prefix: str = "xvckit:admit:",
        replicas: int = 1,
        lease_s: float = 60.0,
        timeout_s: float = 0.25,
        retry_s: float = 2.0,
    ) -> None:
        self.local = Admission(self._share_of_spent)
        self.scope = self.local.scope
        self.replicas = replicas
        self._load_spent = load_spent
        self._link = RedisLink(
            redis,
            what="key and team limits",
            log=log,
            timeout_s=timeout_s,
            retry_s=retry_s,
            on_recover=self._recover,
        )
        client = self._link.redis
        self._admit = client.register_script(ADMIT_LUA)
        self._settle = client.register_script(SETTLE_LUA)
        self._renew = client.register_script(RENEW_LUA)
        self._add_spend = client.register_script(ADD_SPEND_LUA)
        self._replay = client.register_script(REPLAY_LUA)
        self._prefix = prefix
        self._span_ms = math.ceil(WINDOW_S * 1000)
        self._lease_ms = math.ceil(lease_s * 1000)
        self._keep_ms = 2 * max(self._span_ms, self._lease_ms)
        self._replica = f"{os.getpid():x}.{os.urandom(3).hex()}"
        self._ids = itertools.count()
        self._shares: dict[Limits, Limits] = {}
        self._seeding: dict[str, asyncio.Future[None]] = {}
        self._leased: dict[SharedTicket, None] = {}  # running requests with a reservation
        self._renewer: asyncio.Task[None] | None = None
        self._unshared: dict[str, float] = {}  # costs not yet added to a period's spend in Redis
        self._remaining: dict[str, float] = {}  # budget left per scope, as Redis last said

    @property
    def degraded(self) -> str | None:
        """Why limits are held on this replica's own share (for /readyz), or None when shared."""
        return self._link.degraded

    def try_admit(
        self, scopes: Scopes, model: str, estimate_tokens: int, estimate_usd: float | None
    ) -> Ticket | SharedTicket:
        if self._link.local():
            return self.local.try_admit(self._own_share(scopes), model, estimate_tokens, estimate_usd)
        raise AskRedis

    async def admit(
        self, scopes: Scopes, model: str, estimate_tokens: int, estimate_usd: float | None
    ) -> Ticket | SharedTicket:
        if not self._link.local():
            try:
                return await self._admit_shared(scopes, model, estimate_tokens, estimate_usd)
            except ERRORS as exc:
                self._link.fail(exc)
        return await self.local.admit(self._own_share(scopes), model, estimate_tokens, estimate_usd)

    def settle(self, ticket: Ticket | SharedTicket, tokens: int, cost_usd: float) -> None:
        if isinstance(ticket, SharedTicket):
            self._leased.pop(ticket, None)
            self._link.spawn(self._settle_shared(ticket, tokens, cost_usd))
            return
        Admission.settle(ticket, tokens, cost_usd)  # admitted while Redis was away
        for scope, _, budget, _ in ticket:
            if budget is not None:
                self._owe(self._keys(scope.name, budget.period_start)[3], cost_usd)
        if self._unshared and not self._link.degraded:
            self._link.spawn(self._push_spend_or_fail())

    def remaining(self) -> dict[str, float]:
        """Budget left per scope, for metrics: this replica's share while Redis is away."""
        return self.local.remaining() if self._link.degraded else dict(self._remaining)

    async def aclose(self) -> None:
        if self._renewer is not None:
            self._renewer.cancel()
        await self._link.aclose()

    # --- shared ------------------------------------------------------------------------------

    def _keys(self, name: str, period_start: float) -> list[str]:
        base = f"{self._prefix}{name}"
        return [f"{base}:w", f"{base}:r", f"{base}:s", f"{base}:b:{int(period_start)}"]

    async def _admit_shared(
        self, scopes: Scopes, model: str, tokens: int, usd: float | None
    ) -> Ticket | SharedTicket:
        now = time.time()
        checked: list[_Checked] = []
        keys: list[str] = []
        args: list[str | int | float] = []
        for scope, limits in scopes:
            if limits.models is not None:
                _check_model(scope.name, model, limits.models)
            if limits.budget_usd is not None and usd is None:
                raise _unpriced(scope.name, model)
            if limits.rpm is None and limits.tpm is None and limits.budget_usd is None:
                continue  # a list of models only: nothing to share
            budget = limits.budget_usd
            start, end = (0.0, 0.0) if budget is None else period_bounds(limits.budget_period or "month", now)
            checked.append(_Checked(scope.name, limits, start, end))
            keys += self._keys(scope.name, start)
            args += [limits.rpm or 0, limits.tpm or 0, repr(-1 if budget is None else budget)]
        if not checked:
            return []
        member, usd_arg = f"{self._replica}:{next(self._ids)}", repr(usd or 0.0)
        args[:0] = [member, tokens, usd_arg, self._span_ms, self._lease_ms, self._keep_ms]
        while True:
            verdict, *figures = await self._admit(keys=keys, args=args)
            if verdict != b"seed":
                break
            await self._seed(checked[figures[0] - 1])
        if verdict != b"ok":
            raise _refusal(verdict, checked[figures[0] - 1], float(figures[1]), usd or 0.0)
        leased = [0] * len(checked)
        for i, (part, used) in enumerate(zip(checked, figures, strict=True)):
            if part.limits.budget_usd is not None:
                self._remaining[part.name] = part.limits.budget_usd - float(used)
                leased[i] = 1
        ticket = SharedTicket(keys, member, tokens, usd_arg, leased, time.monotonic())
        if any(leased):
            self._leased[ticket] = None
            if self._renewer is None:
                self._renewer = asyncio.get_running_loop().create_task(self._renew_forever())
        return ticket

    async def _seed(self, part: _Checked) -> None:
        """Set a budget period's spend in Redis from the ledger: once per replica for all its
        requests that wait for it, and once for all replicas (SET NX: the first one counts)."""
        key = self._keys(part.name, part.start)[3]
        pending = self._seeding.get(key)
        if pending is None:
            pending = self._seeding[key] = asyncio.ensure_future(self._seed_from_ledger(key, part))
            pending.add_done_callback(functools.partial(self._seeded, key))
        await asyncio.shield(pending)

    def _seeded(self, key: str, done: asyncio.Future[None]) -> None:
        del self._seeding[key]
        if not done.cancelled():
            done.exception()  # retrieved here: the requests that wait for it get it too

    async def _seed_from_ledger(self, key: str, part: _Checked) -> None:
        kind, ident = part.name.split(":", 1)
        spent = await self._load_spent(kind, ident, part.start)
        await self._link.redis.set(key, repr(spent), nx=True, exat=int(part.end) + _SPEND_KEPT_S)

    async def _settle_shared(self, ticket: SharedTicket, tokens: int, cost_usd: float) -> None:
        if not self._link.degraded:
            args: list[str | int | float] = [
                ticket.member,
                ticket.tokens,
                tokens,
                ticket.usd,
                repr(cost_usd),
                *ticket.leased,
            ]
            try:
                await self._settle(keys=ticket.keys, args=args)
                if self._unshared:
                    await self._push_spend()
                return
            except ERRORS as exc:
                self._link.fail(exc)
        for spend_key, leased in zip(ticket.keys[3::4], ticket.leased, strict=True):
            if leased:
                self._owe(spend_key, cost_usd)

    async def _renew_forever(self) -> None:
        """Keep the leases of running requests: a third of a lease after each renewal."""
        every = self._lease_ms / 3000
        while True:
            await asyncio.sleep(every)
            now = time.monotonic()
            due = [ticket for ticket in self._leased if ticket.renewed <= now - every]
            if not due or self._link.local():
                continue
            keys: list[str] = []
            args: list[str | int | float] = [self._lease_ms, self._keep_ms]
            for ticket in due:
                for i, leased in enumerate(ticket.leased):
                    if leased:
                        keys += ticket.keys[4 * i + 1 : 4 * i + 3]
                        args.append(f"{ticket.member}|{ticket.usd}")
            try:
                await self._renew(keys=keys, args=args)
            except ERRORS as exc:
                self._link.fail(exc)
                continue
            for ticket in due:
                ticket.renewed = now

    # --- on its own --------------------------------------------------------------------------

    def _own_share(self, scopes: Scopes) -> Scopes:
        if self.replicas == 1:
            return scopes
        return [(scope, self._share(limits)) for scope, limits in scopes]

    def _share(self, limits: Limits) -> Limits:
        """1/replicas of each limit (at least one request and one token a minute)."""
        share = self._shares.get(limits)
        if share is None:
            n = self.replicas
            share = self._shares[limits] = replace(
                limits,
                rpm=limits.rpm and max(1, limits.rpm // n),
                tpm=limits.tpm and max(1, limits.tpm // n),
                budget_usd=None if limits.budget_usd is None else limits.budget_usd / n,
            )
        return share

    async def _share_of_spent(self, kind: str, ident: str, since: float) -> float:
        """The period's spend over `replicas`: with 1/replicas of the budget, each replica may
        spend 1/replicas of what is left."""
        return await self._load_spent(kind, ident, since) / self.replicas

    def _owe(self, spend_key: str, usd: float) -> None:
        self._unshared[spend_key] = self._unshared.get(spend_key, 0.0) + usd

    async def _push_spend(self) -> None:
        """Add the costs settled away from Redis to the periods' spend there."""
        unshared, self._unshared = self._unshared, {}
        try:
            await self._add_spend(keys=list(unshared), args=[repr(usd) for usd in unshared.values()])
        except BaseException:
            for spend_key, usd in unshared.items():
                self._owe(spend_key, usd)
            raise

    async def _push_spend_or_fail(self) -> None:
        try:
            await self._push_spend()
        except ERRORS as exc:
            self._link.fail(exc)

    async def _recover(self) -> None:
        """Redis is back: add the requests admitted here meanwhile to the shared windows and
        their costs to the shared spend; the next outage reads the ledger again."""
        now = time.time()
        for scope in self.local.scopes_made():
            args: list[str | int | float] = [self._keep_ms]
            for entry, stamp, tokens in scope.entries():
                left = math.ceil((stamp + WINDOW_S - now) * 1000)
                if left > 0:
                    args += [f"{self._replica}:local{entry}|{int(tokens)}", left]
            if len(args) > 1:
                w, _, s, _ = self._keys(scope.name, 0)
                await self._replay(keys=[w, s], args=args)
            scope.budget = None
        if self._unshared:
            await self._push_spend()


def _refusal(verdict: bytes, part: _Checked, figure: float, usd: float) -> GatewayError:
    """The 429 for a refusal by ADMIT_LUA (`usd`: what the request needed of a budget)."""
    limits = part.limits
    if verdict == b"budget":
        return _budget_exceeded(part.name, Budget(limits.budget_usd, part.start, part.end, figure), usd)
    if verdict == b"rpm":
        return _rate_limited(part.name, figure / 1000, limits.rpm, "requests per minute")
    return _rate_limited(part.name, figure / 1000, limits.tpm, "tokens per minute")
