"""Running checks concurrently under one deadline.

A job promises some checks (their ids, titles and threshold rows) and delivers each one as
soon as it has it. At the deadline the unfinished jobs are cancelled and every promised
check still missing is reported `unknown`, with the reason: a hanging provider or a stuck
disk costs its own checks, never the report. Blocking work runs in daemon threads
(`in_thread`), which a cancelled job leaves behind without holding up the process's exit,
as a thread pool's workers would.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from xvckit.doctor.checks import Check, Judge

T = TypeVar("T")
Deliver = Callable[[Check], None]


@dataclass(frozen=True, slots=True)
class Promise:
    id: str
    title: str
    threshold: str = ""  # its row in thresholds.THRESHOLDS; "": the row named like the check

    def __post_init__(self) -> None:
        if not self.threshold:
            object.__setattr__(self, "threshold", self.id)


@dataclass(slots=True)
class Job:
    promises: list[Promise]
    run: Callable[[Deliver], Awaitable[None]]


async def run_jobs(jobs: list[Job], judge: Judge, deadline_s: float | None) -> list[Check]:
    """Every promised check, in the order promised."""
    delivered: dict[str, Check] = {}
    tasks = {
        asyncio.create_task(job.run(lambda check: delivered.setdefault(check.id, check))): job for job in jobs
    }
    if not tasks:
        return []
    _done, pending = await asyncio.wait(tasks, timeout=deadline_s)
    for task in pending:
        task.cancel()
    await asyncio.gather(*pending, return_exceptions=True)
    checks = []
    for task, job in tasks.items():
        reason = _why_missing(task, task in pending, deadline_s)
        for promise in job.promises:
            found = delivered.get(promise.id)
            checks.append(found or judge.missing(promise.id, promise.title, promise.threshold, reason))
    return checks


def _why_missing(task: asyncio.Task, unfinished: bool, deadline_s: float | None) -> str:
    if unfinished:
        return f"not finished within the doctor's deadline ({deadline_s:g} s)"
    failure = task.exception()
    if failure is not None:
        return f"the check failed: {type(failure).__name__}: {failure}"
    return "the check gave no result"


async def in_thread(fn: Callable[..., T], *args: Any) -> T:
    """`fn(*args)` in a daemon thread: awaiting it can be cancelled, and a call that never
    returns (DNS, a hung mount) does not keep the process alive."""
    loop = asyncio.get_running_loop()
    future: asyncio.Future[T] = loop.create_future()

    def settle(result: Any, error: BaseException | None) -> None:
        if not future.done():
            if error is None:
                future.set_result(result)
            else:
                future.set_exception(error)

    def work() -> None:
        try:
            result, error = fn(*args), None
        except Exception as exc:
            result, error = None, exc
        with contextlib.suppress(RuntimeError):  # the loop has closed: nobody is waiting
            loop.call_soon_threadsafe(settle, result, error)

    threading.Thread(target=work, daemon=True, name=f"doctor-{getattr(fn, '__name__', 'work')}").start()
    return await future
