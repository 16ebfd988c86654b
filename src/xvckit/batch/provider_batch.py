"""`xvckit batch run --mode provider-batch`: the run's requests sent to the provider's batch API
through the gateway, at half price, for work that can wait (up to 24 h).

The same plan, journal and sinks as a live run; only the sending differs. The items not done
and in no open batch are submitted as one batch, each request's `custom_id` its journal hash:
OpenAI models as a JSONL file (`POST /v1/files`, purpose batch) and `POST /v1/batches`, Claude
models as `POST /v1/messages/batches`. The batch id goes into the journal, its items `sending`,
before anything waits; the create carries an `Idempotency-Key` made from the run and its
requests, so a client that died between the create and the journal finds the same batch at
the gateway. The batch is polled (`--poll`, the first time at once) until it ends; its results
go to the sinks as live answers do, each item's cost at the batch price. A request the provider
canceled goes back to pending, one that expired or errored is failed with the reason (a re-run
sends both again). Ctrl-C stops polling and leaves the batch running at the provider: a re-run
or `batch resume` polls it again; `batch cancel` cancels it at the provider, and a run that sees
that keeps polling until the batch ends, then collects what it did.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import time
from collections.abc import AsyncIterator, Callable

import httpx
import orjson

from xvckit import __version__
from xvckit.batch import journal as jr
from xvckit.batch.client import RETRYABLE, Endpoint, backoff, error_message
from xvckit.batch.cost import worst_usd
from xvckit.batch.engine import Recorder, Report, Sink
from xvckit.batch.journal import Journal, ProviderBatch
from xvckit.batch.requests import ANTHROPIC, Dialect, Request
from xvckit.errors import UserError
from xvckit.providers import batches as api
from xvckit.providers.prices import PriceTable
from xvckit.providers.ratelimit import parse_retry_after

MAX_ATTEMPTS = 5
CANCELLED = "cancelled (batch cancel)"  # the stop reason `batch cancel` gives a running run
INTERRUPTED = "interrupted"  # the start of Ctrl-C's and SIGTERM's


class ProviderBatchError(UserError):
    """The gateway or the provider refused a batch call."""


class BatchAPI:
    """The batch calls of one dialect through the gateway (the key is never stored)."""

    def __init__(self, where: Endpoint, dialect: Dialect, timeout_s: float) -> None:
        self.dialect = dialect
        self.anthropic = dialect is ANTHROPIC
        self.http = httpx.AsyncClient(
            base_url=where.root,
            headers={**dialect.auth(where.key), "user-agent": f"xvckit-batch/{__version__}"},
            timeout=httpx.Timeout(timeout_s, connect=10.0),
        )

    async def aclose(self) -> None:
        await self.http.aclose()

    async def submit(self, requests: list[Request], run_id: str) -> dict:
        """One batch of `requests`; the batch object as the provider made it."""
        key = (
            "xvckit-pbatch-"
            + hashlib.sha256("\n".join([run_id, *sorted(r.hash for r in requests)]).encode()).hexdigest()
        )
        if self.anthropic:
            items = b",".join(b'{"custom_id":"%s","params":%s}' % (r.hash.encode(), r.body) for r in requests)
            return await self._call(
                "POST",
                "/v1/messages/batches",
                content=b'{"requests":[' + items + b"]}",
                headers={"content-type": "application/json", "idempotency-key": key},
            )
        lines = b"".join(
            b'{"custom_id":"%s","method":"POST","url":"%s","body":%s}\n'
            % (r.hash.encode(), api.CHAT_URL.encode(), r.body)
            for r in requests
        )
        uploaded = await self._call(
            "POST", "/v1/files", files={"file": (f"{run_id}.jsonl", lines)}, data={"purpose": "batch"}
        )
        body = {
            "input_file_id": uploaded["id"],
            "endpoint": api.CHAT_URL,
            "completion_window": "24h",
            "metadata": {"xvckit_run": run_id[:500]},
        }
        return await self._call("POST", "/v1/batches", json=body, headers={"idempotency-key": key})

    async def status(self, batch_id: str) -> dict:
        return await self._call("GET", self._path(batch_id))

    async def cancel(self, batch_id: str) -> dict:
        """Cancel at the provider; a batch that has ended already is answered as it is."""
        try:
            return await self._call("POST", self._path(batch_id) + "/cancel")
        except ProviderBatchError:
            found = await self.status(batch_id)
            if not self.ended(found):
                raise
            return found

    def ended(self, batch: dict) -> bool:
        if self.anthropic:
            return batch.get("processing_status") == api.ANTHROPIC_ENDED
        return batch.get("status") in api.OPENAI_ENDED

    def describe(self, batch: dict) -> tuple[str, dict | None]:
        """(status, request counts) as the provider says them."""
        status = batch.get("processing_status" if self.anthropic else "status")
        counts = batch.get("request_counts")
        return str(status), counts if isinstance(counts, dict) else None

    async def results(self, batch: dict) -> AsyncIterator[api.Result]:
        """Every result line of an ended batch (OpenAI: its output and error files)."""
        if self.anthropic:
            paths, parse = [self._path(batch["id"]) + "/results"], api.anthropic_result
        else:
            files = [batch.get(n) for n in ("output_file_id", "error_file_id")]
            paths, parse = [f"/v1/files/{f}/content" for f in files if isinstance(f, str)], api.openai_result
        for path in paths:
            async with self.http.stream("GET", path) as response:
                if response.status_code != 200:
                    await response.aread()
                    why = error_message(response.content, response.reason_phrase)
                    raise ProviderBatchError(f"results of batch {batch['id']}: {response.status_code}: {why}")
                async for line in response.aiter_lines():
                    if line.strip():
                        yield parse(orjson.loads(line))

    def _path(self, batch_id: str) -> str:
        return f"/v1/messages/batches/{batch_id}" if self.anthropic else f"/v1/batches/{batch_id}"

    async def _call(self, method: str, path: str, **kwargs) -> dict:
        """One call, retried on connection errors, 408, 409, 429 and 5xx; the JSON it answers."""
        error = "not sent"
        for attempt in range(1, MAX_ATTEMPTS + 1):
            retry_after = None
            try:
                response = await self.http.request(method, path, **kwargs)
            except httpx.TransportError as exc:
                error = f"gateway unreachable: {type(exc).__name__}"
            else:
                if response.status_code == 200:
                    try:
                        found = orjson.loads(response.content)
                    except orjson.JSONDecodeError:
                        found = None
                    if not isinstance(found, dict) or not isinstance(found.get("id"), str):
                        raise ProviderBatchError(f"{method} {path}: 200 with a body that is not an object")
                    return found
                error = f"{response.status_code}: {error_message(response.content, response.reason_phrase)}"
                if response.status_code not in RETRYABLE:
                    break
                retry_after = parse_retry_after(response.headers, time.time())
            if attempt < MAX_ATTEMPTS:
                await asyncio.sleep(backoff(attempt, retry_after))
        raise ProviderBatchError(f"{method} {path}: {error}")


class ProviderBatchRun(Recorder):
    """A run's requests through a provider's batch API: submit, poll, collect."""

    def __init__(
        self,
        journal: Journal,
        batches: BatchAPI,
        prices: PriceTable,
        run_id: str,
        *,
        poll_s: float,
        max_cost_usd: float | None = None,
        should_stop: Callable[[], str | None] | None = None,
    ) -> None:
        super().__init__(journal, prices, max_cost_usd=max_cost_usd, should_stop=should_stop)
        self.batches = batches
        self.run_id = run_id
        self.poll_s = poll_s
        self._canceled = 0  # requests the provider canceled: pending again

    async def run(self, requests: list[Request], sink: Sink) -> Report:
        states = self._start(requests, sink)
        by_hash = {r.hash: r for r in requests}
        waiting = {h for b in self.journal.provider_batches(open_only=True) for h in b.hashes}
        to_send = [
            r
            for r in requests
            if states[r.hash] in (jr.PENDING, jr.SENDING, jr.FAILED) and r.hash not in waiting
        ]
        self.stats.to_send = len(to_send)
        send, skipped = self._within_cap(to_send, [by_hash[h] for h in waiting if h in by_hash])
        watcher = asyncio.create_task(self._watch()) if self.should_stop else None
        try:
            if send:
                batch = await self.batches.submit(send, self.run_id)
                status, _ = self.batches.describe(batch)
                self.journal.batch_submitted(batch["id"], self._api(), status, [r.hash for r in send])
            await self._poll(by_hash, sink)
        finally:
            if watcher:
                watcher.cancel()
        if self.stopped is None and self.should_stop:  # a batch cancelled before the watcher looked
            reason = self.should_stop()
            if reason:
                self.stop(reason)
        report = self._report()
        report.skipped = len(skipped) + self._canceled
        report.skipped_worst_usd = sum(self._worst(r) for r in skipped)
        sink.finish(self.journal)
        return report

    def _api(self) -> str:
        return "anthropic" if self.batches.anthropic else "openai"

    def _worst(self, request: Request) -> float:
        return (worst_usd(self.prices, request) or 0.0) * api.PRICE_SHARE

    def _within_cap(
        self, to_send: list[Request], waiting: list[Request]
    ) -> tuple[list[Request], list[Request]]:
        """The items the cost cap lets into a new batch (the run's spend and the open batches'
        worst case counted first), and those it leaves out."""
        if self.max_cost_usd is None:
            return to_send, []
        total = self.stats.spent_before_usd + sum(self._worst(r) for r in waiting)
        for index, request in enumerate(to_send):
            total += self._worst(request)
            if total > self.max_cost_usd:
                self.stop(f"cost cap: the next item could pass ${self.max_cost_usd:.4f} at the batch price")
                return to_send[:index], to_send[index:]
        return to_send, []

    async def _poll(self, by_hash: dict[str, Request], sink: Sink) -> None:
        """Poll the open batches until each ends (then collect it), or the run is interrupted."""
        cancelled = False
        while True:
            open_batches = self.journal.provider_batches(open_only=True)
            self.stats.in_flight = sum(len(b.hashes) for b in open_batches)
            if not open_batches:
                return
            if self.stopped and self.stopped.startswith(INTERRUPTED):
                return  # the batches go on at the provider; a re-run polls them again
            if self.stopped == CANCELLED and not cancelled:
                cancelled = True  # then polled until they end, and what they did collected
                for batch in open_batches:
                    await self.batches.cancel(batch.id)
            for batch in open_batches:
                found = await self.batches.status(batch.id)
                status, counts = self.batches.describe(found)
                ended = self.batches.ended(found)
                if ended:
                    await self._collect(batch, found, by_hash, sink)
                self.journal.batch_status(batch.id, status, counts, ended)
            if self.journal.provider_batches(open_only=True):
                self._finished.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._finished.wait(), self.poll_s)

    async def _collect(
        self, batch: ProviderBatch, found: dict, by_hash: dict[str, Request], sink: Sink
    ) -> None:
        """An ended batch's results into the journal and the sinks; its requests without one
        failed with the batch's status."""
        unanswered = set(batch.hashes)
        async for result in self.batches.results(found):
            request = by_hash.get(result.custom_id)
            if request is None or result.custom_id not in unanswered:
                continue  # no longer planned (its file changed), or not this batch's
            unanswered.discard(result.custom_id)
            self._take(request, result, sink)
        status, _ = self.batches.describe(found)
        for key in unanswered:
            if key in by_hash:
                self._fail(by_hash[key], f"no result in batch {batch.id} (its status: {status})")

    def _take(self, request: Request, result: api.Result, sink: Sink) -> None:
        if result.kind == api.SUCCEEDED:
            try:
                text, usage = request.dialect.answer(result.body or {})
            except (ValueError, AttributeError, TypeError) as exc:
                self._fail(request, f"the result is not an answer: {exc}")
                return
            cost = (self.prices.cost_usd(request.model, usage) or 0.0) * api.PRICE_SHARE
            self.journal.answered(request.hash, text, usage, cost, False)
            self.stats.input_tokens += usage.input_tokens
            self.stats.output_tokens += usage.output_tokens
            self.stats.cost_usd += cost
            self._deliver(request, text, sink)
        elif result.kind == api.CANCELED:
            self.journal.unsent(request.hash)
            self._canceled += 1
        elif result.kind == api.EXPIRED:
            self._fail(request, "expired at the provider before it ran (a re-run sends it again)")
        else:
            self._fail(request, f"{result.status}: {result.error}")


async def cancel_open(journal: Journal, batches: BatchAPI) -> list[tuple[str, str]]:
    """Cancel the run's open batches at the provider: (batch id, its status now) each."""
    done = []
    for batch in journal.provider_batches(open_only=True):
        found = await batches.cancel(batch.id)
        status, counts = batches.describe(found)
        journal.batch_status(batch.id, status, counts)  # still open: the run collects what it did
        done.append((batch.id, status))
    return done


def described(journal: Journal) -> list[dict]:
    """The run's provider batches as `batch show` and the summary list them."""
    return [
        {
            "id": b.id,
            "api": b.api,
            "status": b.status,
            "open": b.open,
            "requests": len(b.hashes),
            "counts": b.counts,
        }
        for b in journal.provider_batches()
    ]
