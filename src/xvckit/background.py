"""Background tasks of a long-running service (the gateway's key refresher, batch sweep, monitor,
repository KPIs): started with it, cancelled and waited for when it stops, so none outlives
what it uses."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Coroutine
from typing import Any


async def stopped(task: asyncio.Future | None, *expected: type[BaseException]) -> None:
    """Cancel `task` and wait for it to end; its cancellation and `expected` errors are its own."""
    if task is None:
        return
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError, *expected):
        await task


@contextlib.asynccontextmanager
async def while_open(loop: Coroutine[Any, Any, None] | None) -> AsyncIterator[None]:
    """Run `loop` as a task while the context is open (nothing when it is None)."""
    task = asyncio.create_task(loop) if loop is not None else None
    try:
        yield
    finally:
        await stopped(task)
