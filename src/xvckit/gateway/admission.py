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
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from xvckit.gateway.dialects import GatewayError
from xvckit.gateway.keyring import Principal
from xvckit.gateway.window_log import WindowLog
from xvckit.store.keys import Limits

WINDOW_S = 60.0


class ScopeWindow(WindowLog):
    """A key's or a team's last 60 s: an entry per request, weighted by its tokens. Its count
    is held to the rpm, its total to the tpm: one log serves both limits."""

    __slots__ = ()

    def __init__(self) -> None:
        super().__init__(WINDOW_S)

    def over(
        self, rpm: int | None, tpm: int | None, tokens: int, now: float
    ) -> tuple[float, int, str] | None:
        """The first limit a request of `tokens` would exceed now: (seconds until it fits, the
        limit, what it limits); None when it fits. On an empty window everything fits."""
        self.expire(now)
        count = len(self)
        if not count:
            return None
        if rpm is not None and count >= rpm:
            return self.leaves_at(min(count, count - rpm + 1)) - now, rpm, "requests per minute"
        if tpm is not None and self.total + tokens > tpm:
            freed = self.freed_at(self.total + tokens - tpm)
            return (WINDOW_S if freed is None else freed - now), tpm, "tokens per minute"
        return None


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
    limit: float
    period_start: float
    period_end: float
    spent: float = 0.0
    reserved: float = 0.0

    @property
    def remaining(self) -> float:
        return self.limit - self.spent - self.reserved

    def current(self, now: float, limit: float) -> bool:
        """Still this period's budget, with the limit the key or team has now?"""
        return self.period_start <= now < self.period_end and self.limit == limit


@dataclass(slots=True)
class Ticket:
    """What one admitted request holds until it settles: (window, entry, None) for a window
    entry, (None, -1, budget) for a budget reservation of `estimate_usd`."""

    estimate_usd: float
    holds: list[tuple[ScopeWindow | None, int, Budget | None]]


SpentLoader = Callable[[str, str, float], Awaitable[float]]  # (scope, id, since) -> USD


def _iso(ts: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(ts))


def _retry_after(seconds: float) -> dict[str, str]:
    return {"retry-after": str(max(1, int(seconds + 0.999)))}


class Admission:
    def __init__(self, load_spent: SpentLoader) -> None:
        self._load_spent = load_spent
        self._windows: dict[str, ScopeWindow] = {}
        self._budgets: dict[str, Budget] = {}
        self._loading: dict[str, asyncio.Future[Budget]] = {}

    async def admit(
        self, who: Principal, model: str, estimate_tokens: int, estimate_usd: float | None
    ) -> Ticket:
        """`try_admit`, after reading from the ledger the spend of any budget it needs."""
        while True:
            ticket = self.try_admit(who, model, estimate_tokens, estimate_usd)
            if ticket is not None:
                return ticket
            for scope, limits in who.scopes:
                if limits.budget_usd is not None:
                    await self._budget(scope, limits)

    def try_admit(
        self, who: Principal, model: str, estimate_tokens: int, estimate_usd: float | None
    ) -> Ticket | None:
        """Check the key's and then the team's limits, reserving the request's estimate against
        each as it passes; raises the first limit it would exceed, taking back what it
        reserved. None when a budget of this period is not loaded yet (`admit` loads it).
        Nothing here awaits, so no other request sees a half-made reservation."""
        now = time.time()
        usd = estimate_usd or 0.0
        holds: list[tuple[ScopeWindow | None, int, Budget | None]] = []
        try:
            for scope, limits in who.scopes:
                if limits.models is not None:
                    _check_model(scope, model, limits.models)
                if limits.budget_usd is not None:
                    if estimate_usd is None:
                        raise _unpriced(scope, model)
                    budget = self._budgets.get(scope)
                    if budget is None or not budget.current(now, limits.budget_usd):
                        self._release(holds, usd)
                        return None
                    if budget.remaining < usd:
                        raise _budget_exceeded(scope, budget, now)
                    budget.reserved += usd
                    holds.append((None, -1, budget))
                if limits.rpm is not None or limits.tpm is not None:
                    window = self._windows.get(scope)
                    if window is None:
                        window = self._windows[scope] = ScopeWindow()
                    over = window.over(limits.rpm, limits.tpm, estimate_tokens, now)
                    if over is not None:
                        raise _rate_limited(scope, *over)
                    holds.append((window, window.add(now, estimate_tokens), None))
        except GatewayError:
            self._release(holds, usd)
            raise
        return Ticket(usd, holds)

    def settle(self, ticket: Ticket, tokens: int, cost_usd: float) -> None:
        for window, entry, budget in ticket.holds:
            if budget is not None:
                budget.reserved -= ticket.estimate_usd
                budget.spent += cost_usd
            else:
                window.adjust(entry, tokens)

    @staticmethod
    def _release(holds: list[tuple[ScopeWindow | None, int, Budget | None]], usd: float) -> None:
        """Take back the reservations of a request that was refused (its entries are the last
        of their windows: nothing awaited since they were made)."""
        for window, _, budget in reversed(holds):
            if budget is not None:
                budget.reserved -= usd
            else:
                window.remove_last()

    def remaining(self) -> dict[str, float]:
        """Budget left per scope, for metrics."""
        return {scope: b.remaining for scope, b in self._budgets.items()}

    async def _budget(self, scope: str, limits: Limits) -> Budget:
        """The scope's budget for the current period, its spend read once from the ledger."""
        budget = self._budgets.get(scope)
        if budget is not None and budget.current(time.time(), limits.budget_usd):
            return budget
        pending = self._loading.get(scope)
        if pending is None:
            pending = self._loading[scope] = asyncio.get_running_loop().create_future()
            start, end = period_bounds(limits.budget_period or "month", time.time())
            try:
                kind, ident = scope.split(":", 1)
                spent = await self._load_spent(kind, ident, start)
            except BaseException as exc:
                pending.set_exception(exc)
                pending.exception()  # retrieved here: waiters, if any, get it too
                del self._loading[scope]
                raise
            budget = self._budgets[scope] = Budget(limits.budget_usd, start, end, spent)
            pending.set_result(budget)
            del self._loading[scope]
            return budget
        return await asyncio.shield(pending)


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


def _budget_exceeded(scope: str, budget: Budget, now: float) -> GatewayError:
    return GatewayError(
        429,
        f"budget exhausted for {_label(scope)}: ${budget.spent + budget.reserved:.4f} of "
        f"${budget.limit:.4f} used this period; resets at {_iso(budget.period_end)}",
        "budget_exceeded",
        _retry_after(budget.period_end - now),
    )


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
