"""The engine: rendered requests in, answers to a sink out, journaled, paced and cost-capped.

`Engine.run(requests, sink)` is the whole interface: whatever makes the requests (a template
over files, a review of a diff) and whatever takes the answers (files, JSONL, edits, a merged
review) the engine does the same: skip what the journal has done, hand a recorded answer to
the sink without asking again, send the rest through the gateway within the gate's slots,
stop before the next request could pass the cost cap, and stop cleanly on `stop()` (Ctrl-C,
`batch cancel`, a fatal answer), letting what is in flight finish and be recorded.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

from xvckit.batch import journal as jr
from xvckit.batch.client import GatewayClient
from xvckit.batch.cost import worst_usd
from xvckit.batch.journal import Journal
from xvckit.batch.pacing import Gate
from xvckit.batch.requests import Request
from xvckit.errors import UserError
from xvckit.providers.prices import PriceTable

STOP_POLL_S = 0.5
MAX_FAILURES_LISTED = 20


class Sink(Protocol):
    """Takes each answer as it comes (what it did goes in the journal) and ends the run."""

    def accept(self, request: Request, answer: str) -> dict | None: ...

    def finish(self, journal: Journal) -> None: ...


@dataclass
class Stats:
    """Live counters, read by the progress view while the run goes on."""

    total: int = 0  # planned items
    done_before: int = 0  # done by an earlier session of the run
    to_send: int = 0
    done: int = 0
    failed: int = 0
    replayed: int = 0
    retried: int = 0  # items whose request was sent more than once by this session
    in_flight: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    cost_usd: float = 0.0  # spent by this session
    spent_before_usd: float = 0.0
    started: float = field(default_factory=time.monotonic)
    limit: int = 0  # the gate's slots now

    @property
    def finished(self) -> int:
        return self.done + self.failed


@dataclass
class Report:
    stats: Stats
    stopped: str | None = None  # why the run stopped before its end
    skipped: int = 0  # items not sent: stopped (cost cap, cancel)
    skipped_worst_usd: float = 0.0
    failures: list[tuple[str, str]] = field(default_factory=list)  # (item, error), the first ones
    elapsed_s: float = 0.0


class Recorder:
    """What every way of sending a run shares: the journal and the live counters, answers handed
    to the sink (or the item failed), the failures listed, and a clean stop (`stop()`, or
    `should_stop` polled: `batch cancel` from another shell)."""

    def __init__(
        self,
        journal: Journal,
        prices: PriceTable,
        *,
        max_cost_usd: float | None = None,
        should_stop: Callable[[], str | None] | None = None,
        slots: int = 0,
    ) -> None:
        self.journal = journal
        self.prices = prices
        self.max_cost_usd = max_cost_usd
        self.should_stop = should_stop
        self.stats = Stats(limit=slots)
        self.stopped: str | None = None
        self._finished = asyncio.Event()
        self._failures: list[tuple[str, str]] = []

    def stop(self, reason: str) -> None:
        """Send nothing more; what is under way finishes and is recorded."""
        if self.stopped is None:
            self.stopped = reason
            self._finished.set()

    def _start(self, requests: list[Request], sink: Sink) -> dict[str, str]:
        """Plan the run in the journal and hand the answers an earlier session recorded (but
        did not write out) to the sink; each planned request's state."""
        states = self.journal.plan(requests)
        stats = self.stats
        stats.total = len(requests)
        stats.done_before = sum(1 for r in requests if states[r.hash] == jr.DONE)
        stats.spent_before_usd = self.journal.totals()["cost_usd"]
        for r in requests:  # answered before the last session ended: outputs only
            if states[r.hash] == jr.ANSWERED:
                row = self.journal.row(r.hash)
                self._deliver(r, row.answer or "", sink)
        return states

    def _report(self) -> Report:
        return Report(
            self.stats, self.stopped, failures=self._failures, elapsed_s=time.monotonic() - self.stats.started
        )

    def _deliver(self, request: Request, answer: str, sink: Sink) -> None:
        try:
            output = sink.accept(request, answer)
        except (OSError, UserError) as exc:
            self._fail(request, f"output: {exc}", answered=True)
            return
        self.journal.done(request.hash, output)
        self.stats.done += 1

    def _fail(self, request: Request, error: str, answered: bool = False) -> None:
        """Record a failure; an answered item keeps its answer for the next run's outputs."""
        if answered:
            self.journal.output_failed(request.hash, error)
        else:
            self.journal.failed(request.hash, error)
        self.stats.failed += 1
        if len(self._failures) < MAX_FAILURES_LISTED:
            self._failures.append((request.item_id, error))

    async def _watch(self) -> None:
        while self.stopped is None:
            await asyncio.sleep(STOP_POLL_S)
            reason = self.should_stop()
            if reason:
                self.stop(reason)


class Engine(Recorder):
    def __init__(
        self,
        journal: Journal,
        client: GatewayClient,
        gate: Gate,
        prices: PriceTable,
        *,
        max_cost_usd: float | None = None,
        should_stop: Callable[[], str | None] | None = None,
    ) -> None:
        super().__init__(
            journal, prices, max_cost_usd=max_cost_usd, should_stop=should_stop, slots=gate.slots
        )
        self.client = client
        self.gate = gate
        self._reserved = 0.0  # the in-flight requests' worst case
        self._spent = 0.0
        self._closing: asyncio.Task | None = None

    def stop(self, reason: str) -> None:
        """Send nothing more; what is in flight finishes and is recorded."""
        if self.stopped is None:
            self._closing = asyncio.get_running_loop().create_task(self.gate.close())
        super().stop(reason)

    async def run(self, requests: list[Request], sink: Sink) -> Report:
        states = self._start(requests, sink)
        stats = self.stats
        self._spent = stats.spent_before_usd
        to_send = [r for r in requests if states[r.hash] in (jr.PENDING, jr.SENDING, jr.FAILED)]
        stats.to_send = len(to_send)
        watcher = asyncio.create_task(self._watch()) if self.should_stop else None
        tasks: set[asyncio.Task] = set()
        sent = 0
        try:
            for r in to_send:
                if not await self._room_for(r) or not await self.gate.acquire():
                    break
                worst = worst_usd(self.prices, r) or 0.0
                self._reserved += worst
                self.journal.sending(r.hash)
                stats.in_flight += 1
                task = asyncio.create_task(self._one(r, worst, sink))
                tasks.add(task)
                task.add_done_callback(tasks.discard)
                sent += 1
            if tasks:
                await asyncio.gather(*tasks)
        finally:
            if watcher:
                watcher.cancel()
        report = self._report()
        for r in to_send[sent:]:
            report.skipped += 1
            report.skipped_worst_usd += worst_usd(self.prices, r) or 0.0
            if states[r.hash] == jr.SENDING:
                self.journal.unsent(r.hash)
        sink.finish(self.journal)
        return report

    async def _room_for(self, request: Request) -> bool:
        """Whether the request fits under the cost cap with the in-flight ones at their worst;
        waits for answers in flight while they may free enough."""
        if self.max_cost_usd is None:
            return self.stopped is None
        worst = worst_usd(self.prices, request) or 0.0
        while self.stopped is None:
            if self._spent + self._reserved + worst <= self.max_cost_usd:
                return True
            if self.stats.in_flight == 0:
                self.stop(
                    f"cost cap: ${self._spent:.4f} spent, the next item could cost ${worst:.4f}, "
                    f"the cap is ${self.max_cost_usd:.4f}"
                )
                break
            self._finished.clear()
            await self._finished.wait()
        return False

    async def _one(self, request: Request, worst: float, sink: Sink) -> None:
        stats = self.stats
        try:
            outcome = await self.client.send(request, self.gate)
        except BaseException:
            await self.gate.release()
            raise
        stats.retried += outcome.attempts > 1
        if outcome.text is not None:
            cost = self.prices.cost_usd(request.model, outcome.usage)
            self.journal.answered(request.hash, outcome.text, outcome.usage, cost, outcome.replayed)
            stats.input_tokens += outcome.usage.input_tokens
            stats.output_tokens += outcome.usage.output_tokens
            stats.cost_usd += cost or 0.0
            stats.replayed += outcome.replayed
            self._spent += cost or 0.0
            self._deliver(request, outcome.text, sink)
        else:
            self._fail(request, outcome.error or "no answer")
            if outcome.fatal:
                self.stop(f"the gateway refused the run: {outcome.error}")
        self._reserved -= worst
        stats.in_flight -= 1
        stats.limit = self.gate.slots
        self._finished.set()
        await self.gate.release()  # after the outcome is recorded: a fatal one stops the next
