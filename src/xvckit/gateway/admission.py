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


class SlidingWindow(WindowLog):
    """Exact sum over the last 60 s against a limit: the time and weight of each request."""

    __slots__ = ("limit",)

    def __init__(self, limit: int) -> None:
        super().__init__(WINDOW_S)
        self.limit = limit

    def wait_for(self, weight: float, now: float) -> float:
        """Seconds until `weight` fits (0: it fits now)."""
        self.expire(now)
        if self.total + weight <= self.limit or not len(self):
            return 0.0
        freed = self.freed_at(self.total + weight - self.limit)
        return WINDOW_S if freed is None else freed - now


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


@dataclass(slots=True)
class Ticket:
    """What one admitted request holds until it settles."""

    estimate_usd: float = 0.0
    estimate_tokens: int = 0
    budgets: list[Budget] = field(default_factory=list)
    token_entries: list[tuple[SlidingWindow, int]] = field(default_factory=list)


SpentLoader = Callable[[str, str, float], Awaitable[float]]  # (scope, id, since) -> USD


def _iso(ts: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(ts))


def _retry_after(seconds: float) -> dict[str, str]:
    return {"retry-after": str(max(1, int(seconds + 0.999)))}


class Admission:
    def __init__(self, load_spent: SpentLoader) -> None:
        self._load_spent = load_spent
        self._requests: dict[str, SlidingWindow] = {}
        self._tokens: dict[str, SlidingWindow] = {}
        self._budgets: dict[str, Budget] = {}
        self._loading: dict[str, asyncio.Future[Budget]] = {}

    async def admit(
        self, who: Principal, model: str, estimate_tokens: int, estimate_usd: float | None
    ) -> Ticket:
        scopes = [(f"key:{who.key.id}", who.key.limits)] if who.key else []
        if who.team:
            scopes.append((f"team:{who.team.id}", who.team.limits))
        if not scopes:
            return Ticket()
        for scope, limits in scopes:
            if limits.models is not None and not any(fnmatch.fnmatchcase(model, p) for p in limits.models):
                raise GatewayError(
                    403,
                    f"{_label(scope)} may not use model '{model}' (allowed: {', '.join(limits.models)})",
                    "model_not_allowed",
                )
        budgets = []
        for scope, limits in scopes:
            if limits.budget_usd is not None:
                budgets.append(await self._budget(scope, limits))
                if estimate_usd is None:
                    raise GatewayError(
                        403,
                        f"no price is known for model '{model}', so {_label(scope)}'s budget cannot be "
                        "enforced; give the model a price in xvckit.yaml",
                        "unpriced_model",
                    )
        # From here to the end nothing awaits: check everything, then reserve everything.
        now = time.time()
        for scope, limits in scopes:
            self._check_window(self._requests, scope, limits.rpm, 1, now, "requests per minute")
            self._check_window(self._tokens, scope, limits.tpm, estimate_tokens, now, "tokens per minute")
        for (scope, _), budget in zip(
            ((s, li) for s, li in scopes if li.budget_usd is not None), budgets, strict=True
        ):
            if budget.remaining < (estimate_usd or 0.0):
                raise GatewayError(
                    429,
                    f"budget exhausted for {_label(scope)}: ${budget.spent + budget.reserved:.4f} of "
                    f"${budget.limit:.4f} used this period; resets at {_iso(budget.period_end)}",
                    "budget_exceeded",
                    _retry_after(budget.period_end - now),
                )
        ticket = Ticket(estimate_usd or 0.0, estimate_tokens, budgets)
        for scope, limits in scopes:
            if limits.rpm is not None:
                self._requests[scope].add(now, 1)
            if limits.tpm is not None:
                window = self._tokens[scope]
                ticket.token_entries.append((window, window.add(now, estimate_tokens)))
        for budget in budgets:
            budget.reserved += ticket.estimate_usd
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

    def _check_window(
        self,
        windows: dict[str, SlidingWindow],
        scope: str,
        limit: int | None,
        weight: int,
        now: float,
        what: str,
    ) -> None:
        if limit is None:
            return
        window = windows.get(scope)
        if window is None or window.limit != limit:
            window = windows[scope] = SlidingWindow(limit)
        wait = window.wait_for(weight, now)
        if wait > 0:
            raise GatewayError(
                429,
                f"{what} limit of {limit} reached for {_label(scope)}; retry in {wait:.1f} s",
                "rate_limit_exceeded",
                _retry_after(wait),
            )

    async def _budget(self, scope: str, limits: Limits) -> Budget:
        """The scope's budget for the current period, its spend read once from the ledger."""
        now = time.time()
        budget = self._budgets.get(scope)
        if budget and budget.period_start <= now < budget.period_end and budget.limit == limits.budget_usd:
            return budget
        pending = self._loading.get(scope)
        if pending is None:
            pending = self._loading[scope] = asyncio.get_running_loop().create_future()
            start, end = period_bounds(limits.budget_period or "month", now)
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
