"""The providers' batch APIs through a real gateway and `xvckit sim`, with the official SDKs:
OpenAI's files and batches, Anthropic's message batches; the results ledgered at half price,
once; a key sees only its own batches and files; uploads and bodies the gateway refuses; the
caller's budget and model list; expiry and cancel at the provider."""

from __future__ import annotations

import functools
import json
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor

import anthropic
import httpx
import openai
import orjson
import pytest

from conftest import MASTER_KEY
from servers import BackgroundServer
from test_gateway_keys import flush_ledger, new_key
from xvckit.asgi import lifespan, read_body, respond
from xvckit.providers.batches import form_body
from xvckit.stack import SIM_CONTROL_HEADERS
from xvckit.store import keys, schema
from xvckit.store import provider_batches as owned
from xvckit.store.keys import Limits
from xvckit.store.ledger import ledger_records

CONTROLS = [*SIM_CONTROL_HEADERS, "x-sim-batch-ms", "x-sim-batch"]
# USD per million tokens: a request's cost is plain to compute, half of it at the batch price
PRICES = {
    "gpt-4o-mini": {"input": 1000, "output": 2000},
    "claude-sonnet-4-5": {"input": 3000, "output": 5000},
}
HI = [{"role": "user", "content": "hello"}]


def batch_config(sim) -> dict:
    """The simulator as plain providers, and as providers whose batches expire half way or
    take their time (a provider's own headers: the gateway sends them on every call)."""

    def provider(name: str, kind: str, **headers: str) -> dict:
        base = sim.openai_base_url if kind == "openai" else sim.anthropic_base_url
        key = "sk-upstream" if kind == "openai" else "sk-ant"
        return {
            "name": name,
            "kind": kind,
            "base_url": base,
            "api_keys": [key],
            "forward_headers": CONTROLS,
            "headers": headers,
        }

    return {
        "providers": [
            provider("sim-oa", "openai"),
            provider("sim-an", "anthropic"),
            provider("sim-oa-expiring", "openai", **{"x-sim-batch": "expire"}),
            provider("sim-an-expiring", "anthropic", **{"x-sim-batch": "expire"}),
            provider("sim-oa-slow", "openai", **{"x-sim-batch-ms": "60000"}),
            provider("sim-oa-soon", "openai", **{"x-sim-batch-ms": "1500"}),
        ],
        "models": [
            {"name": "gpt-4o-mini", "provider": "sim-oa"},
            {"name": "claude-*", "provider": "sim-an"},
            {"name": "expiring-mini", "provider": "sim-oa-expiring", "model": "gpt-4o-mini"},
            {"name": "claude-expiring", "provider": "sim-an-expiring", "model": "claude-sonnet-4-5"},
            {"name": "slow-mini", "provider": "sim-oa-slow", "model": "gpt-4o-mini"},
            {"name": "soon-mini", "provider": "sim-oa-soon", "model": "gpt-4o-mini"},
        ],
        "gateway": {"max_body_mb": 1},
        "prices": PRICES,
    }


@pytest.fixture(scope="module")
def module_gw(sim_factory, make_module_gateway):
    sim = sim_factory(rpm=10_000, tpm=100_000_000)
    server = make_module_gateway(batch_config(sim))
    server.sim = sim
    return server


@pytest.fixture
def gw(module_gw):
    module_gw.sim.reset()
    return module_gw


def oa(gw, key: str = MASTER_KEY) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{gw.url}/v1", api_key=key, max_retries=0)


def an(gw, key: str = MASTER_KEY) -> anthropic.Anthropic:
    return anthropic.Anthropic(base_url=gw.url, api_key=key, max_retries=0)


def jsonl(*bodies: dict, ids: list[str] | None = None) -> bytes:
    ids = ids or [f"r{i}" for i in range(len(bodies))]
    return "".join(
        json.dumps({"custom_id": cid, "method": "POST", "url": "/v1/chat/completions", "body": body}) + "\n"
        for cid, body in zip(ids, bodies, strict=True)
    ).encode()


def chat(model: str = "gpt-4o-mini", text: str = "hello", **extra) -> dict:
    return {"model": model, "messages": [{"role": "user", "content": text}], "max_tokens": 50, **extra}


def messages(model: str = "claude-sonnet-4-5", **extra) -> dict:
    return {"model": model, "max_tokens": 50, "messages": HI, **extra}


def half_price(model: str, row) -> float:
    price = PRICES[model]
    return (row.input_tokens * price["input"] + row.output_tokens * price["output"]) / 1e6 / 2


def batch_rows(gw, key_id: str | None = None) -> list:
    flush_ledger(gw)
    return [r for r in ledger_records(gw.store) if r.endpoint == "batch" and r.key_id == key_id]


def member(gw, team: str | None = None, **limits):
    if team is None:
        team = f"t-{uuid.uuid4().hex[:8]}"
        keys.create_team(gw.store, team, Limits(), "test")
    return new_key(gw, name=f"k-{uuid.uuid4().hex[:8]}", team=team, limits=Limits(**limits))


def test_an_openai_batch_end_to_end_is_ledgered_once_at_half_price(gw):
    key, raw = member(gw)
    client = oa(gw, raw)
    uploaded = client.files.create(
        file=("in.jsonl", jsonl(chat(), chat(text="again"), chat(text="more"))), purpose="batch"
    )
    assert (uploaded.purpose, uploaded.filename) == ("batch", "in.jsonl")
    made = client.batches.create(
        input_file_id=uploaded.id, endpoint="/v1/chat/completions", completion_window="24h"
    )
    assert made.status == "validating"
    assert not batch_rows(gw, key.id)  # nothing is ledgered before the results exist

    done = client.batches.retrieve(made.id)
    assert (done.status, done.request_counts.completed, done.request_counts.total) == ("completed", 3, 3)
    lines = [json.loads(line) for line in client.files.content(done.output_file_id).text.splitlines()]
    assert sorted(line["custom_id"] for line in lines) == ["r0", "r1", "r2"]
    assert all(line["response"]["status_code"] == 200 for line in lines)

    rows = batch_rows(gw, key.id)
    assert len(rows) == 3
    usage = {line["response"]["body"]["usage"]["completion_tokens"] for line in lines}
    for row in rows:
        assert (row.model, row.deployment, row.status, row.team_id) == (
            "gpt-4o-mini",
            "sim-oa/gpt-4o-mini",
            200,
            key.team_id,
        )
        assert row.output_tokens in usage and row.input_tokens > 0
        assert row.cost_usd == pytest.approx(half_price("gpt-4o-mini", row))
    # read again and listed: the results are in the ledger once
    client.batches.retrieve(made.id)
    assert [b.id for b in client.batches.list()] == [made.id]
    assert len(batch_rows(gw, key.id)) == 3
    assert gw.sim.count("chat_completions") == 0  # nothing went to the live endpoint


def test_an_anthropic_batch_end_to_end_with_an_errored_request(gw):
    key, raw = member(gw)
    client = an(gw, raw)
    too_long = messages(max_tokens=10_000_000)  # more than the model writes: the provider's 400
    made = client.messages.batches.create(
        requests=[
            {"custom_id": "a", "params": messages()},
            {"custom_id": "b", "params": messages(model="claude-haiku-4-5")},
            {"custom_id": "c", "params": too_long},
        ]
    )
    assert (made.processing_status, made.request_counts.processing) == ("in_progress", 3)
    ended = client.messages.batches.retrieve(made.id)
    assert ended.processing_status == "ended"
    assert (
        ended.results_url == f"{gw.url}/v1/messages/batches/{made.id}/results"
    )  # the gateway's, not the provider's
    results = {r.custom_id: r.result for r in client.messages.batches.results(made.id)}
    assert {k: r.type for k, r in results.items()} == {"a": "succeeded", "b": "succeeded", "c": "errored"}

    rows = {row.model: row for row in batch_rows(gw, key.id)}
    assert set(rows) == {"claude-sonnet-4-5", "claude-haiku-4-5"}
    sonnet = [r for r in batch_rows(gw, key.id) if r.model == "claude-sonnet-4-5"]
    ok, failed = sorted(sonnet, key=lambda r: r.status)
    assert (ok.status, ok.output_tokens, ok.cost_usd) == (
        200,
        results["a"].message.usage.output_tokens,
        pytest.approx(half_price("claude-sonnet-4-5", ok)),
    )
    assert (failed.status, failed.error_type, failed.cost_usd) == (400, "upstream_400", 0.0)
    assert [b.id for b in client.messages.batches.list()] == [made.id]


def test_another_keys_batches_and_files_are_404_like_unknown_ids(gw):
    team = f"t-{uuid.uuid4().hex[:8]}"
    keys.create_team(gw.store, team, Limits(), "test")
    _, owner = member(gw, team)
    _, teammate = member(gw, team)
    _, admin = new_key(gw, name=f"a-{uuid.uuid4().hex[:8]}", role="admin")
    uploaded = oa(gw, owner).files.create(file=("in.jsonl", jsonl(chat())), purpose="batch")
    made = oa(gw, owner).batches.create(
        input_file_id=uploaded.id, endpoint="/v1/chat/completions", completion_window="24h"
    )
    output = oa(gw, owner).batches.retrieve(made.id).output_file_id
    claude = an(gw, owner).messages.batches.create(requests=[{"custom_id": "a", "params": messages()}])

    def status(client: httpx.Client, method: str, path: str, ident: str) -> tuple[int, str]:
        response = client.request(method, path.format(ident))
        return response.status_code, response.json()["error"]["message"].replace(ident, "ID")

    for other in (teammate, admin, MASTER_KEY):
        headers = {"authorization": f"Bearer {other}", "anthropic-version": "2023-06-01"}
        with httpx.Client(base_url=gw.url, headers=headers) as client:
            for ident, unknown, paths in (
                (made.id, "batch_0000", ["/v1/batches/{}", "/v1/batches/{}/cancel"]),
                (uploaded.id, "file-0000", ["/v1/files/{}", "/v1/files/{}/content"]),
                (output, "file-0001", ["/v1/files/{}/content"]),
                (claude.id, "msgbatch_0000", ["/v1/messages/batches/{}", "/v1/messages/batches/{}/results"]),
            ):
                for path in paths:
                    method = "POST" if path.endswith("cancel") else "GET"
                    # another key's id answers exactly as an id nobody has
                    theirs = status(client, method, path, ident)
                    assert theirs[0] == 404 and theirs == status(client, method, path, unknown)
            # a batch from another key's file is refused as one from a file that does not exist
            refused = client.post(
                "/v1/batches",
                json={
                    "input_file_id": uploaded.id,
                    "endpoint": "/v1/chat/completions",
                    "completion_window": "24h",
                },
            )
            assert refused.status_code == 404
            assert client.get("/v1/batches").json()["data"] == []
            assert client.get("/v1/messages/batches").json()["data"] == []
    assert gw.sim.count("batches", "200") == 2  # the owner's create and read: nothing else reached it
    with httpx.Client(base_url=gw.url) as anonymous:
        assert anonymous.get(f"/v1/batches/{made.id}").status_code == 401
        assert anonymous.post("/v1/files").status_code == 401


def upload(gw, data: bytes, purpose: str = "batch", filename: str = "in.jsonl") -> httpx.Response:
    content_type, body = form_body({"purpose": purpose}, "file", filename, data)
    headers = {"authorization": f"Bearer {MASTER_KEY}", "content-type": content_type.decode()}
    return httpx.post(f"{gw.url}/v1/files", content=body, headers=headers)


@pytest.mark.parametrize(
    ("data", "status", "message"),
    [
        (b"not json\n", 400, "line 1 is not JSON"),
        (b"", 400, "no request in it"),
        (jsonl(chat(), chat(), ids=["a", "a"]), 400, "line 2: custom_id 'a' is used twice"),
        (jsonl(chat(), ids=["has space"]), 400, "line 1: 'custom_id' must be 1-64 letters"),
        (jsonl(chat(), chat(stream=True)), 400, "line 2: a batch request cannot stream"),
        (jsonl(chat(model="no-such-model")), 404, "line 1: The model 'no-such-model' does not exist"),
        (jsonl(chat(model="claude-sonnet-4-5")), 400, "is served by the anthropic provider 'sim-an'"),
        (jsonl(chat(), chat(model="slow-mini")), 400, "a batch goes to one provider"),
        (
            b'{"custom_id": "a", "method": "POST", "url": "/v1/embeddings", "body": {}}\n',
            400,
            "only POST /v1/chat/completions requests",
        ),
        (b"x" * (1 << 20), 413, "larger than the gateway's limit"),
    ],
)
def test_bad_uploads_are_refused_before_any_provider_sees_them(gw, data, status, message):
    response = upload(gw, data)
    assert response.status_code == status, response.text
    assert message in response.json()["error"]["message"]
    assert gw.sim.count("files") == 0


def test_uploads_and_bodies_the_gateway_does_not_take(gw):
    headers = {"authorization": f"Bearer {MASTER_KEY}"}
    assert upload(gw, jsonl(chat()), purpose="fine-tune").status_code == 400
    not_a_form = httpx.post(
        f"{gw.url}/v1/files", content=jsonl(chat()), headers={**headers, "content-type": "application/jsonl"}
    )
    assert not_a_form.status_code == 415
    no_file = httpx.post(
        f"{gw.url}/v1/files", data={"purpose": "batch"}, files={"other": ("x", b"y")}, headers=headers
    )
    assert (no_file.status_code, no_file.json()["error"]["code"]) == (400, "missing_file")
    client = oa(gw)
    uploaded = client.files.create(file=("in.jsonl", jsonl(chat())), purpose="batch")
    with pytest.raises(openai.BadRequestError, match="'endpoint' must be /v1/chat/completions"):
        client.batches.create(input_file_id=uploaded.id, endpoint="/v1/embeddings", completion_window="24h")
    with pytest.raises(openai.NotFoundError):
        client.batches.create(
            input_file_id="file-nope", endpoint="/v1/chat/completions", completion_window="24h"
        )
    made = client.batches.create(
        input_file_id=uploaded.id, endpoint="/v1/chat/completions", completion_window="24h"
    )
    output = client.batches.retrieve(made.id).output_file_id
    with pytest.raises(openai.BadRequestError, match="not a batch input file"):
        client.batches.create(input_file_id=output, endpoint="/v1/chat/completions", completion_window="24h")
    anthropic_headers = {**headers, "anthropic-version": "2023-06-01"}
    for body, message in (
        ({"requests": []}, "a batch holds 1 to 100,000 requests"),
        ({"requests": [{"custom_id": "a/b", "params": messages()}]}, "'custom_id' must be"),
        (
            {"requests": [{"custom_id": "a", "params": messages(model="gpt-4o-mini")}]},
            "served by the openai provider",
        ),
        ({"requests": [{"custom_id": "a", "params": messages(stream=True)}]}, "cannot stream"),
    ):
        refused = httpx.post(f"{gw.url}/v1/messages/batches", json=body, headers=anthropic_headers)
        assert refused.status_code == 400 and message in refused.json()["error"]["message"], refused.text
    # a file name the client encoded with a line break (RFC 2231) reaches no header upstream
    boundary = "b0undary"
    raw = (
        (
            f'--{boundary}\r\nContent-Disposition: form-data; name="purpose"\r\n\r\nbatch\r\n'
            f'--{boundary}\r\nContent-Disposition: form-data; name="file"; '
            f"filename*=UTF-8''in%0D%0AX-Injected%3A%201.jsonl\r\n\r\n"
        ).encode()
        + jsonl(chat())
        + f"\r\n--{boundary}--\r\n".encode()
    )
    form = {**headers, "content-type": f"multipart/form-data; boundary={boundary}"}
    named = httpx.post(f"{gw.url}/v1/files", content=raw, headers=form)
    assert (named.status_code, named.json()["filename"]) == (200, "in__X-Injected: 1.jsonl")
    assert httpx.get(f"{gw.url}/v1/batches?limit=0", headers=headers).status_code == 400
    assert httpx.get(f"{gw.url}/v1/files", headers=headers).status_code == 404  # no file listing
    assert gw.sim.count("message_batches") == 0


def test_a_batch_is_admitted_at_its_worst_case_against_the_callers_budget_and_models(gw):
    # three requests of up to 50 output tokens at $2,000/M, half price: at most ~$0.15
    _, small = member(gw, budget_usd=0.1, budget_period="day")
    uploaded = oa(gw, small).files.create(file=("in.jsonl", jsonl(chat(), chat(), chat())), purpose="batch")
    with pytest.raises(openai.RateLimitError, match="budget exhausted"):
        oa(gw, small).batches.create(
            input_file_id=uploaded.id, endpoint="/v1/chat/completions", completion_window="24h"
        )
    assert gw.sim.count("batches") == 0

    _, roomy = member(gw, budget_usd=0.25, budget_period="day")
    uploaded = oa(gw, roomy).files.create(file=("in.jsonl", jsonl(chat(), chat(), chat())), purpose="batch")
    oa(gw, roomy).batches.create(
        input_file_id=uploaded.id, endpoint="/v1/chat/completions", completion_window="24h"
    )
    # the worst case counts as spent at once: a second batch of it does not fit the budget
    with pytest.raises(openai.RateLimitError, match="budget exhausted"):
        oa(gw, roomy).batches.create(
            input_file_id=uploaded.id, endpoint="/v1/chat/completions", completion_window="24h"
        )

    _, only_claude = member(gw, models=("claude-*",))
    uploaded = oa(gw, only_claude).files.create(file=("in.jsonl", jsonl(chat())), purpose="batch")
    with pytest.raises(openai.PermissionDeniedError, match="may not use model 'gpt-4o-mini'"):
        oa(gw, only_claude).batches.create(
            input_file_id=uploaded.id, endpoint="/v1/chat/completions", completion_window="24h"
        )
    assert gw.sim.count("batches") == 1


def test_a_create_with_a_used_idempotency_key_answers_the_batch_it_made(gw):
    key, raw = member(gw)
    client = an(gw, raw)
    first, again = (
        client.messages.batches.create(
            requests=[{"custom_id": "a", "params": messages()}], extra_headers={"idempotency-key": "run-1"}
        )
        for _ in range(2)
    )
    assert again.id == first.id and again.processing_status == "ended"
    assert [b.id for b in client.messages.batches.list()] == [first.id]
    assert len(batch_rows(gw, key.id)) == 1


def test_creates_at_once_under_one_idempotency_key_make_one_batch(gw):
    """The key is claimed before the provider is called: the creates that lose the race answer
    409 (the SDK retries it) until the winner has made the batch, then that batch."""
    _, raw = member(gw)
    client = anthropic.Anthropic(base_url=gw.url, api_key=raw, max_retries=8)
    upstream = anthropic.Anthropic(base_url=gw.sim.anthropic_base_url, api_key="sk-ant", max_retries=0)
    before = {b.id for b in upstream.messages.batches.list(limit=100).data}
    start = threading.Barrier(6)

    def create(_: int) -> str:
        start.wait()
        request = {"custom_id": "a", "params": messages()}
        once = {"idempotency-key": "once"}
        return client.messages.batches.create(requests=[request], extra_headers=once).id

    with ThreadPoolExecutor(6) as pool:
        answered = set(pool.map(create, range(6)))
    made = {b.id for b in upstream.messages.batches.list(limit=100).data} - before
    assert len(answered) == 1 and made == answered


def test_a_create_in_progress_elsewhere_is_409_and_a_stale_one_is_taken_over(gw):
    """A claim on the key (another replica's create in flight) answers 409 with retry-after;
    one older than the longest a create can take (its gateway died mid-create) is taken over."""
    key, raw = member(gw)
    held = owned.claim(gw.store, key.id, None, "elsewhere", ttl_s=60)
    create = functools.partial(
        an(gw, raw).messages.batches.create,
        requests=[{"custom_id": "a", "params": messages()}],
        extra_headers={"idempotency-key": "elsewhere"},
    )
    with pytest.raises(anthropic.ConflictError) as refused:
        create()
    assert refused.value.response.headers["retry-after"] == "1"
    with gw.store.engine.begin() as conn:
        aged = time.time() - gw.gateway.batches.claim_ttl_s - 1
        conn.execute(
            schema.provider_batches.update().where(schema.provider_batches.c.id == held), {"created_at": aged}
        )
    made = create()
    assert create().id == made.id
    assert owned.by_idempotency_key(gw.store, key.id, "elsewhere").id == made.id


def test_a_create_the_provider_refuses_frees_its_idempotency_key(gw):
    key, raw = member(gw)
    client = an(gw, raw)
    request = [{"custom_id": "a", "params": messages()}]
    with pytest.raises(anthropic.InternalServerError):
        client.messages.batches.create(
            requests=request, extra_headers={"idempotency-key": "k", "x-sim-fail": "500"}
        )
    made = client.messages.batches.create(requests=request, extra_headers={"idempotency-key": "k"})
    assert owned.by_idempotency_key(gw.store, key.id, "k").id == made.id


def test_a_batch_nobody_reads_after_it_ends_is_ledgered_by_the_sweep(sim_factory, make_gateway):
    config = batch_config(sim_factory(rpm=10_000, tpm=100_000_000))
    config["gateway"]["batch_sweep_s"] = 0.2
    gw = make_gateway(config)
    key, raw = member(gw)
    client = oa(gw, raw)
    uploaded = client.files.create(file=("in.jsonl", jsonl(*[chat(model="soon-mini")] * 2)), purpose="batch")
    made = client.batches.create(
        input_file_id=uploaded.id, endpoint="/v1/chat/completions", completion_window="24h"
    )
    assert made.status != "completed" and batch_rows(gw, key.id) == []  # ends 1.5 s after it was made
    deadline = time.monotonic() + 20
    while not (rows := batch_rows(gw, key.id)) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert [r.model for r in rows] == ["soon-mini", "soon-mini"]
    assert owned.find(gw.store, made.id, key.id, owned.BATCH).ledgered_at is not None


def odd_provider():
    """An OpenAI-compatible provider whose batches answer a status of the wrong type."""

    async def app(scope, receive, send) -> None:
        if scope["type"] == "lifespan":
            await lifespan(receive, send, _nothing, _nothing)
            return
        await read_body(scope, receive, 1 << 20)
        if scope["path"].startswith("/v1/files"):
            await respond(send, 200, orjson.dumps({"id": "file-odd", "object": "file", "purpose": "batch"}))
        else:
            await respond(send, 200, orjson.dumps({"id": "batch_odd", "object": "batch", "status": ["odd"]}))

    return app


def test_the_sweep_goes_on_past_a_batch_it_cannot_read(sim_factory, make_gateway):
    config = batch_config(sim_factory(rpm=10_000, tpm=100_000_000))
    config["gateway"]["batch_sweep_s"] = 0.2
    with BackgroundServer(odd_provider()) as odd:
        config["providers"].append({"name": "odd", "kind": "openai", "base_url": f"{odd.url}/v1"})
        config["models"].append({"name": "odd-mini", "provider": "odd", "model": "gpt-4o-mini"})
        gw = make_gateway(config)
        key, raw = member(gw)
        client = oa(gw, raw)
        for model in ("odd-mini", "soon-mini"):  # the odd batch is the oldest: swept first
            uploaded = client.files.create(file=("in.jsonl", jsonl(chat(model=model))), purpose="batch")
            client.batches.create(
                input_file_id=uploaded.id, endpoint="/v1/chat/completions", completion_window="24h"
            )
        deadline = time.monotonic() + 20
        while not (rows := batch_rows(gw, key.id)) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert [r.model for r in rows] == ["soon-mini"]
        assert client.batches.retrieve("batch_odd").id == "batch_odd"  # passed on, not a 500


def test_expiry_keeps_what_ran_and_ledgers_only_that(gw):
    key, raw = member(gw)
    client = oa(gw, raw)
    uploaded = client.files.create(
        file=("in.jsonl", jsonl(*[chat(model="expiring-mini")] * 4)), purpose="batch"
    )
    made = client.batches.create(
        input_file_id=uploaded.id, endpoint="/v1/chat/completions", completion_window="24h"
    )
    expired = client.batches.retrieve(made.id)
    assert (expired.status, expired.request_counts.completed, expired.request_counts.failed) == (
        "expired",
        2,
        2,
    )
    errors = [
        json.loads(line)["error"]["code"]
        for line in client.files.content(expired.error_file_id).text.splitlines()
    ]
    assert errors == ["batch_expired", "batch_expired"]
    assert [r.model for r in batch_rows(gw, key.id)] == ["expiring-mini", "expiring-mini"]

    claude = an(gw, raw).messages.batches.create(
        requests=[{"custom_id": f"c{i}", "params": messages(model="claude-expiring")} for i in range(2)]
    )
    kinds = sorted(r.result.type for r in an(gw, raw).messages.batches.results(claude.id))
    assert kinds == ["expired", "succeeded"]
    assert len(batch_rows(gw, key.id)) == 3


def test_cancel_at_the_provider(gw):
    key, raw = member(gw)
    client = oa(gw, raw)
    uploaded = client.files.create(
        file=("in.jsonl", jsonl(chat(model="slow-mini"), chat(model="slow-mini"))), purpose="batch"
    )
    made = client.batches.create(
        input_file_id=uploaded.id, endpoint="/v1/chat/completions", completion_window="24h"
    )
    assert client.batches.retrieve(made.id).status == "in_progress"
    assert client.batches.cancel(made.id).status == "cancelling"
    cancelled = client.batches.retrieve(made.id)
    assert (cancelled.status, cancelled.output_file_id) == ("cancelled", None)
    errors = [
        json.loads(line)["error"]["code"]
        for line in client.files.content(cancelled.error_file_id).text.splitlines()
    ]
    assert errors == ["batch_cancelled", "batch_cancelled"]
    assert batch_rows(gw, key.id) == []  # nothing ran, nothing is charged


def garbled_provider():
    """An OpenAI-compatible provider whose batches end at once with an output file that is not
    JSONL (a broken provider, or one that changed its format)."""

    async def app(scope, receive, send) -> None:
        if scope["type"] == "lifespan":
            await lifespan(receive, send, _nothing, _nothing)
            return
        await read_body(scope, receive, 1 << 20)
        path, method = scope["path"], scope["method"]
        if path.endswith("/content"):
            await respond(send, 200, b"not json\n")
        elif path.startswith("/v1/files"):
            await respond(send, 200, orjson.dumps({"id": "file-in", "object": "file", "purpose": "batch"}))
        else:
            ended = {"status": "completed", "output_file_id": "file-out"} if method == "GET" else {}
            batch = {"id": "batch_garbled", "object": "batch", "status": "validating", **ended}
            await respond(send, 200, orjson.dumps(batch))

    return app


async def _nothing() -> None:
    pass


def test_results_the_gateway_cannot_ledger_never_reach_the_caller(make_gateway):
    with BackgroundServer(garbled_provider()) as upstream:
        config = {
            "providers": [{"name": "garbled", "kind": "openai", "base_url": f"{upstream.url}/v1"}],
            "models": [{"name": "gpt-4o-mini", "provider": "garbled"}],
        }
        gw = make_gateway(config)
        client = oa(gw)
        uploaded = client.files.create(file=("in.jsonl", jsonl(chat())), purpose="batch")
        made = client.batches.create(
            input_file_id=uploaded.id, endpoint="/v1/chat/completions", completion_window="24h"
        )
        with pytest.raises(openai.InternalServerError, match="could not be read into the usage ledger"):
            client.batches.retrieve(made.id)
        # its output file was named to no one: the owner cannot read it either
        with pytest.raises(openai.NotFoundError):
            client.files.content("file-out")
        assert batch_rows(gw) == []
