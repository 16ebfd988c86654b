"""The providers' batch APIs in the simulator, in their wire formats (`providers/batches.py`
has both): OpenAI's files (`POST /v1/files`, `GET /v1/files`, `GET /v1/files/{id}`,
`GET /v1/files/{id}/content`) and batches (`POST /v1/batches`, `GET /v1/batches`,
`GET /v1/batches/{id}`, `POST /v1/batches/{id}/cancel`), Anthropic's Message Batches
(`POST /v1/messages/batches`, `GET /v1/messages/batches`, `GET /v1/messages/batches/{id}`,
`GET /v1/messages/batches/{id}/results`, `POST /v1/messages/batches/{id}/cancel`).

A batch's requests are answered when it is made, by the chat completions and messages routes
(with the creating request's `x-sim-*` headers, without rate limits or waits: providers run
batch work apart from the per-minute limits), and come out in order as its time passes: it
takes `SimSettings.batch_ms`, or the `x-sim-batch-ms` header of the request that made it; at 0
it has ended by the first read after its creation. `x-sim-batch: expire` makes its time run
out half way: the first half of its requests are answered, the rest expire. A cancel keeps what
is done and cancels the rest. Files and batches belong to the API key that made them (another
key gets 404) and are kept within `BatchStore`'s bound.
"""

from __future__ import annotations

import datetime as dt
import functools
import time
from typing import Any

import orjson

from xvckit.providers import batches as api
from xvckit.sim import anthropic_routes, openai_routes
from xvckit.sim.batch_store import Answer, StoredBatch, StoredFile
from xvckit.sim.exchange import Reply, Request, Route, Simulator

DAY_S = 86_400
FILE_TTL_S = 30 * DAY_S  # batch input files expire after 30 days
PURPOSES = ("assistants", "batch", "fine-tune", "vision", "user_data", "evals")
OPENAI_ENDPOINTS = (api.CHAT_URL, "/v1/embeddings")
_TERMINAL_MESSAGES = {
    "expired": (api.EXPIRED_CODE, "This request could not be executed before the completion window expired."),
    "cancelled": (api.CANCELLED_CODE, "This request was not executed because the batch was cancelled."),
}


def route(method: str, path: str) -> Route | None:
    """The batch route for a path with an id in it (or a list or create path), else None."""
    parts = path.strip("/").split("/")
    if parts[:2] == ["v1", "files"]:
        rest, name, dialect = parts[2:], "files", openai_routes.DIALECT
        table = _FILE_ROUTES
    elif parts[:2] == ["v1", "batches"]:
        rest, name, dialect = parts[2:], "batches", openai_routes.DIALECT
        table = _OPENAI_ROUTES
    elif parts[:3] == ["v1", "messages", "batches"]:
        rest, name, dialect = parts[3:], "message_batches", anthropic_routes.DIALECT
        table = _ANTHROPIC_ROUTES
    else:
        return None
    if len(rest) > 2 or (rest and not rest[0]):
        return None
    found = table.get((method, len(rest), rest[1] if len(rest) == 2 else None))
    if found is None:
        return None
    handler, raw = found
    bound = functools.partial(handler, ident=rest[0]) if rest else handler
    return Route(name, dialect, bound, raw_body=raw)


class _Unpaced:
    """The simulator as a batch's requests see it: no rate limit, no wait."""

    def __init__(self, sim: Simulator) -> None:
        self._sim = sim
        self.settings, self.catalog, self.kept, self.batches = (
            sim.settings,
            sim.catalog,
            sim.kept,
            sim.batches,
        )

    def unknown_model(self, req: Request, model: str) -> Reply | None:
        return self._sim.unknown_model(req, model)

    def admit(self, req: Request, model: str, tokens: int) -> Reply | None:
        return None

    async def delay(self, req: Request, share: float = 1.0) -> None:
        return None

    def new_id(self, prefix: str) -> str:
        return self._sim.new_id(prefix)


async def _answer(sim: Simulator, req: Request, handler, custom_id: str, body: dict) -> Answer:
    """One request of a batch, answered as the live route answers it (a stream is a 400)."""
    one = Request(req.dialect, req.headers, sim.new_id("req_"), req.api_key, body)
    if body.get("stream"):
        reply = one.fail(400, "stream is not supported in batch requests", param="stream")
    else:
        reply = await handler(_Unpaced(sim), one)
    return Answer(custom_id, reply.status, reply.parts[0])


def _timing(sim: Simulator, req: Request) -> tuple[float, bool]:
    millis = req.control(b"x-sim-batch-ms")
    seconds = (sim.settings.batch_ms if millis is None else millis) / 1000
    return seconds, req.headers.get(b"x-sim-batch") == b"expire"


def _done(batch: StoredBatch, now: float) -> int:
    """How many of its requests (the first ones) the batch has answered by `now`."""
    if batch.errors:
        return 0
    if batch.cancelled_at is not None:
        return batch.done_at_cancel
    total = len(batch.answers)
    share = 1.0 if batch.duration_s <= 0 else min(1.0, (now - batch.created) / batch.duration_s)
    return int(total * share / 2) if batch.expires else int(total * share)


def _observe(sim: Simulator, batch: StoredBatch, now: float) -> None:
    """End the batch when its time is over: its results are written once."""
    if batch.ended_at is not None:
        return
    if batch.errors:
        batch.ended_at, batch.outcome = now, "failed"
    elif batch.cancelled_at is not None or now >= batch.created + batch.duration_s:
        batch.ended_at = now
        if batch.cancelled_at is not None:
            batch.outcome = "cancelled"
        else:
            batch.outcome = "expired" if batch.expires else "completed"
        done = _done(batch, now)
        if batch.api == "openai":
            _write_openai_files(sim, batch, done)
        else:
            batch.results = b"".join(orjson.dumps(line) + b"\n" for line in _anthropic_lines(batch, done))
    sim.batches.put(batch)


# --- OpenAI: files ---------------------------------------------------------------------------


def _file_object(item: StoredFile) -> dict[str, Any]:
    return {
        "id": item.id,
        "object": "file",
        "bytes": len(item.data),
        "created_at": item.created_at,
        "filename": item.filename,
        "purpose": item.purpose,
        "status": "processed",
        "status_details": None,
        "expires_at": item.created_at + FILE_TTL_S if item.purpose.startswith("batch") else None,
    }


def _missing(req: Request, param: str) -> Reply:
    return req.fail(400, f"Missing required parameter: '{param}'.", "missing_required_parameter", param)


async def upload(sim: Simulator, req: Request) -> Reply:
    try:
        parts = api.form_parts(req.headers.get(b"content-type", b""), req.body)
    except ValueError as exc:
        return req.fail(400, f"Could not parse the multipart form: {exc}.")
    purpose = parts.get("purpose", (None, b""))[1].decode("utf-8", "replace")
    if "purpose" not in parts:
        return _missing(req, "purpose")
    if purpose not in PURPOSES:
        listed = ", ".join(f"'{p}'" for p in PURPOSES)
        return req.fail(400, f"'{purpose}' is not one of [{listed}] - 'purpose'", "invalid_value", "purpose")
    filename, data = parts.get("file", (None, b""))
    if "file" not in parts or filename is None:
        return _missing(req, "file")
    if purpose == "batch" and not filename.endswith(".jsonl"):
        return req.fail(
            400, "Invalid file format for Batch API. Must be .jsonl", "invalid_file_format", "file"
        )
    item = StoredFile(sim.new_id("file-"), req.api_key, purpose, filename, data, int(time.time()))
    sim.batches.put(item)
    return _ok(_file_object(item))


def _no_file(req: Request, ident: str) -> Reply:
    return req.fail(404, f"No such File object: {ident}", param="id")


async def retrieve_file(sim: Simulator, req: Request, ident: str) -> Reply:
    item = sim.batches.file(ident, req.api_key)
    return _ok(_file_object(item)) if item else _no_file(req, ident)


async def file_content(sim: Simulator, req: Request, ident: str) -> Reply:
    item = sim.batches.file(ident, req.api_key)
    return Reply(200, [item.data]) if item else _no_file(req, ident)


async def list_files(sim: Simulator, req: Request) -> Reply:
    return _ok(_listing([_file_object(f) for f in reversed(sim.batches.files(req.api_key))], openai=True))


# --- OpenAI: batches -------------------------------------------------------------------------


def _check_lines(data: bytes, endpoint: str) -> tuple[list[tuple[str, dict]], list[dict]]:
    """The requests of an input file, or the errors that fail the batch (OpenAI's validation)."""
    requests: list[tuple[str, dict]] = []
    errors: list[dict] = []
    seen: set[str] = set()
    model = None

    def error(line: int, message: str, param: str | None = None) -> None:
        errors.append({"code": "invalid_request", "line": line, "message": message, "param": param})

    try:
        lines = list(api.jsonl(data))
    except ValueError as exc:
        return [], [{"code": "invalid_json_line", "line": None, "message": str(exc), "param": None}]
    if not lines:
        error(0, "The input file is empty.")
    if len(lines) > api.OPENAI_MAX_REQUESTS:
        error(0, f"The input file has more than {api.OPENAI_MAX_REQUESTS:,} requests.")
    for number, line in lines:
        if not isinstance(line, dict):
            error(number, "Each line must be a JSON object.")
            continue
        custom_id, body = line.get("custom_id"), line.get("body")
        if not isinstance(custom_id, str) or not custom_id:
            error(number, "Missing 'custom_id'.", "custom_id")
        elif custom_id in seen:
            error(number, f"Duplicate custom_id '{custom_id}'.", "custom_id")
        if line.get("method") != "POST":
            error(number, "The method must be POST.", "method")
        if line.get("url") != endpoint:
            error(number, f"The url must be the batch's endpoint, {endpoint}.", "url")
        if not isinstance(body, dict) or not isinstance(body.get("model"), str):
            error(number, "Missing 'body' with a 'model'.", "body")
            continue
        model = model or body["model"]
        if body["model"] != model:
            error(number, "Every request in a batch must use the same model.", "body.model")
        if isinstance(custom_id, str):
            seen.add(custom_id)
            requests.append((custom_id, body))
    return requests, errors[:1000]


async def create_batch(sim: Simulator, req: Request) -> Reply:
    body = req.json
    for param in ("input_file_id", "endpoint", "completion_window"):
        if not isinstance(body.get(param), str):
            return _missing(req, param)
    if body["completion_window"] != "24h":
        return req.fail(400, "Invalid completion_window: only '24h' is supported.", param="completion_window")
    endpoint = body["endpoint"]
    if endpoint not in OPENAI_ENDPOINTS:
        return req.fail(400, f"Invalid endpoint: {endpoint}", "invalid_value", "endpoint")
    source = sim.batches.file(body["input_file_id"], req.api_key)
    if source is None:
        return _no_file(req, body["input_file_id"])
    if source.purpose != "batch":
        return req.fail(400, f"File {source.id} does not have purpose 'batch'.", param="input_file_id")
    requests, errors = _check_lines(source.data, endpoint)
    handler = openai_routes.chat_completions if endpoint == api.CHAT_URL else openai_routes.embeddings
    answers = [] if errors else [await _answer(sim, req, handler, cid, rb) for cid, rb in requests]
    duration, expires = _timing(sim, req)
    batch = StoredBatch(
        sim.new_id("batch_"),
        req.api_key,
        "openai",
        time.time(),
        duration,
        expires,
        answers,
        endpoint=endpoint,
        input_file_id=source.id,
        metadata=body.get("metadata") if isinstance(body.get("metadata"), dict) else None,
        errors=errors,
    )
    sim.batches.put(batch)
    return _ok(_openai_batch(batch, batch.created, "validating"))


def _openai_batch(batch: StoredBatch, now: float, status: str | None = None) -> dict[str, Any]:
    """The batch object; as made (status `validating`) none of its requests is done yet."""
    done = 0 if status == "validating" else _done(batch, now)
    answered = batch.answers[:done]
    completed = sum(1 for a in answered if a.status == 200)
    failed = done - completed
    if batch.outcome in ("expired", "cancelled"):
        failed = len(batch.answers) - completed
    created, ended = int(batch.created), int(batch.ended_at) if batch.ended_at else None
    status = status or batch.outcome or "in_progress"
    return {
        "id": batch.id,
        "object": "batch",
        "endpoint": batch.endpoint,
        "errors": {"object": "list", "data": batch.errors} if batch.errors else None,
        "input_file_id": batch.input_file_id,
        "completion_window": "24h",
        "status": status,
        "output_file_id": batch.output_file_id,
        "error_file_id": batch.error_file_id,
        "created_at": created,
        "in_progress_at": None if status in ("validating", "failed") else created,
        "expires_at": created + DAY_S,
        "finalizing_at": ended if batch.outcome == "completed" else None,
        "completed_at": ended if batch.outcome == "completed" else None,
        "failed_at": ended if batch.outcome == "failed" else None,
        "expired_at": ended if batch.outcome == "expired" else None,
        "cancelling_at": int(batch.cancelled_at) if batch.cancelled_at else None,
        "cancelled_at": ended if batch.outcome == "cancelled" else None,
        "request_counts": {"total": len(batch.answers), "completed": completed, "failed": failed},
        "metadata": batch.metadata,
    }


def _write_openai_files(sim: Simulator, batch: StoredBatch, done: int) -> None:
    """The output file (answers with status 200) and the error file (the others, and the
    requests the batch never ran), each only when it has a line."""
    output, errors = [], []
    for index, answer in enumerate(batch.answers):
        line: dict[str, Any] = {"id": sim.new_id("batch_req_"), "custom_id": answer.custom_id}
        if index < done:
            line["response"] = {
                "status_code": answer.status,
                "request_id": sim.new_id("req_"),
                "body": orjson.loads(answer.body),
            }
            line["error"] = None
        else:
            code, message = _TERMINAL_MESSAGES[batch.outcome or "expired"]
            line["response"], line["error"] = None, {"code": code, "message": message}
        (output if line["response"] and answer.status == 200 else errors).append(orjson.dumps(line) + b"\n")
    for lines, attribute in ((output, "output_file_id"), (errors, "error_file_id")):
        if lines:
            name = f"{batch.id}_{attribute.removesuffix('_file_id')}.jsonl"
            item = StoredFile(
                sim.new_id("file-"), batch.owner, "batch_output", name, b"".join(lines), int(time.time())
            )
            sim.batches.put(item)
            setattr(batch, attribute, item.id)


def _no_batch(req: Request, ident: str) -> Reply:
    return req.fail(404, f"No batch found with id '{ident}'.", param="batch_id")


async def retrieve_batch(sim: Simulator, req: Request, ident: str) -> Reply:
    batch = sim.batches.batch(ident, req.api_key, "openai")
    if batch is None:
        return _no_batch(req, ident)
    now = time.time()
    _observe(sim, batch, now)
    return _ok(_openai_batch(batch, now))


async def cancel_batch(sim: Simulator, req: Request, ident: str) -> Reply:
    batch = sim.batches.batch(ident, req.api_key, "openai")
    if batch is None:
        return _no_batch(req, ident)
    now = time.time()
    _observe(sim, batch, now)
    if batch.ended_at is not None:
        return req.fail(400, f"Cannot cancel a batch with status '{batch.outcome}'.")
    batch.done_at_cancel, batch.cancelled_at = _done(batch, now), now
    view = _openai_batch(batch, now, "cancelling")  # the next read finds it cancelled
    _observe(sim, batch, now)
    return _ok(view)


def _listed(sim: Simulator, req: Request, provider: str) -> tuple[list, float]:
    """The key's batches of one API, newest first, each brought up to now."""
    now = time.time()
    found = list(reversed(sim.batches.batches(req.api_key, provider)))
    for batch in found:
        _observe(sim, batch, now)
    return found, now


async def list_batches(sim: Simulator, req: Request) -> Reply:
    found, now = _listed(sim, req, "openai")
    return _ok(_listing([_openai_batch(b, now) for b in found], openai=True))


# --- Anthropic: message batches --------------------------------------------------------------


def _rfc3339(ts: float | None) -> str | None:
    if ts is None:
        return None
    return dt.datetime.fromtimestamp(ts, dt.UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _anthropic_batch(req: Request, batch: StoredBatch, now: float, made: bool = False) -> dict:
    """The batch object; as `made`, none of its requests is done yet."""
    done = 0 if made else _done(batch, now)
    succeeded = sum(1 for a in batch.answers[:done] if a.status == 200)
    counts = {
        "processing": 0,
        "succeeded": succeeded,
        "errored": done - succeeded,
        "canceled": 0,
        "expired": 0,
    }
    rest = len(batch.answers) - done
    if batch.outcome == "cancelled":
        counts["canceled"] = rest
    elif batch.outcome == "expired":
        counts["expired"] = rest
    else:
        counts["processing"] = rest
    results_url = None
    if batch.ended_at is not None:
        host = req.headers.get(b"host", b"127.0.0.1").decode("latin-1")
        results_url = f"http://{host}/v1/messages/batches/{batch.id}/results"
    return {
        "id": batch.id,
        "type": "message_batch",
        "processing_status": _processing_status(batch),
        "request_counts": counts,
        "ended_at": _rfc3339(batch.ended_at),
        "created_at": _rfc3339(batch.created),
        "expires_at": _rfc3339(batch.created + DAY_S),
        "archived_at": None,
        "cancel_initiated_at": _rfc3339(batch.cancelled_at),
        "results_url": results_url,
    }


def _processing_status(batch: StoredBatch) -> str:
    if batch.ended_at is not None:
        return "ended"
    return "in_progress" if batch.cancelled_at is None else "canceling"


def _anthropic_lines(batch: StoredBatch, done: int):
    rest = "canceled" if batch.outcome == "cancelled" else "expired"
    for index, answer in enumerate(batch.answers):
        if index >= done:
            result: dict[str, Any] = {"type": rest}
        elif answer.status == 200:
            result = {"type": "succeeded", "message": orjson.loads(answer.body)}
        else:
            result = {"type": "errored", "error": orjson.loads(answer.body)}
        yield {"custom_id": answer.custom_id, "result": result}


async def create_message_batch(sim: Simulator, req: Request) -> Reply:
    requests = req.json.get("requests")
    if not isinstance(requests, list) or not requests:
        return req.fail(400, "requests: at least one request is required")
    if len(requests) > api.ANTHROPIC_MAX_REQUESTS:
        return req.fail(400, f"requests: at most {api.ANTHROPIC_MAX_REQUESTS:,} requests are allowed")
    seen: set[str] = set()
    for index, item in enumerate(requests):
        custom_id = item.get("custom_id") if isinstance(item, dict) else None
        if not isinstance(custom_id, str) or not api.CUSTOM_ID.fullmatch(custom_id):
            return req.fail(
                400, f"requests.{index}.custom_id: String should match pattern '^[a-zA-Z0-9_-]{{1,64}}$'"
            )
        if custom_id in seen:
            return req.fail(400, f"requests.{index}.custom_id: Duplicate custom_id '{custom_id}'")
        seen.add(custom_id)
        if not isinstance(item.get("params"), dict):
            return req.fail(400, f"requests.{index}.params: Field required")
    answers = [
        await _answer(sim, req, anthropic_routes.messages, item["custom_id"], item["params"])
        for item in requests
    ]
    duration, expires = _timing(sim, req)
    batch = StoredBatch(
        sim.new_id("msgbatch_"), req.api_key, "anthropic", time.time(), duration, expires, answers
    )
    sim.batches.put(batch)
    return _ok(_anthropic_batch(req, batch, batch.created, made=True))


def _no_message_batch(req: Request, ident: str) -> Reply:
    return req.fail(404, f"message_batch_id: no Message Batch with id '{ident}'")


async def retrieve_message_batch(sim: Simulator, req: Request, ident: str) -> Reply:
    batch = sim.batches.batch(ident, req.api_key, "anthropic")
    if batch is None:
        return _no_message_batch(req, ident)
    now = time.time()
    _observe(sim, batch, now)
    return _ok(_anthropic_batch(req, batch, now))


async def message_batch_results(sim: Simulator, req: Request, ident: str) -> Reply:
    batch = sim.batches.batch(ident, req.api_key, "anthropic")
    if batch is None:
        return _no_message_batch(req, ident)
    _observe(sim, batch, time.time())
    if batch.results is None:
        return req.fail(400, f"Message Batch {ident} has not ended: its results are not available yet.")
    return Reply(200, [batch.results])


async def cancel_message_batch(sim: Simulator, req: Request, ident: str) -> Reply:
    batch = sim.batches.batch(ident, req.api_key, "anthropic")
    if batch is None:
        return _no_message_batch(req, ident)
    now = time.time()
    _observe(sim, batch, now)
    if batch.ended_at is not None:
        return _ok(_anthropic_batch(req, batch, now))
    batch.done_at_cancel, batch.cancelled_at = _done(batch, now), now
    view = _anthropic_batch(req, batch, now)  # canceling: the next read finds it ended
    _observe(sim, batch, now)
    return _ok(view)


async def list_message_batches(sim: Simulator, req: Request) -> Reply:
    found, now = _listed(sim, req, "anthropic")
    return _ok(_listing([_anthropic_batch(req, b, now) for b in found], openai=False))


# --- shared ----------------------------------------------------------------------------------


def _ok(body: dict[str, Any]) -> Reply:
    return Reply(200, [orjson.dumps(body)])


def _listing(data: list[dict[str, Any]], openai: bool) -> dict[str, Any]:
    page = {"data": data, "has_more": False, "first_id": data[0]["id"] if data else None}
    page["last_id"] = data[-1]["id"] if data else None
    return {"object": "list", **page} if openai else page


# (method, parts after the collection, the last part when there are two) -> (handler, raw body)
_FILE_ROUTES = {
    ("POST", 0, None): (upload, True),
    ("GET", 0, None): (list_files, False),
    ("GET", 1, None): (retrieve_file, False),
    ("GET", 2, "content"): (file_content, False),
}
_OPENAI_ROUTES = {
    ("POST", 0, None): (create_batch, False),
    ("GET", 0, None): (list_batches, False),
    ("GET", 1, None): (retrieve_batch, False),
    ("POST", 2, "cancel"): (cancel_batch, False),
}
_ANTHROPIC_ROUTES = {
    ("POST", 0, None): (create_message_batch, False),
    ("GET", 0, None): (list_message_batches, False),
    ("GET", 1, None): (retrieve_message_batch, False),
    ("GET", 2, "results"): (message_batch_results, False),
    ("POST", 2, "cancel"): (cancel_message_batch, False),
}
