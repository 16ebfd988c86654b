"""Issue 20 (first part): the model endpoints clients call. Both SDKs' `models.list()` and
`models.retrieve(id)`, filtered by what the caller's key (and its team) may use, in the
dialect asked; `HEAD /` and `GET /` answered. Through the real HTTP server."""

from __future__ import annotations

import anthropic
import httpx
import openai
import pytest

from test_gateway_keys import gw as gw  # the fixture: a gateway on the test's store
from test_gateway_keys import new_key
from xvckit.store import keys
from xvckit.store.keys import Limits

ALL = {"gpt-4o-mini", "fast", "text-embedding-3-small"}


def sdks(gw, raw: str) -> tuple[openai.OpenAI, anthropic.Anthropic]:
    return (
        openai.OpenAI(base_url=f"{gw.url}/v1", api_key=raw, max_retries=0),
        anthropic.Anthropic(base_url=gw.url, api_key=raw, max_retries=0),
    )


def test_list_and_retrieve_are_what_the_key_may_use(gw):
    team = keys.create_team(gw.store, "web", Limits(models=("gpt-4o*", "fast")), "test")
    _, raw = new_key(gw, team=team.name, limits=Limits(models=("gpt-4o-mini", "text-*")))
    oa, an = sdks(gw, raw)
    allowed = {"gpt-4o-mini"}  # the key's patterns and its team's both allow it; no other
    assert {m.id for m in oa.models.list()} == allowed
    assert {m.id for m in an.models.list()} == allowed
    model = oa.models.retrieve("gpt-4o-mini")
    assert (model.id, model.object) == ("gpt-4o-mini", "model")
    assert an.models.retrieve("gpt-4o-mini").type == "model"
    for hidden in ("fast", "text-embedding-3-small", "no-such-model"):  # alike: nothing leaks
        with pytest.raises(openai.NotFoundError, match=f"The model '{hidden}' does not exist"):
            oa.models.retrieve(hidden)
        with pytest.raises(anthropic.NotFoundError, match="does not exist or you do not have access"):
            an.models.retrieve(hidden)


def test_an_unrestricted_key_sees_every_route(gw):
    _, raw = new_key(gw)
    oa, an = sdks(gw, raw)
    assert {m.id for m in oa.models.list()} == ALL
    assert {m.id for m in an.models.list()} == ALL
    assert oa.models.retrieve("fast").id == "fast"


def test_model_endpoints_need_a_key(gw):
    for path in ("/v1/models", "/v1/models/gpt-4o-mini"):
        response = httpx.get(gw.url + path)
        assert response.status_code == 401
        assert response.json()["error"]["code"] == "missing_api_key"
    response = httpx.get(gw.url + "/v1/models/gpt-4o-mini", headers={"x-api-key": "xvc-wrong"})
    assert response.status_code == 401


def test_the_base_url_answers_head_and_get(gw):
    head = httpx.head(gw.url + "/")
    assert head.status_code == 200 and head.content == b""
    got = httpx.get(gw.url + "/")
    assert got.status_code == 200 and got.json()["service"] == "xvckit"
    assert httpx.post(gw.url + "/").status_code == 404
