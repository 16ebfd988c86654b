"""Admission: a request runs only if its key and team allow the model, have requests and
tokens left this minute, and have budget left this period.

Everything here runs on the event loop without awaiting between check and reservation,
so concurrent requests cannot slip past a limit together: a request reserves its
estimated cost and tokens first and settles the real figures when it is over.
"""

from __future__ import annotations

import asyncio
import calendar
import fnmatch
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

from xvckit.gateway.dialects import NO_RETRY, GatewayError
from xvckit.gateway.window_log import WindowLog
from xvckit.store.keys import Limits

WINDOW_S = 60.0
SWEEP_S = 1.0  # how long a window may count entries whose minute is over, while no limit is near


def period_bounds(period: str, now: float) -> tuple[float, float]:
    """Start and end (UTC) of the budget period containing `now`."""
    t = time.gmtime(now)
    day_start = calendar.timegm((t.tm_year, t.tm_mon, t.tm_mday, 0, 0, 0))
    if period == "day":
        return day_start, day_start + 86400
    if period == "week":
        start = day_start - t.tm_wday * 86400
        return start, start + 7 * 86400
    start = calendar.timegm((t.tm_year, t.tm_mon, 1, 0, 0, 0))
    year, month = (t.tm_year + 1, 1) if t.tm_mon == 12 else (t.tm_year, t.tm_mon + 1)
    return start, calendar.timegm((year, month, 1, 0, 0, 0))


@dataclass(slots=True)
class Budget:
    """One period's budget of a key or a team."""

    limit: float
    period_start: float
    period_end: float
    used: float = 0.0  # what its finished requests cost, and what its running ones reserved


# What an admitted request holds of a scope until it settles: its window entry (-1: none), and
# the budget it reserved from (None: none) with the amount.
Hold = tuple["Scope", int, Budget | None, float]
Ticket = list[Hold]
# The scopes a caller is held to, each with its limits: the key's first, then its team's.
Scopes = Sequence[tuple["Scope", Limits]]


class Scope(WindowLog):
    """What admission knows of a key or a team: its requests of the last 60 s, each weighted by
    its tokens (its count is held to the rpm, its total to the tpm: one log serves both), and
    its budget of the current period."""

    __slots__ = ("_budget_usd", "_limits", "_models", "_rpm", "_swept_until", "_tpm", "budget", "name")

    def __init__(self, name: str) -> None:
        super().__init__(WINDOW_S)
        self.name = name  # "key:<id>" or "team:<id>"
        self.budget: Budget | None = None
        self._swept_until = 0.0
        self._limits: Limits | None = None
        # The figures of `_limits`, copied when it changes: compiled, reading an attribute of
        # the scope costs a fraction of reading one of a Limits.
        self._models: tuple[str, ...] | None = None
        self._rpm: int | None = None
        self._tpm: int | None = None
        self._budget_usd: float | None = None

    def reserve(self, limits: Limits, model: str, now: float, tokens: int, usd: float | None) -> Hold:
        """Reserve a request's estimate against each of the limits, or raise the first it would
        exceed (reserving nothing), or BudgetNotLoaded for a new period or a changed budget.

        Entries whose minute is over are dropped (by `over`) only when the count with them
        reaches a limit, or a second after they were last dropped: a request that fits while
        they are counted fits without them, and the log stays small."""
        if limits is not self._limits:
            self._limits = limits
            self._models, self._rpm, self._tpm = limits.models, limits.rpm, limits.tpm
            self._budget_usd = limits.budget_usd
        if self._models is not None:
            _check_model(self.name, model, self._models)
        budget, reserved = None, 0.0
        budget_usd = self._budget_usd
        if budget_usd is not None:
            if usd is None:
                raise _unpriced(self.name, model)
            reserved = usd
            budget = self.budget
            if not (budget and budget.period_start <= now < budget.period_end and budget.limit == budget_usd):
                raise BudgetNotLoaded(self, limits)
            if budget.used + usd > budget.limit:
                raise _budget_exceeded(self.name, budget, usd)
        entry = -1
        rpm, tpm = self._rpm, self._tpm
        if rpm is not None or tpm is not None:
            if (
                now >= self._swept_until
                or (rpm is not None and self.count >= rpm)
                or (tpm is not None and self.total + tokens > tpm)
            ):
                self._swept_until = now + SWEEP_S
                over = self.over(rpm, tpm, tokens, now)
                if over is not None:
                    raise _rate_limited(self.name, *over)
            entry = self.add(now, tokens)
        if budget is not None:
            budget.used += reserved
        return self, entry, budget, reserved

    def over(
        self, rpm: int | None, tpm: int | None, tokens: int, now: float
    ) -> tuple[float, int, str] | None:
        """The first limit a request of `tokens` would exceed now: (seconds until it fits, the
        limit, what it limits); None when it fits. On an empty window everything fits."""
        self.expire(now)
        count = self.count
        if not count:
            return None
        if rpm is not None and count >= rpm:
            return self.leaves_at(min(count, count - rpm + 1)) - now, rpm, "requests per minute"
        if tpm is not None and self.total + tokens > tpm:
            freed = self.freed_at(self.total + tokens - tpm)
            return (WINDOW_S if freed is None else freed - now), tpm, "tokens per minute"
        return None


SpentLoader = Callable[[str, str, float], Awaitable[float]]  # (scope, id, since) -> USD


class BudgetNotLoaded(Exception):
    """A budget whose period's spend has not been read from the ledger yet (`admit` reads it)."""

    def __init__(self, scope: Scope, limits: Limits) -> None:
        super().__init__(scope.name)
        self.scope, self.limits = scope, limits


def _iso(ts: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(ts))


def _retry_after(seconds: float) -> dict[str, str]:
    return {"retry-after": str(max(1, int(seconds + 0.999)))}


class Admission:
    def __init__(self, load_spent: SpentLoader) -> None:
        self._load_spent = load_spent
        self._scopes: dict[str, Scope] = {}
        self._loading: dict[str, asyncio.Future[None]] = {}

    def scope(self, name: str) -> Scope:
        """The scope of a key ("key:<id>") or a team ("team:<id>"), made on first use. The keyring
        gives each caller its scopes when it loads the keys: a request finds them on its
        caller, without a lookup by name (cold, with 1,000 keys: ~0.4 us a request)."""
        scope = self._scopes.get(name)
        if scope is None:
            scope = self._scopes[name] = Scope(name)
        return scope

    async def admit(
        self, scopes: Scopes, model: str, estimate_tokens: int, estimate_usd: float | None
    ) -> Ticket:
        """`try_admit`, after reading from the ledger the spend of each budget it needs."""
        while True:
            try:
                return self.try_admit(scopes, model, estimate_tokens, estimate_usd)
            except BudgetNotLoaded as missing:
                await self._load_budget(missing.scope, missing.limits)

    def try_admit(
        self, scopes: Scopes, model: str, estimate_tokens: int, estimate_usd: float | None
    ) -> Ticket:
        """Check the key's and then the team's limits, reserving the request's estimate against
        each as it passes; raises the first limit it would exceed, or BudgetNotLoaded (`admit`
        loads it), taking back what it reserved. Nothing here awaits, so no other request
        sees a half-made reservation."""
        now = time.time()
        holds: Ticket = []
        try:
            for scope, limits in scopes:
                holds.append(scope.reserve(limits, model, now, estimate_tokens, estimate_usd))
        except (GatewayError, BudgetNotLoaded):
            self._release(holds)
            raise
        return holds

    @staticmethod
    def settle(ticket: Ticket, tokens: int, cost_usd: float) -> None:
        for scope, entry, budget, usd in ticket:
            if budget is not None:
                budget.used += cost_usd - usd
            if entry >= 0:
                scope.adjust(entry, tokens)

    @staticmethod
    def _release(holds: Ticket) -> None:
        """Take back the reservations of a request that was refused (its entries are the last
        of their windows: nothing awaited since they were made)."""
        for scope, entry, budget, usd in reversed(holds):
            if budget is not None:
                budget.used -= usd
            if entry >= 0:
                scope.remove_last()

    def remaining(self) -> dict[str, float]:
        """Budget left per scope, for metrics."""
        return {name: s.budget.limit - s.budget.used for name, s in self._scopes.items() if s.budget}

    def scopes_made(self) -> list[Scope]:
        """Every scope made so far (`RedisAdmission` shares what they admitted when Redis is back)."""
        return list(self._scopes.values())

    async def _load_budget(self, scope: Scope, limits: Limits) -> None:
        """Read the spend of the scope's budget period from the ledger, once for all the
        requests that wait for it. A new limit for the same period only replaces the limit:
        what the period used stays, the reservations of running requests included (the ledger
        has neither those nor the rows still in the journal)."""
        start, end = period_bounds(limits.budget_period or "month", time.time())
        budget = scope.budget
        if budget is not None and budget.period_start == start and budget.period_end == end:
            budget.limit = limits.budget_usd
            return
        pending = self._loading.get(scope.name)
        if pending is not None:
            await asyncio.shield(pending)
            return
        pending = self._loading[scope.name] = asyncio.get_running_loop().create_future()
        try:
            kind, ident = scope.name.split(":", 1)
            spent = await self._load_spent(kind, ident, start)
        except BaseException as exc:
            pending.set_exception(exc)
            pending.exception()  # retrieved here: waiters, if any, get it too
            raise
        else:
            scope.budget = Budget(limits.budget_usd, start, end, spent)
            pending.set_result(None)
        finally:
            del self._loading[scope.name]


def _check_model(scope: str, model: str, allowed: tuple[str, ...]) -> None:
    if not any(fnmatch.fnmatchcase(model, pattern) for pattern in allowed):
        raise GatewayError(
            403,
            f"{_label(scope)} may not use model '{model}' (allowed: {', '.join(allowed)})",
            "model_not_allowed",
        )


def _rate_limited(scope: str, wait: float, limit: int, what: str) -> GatewayError:
    return GatewayError(
        429,
        f"{what} limit of {limit} reached for {_label(scope)}; retry in {wait:.1f} s",
        "rate_limit_exceeded",
        _retry_after(wait),
    )


# On a budget refusal: what the budget has left (USD), so that the proxy can cut the request's
# output to what that pays for (and the client can see it).
BUDGET_LEFT_HEADER = "x-xvckit-budget-left-usd"


def _budget_exceeded(scope: str, budget: Budget, needed_usd: float) -> GatewayError:
    left = max(0.0, budget.limit - budget.used)
    return GatewayError(
        429,
        f"budget exhausted for {_label(scope)}: this request needs up to {_usd(needed_usd)} and "
        f"{_usd(left)} of {_usd(budget.limit)} is left this period (resets at {_iso(budget.period_end)}); "
        "ask for a larger budget, or send a smaller max_tokens",
        "budget_exceeded",
        {**NO_RETRY, BUDGET_LEFT_HEADER: f"{left:.9f}"},
    )


def _usd(amount: float) -> str:
    """Dollars with the digits that tell small amounts apart: $12.50, $0.50, $0.0205, $0.000153."""
    return f"${amount:,.2f}" if amount >= 0.1 or amount == 0 else f"${amount:.3g}"


def _unpriced(scope: str, model: str) -> GatewayError:
    return GatewayError(
        403,
        f"no price is known for model '{model}', so {_label(scope)}'s budget cannot be enforced; "
        "give the model a price in xvckit.yaml",
        "unpriced_model",
    )


def _label(scope: str) -> str:
    kind, ident = scope.split(":", 1)
    return f"{kind} {ident}"
