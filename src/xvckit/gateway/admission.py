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
from dataclasses import dataclass, field

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
    """What one admitted request holds until it settles."""

    estimate_usd: float = 0.0
    estimate_tokens: int = 0
    budgets: list[Budget] = field(default_factory=list)
    token_entries: list[tuple[ScopeWindow, int]] = field(default_factory=list)


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
        scopes = who.scopes
        for scope, limits in scopes:
            if limits.models is not None and not any(fnmatch.fnmatchcase(model, p) for p in limits.models):
                raise GatewayError(
                    403,
                    f"{_label(scope)} may not use model '{model}' (allowed: {', '.join(limits.models)})",
                    "model_not_allowed",
                )
        budgets: list[tuple[str, Budget]] = []
        for scope, limits in scopes:
            if limits.budget_usd is not None:
                if estimate_usd is None:
                    raise GatewayError(
                        403,
                        f"no price is known for model '{model}', so {_label(scope)}'s budget cannot be "
                        "enforced; give the model a price in xvckit.yaml",
                        "unpriced_model",
                    )
                budget = self._budgets.get(scope)
                if budget is None or not budget.current(time.time(), limits.budget_usd):
                    budget = await self._budget(scope, limits)
                budgets.append((scope, budget))
        # From here to the end nothing awaits: check everything, then reserve everything.
        now = time.time()
        windows: list[ScopeWindow] = []
        for scope, limits in scopes:
            if limits.rpm is None and limits.tpm is None:
                continue
            window = self._windows.get(scope)
            if window is None:
                window = self._windows[scope] = ScopeWindow()
            over = window.over(limits.rpm, limits.tpm, estimate_tokens, now)
            if over is not None:
                wait, limit, what = over
                raise GatewayError(
                    429,
                    f"{what} limit of {limit} reached for {_label(scope)}; retry in {wait:.1f} s",
                    "rate_limit_exceeded",
                    _retry_after(wait),
                )
            windows.append(window)
        estimate_usd = estimate_usd or 0.0
        for scope, budget in budgets:
            if budget.remaining < estimate_usd:
                raise GatewayError(
                    429,
                    f"budget exhausted for {_label(scope)}: ${budget.spent + budget.reserved:.4f} of "
                    f"${budget.limit:.4f} used this period; resets at {_iso(budget.period_end)}",
                    "budget_exceeded",
                    _retry_after(budget.period_end - now),
                )
        ticket = Ticket(estimate_usd, estimate_tokens, [budget for _, budget in budgets])
        for window in windows:
            ticket.token_entries.append((window, window.add(now, estimate_tokens)))
        for budget in ticket.budgets:
            budget.reserved += estimate_usd
        return ticket

    def settle(self, ticket: Ticket, tokens: int, cost_usd: float) -> None:
        for budget in ticket.budgets:
            budget.reserved -= ticket.estimate_usd
            budget.spent += cost_usd
        for window, entry in ticket.token_entries:
            window.adjust(entry, tokens)

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


def _label(scope: str) -> str:
    kind, ident = scope.split(":", 1)
    return f"{kind} {ident}"
