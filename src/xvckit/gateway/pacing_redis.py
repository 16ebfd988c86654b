"""Pacing shared by several gateway replicas through Redis, so together they stay under one limit.

Each lane's window lives in Redis as a sorted set of entries scored by the time they leave it
(Redis server time, so the replicas' clocks need not agree), with the weights in the member
name (`<id>|<requests>|<tokens>`), a hash of the running totals, and a cooldown key:

    <prefix>{<lane>}:w   ZSET   member "<replica>:<n>|1|<tokens>" -> expiry (ms, server time)
    <prefix>{<lane>}:s   HASH   r (requests in the window), t (tokens), ext (the external entry),
                                b (the window the provider enforces over, ms), bc (below this)
    <prefix>{<lane>}:c   STRING cooldown end (ms), expiring with it

One Lua script checks and reserves atomically (expire old entries, check cooldown, requests and
tokens, add the entry), so two replicas can never both take the last slot; the keys share a
hash tag and so one cluster slot. The queue, priorities and deadlines stay per replica (the
same code as the local `Pacer`): each replica's pump asks Redis for its head, and when refused
sleeps for the wait Redis computed, or `poll_s` at most, since another replica's settle or
cooldown does not wake it. A newcomer's expected wait is one more script call ("peek"); the
fast path (room in the window) is one EVALSHA round trip, about 0.3 ms on loopback
(`tests/test_pacing_redis.py::test_acquire_cost`); `settle` writes only when the count
changed and the lane has a tpm, `observe` only on a 429 or when usage from elsewhere shows.
Limits (configured and learned) are each replica's own; the window, cooldowns, the usage
the provider counted beyond ours and the learned enforcement window (`burst_s`) are shared.
Priorities order calls within a replica only.

Redis unreachable or failing: the replica carries on with the local pacer's window (`degraded`
says why, and a warning is logged once), optionally with a share of each limit
(`local_share`, e.g. 1/N for N replicas); every `retry_s` a background probe tries Redis
again, and on success the calls admitted locally meanwhile are added to the shared window.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import math
import os
import time
from collections.abc import Awaitable, Callable

from redis.asyncio import Redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import RedisError

from xvckit.gateway.pacing import (
    GUARD_S,
    REQUEST_SLACK,
    TOKEN_SLACK,
    WINDOW_S,
    Grant,
    Lane,
    Pacer,
    _LaneState,
    _Waiter,
)
from xvckit.providers.ratelimit import RateLimits

log = logging.getLogger("xvckit.gateway.pacing")

_ERRORS = (RedisError, OSError, asyncio.TimeoutError)

# Redis's own clock in milliseconds: replicas' clocks may disagree, the server's is one.
SERVER_NOW_LUA = """
local function server_now()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
"""

_WEIGHTS = (
    SERVER_NOW_LUA
    + """
local function weights(member)
  local r, k = string.match(member, '|(%d+)|(%d+)$')
  return tonumber(r), tonumber(k)
end
"""
)

# KEYS: window, sums, cooldown. ARGV: mode ('reserve' | 'peek'), span_ms, rpm, tpm (0: none),
# member id, tokens of this call, requests needed (position, this call included), tokens needed,
# this replica's enforcement window (ms; the shared one wins), the limits' window (ms).
# Returns {admitted, wait_ms, requests in window, tokens in window, admissions ever, their tokens,
# the enforcement window in force (ms)}.
PACE_LUA = (
    _WEIGHTS
    + """
local zkey, skey, ckey = KEYS[1], KEYS[2], KEYS[3]
local now = server_now()
local span = tonumber(ARGV[2])
local rpm, tpm = tonumber(ARGV[3]), tonumber(ARGV[4])
if redis.call('EXISTS', skey) == 0 and redis.call('ZCARD', zkey) > 0 then
  local all, r, k = redis.call('ZRANGE', zkey, 0, -1), 0, 0
  for i = 1, #all do local a, b = weights(all[i]); r = r + a; k = k + b end
  redis.call('HSET', skey, 'r', r, 't', k)
end
local gone = redis.call('ZRANGEBYSCORE', zkey, '-inf', now)
if #gone > 0 then
  local r, k = 0, 0
  for i = 1, #gone do local a, b = weights(gone[i]); r = r + a; k = k + b end
  redis.call('ZREMRANGEBYSCORE', zkey, '-inf', now)
  redis.call('HINCRBY', skey, 'r', 0 - r)
  redis.call('HINCRBY', skey, 't', 0 - k)
end
local sums = redis.call('HMGET', skey, 'r', 't', 'ext', 'b')
local used_r, used_t = tonumber(sums[1]) or 0, tonumber(sums[2]) or 0
local burst, limits_ms = tonumber(sums[4] or ARGV[9]), tonumber(ARGV[10])
local unit = not sums[3]  -- every entry weighs one request: rank lookups instead of a walk

local function wait_for(limit, used, need, field)
  local rounds = 0
  if need > limit then
    rounds = math.floor((need - 1) / limit)
    need = need - rounds * limit
  end
  local free = limit - used
  if need <= free then return rounds * span end
  local excess = need - free
  if field == 1 and unit then
    local at = redis.call('ZRANGE', zkey, excess - 1, excess - 1, 'WITHSCORES')
    if #at == 2 then return rounds * span + math.max(0, tonumber(at[2]) - now) end
    return (rounds + 1) * span
  end
  local start = 0
  while true do
    local batch = redis.call('ZRANGE', zkey, start, start + 99, 'WITHSCORES')
    if #batch == 0 then break end
    for i = 1, #batch, 2 do
      local a, b = weights(batch[i])
      if field == 1 then excess = excess - a else excess = excess - b end
      if excess <= 0 then return rounds * span + math.max(0, tonumber(batch[i + 1]) - now) end
    end
    start = start + 100
  end
  return (rounds + 1) * span
end

local wait = 0
local cool = tonumber(redis.call('GET', ckey) or '0')
if cool > now then wait = cool - now end
if rpm > 0 then wait = math.max(wait, wait_for(rpm, used_r, tonumber(ARGV[7]), 1)) end
local need_t = tonumber(ARGV[8])
if tpm > 0 and need_t > 0 then wait = math.max(wait, wait_for(tpm, used_t, need_t, 2)) end
if burst > 0 and burst < limits_ms and (rpm > 0 or tpm > 0) then
  -- the share of the limits allowed in the enforcement window, over the calls admitted in it
  local held = burst + math.max(50, math.floor(burst * 0.05))
  local recent = redis.call('ZRANGEBYSCORE', zkey, '(' .. (now + span - held), '+inf', 'WITHSCORES')
  local function burst_wait(limit, need, field)
    local rounds = 0
    if need > limit then
      rounds = math.floor((need - 1) / limit)
      need = need - rounds * limit
    end
    local used = 0
    for i = 1, #recent, 2 do
      local a, b = weights(recent[i])
      if field == 1 then used = used + a else used = used + b end
    end
    if need <= limit - used then return rounds * held end
    local excess = need - (limit - used)
    for i = 1, #recent, 2 do
      local a, b = weights(recent[i])
      if field == 1 then excess = excess - a else excess = excess - b end
      if excess <= 0 then return rounds * held + math.max(0, tonumber(recent[i + 1]) - span + held - now) end
    end
    return (rounds + 1) * held
  end
  local share = burst / limits_ms
  if rpm > 0 then
    wait = math.max(wait, burst_wait(math.max(1, math.floor(rpm * share + 1e-9)), tonumber(ARGV[7]), 1))
  end
  if tpm > 0 and need_t > 0 then
    local limit = math.max(1, math.floor(tpm * share + 1e-9))
    if tonumber(ARGV[7]) == 1 then limit = math.max(limit, need_t) end  -- one call: an empty window
    wait = math.max(wait, burst_wait(limit, need_t, 2))
  end
end
if ARGV[1] == 'reserve' and wait <= 0 then
  local tokens = tonumber(ARGV[6])
  redis.call('ZADD', zkey, now + span, ARGV[5] .. '|1|' .. tokens)
  used_r, used_t = used_r + 1, used_t + tokens
  redis.call('HSET', skey, 'r', used_r, 't', used_t)
  local n = redis.call('HINCRBY', skey, 'n', 1)
  local nt = redis.call('HINCRBY', skey, 'nt', tokens)
  redis.call('PEXPIRE', zkey, 2 * span)
  redis.call('PEXPIRE', skey, 2 * span)
  return {1, 0, used_r, used_t, n, nt, burst}
end
return {0, math.max(1, wait), used_r, used_t, 0, 0, burst}
"""
)

# KEYS: sums. ARGV: the enforcement window learned (ms), the window a 429 showed too long (ms, 0:
# none). A narrower ceiling replaces a wider one, and no window at or above the ceiling is kept.
WINDOW_LUA = """
local ceiling = tonumber(redis.call('HGET', KEYS[1], 'bc') or '0')
local failed = tonumber(ARGV[2])
if failed > 0 and (ceiling == 0 or failed < ceiling) then
  ceiling = failed
  redis.call('HSET', KEYS[1], 'bc', ceiling)
end
local burst = tonumber(ARGV[1])
if ceiling == 0 or burst < ceiling then redis.call('HSET', KEYS[1], 'b', burst) end
return 1
"""

# KEYS: window, sums. ARGV: old member, new member (same id, new tokens). The entry keeps its place.
SETTLE_LUA = (
    _WEIGHTS
    + """
local score = redis.call('ZSCORE', KEYS[1], ARGV[1])
if not score or tonumber(score) <= server_now() then return 0 end
local _, old_t = weights(ARGV[1])
local _, new_t = weights(ARGV[2])
redis.call('ZREM', KEYS[1], ARGV[1])
redis.call('ZADD', KEYS[1], score, ARGV[2])
redis.call('HINCRBY', KEYS[2], 't', new_t - old_t)
return 1
"""
)

# KEYS: cooldown. ARGV: ms. Never shortens a cooldown already in force.
COOL_LUA = (
    _WEIGHTS
    + """
local ms = tonumber(ARGV[1])
local untl = server_now() + ms
if untl > tonumber(redis.call('GET', KEYS[1]) or '0') then
  redis.call('SET', KEYS[1], untl, 'PX', math.max(1, ms))
end
return 1
"""
)

# KEYS: window, sums. ARGV: member id; for requests then tokens: what the provider counted, what
# the window held when the call was granted, admissions ever by then, slack (-1: not reported);
# ms. Our calls the provider can have counted = held then + admitted since (by any replica); the
# rest, beyond the slack, replaces the lane's one entry of external usage (none: removed).
# Returns {requests, tokens} held as external.
EXTERNAL_LUA = (
    _WEIGHTS
    + """
local totals = redis.call('HMGET', KEYS[2], 'n', 'nt')
local function beyond(at, now_total)
  local used, seen, seen_total, slack = tonumber(ARGV[at]), tonumber(ARGV[at + 1]),
    tonumber(ARGV[at + 2]), tonumber(ARGV[at + 3])
  now_total = tonumber(now_total) or 0
  if slack < 0 or now_total < seen_total then return 0 end
  local extra = used - (seen + now_total - seen_total)
  if extra > slack then return extra end
  return 0
end
local r, k, ms = beyond(2, totals[1]), beyond(6, totals[2]), tonumber(ARGV[10])
local old = redis.call('HGET', KEYS[2], 'ext')
if old then
  if redis.call('ZREM', KEYS[1], old) == 1 then
    local a, b = weights(old)
    redis.call('HINCRBY', KEYS[2], 'r', 0 - a)
    redis.call('HINCRBY', KEYS[2], 't', 0 - b)
  end
  redis.call('HDEL', KEYS[2], 'ext')
end
if r > 0 or k > 0 then
  local member = ARGV[1] .. '|' .. r .. '|' .. k
  redis.call('ZADD', KEYS[1], server_now() + ms, member)
  redis.call('HINCRBY', KEYS[2], 'r', r)
  redis.call('HINCRBY', KEYS[2], 't', k)
  redis.call('HSET', KEYS[2], 'ext', member)
  redis.call('PEXPIRE', KEYS[1], 2 * ms)
  redis.call('PEXPIRE', KEYS[2], 2 * ms)
end
return {r, k}
"""
)

# KEYS: window, sums. ARGV: span_ms, then member, ms-left pairs: entries admitted while degraded.
REPLAY_LUA = (
    _WEIGHTS
    + """
local now = server_now()
local r, k = 0, 0
for i = 2, #ARGV, 2 do
  if redis.call('ZADD', KEYS[1], 'NX', now + tonumber(ARGV[i + 1]), ARGV[i]) == 1 then
    local a, b = weights(ARGV[i]); r = r + a; k = k + b
  end
end
redis.call('HINCRBY', KEYS[2], 'r', r)
redis.call('HINCRBY', KEYS[2], 't', k)
redis.call('PEXPIRE', KEYS[1], 2 * tonumber(ARGV[1]))
redis.call('PEXPIRE', KEYS[2], 2 * tonumber(ARGV[1]))
return r
"""
)


class RedisPacer(Pacer):
    """`Pacer` with its windows and cooldowns in Redis; local when Redis is not there."""

    def __init__(
        self,
        redis: str | Redis,
        *,
        prefix: str = "xvckit:pace:",
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[object]] = asyncio.sleep,
        window_s: float = WINDOW_S,
        guard_s: float = GUARD_S,
        wall_clock: Callable[[], float] = time.time,
        timeout_s: float = 0.25,
        retry_s: float = 2.0,
        local_share: float = 1.0,
        poll_s: float = 0.5,
        enforced_over_s: float | None = None,
    ) -> None:
        super().__init__(
            clock=clock,
            sleep=sleep,
            window_s=window_s,
            guard_s=guard_s,
            wall_clock=wall_clock,
            enforced_over_s=enforced_over_s,
        )
        if isinstance(redis, str):
            redis = Redis.from_url(
                redis,
                socket_timeout=timeout_s,
                socket_connect_timeout=timeout_s,
                retry=Retry(NoBackoff(), 1),
            )
            self._owned = True
        else:
            self._owned = False
        self.redis = redis
        self._prefix = prefix
        self._timeout_s = timeout_s
        self._retry_s = retry_s
        self._local_share = local_share
        self._max_pause = poll_s  # other replicas settle and cool down without telling this one
        self._pace = redis.register_script(PACE_LUA)
        self._settle = redis.register_script(SETTLE_LUA)
        self._cool_script = redis.register_script(COOL_LUA)
        self._external = redis.register_script(EXTERNAL_LUA)
        self._replay = redis.register_script(REPLAY_LUA)
        self._window_script = redis.register_script(WINDOW_LUA)
        self._replica = f"{os.getpid():x}.{os.urandom(3).hex()}"
        self._ids = itertools.count()
        self._keys: dict[Lane, list[str]] = {}
        self._shared: dict[Lane, tuple[int, int, float]] = {}  # last totals Redis reported, and when
        self._degraded: str | None = None
        self._probe_at = 0.0
        self._probing = False
        self._tasks: set[asyncio.Task] = set()

    @property
    def degraded(self) -> str | None:
        """Why pacing is running on local state (for /readyz and logs), or None when shared."""
        return self._degraded

    @property
    def span_ms(self) -> int:
        return math.ceil((self.window_s + self.guard_s) * 1000)

    def _lane_keys(self, lane: Lane) -> list[str]:
        keys = self._keys.get(lane)
        if keys is None:
            base = f"{self._prefix}{{{lane}}}"
            keys = self._keys[lane] = [f"{base}:w", f"{base}:s", f"{base}:c"]
        return keys

    # --- falling back and coming back ---------------------------------------------------------

    def _degrade(self, exc: BaseException) -> None:
        reason = f"Redis unavailable ({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''})"
        if self._degraded is None:
            log.warning("pacing on local state: %s", reason)
        self._degraded = reason
        self._probe_at = self.clock() + self._retry_s

    def _local(self) -> bool:
        """True while degraded; starts a background probe of Redis when one is due."""
        if self._degraded is None:
            return False
        if not self._probing and self.clock() >= self._probe_at:
            self._probing = True
            self._spawn(self._probe())
        return True

    async def _probe(self) -> None:
        try:
            await asyncio.wait_for(self.redis.ping(), self._timeout_s * 4)
            for state in list(self._lanes.values()):
                await self._push_local(state)
        except _ERRORS as exc:
            self._degrade(exc)
        else:
            log.warning("pacing shares state through Redis again (was: %s)", self._degraded)
            self._degraded = None
        finally:
            self._probing = False

    async def _push_local(self, state: _LaneState) -> None:
        """Add the calls admitted locally, still in the window, to the shared one."""
        now = self.clock()
        self._expire(state, now)
        args: list[object] = [self.span_ms]
        refs = {entry: ref for entry, ref in state.shared_refs.items() if entry in state.window}
        for entry, stamp, weight in state.window.entries():
            if entry not in refs:
                refs[entry] = f"{self._replica}:{next(self._ids)}|1|{int(weight)}"
                args += [refs[entry], max(1, math.ceil((stamp + state.window.span - now) * 1000))]
        state.shared_refs = refs
        if len(args) > 1:
            await self._replay(keys=self._lane_keys(state.lane)[:2], args=args)

    def _spawn(self, work: Awaitable[object]) -> None:
        task = asyncio.ensure_future(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _shared_write(self, script, keys: list[str], args: list[object]) -> None:
        if self._degraded is not None:
            return
        try:
            await script(keys=keys, args=args)
        except _ERRORS as exc:
            self._degrade(exc)

    # --- the window in Redis ------------------------------------------------------------------

    def _rpm_tpm(self, state: _LaneState) -> tuple[int | None, int | None]:
        rpm, tpm = state.rpm, state.tpm
        if self._degraded is not None and self._local_share < 1.0:
            rpm = rpm and max(1, int(rpm * self._local_share))
            tpm = tpm and max(1, int(tpm * self._local_share))
        return rpm, tpm

    def try_acquire(self, lane: Lane, tokens: int, priority: int = 0) -> Grant | None:
        return None  # the window is in Redis: every attempt may need a round trip (`acquire`)

    async def _attempt(
        self, state: _LaneState, tokens: int, priority: int, now: float, queued_at: float
    ) -> Grant | float:
        if self._local():
            return self._attempt_local(state, tokens, priority, now, queued_at)
        if state.cool_until > now:  # known here already: no round trip
            return state.cool_until - now
        counted = self._counted(state, tokens)
        rpm, tpm = self._rpm_tpm(state)
        if state.silent and rpm is None and tpm is None:  # nothing to share: no round trip
            return self._unlimited(state, counted, tokens, priority, now, queued_at)
        if state.scouting_until > now and rpm is None and tpm is None and not state.burst_fixed:
            return state.scouting_until - now
        member = f"{self._replica}:{next(self._ids)}"
        try:
            admitted, wait_ms, requests, used, total, total_tokens, burst_ms = await self._pace(
                keys=self._lane_keys(state.lane),
                args=[
                    "reserve",
                    self.span_ms,
                    rpm or 0,
                    tpm or 0,
                    member,
                    counted,
                    1,
                    counted,
                    *self._window_args(state),
                ],
            )
        except _ERRORS as exc:
            self._degrade(exc)
            return self._attempt_local(state, tokens, priority, self.clock(), queued_at)
        if not state.burst_fixed:
            state.burst_s = burst_ms / 1000  # as another replica may have learned it
        now = self.clock()
        if admitted:
            self._scout(state, now)
        self._shared[state.lane] = (requests, used, now)
        if not admitted:
            return wait_ms / 1000
        return Grant(
            state.lane,
            counted,
            tokens,
            priority,
            now,
            now + self.window_s + self.guard_s,
            now - queued_at,
            seen_requests=requests,
            seen_tokens=used,
            seen_admitted=total,
            seen_admitted_tokens=total_tokens,
            ref=f"{member}|1|{counted}",
        )

    async def _queue_wait(self, state: _LaneState, waiter: _Waiter, now: float, newcomer: bool) -> float:
        if self._local():
            return self._expected_wait(state, waiter, now, newcomer)
        requests, tokens = self._ahead(state, waiter, newcomer)
        rpm, tpm = self._rpm_tpm(state)
        try:
            _, wait_ms, *_ = await self._pace(
                keys=self._lane_keys(state.lane),
                args=[
                    "peek",
                    self.span_ms,
                    rpm or 0,
                    tpm or 0,
                    "",
                    0,
                    requests,
                    tokens,
                    *self._window_args(state),
                ],
            )
        except _ERRORS as exc:
            self._degrade(exc)
            return self._expected_wait(state, waiter, now, newcomer)
        return max(0.0, state.cool_until - now, wait_ms / 1000 if wait_ms > 1 else 0.0)

    def _settle_entry(self, state: _LaneState, grant: Grant, actual: int, now: float) -> None:
        if grant.ref is None:  # admitted locally: shared since, if Redis came back meanwhile
            grant.ref = state.shared_refs.pop(grant.entry, None)
        if grant.ref is None:
            super()._settle_entry(state, grant, actual, now)
            return
        if actual == grant.tokens or not self._rpm_tpm(state)[1] or grant.expires_at <= now:
            return  # nothing to correct, or no tpm to correct it against
        member = grant.ref.rsplit("|", 2)[0]
        new_ref = f"{member}|1|{actual}"
        self._spawn(self._settle_shared(state, [grant.ref, new_ref], actual < grant.tokens))
        grant.ref = new_ref

    async def _settle_shared(self, state: _LaneState, args: list[object], freed: bool) -> None:
        await self._shared_write(self._settle, self._lane_keys(state.lane)[:2], args)
        if freed and state.live:
            self._poke(state)

    def _window_args(self, state: _LaneState) -> list[object]:
        """This replica's enforcement window and the limits' window, in ms, for the script."""
        return [round(state.burst_s * 1000), round(self.window_s * 1000)]

    def _learn_window(self, state: _LaneState, limits: RateLimits, status: int, grant: Grant | None) -> None:
        before = state.burst_s
        super()._learn_window(state, limits, status, grant)
        if state.burst_s != before and self._degraded is None:
            ceiling = state.burst_ceiling if state.burst_ceiling < math.inf else 0
            args = [round(state.burst_s * 1000), round(ceiling * 1000)]
            self._spawn(self._shared_write(self._window_script, self._lane_keys(state.lane)[1:2], args))

    def _cool(self, lane: Lane, seconds: float) -> None:
        super()._cool(lane, seconds)
        if self._degraded is None:
            keys = self._lane_keys(lane)[2:]
            self._spawn(self._shared_write(self._cool_script, keys, [max(1, math.ceil(seconds * 1000))]))

    def _check_external(self, state: _LaneState, limits: RateLimits, grant: Grant | None, now: float) -> None:
        if self._degraded is not None or grant is None or grant.ref is None:
            if self._degraded is not None:
                super()._check_external(state, limits, grant, now)
            return  # shared: only a call's own grant says what the window held for it
        args: list[object] = [f"ext:{self._replica}"]
        suspect = False
        for limit, seen, seen_total, slack in (
            (limits.requests, grant.seen_requests, grant.seen_admitted, REQUEST_SLACK),
            (limits.tokens, grant.seen_tokens, grant.seen_admitted_tokens, TOKEN_SLACK),
        ):
            if limit is None or limit.limit <= 0:
                args += [0, 0, 0, -1]
                continue
            allowed = max(1, int(slack * limit.limit))
            used = limit.limit - limit.remaining
            suspect |= used - seen > allowed  # cannot be more without this (the script decides)
            args += [used, seen, seen_total, allowed]
        if not suspect and not state.ext_until:
            return
        reset = max(
            (limit.reset_s or 0.0 for limit in (limits.requests, limits.tokens) if limit), default=0.0
        )
        seconds = min(self.window_s, reset or self.window_s)
        args.append(max(1, math.ceil(seconds * 1000)))
        self._spawn(self._external_shared(state, args, now + seconds))

    async def _external_shared(self, state: _LaneState, args: list[object], until: float) -> None:
        if self._degraded is not None:
            return
        try:
            requests, tokens = await self._external(keys=self._lane_keys(state.lane)[:2], args=args)
        except _ERRORS as exc:
            self._degrade(exc)
            return
        # Locally only a marker that the shared entry exists (so a later clean answer clears it).
        state.ext_until = until if requests or tokens else 0.0
        if requests or tokens:
            log.info(
                "%s: the provider counts %d requests / %d tokens no replica admitted",
                state.lane,
                requests,
                tokens,
            )

    # --- key pools and state ------------------------------------------------------------------

    def headroom(self, lane: Lane) -> float:
        shared = self._shared.get(lane)
        if self._degraded is not None or shared is None:
            return super().headroom(lane)
        state = self._state(lane)
        now = self.clock()
        if state.disabled is not None or state.cool_until > now:
            return 0.0
        requests, tokens, at = shared
        if now - at > self.window_s + self.guard_s:
            return super().headroom(lane)
        return self._headroom(state, requests, tokens)

    async def aclose(self) -> None:
        await super().aclose()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._owned:
            await self.redis.aclose()
