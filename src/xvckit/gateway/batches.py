"""The providers' batch APIs through the gateway, with the team's provider keys: OpenAI's
`/v1/files` and `/v1/batches`, Anthropic's `/v1/messages/batches` (wire formats in
providers/batches.py).

Every call needs a key, and a key sees only what it made: each file and batch made through the
gateway is recorded with its owner (`xvckit_provider_batches`, store/provider_batches.py), and
another key's id, an admin's included, is 404 exactly as an id that does not exist. Output and
error files are the owner's of the batch that wrote them (recorded when the gateway first sees
the batch name them). Ids are checked before any lookup.

Where a batch goes: a file or batch goes to the provider that serves the models its requests
name (all one provider, of the API's kind: checked in batch_checks.py), with each model
rewritten to the provider's id; later calls about it go to the provider recorded with it, with
that provider's first key (files and batches belong to the key's organisation).

Limits: an upload is a request body, bounded by `gateway.max_body_mb` (413); a batch holds at
most the provider's own count of requests. Making a batch is admitted as a request of each
model it names, against the caller's model list, rpm and budgets: all of its requests at their
most output, at the batch price, are reserved and counted as spent at once (the ledger's real
figures take over when spend is next read from it: a new period, a restart). Its results are
ledgered (batch_ledger.py) the first time the gateway sees the batch ended: on any read of it
(retrieve, list, cancel), or before its Anthropic results are passed on, so no key gets results
its batch's ledger rows do not cover. A batch create with an `Idempotency-Key` already used by
the key answers the batch it made (a client that died after creating it finds it again); the
key is claimed in the store before the provider is called, so of two creates at once (on any
replica) one makes the batch and the other answers 409 until it has.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import time
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import parse_qs

import orjson

from xvckit.asgi import JSON, BodyTooLarge, Receive, Scope, Send, read_body, respond
from xvckit.background import stopped
from xvckit.config import Provider
from xvckit.gateway import batch_checks, batch_ledger
from xvckit.gateway.admission import Admission
from xvckit.gateway.dialects import ANTHROPIC, OPENAI, Dialect, GatewayError
from xvckit.gateway.http1 import Response, Upstream
from xvckit.gateway.idempotency import in_progress_error
from xvckit.gateway.keyring import Keyring, Principal
from xvckit.gateway.routing import Router
from xvckit.gateway.upstream import Upstreams, failure
from xvckit.providers import batches as api
from xvckit.providers.prices import PriceTable
from xvckit.store import Store
from xvckit.store import provider_batches as owned
from xvckit.store.ledger_feed import Ledger
from xvckit.store.provider_batches import BATCH, FILE, Owned

log = logging.getLogger("xvckit.gateway")

PREFIXES = ("/v1/files", "/v1/batches", "/v1/messages/batches")
MAX_CREATE_BYTES = 64 << 10  # an OpenAI batch create: ids and metadata
MAX_RESULT_LINE_BYTES = 16 << 20  # one line of results read for the ledger
MAX_IDEMPOTENCY_CHARS = 200
SWEEP_DAYS = 29  # Anthropic keeps a batch's results 29 days, OpenAI its files 30
SWEEP_MOST = 1000  # batches read by one sweep, the oldest first
_SWEEP_SCOPE: Scope = {"type": "http", "method": "GET", "path": "", "headers": []}  # no caller to forward
LIST_LIMIT, MAX_LIST_LIMIT = 20, 100
_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,127}")
_MULTIPART = b"multipart/form-data"
_PASSED_HEADERS = frozenset({b"content-type", b"content-disposition"})
Handler = Callable[..., Awaitable[None]]  # (scope, receive, send, caller, the path's parts)


def _not_found(what: str, ident: str) -> GatewayError:
    return GatewayError(404, f"No {what} found with id '{ident}'.", "not_found")


def _checked_id(ident: str, what: str) -> str:
    if not _ID.fullmatch(ident):
        raise _not_found(what, ident[:MAX_IDEMPOTENCY_CHARS])
    return ident


class Batches:
    def __init__(
        self,
        store: Store,
        keyring: Keyring,
        router: Router,
        upstreams: Upstreams,
        admission: Admission,
        ledger: Ledger | None,
        prices: PriceTable,
        max_body: int,
        sweep_s: float = 0.0,
        claim_ttl_s: float = 1860.0,
    ) -> None:
        self.store = store
        self.keyring = keyring
        self.router = router
        self.upstreams = upstreams
        self.admission = admission
        self.ledger = ledger
        self.prices = prices
        self.max_body = max_body
        self.providers = {p.name: p for p in upstreams.providers}
        self._settling: dict[str, asyncio.Future] = {}  # batches whose results are being ledgered
        self.sweep_s = sweep_s
        self.claim_ttl_s = claim_ttl_s  # longer than a create can take: the upstream deadline
        self._sweeping: asyncio.Task | None = None

    def start(self) -> None:
        if self.sweep_s > 0 and self.ledger is not None:
            self._sweeping = asyncio.create_task(self._sweep_forever(), name="batch sweep")

    async def stop(self) -> None:
        """The sweep and the results being read for the ledger stop before the ledger closes."""
        for task in [self._sweeping, *self._settling.values()]:
            await stopped(task, GatewayError)

    async def _sweep_forever(self) -> None:
        while True:
            await asyncio.sleep(self.sweep_s)
            try:
                await self.sweep()
            except Exception:  # the next sweep tries again; a dead loop would ledger nothing more
                log.exception("batch sweep failed")

    async def sweep(self) -> None:
        """Read the batches made through the gateway (at most SWEEP_DAYS old, the providers' time
        for results) whose results are not in the ledger yet: one that has ended is ledgered as
        on any read, so a batch nobody reads after it ends is paid for in the ledger too. Several
        replicas may sweep the same batch: the ledger records each of its rows once."""
        since = time.time() - SWEEP_DAYS * 86400
        for found in await asyncio.to_thread(owned.unledgered, self.store, since, SWEEP_MOST):
            try:
                await self._fetch(_SWEEP_SCOPE, found)
            except GatewayError as exc:
                log.warning("batch sweep: %s not read: %s", found.id, exc.message)
            except Exception:  # one batch the gateway cannot read must not stop the sweep's others
                log.exception("batch sweep: %s not read", found.id)

    async def answer(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Any request under PREFIXES: the caller's key, then the route by method and path."""
        path, method = scope["path"], scope["method"]
        anthropic = path.startswith("/v1/messages/batches")
        dialect = ANTHROPIC if anthropic else OPENAI
        try:
            who = self.keyring.known(scope) or await self.keyring.authenticate(scope)
            parts = [
                p for p in path.removeprefix("/v1/messages/batches" if anthropic else "/v1/").split("/") if p
            ]
            found = self._handler(anthropic, method, parts)
            if found is None:
                raise GatewayError(404, f"no such endpoint: {method} {path}", "not_found")
            handler, rest = found
            await handler(scope, receive, send, who, rest)
        except GatewayError as exc:
            await _error(send, dialect, exc)
        except Exception:  # a 500 in the caller's dialect, details in the log only
            log.exception("internal error in %s %s", method, path)
            with contextlib.suppress(RuntimeError):  # unless the answer had begun
                await _error(
                    send, dialect, GatewayError(500, "the gateway failed on this request", "internal_error")
                )

    def _handler(self, anthropic: bool, method: str, parts: list[str]) -> tuple[Handler, list[str]] | None:
        """The handler for a method and path, and the parts of the path after its collection."""
        if anthropic:
            routes = {
                ("POST", 0, None): self._create_message_batch,
                ("GET", 0, None): self._list_message_batches,
                ("GET", 1, None): self._batch,
                ("POST", 2, "cancel"): self._batch,
                ("GET", 2, "results"): self._message_batch_results,
            }
            rest = parts
        else:
            collection, rest = parts[0], parts[1:]
            routes = (
                {
                    ("POST", 0, None): self._upload,
                    ("GET", 1, None): self._file,
                    ("GET", 2, "content"): self._file,
                }
                if collection == "files"
                else {
                    ("POST", 0, None): self._create_batch,
                    ("GET", 0, None): self._list_batches,
                    ("GET", 1, None): self._batch,
                    ("POST", 2, "cancel"): self._batch,
                }
                if collection == "batches"
                else {}
            )
        handler = routes.get((method, len(rest), rest[1] if len(rest) == 2 else None))
        return (handler, rest) if handler else None

    # --- OpenAI: files ---------------------------------------------------------------------

    async def _upload(
        self, scope: Scope, receive: Receive, send: Send, who: Principal, rest: list[str]
    ) -> None:
        content_type = _header(scope, b"content-type") or b""
        if not content_type.lower().startswith(_MULTIPART):
            raise GatewayError(415, "a file upload is multipart/form-data", "unsupported_content_type")
        body = await self._body(scope, receive, self.max_body)
        try:
            form = api.form_parts(content_type, body)
        except ValueError as exc:
            raise GatewayError(400, f"the upload is not a multipart form: {exc}", "invalid_request") from None
        purpose = form.get("purpose", (None, b""))[1]
        if purpose != b"batch":
            raise GatewayError(
                400, "only files with purpose 'batch' go through the gateway", "invalid_purpose"
            )
        filename, data = form.get("file", (None, b""))
        if filename is None:
            raise GatewayError(400, "Missing required parameter: 'file' (a file part)", "missing_file")
        lines, checked = await asyncio.to_thread(batch_checks.openai_file, data, self.router, self.prices)
        content_type, upload = api.form_body({"purpose": "batch"}, "file", filename[:255], lines)
        response = await self._call(b"POST", checked.provider, "/files", scope, upload, content_type)
        status, answer = await self._read(response, checked.provider)
        if status == 200:
            found = _object(answer, checked.provider)
            detail = {**checked.detail(), "input": True}
            await self._own(found["id"], FILE, "openai", checked.provider.name, who, detail)
        await respond(send, status, answer)

    async def _file(
        self, scope: Scope, receive: Receive, send: Send, who: Principal, rest: list[str]
    ) -> None:
        ident = _checked_id(rest[0], "file")
        found = await self._find(ident, who, FILE, "file")
        tail = "/content" if len(rest) == 2 else ""
        provider = self._provider(found)
        response = await self._call(b"GET", provider, f"/files/{ident}{tail}", scope)
        await self._pass_on(send, response, provider)

    # --- OpenAI: batches -------------------------------------------------------------------

    async def _create_batch(
        self, scope: Scope, receive: Receive, send: Send, who: Principal, rest: list[str]
    ) -> None:
        body = await self._body(scope, receive, MAX_CREATE_BYTES)
        payload = _json_object(body)
        again = await self._made_before(scope, who)
        if again is not None:
            await self._made_already(send, scope, again)
            return
        file_id = payload.get("input_file_id")
        if not isinstance(file_id, str):
            raise GatewayError(
                400, "Missing required parameter: 'input_file_id'.", "missing_required_parameter"
            )
        source = await self._find(_checked_id(file_id, "file"), who, FILE, "file")
        if not source.detail.get("input"):
            raise GatewayError(
                400, f"file {file_id} is not a batch input file uploaded by this key", "invalid_file"
            )
        if payload.get("endpoint") != api.CHAT_URL:
            raise GatewayError(400, f"'endpoint' must be {api.CHAT_URL}", "invalid_endpoint")
        provider = self._provider(source)
        detail = {**source.detail, "input_file_id": file_id}
        await self._make(scope, send, who, provider, "/batches", body, detail, "openai")

    async def _batch(
        self, scope: Scope, receive: Receive, send: Send, who: Principal, rest: list[str]
    ) -> None:
        """Retrieve or cancel a batch of either API."""
        what = "message batch" if scope["path"].startswith("/v1/messages/") else "batch"
        found = await self._find(_checked_id(rest[0], what), who, BATCH, what)
        await respond(send, *await self._fetch(scope, found, cancel=len(rest) == 2))

    async def _list_batches(
        self, scope: Scope, receive: Receive, send: Send, who: Principal, rest: list[str]
    ) -> None:
        await self._list(scope, send, who, "openai")

    # --- Anthropic: message batches --------------------------------------------------------

    async def _create_message_batch(
        self, scope: Scope, receive: Receive, send: Send, who: Principal, rest: list[str]
    ) -> None:
        if (_header(scope, b"content-type") or b"").split(b";")[0].strip().lower() != JSON:
            raise GatewayError(415, "the request body must be JSON", "unsupported_content_type")
        body = await self._body(scope, receive, self.max_body)
        payload = _json_object(body)
        again = await self._made_before(scope, who)
        if again is not None:
            await self._made_already(send, scope, again)
            return
        sent, checked = await asyncio.to_thread(
            batch_checks.anthropic_batch, payload, self.router, self.prices
        )
        await self._make(
            scope, send, who, checked.provider, "/v1/messages/batches", sent, checked.detail(), "anthropic"
        )

    async def _message_batch_results(
        self, scope: Scope, receive: Receive, send: Send, who: Principal, rest: list[str]
    ) -> None:
        ident = _checked_id(rest[0], "message batch")
        found = await self._find(ident, who, BATCH, "message batch")
        provider = self._provider(found)
        if found.ledgered_at is None:  # ledgered before the results go out, if it has ended
            await self._fetch(scope, found)
        response = await self._call(b"GET", provider, f"/v1/messages/batches/{ident}/results", scope)
        await self._pass_on(send, response, provider)

    async def _list_message_batches(
        self, scope: Scope, receive: Receive, send: Send, who: Principal, rest: list[str]
    ) -> None:
        await self._list(scope, send, who, "anthropic")

    # --- shared ----------------------------------------------------------------------------

    async def _make(
        self,
        scope: Scope,
        send: Send,
        who: Principal,
        provider: Provider,
        path: str,
        body: bytes,
        detail: dict,
        kind: str,
    ) -> None:
        """Admit a batch as a request of each of its models at its worst-case cost, make it at
        the provider, record it; what was reserved is spent once it is made, freed otherwise.
        Under an Idempotency-Key, the key is claimed in the store first: of two creates at once
        (on any replica), one makes the batch and the other answers 409 and, retried, that batch."""
        claim = None
        if (key := _idempotency_key(scope)) is not None:
            held = await asyncio.to_thread(
                owned.claim, self.store, _owner(who), who.team_id, key, self.claim_ttl_s
            )
            if isinstance(held, Owned):
                await self._made_already(send, scope, held)
                return
            claim = held
        made = recorded = False
        try:
            tickets = await self._admit(who, detail["worst_usd"])
            try:
                response = await self._call(b"POST", provider, path, scope, body)
                status, answer = await self._read(response, provider)
                if status == 200:
                    made = True  # the provider made it: what it may cost is spent
                    found = _object(answer, provider)
                    recorded = await self._own(found["id"], BATCH, kind, provider.name, who, detail, claim)
                    if kind == "anthropic":
                        answer = orjson.dumps(_with_results_url(scope, found))
            finally:
                for ticket, usd in tickets:
                    self.admission.settle(ticket, 0, usd if made else 0.0)
        finally:
            if claim is not None and not recorded:
                await asyncio.to_thread(owned.release, self.store, claim)
        await respond(send, status, answer)

    async def _admit(self, who: Principal, worst: dict[str, float | None]) -> list[tuple[Any, float]]:
        """Reserve each model's share of a batch's worst case; on a refusal, free what was reserved."""
        tickets: list[tuple[Any, float]] = []
        if not who.scopes:
            return tickets
        try:
            for model, usd in worst.items():
                tickets.append((await self.admission.admit(who.scopes, model, 0, usd), usd or 0.0))
        except GatewayError:
            for ticket, _ in tickets:
                self.admission.settle(ticket, 0, 0.0)
            raise
        return tickets

    async def _made_before(self, scope: Scope, who: Principal) -> Owned | None:
        key = _idempotency_key(scope)
        if key is None:
            return None
        found = await asyncio.to_thread(owned.by_idempotency_key, self.store, _owner(who), key)
        return None if found is None or owned.stale(found, self.claim_ttl_s) else found

    async def _made_already(self, send: Send, scope: Scope, found: Owned) -> None:
        """The batch an earlier create with the same Idempotency-Key made, as it is now; 409
        while that create is still in progress."""
        if found.kind == owned.CLAIM:
            raise in_progress_error()
        await respond(send, *await self._fetch(scope, found))

    async def _fetch(self, scope: Scope, found: Owned, cancel: bool = False) -> tuple[int, bytes]:
        """A batch as its provider has it now (or after a cancel): (status, the caller's body)."""
        provider = self._provider(found)
        path = _batch_path(found) + ("/cancel" if cancel else "")
        response = await self._call(b"POST" if cancel else b"GET", provider, path, scope)
        status, answer = await self._read(response, provider)
        if status == 200:
            answer = orjson.dumps(await self._seen(scope, found, _object(answer, provider)))
        return status, answer

    async def _seen(self, scope: Scope, found: Owned, batch: dict) -> dict:
        """A batch object from the provider, as the caller gets it: once it has ended, its results
        are ledgered first, then the files it names become its owner's."""
        if found.api == "openai":
            if str(batch.get("status")) in api.OPENAI_ENDED:  # a status of another type has not ended
                await self._ledger(scope, found, batch)
            for name in ("output_file_id", "error_file_id"):
                file_id = batch.get(name)
                if isinstance(file_id, str) and _ID.fullmatch(file_id):
                    item = Owned(
                        file_id,
                        FILE,
                        "openai",
                        found.provider,
                        found.owner,
                        found.team_id,
                        time.time(),
                        {"batch": found.id},
                    )
                    await asyncio.to_thread(owned.add, self.store, item)
            return batch
        if batch.get("processing_status") == api.ANTHROPIC_ENDED:
            await self._ledger(scope, found, batch)
        return _with_results_url(scope, batch)

    async def _ledger(self, scope: Scope, found: Owned, batch: dict) -> None:
        """Read the ended batch's results into the ledger (batch_ledger.py), once for all the
        requests that see it ended at the same time; a 502 when they cannot be read (no results
        go out unledgered: the next read tries again, and records nothing twice)."""
        if found.ledgered_at is not None or self.ledger is None:
            return
        running = self._settling.get(found.id)
        if running is None:
            running = self._settling[found.id] = asyncio.ensure_future(
                self._read_results(scope, found, batch)
            )
            running.add_done_callback(lambda _: self._settling.pop(found.id, None))
        await asyncio.shield(running)

    async def _read_results(self, scope: Scope, found: Owned, batch: dict) -> None:
        provider = self._provider(found)
        try:
            if found.api == "openai":
                files = [
                    batch.get(n) for n in ("output_file_id", "error_file_id") if batch.get(n) is not None
                ]
                if not all(isinstance(f, str) and _ID.fullmatch(f) for f in files):
                    raise ValueError("a file id the gateway cannot use")
                paths, parse = [f"/files/{f}/content" for f in files], api.openai_result
            else:
                paths, parse = [_batch_path(found) + "/results"], api.anthropic_result
            for path in paths:
                await self._ledger_results(scope, provider, path, found, parse)
            await asyncio.to_thread(owned.ledgered, self.store, found.id)
        except (GatewayError, ValueError, TypeError, KeyError, AttributeError) as exc:  # results garbled
            log.warning("results of batch %s not ledgered yet: %s", found.id, exc)
            raise GatewayError(
                502,
                f"the results of batch {found.id} could not be read into the usage ledger; try again",
                "upstream_results_unreadable",
            ) from None

    async def _ledger_results(self, scope: Scope, provider: Provider, path: str, found: Owned, parse) -> None:
        response = await self._call(b"GET", provider, path, scope)
        try:
            if response.status != 200:
                raise GatewayError(502, f"{provider.name} answered {response.status} for the results")
            lines = api.Lines(MAX_RESULT_LINE_BYTES)
            async for chunk in response.chunks():
                self._record(lines.feed(chunk), found, parse)
            self._record(lines.end(), found, parse)
        except Upstream as exc:
            raise failure(exc, provider.name) from None
        finally:
            response.close()

    def _record(self, lines: list[bytes], found: Owned, parse) -> None:
        for line in lines:
            row = batch_ledger.ledger_row(parse(orjson.loads(line)), found, self.prices)
            if row is not None:
                self.ledger.record(row)

    async def _list(self, scope: Scope, send: Send, who: Principal, kind: str) -> None:
        """The caller's batches, newest first, each as the provider has it now (`limit` 1-100,
        `after` an id: OpenAI's paging; Anthropic's `after_id`)."""
        args = {k: v[-1] for k, v in parse_qs(scope.get("query_string", b"").decode("latin-1")).items()}
        try:
            limit = int(args.get("limit", LIST_LIMIT))
        except ValueError:
            limit = 0
        if not 1 <= limit <= MAX_LIST_LIMIT:
            raise GatewayError(
                400, f"'limit' must be an integer from 1 to {MAX_LIST_LIMIT}", "invalid_request"
            )
        after = args.get("after" if kind == "openai" else "after_id")
        found = await asyncio.to_thread(owned.listing, self.store, _owner(who), BATCH, kind, after, limit + 1)
        page = found[:limit]
        data = [batch for batch in await asyncio.gather(*(self._current(scope, i) for i in page)) if batch]
        listed = {"data": data, "has_more": len(found) > limit}
        listed |= {"first_id": page[0].id if page else None, "last_id": page[-1].id if page else None}
        await respond(send, 200, orjson.dumps({"object": "list", **listed} if kind == "openai" else listed))

    async def _current(self, scope: Scope, found: Owned) -> dict | None:
        """A batch as its provider has it now; None when the provider no longer has it."""
        status, answer = await self._fetch(scope, found)
        return orjson.loads(answer) if status == 200 else None

    async def _find(self, ident: str, who: Principal, kind: str, what: str) -> Owned:
        found = await asyncio.to_thread(owned.find, self.store, ident, _owner(who), kind)
        if found is None:
            raise _not_found(what, ident)
        return found

    async def _own(
        self,
        ident: Any,
        kind: str,
        api_kind: str,
        provider: str,
        who: Principal,
        detail: dict,
        claim: str | None = None,
    ) -> bool:
        """Record what a provider made as `who`'s (in place of `claim`, the create's hold on its
        Idempotency-Key, when there is one); False when its id is recorded already."""
        if not isinstance(ident, str) or not _ID.fullmatch(ident):
            raise GatewayError(
                502, f"'{provider}' answered with an id the gateway cannot keep", "upstream_malformed"
            )
        item = Owned(ident, kind, api_kind, provider, _owner(who), who.team_id, time.time(), detail)
        if claim is not None and await asyncio.to_thread(owned.made, self.store, claim, item):
            return True
        return await asyncio.to_thread(owned.add, self.store, item)

    def _provider(self, found: Owned) -> Provider:
        provider = self.providers.get(found.provider)
        if provider is None:  # removed from the configuration since
            raise GatewayError(
                502, f"provider '{found.provider}' of {found.id} is no longer configured", "upstream_unknown"
            )
        return provider

    async def _body(self, scope: Scope, receive: Receive, limit: int) -> bytes:
        try:
            return await read_body(scope, receive, limit)
        except BodyTooLarge:
            raise GatewayError(
                413,
                f"the request body is larger than the gateway's limit of {limit} bytes",
                "request_too_large",
            ) from None

    async def _call(
        self,
        method: bytes,
        provider: Provider,
        path: str,
        scope: Scope,
        body: bytes = b"",
        content_type: bytes | None = None,
    ) -> Response:
        try:
            return await self.upstreams.request(method, provider, path, scope, body, content_type)
        except Upstream as exc:
            raise failure(exc, provider.name) from None

    async def _read(self, response: Response, provider: Provider) -> tuple[int, bytes]:
        try:
            return response.status, await response.read()
        except Upstream as exc:
            raise failure(exc, provider.name) from None
        finally:
            response.close()

    async def _pass_on(self, send: Send, response: Response, provider: Provider) -> None:
        """The provider's answer, streamed as it comes (a results file may be large)."""
        try:
            headers = [(n, v) for n, v in response.headers if n in _PASSED_HEADERS]
            await send({"type": "http.response.start", "status": response.status, "headers": headers})
            async for chunk in response.chunks():
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
            await send({"type": "http.response.body", "body": b"", "more_body": False})
        except Upstream as exc:  # the head went out: the client sees the body end short
            log.warning("upstream '%s' broke off a file: %s", provider.name, exc)
            await send({"type": "http.response.body", "body": b"", "more_body": False})
        finally:
            response.close()


def _batch_path(found: Owned) -> str:
    """A batch's path below its provider's base URL (OpenAI's ends in /v1, Anthropic's does not)."""
    return f"/v1/messages/batches/{found.id}" if found.api == "anthropic" else f"/batches/{found.id}"


def _owner(who: Principal) -> str:
    return who.key_id or batch_ledger.MASTER


def _header(scope: Scope, name: bytes) -> bytes | None:
    for key, value in scope["headers"]:
        if key == name:
            return value
    return None


def _idempotency_key(scope: Scope) -> str | None:
    value = _header(scope, b"idempotency-key")
    if value is None:
        return None
    text = value.decode("latin-1")
    if not 0 < len(text) <= MAX_IDEMPOTENCY_CHARS or not text.isprintable():
        raise GatewayError(
            400, f"Idempotency-Key must be 1-{MAX_IDEMPOTENCY_CHARS} printable characters", "invalid_request"
        )
    return text


def _json_object(body: bytes) -> dict:
    try:
        payload = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise GatewayError(400, f"the request body is not valid JSON: {exc}", "invalid_json") from None
    if not isinstance(payload, dict):
        raise GatewayError(400, "the request body must be a JSON object", "invalid_json")
    return payload


def _object(data: bytes, provider: Provider) -> dict:
    try:
        found = orjson.loads(data)
    except orjson.JSONDecodeError:
        found = None
    if not isinstance(found, dict) or not isinstance(found.get("id"), str):
        raise GatewayError(
            502,
            f"upstream '{provider.name}' answered with a body that is not an object",
            "upstream_malformed",
        )
    return found


def _with_results_url(scope: Scope, batch: dict) -> dict:
    """An Anthropic batch with its `results_url` on the gateway: the provider's needs its key."""
    if batch.get("results_url"):
        host = (_header(scope, b"host") or b"").decode("latin-1")
        path = f"/v1/messages/batches/{batch['id']}/results"
        batch["results_url"] = f"{scope.get('scheme', 'http')}://{host}{path}" if host else path
    return batch


async def _error(send: Send, dialect: Dialect, exc: GatewayError) -> None:
    headers = [(name.encode(), value.encode()) for name, value in exc.headers.items()]
    await respond(
        send, exc.status, dialect.error_body(exc.status, exc.message, exc.code, ""), headers=headers
    )
