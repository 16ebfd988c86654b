"""Issue 19, hole 14 (admin part): a value the store cannot hold is a 4xx naming the field,
through the admin API (real HTTP server, SQLite and PostgreSQL) and the CLI, never a 500 or a
traceback, and never a key that later breaks `keys list`."""

from __future__ import annotations

import httpx
import orjson
import pytest

from conftest import MASTER_KEY
from xvckit.errors import UserError

BIG = str(10**34)


@pytest.fixture
def gw(make_gateway, store_url):
    return make_gateway({}, storage_url=store_url)


@pytest.fixture
def admin(gw):
    client = httpx.Client(
        base_url=f"{gw.url}/admin",
        headers={"authorization": f"Bearer {MASTER_KEY}", "content-type": "application/json"},
    )
    assert client.post("/teams", content='{"name": "blue"}').status_code == 201
    return client


BAD_BODIES = [
    ("/keys", '{"name": "a", "rpm": 2147483648}', "rpm"),
    ("/keys", f'{{"name": "a", "tpm": {BIG}}}', "tpm"),
    ("/teams", '{"name": "t", "rpm": 99999999999}', "rpm"),
    ("/keys", '{"name": "a", "budget_usd": NaN}', "budget_usd"),
    ("/keys", '{"name": "a", "budget_usd": Infinity}', "budget_usd"),
    ("/teams", '{"name": "t", "budget_usd": 1e999}', "budget_usd"),
    ("/keys", '{"name": "a", "expires_in": 1e300}', "expires_in"),
    ("/keys", '{"name": "a", "expires_in": NaN}', "expires_in"),
    ("/keys", '{"name": "a", "expires_in": "99999999999d"}', "expires_in"),
    ("/keys", '{"name": "a", "expires_in": "soon"}', "expires_in"),
    ("/keys", '{"name": "a\\u0000b"}', "key name"),
    ("/teams", '{"name": "t\\u0000"}', "team name"),
    ("/keys", '{"name": "a", "team": "blue\\u0000"}', "no team"),
    ("/keys", '{"name": "line\\nbreak"}', "key name"),
    ("/keys", '{"name": "a", "team": "\\ud800"}', "no team"),
    ("/keys", '{"name": "a", "models": ["\\ud800"]}', "models"),
    ("/teams", '{"name": "t", "models": ["gpt-4o", "\\u0000"]}', "models"),
    ("/keys", '{"name": "a", "models": [""]}', "models"),
]
BAD_QUERIES = [
    (f"/audit?limit={BIG}", "limit"),
    ("/audit?limit=0", "limit"),
    ("/audit?limit=1001", "limit"),
    ("/usage?since=-8e137", "since"),
    ("/usage?since=nan", "since"),
    ("/usage?until=inf", "until"),
    ("/usage?until=1e20", "until"),
]


def test_bad_bodies_are_4xx_naming_the_field(admin):
    for path, body, field in BAD_BODIES:
        answer = admin.post(path, content=body)
        assert 400 <= answer.status_code < 500 and field in answer.text, (body, answer.text)
    listed = admin.get("/keys")  # nothing half-made that breaks a listing
    assert listed.status_code == 200 and listed.json() == []
    assert [t["name"] for t in admin.get("/teams").json()] == ["blue"]


def test_bad_queries_and_refs_are_4xx(admin):
    for path, field in BAD_QUERIES:
        answer = admin.get(path)
        assert 400 <= answer.status_code < 500 and field in answer.text, (path, answer.text)
    for ref in ("a%00b", "a%0Ab", "key_%00"):
        answers = [admin.get(f"/keys/{ref}"), admin.post(f"/keys/{ref}/rotate"), admin.get(f"/teams/{ref}")]
        for answer in answers:
            assert answer.status_code == 404 and answer.json()["error"]["message"].startswith("no "), ref


def test_bounds_still_take_the_largest_good_values(admin):
    key = admin.post(
        "/keys",
        json={"name": "big", "rpm": 2**31 - 1, "tpm": 2**31 - 1, "budget_usd": 1e12, "expires_in": 3e9},
    )
    assert key.status_code == 201, key.text
    assert admin.get("/keys").json()[0]["rpm"] == 2**31 - 1
    assert admin.get("/audit?limit=1000").status_code == 200
    assert admin.get("/usage?since=0&until=253402300000").status_code == 200


def test_cli_refuses_what_the_store_cannot_hold(cli):
    for args, message in [
        (("keys", "create", "--name", "a", "--rpm", "99999999999"), "rpm must be a whole number"),
        (("keys", "create", "--name", "a", "--tpm", BIG), "tpm must be a whole number"),
        (("keys", "create", "--name", "a", "--expires", "99999999999d"), "lifetime must be at most"),
        (("keys", "create", "--name", "key_1234"), "looks like an id"),
        (("teams", "create", "t", "--rpm", "2147483648"), "rpm must be a whole number"),
        (("teams", "create", "t", "--budget", "inf"), "budget must be a finite amount"),
        (("usage", "--since", "99999999999999d"), "--since"),
        (("usage", "--since", "9" * 400 + "d"), "--since"),
        (("usage", "--key", "\udcff"), "--key"),  # a byte that is not UTF-8 in argv
        (("keys", "create", "--name", "\udcff"), "key name"),
        (("keys", "create", "--name", "a", "--models", "gpt-4o,\udcff"), "models"),
    ]:
        result = cli(*args)
        assert isinstance(result.exception, UserError) and message in str(result.exception), args
    listed = cli("keys", "list", "--json")
    assert listed.exit_code == 0 and orjson.loads(listed.stdout) == []
