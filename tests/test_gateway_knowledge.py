"""The team's knowledge served by the gateway behind its keys: the prompt routes, a prompt named
in a model request (`x-xvckit-prompt`) rendered into what the upstream gets and recorded in the
ledger, and the MCP server over streamable HTTP through the official MCP client."""

from __future__ import annotations

import asyncio
import json

import anthropic
import httpx
import httpx2
import openai
import orjson
import pytest
import yaml
from mcp import Client
from mcp.client.streamable_http import streamable_http_client
from typer.testing import CliRunner

from batch_echo import scripted_upstream
from conftest import MASTER_KEY
from servers import BackgroundServer
from test_gateway_keys import flush_ledger
from test_mcp import TOOLS, _data, team_knowledge
from xvckit.cli import app
from xvckit.knowledge import prompts_store
from xvckit.knowledge.prompts import new_version
from xvckit.store import keys
from xvckit.store.ledger import ledger_records, usage_report

PROMPTS = "/v1/xvckit/prompts"
REVIEW_V1 = "Review this diff for bugs:\n{{ diff }}"
REVIEW_V2 = "Review this diff for bugs and style:\n{{ diff }}"


@pytest.fixture(scope="module")
def gw(make_module_gateway):
    """A gateway with the knowledge routes whose every model is served by an upstream that
    answers with the request it got (as JSON text); the store holds test_mcp's two teams and
    their prompts (`review` of platform at production = 1 and, here, a version 2 at staging with
    its own model and parameters; `etl` of data), and keys of every kind."""
    with BackgroundServer(scripted_upstream(lambda request: orjson.dumps(request).decode())) as upstream:
        server = make_module_gateway(
            {
                "providers": [
                    {"name": "echo", "kind": "openai", "base_url": f"{upstream.url}/v1", "api_keys": ["k"]}
                ],
                "models": [{"name": "*", "provider": "echo"}],
            },
            knowledge=True,
        )
        store = server.store
        server.keys = team_knowledge(store)
        two = new_version(2, REVIEW_V2, model="gpt-4o", parameters={"temperature": 0.2, "top_p": 0.5})
        prompts_store.add_version(store, "review", two, "test", labels=("staging",))
        for name, options in (
            ("root", {"role": "admin"}),
            ("lead", {"role": "team-admin", "team": "platform"}),
            ("loner", {}),
            ("gone", {"team": "platform"}),
        ):
            _, server.keys[name] = keys.create_key(store, name, "test", **options)
        keys.revoke_key(store, "gone", "test")
        asyncio.run_coroutine_threadsafe(server.gateway.keyring.reload(), server._loop).result(5)
        yield server


def _get(gw, path: str, key: str | None, **options) -> httpx.Response:
    headers = {**options.pop("headers", {}), **({"authorization": f"Bearer {key}"} if key else {})}
    return httpx.request(
        options.pop("method", "GET"), f"{gw.url}{path}", headers=headers, timeout=10, **options
    )


def _error(response: httpx.Response, status: int) -> str:
    assert response.status_code == status, response.text
    return response.json()["error"]["message"]


def test_prompt_routes_serve_each_caller_its_teams_prompts(gw):
    platform, data = gw.keys["platform"], gw.keys["data"]
    for key in (platform, gw.keys["lead"]):  # a member and a team-admin of the owning team
        listed = _get(gw, PROMPTS, key).json()
        assert [(p["name"], p["labels"]) for p in listed] == [
            ("review", {"production": 1, "staging": 2, "latest": 2})
        ]
    for key in (gw.keys["root"], MASTER_KEY):
        assert [p["name"] for p in _get(gw, PROMPTS, key).json()] == ["etl", "review"]
    assert _get(gw, PROMPTS, gw.keys["loner"]).json() == []  # a key of no team: no prompt
    assert [p["name"] for p in _get(gw, f"{PROMPTS}/", data).json()] == ["etl"]

    shown = _get(gw, f"{PROMPTS}/review", platform).json()
    assert shown["labels"] == {"production": 1, "staging": 2, "latest": 2}
    assert [(v["version"], v["template"]) for v in shown["versions"]] == [(1, REVIEW_V1), (2, REVIEW_V2)]
    one = _get(gw, f"{PROMPTS}/review@staging", platform).json()
    assert (one["version"], one["model"], one["parameters"]) == (
        2,
        "gpt-4o",
        {"temperature": 0.2, "top_p": 0.5},
    )

    rendered = _get(
        gw, f"{PROMPTS}/review/render", platform, method="POST", json={"variables": {"diff": "+x"}}
    )
    assert rendered.json() == {
        "prompt": "review@1",
        "text": "Review this diff for bugs:\n+x",
        "model": "gpt-4o-mini",
        "parameters": {},
    }
    assert rendered.headers["x-request-id"]

    # another team's prompt answers as one that does not exist, before its labels are read
    for path in ("/review", "/review@canary", "/nothing"):
        assert _error(_get(gw, f"{PROMPTS}{path}", data), 404) == f"no prompt {path[1:].split('@')[0]!r}"
    render = f"{PROMPTS}/review@canary/render"
    assert _error(_get(gw, render, data, method="POST", json={}), 404) == "no prompt 'review'"
    assert _error(_get(gw, f"{PROMPTS}/review", gw.keys["loner"]), 404) == "no prompt 'review'"


def test_prompt_routes_refuse_clearly(gw):
    platform = gw.keys["platform"]
    for key in (None, "xvc-made-up", gw.keys["gone"]):
        for method, path in (
            ("GET", PROMPTS),
            ("GET", f"{PROMPTS}/review"),
            ("POST", f"{PROMPTS}/review/render"),
        ):
            assert _get(gw, path, key, method=method).status_code == 401
    assert "no label 'canary'" in _error(_get(gw, f"{PROMPTS}/review@canary", platform), 404)
    assert "no version 9 (1 to 2)" in _error(_get(gw, f"{PROMPTS}/review@9", platform), 404)
    render = f"{PROMPTS}/review/render"
    assert _error(_get(gw, render, platform, method="POST", json={}), 400) == (
        "prompt review@1: missing variable 'diff'"
    )
    unknown = _get(gw, render, platform, method="POST", json={"variables": {"diff": "x", "extra": 1}})
    assert "unknown variable 'extra'" in _error(unknown, 400)
    assert "takes 'variables' only" in _error(
        _get(gw, render, platform, method="POST", json={"vars": {}}), 400
    )
    assert "JSON object" in _error(_get(gw, render, platform, method="POST", content=b"[1]"), 400)
    big = {"variables": {"diff": "x" * (300 * 1024)}}
    assert "at most 256 KiB" in _error(_get(gw, render, platform, method="POST", json=big), 400)
    huge = b'{"variables": {"diff": "' + b"x" * (600 * 1024) + b'"}}'
    assert _get(gw, render, platform, method="POST", content=huge).status_code == 413
    assert "write name@label" in _error(_get(gw, f"{PROMPTS}/review@Bad!", platform), 400)
    assert "1-100 lower case" in _error(_get(gw, f"{PROMPTS}/Review", platform), 400)
    assert "at most 140 characters" in _error(_get(gw, f"{PROMPTS}/{'a' * 141}", platform), 400)
    assert "use GET" in _error(_get(gw, PROMPTS, platform, method="POST"), 405)
    assert "use POST" in _error(_get(gw, render, platform), 405)
    assert "use GET" in _error(_get(gw, f"{PROMPTS}/review", platform, method="DELETE"), 405)
    assert _error(_get(gw, f"{PROMPTS}/review/labels", platform), 404).startswith("no such endpoint")


def _sent(text: str) -> dict:
    """What the upstream got, from its answer (it answers with the request)."""
    return json.loads(text)


def test_a_prompt_named_in_a_request_reaches_the_upstream_rendered_and_the_ledger(gw, tmp_path):
    raw = gw.keys["platform"]
    key_id = keys.get_key(gw.store, "platform-dev").id
    oa = openai.OpenAI(base_url=f"{gw.url}/v1", api_key=raw, max_retries=0)
    header = {"x-xvckit-prompt": "review@production"}
    variables = {"xvckit_prompt_variables": {"diff": "+fix"}}

    chat = oa.chat.completions.create(
        model="gpt-4o-mini",
        messages=[{"role": "system", "content": "Answer in French."}, {"role": "user", "content": "go"}],
        extra_headers=header,
        extra_body=variables,
    )
    sent = _sent(chat.choices[0].message.content)
    assert sent["messages"] == [
        {"role": "system", "content": "Review this diff for bugs:\n+fix"},
        {"role": "system", "content": "Answer in French."},
        {"role": "user", "content": "go"},
    ]
    assert "xvckit_prompt_variables" not in sent

    claude = anthropic.Anthropic(base_url=gw.url, api_key=raw, max_retries=0).messages.create(
        model="claude-sonnet-4-6",
        max_tokens=64,
        system="Be brief.",
        messages=[{"role": "user", "content": "go"}],
        extra_headers={"x-xvckit-prompt": "review@staging"},
        extra_body=variables,
    )
    sent = _sent(claude.content[0].text)  # Messages crossed to the chat upstream
    assert sent["messages"][0] == {
        "role": "system",
        "content": "Review this diff for bugs and style:\n+fix\n\nBe brief.",
    }
    assert (sent["temperature"], sent["top_p"]) == (0.2, 0.5)  # the version's parameters, unset by the client

    answer = oa.responses.create(
        model="gpt-4o-mini",
        input="go",
        temperature=0.9,
        extra_headers={"x-xvckit-prompt": "review@2"},
        extra_body=variables,
    )
    sent = _sent(answer.output_text)
    assert sent["messages"][0] == {"role": "system", "content": "Review this diff for bugs and style:\n+fix"}
    assert (sent["temperature"], sent["top_p"]) == (0.9, 0.5)  # the client's own value kept

    # no model in the request: the version's; a label moved is served at once
    prompts_store.set_label(gw.store, "review", "production", "2", "test")
    try:
        bare = _get(
            gw, "/v1/chat/completions", raw, method="POST", json={"messages": [], **variables}, headers=header
        )
    finally:
        prompts_store.set_label(gw.store, "review", "production", "1", "test")
    assert bare.status_code == 200, bare.text
    sent = _sent(bare.json()["choices"][0]["message"]["content"])
    assert (sent["model"], sent["messages"][0]["content"]) == (
        "gpt-4o",
        "Review this diff for bugs and style:\n+fix",
    )

    flush_ledger(gw)
    prompted = [
        (r.endpoint, r.model, r.prompt, r.status) for r in ledger_records(gw.store) if r.key_id == key_id
    ]
    assert prompted[-4:] == [
        ("chat", "gpt-4o-mini", "review@1", 200),
        ("messages", "claude-sonnet-4-6", "review@2", 200),
        ("responses", "gpt-4o-mini", "review@2", 200),
        ("chat", "gpt-4o", "review@2", 200),
    ]
    by_prompt = {row["prompt"]: row for row in usage_report(gw.store, "prompt", None, key_id=key_id)}
    assert (by_prompt["review@1"]["requests"], by_prompt["review@2"]["requests"]) == (1, 3)
    assert by_prompt["review@2"]["mean_latency_ms"] > 0

    config = tmp_path / "xvckit.yaml"
    config.write_text(yaml.safe_dump({"storage": {"url": gw.store.url}}))
    usage = CliRunner().invoke(
        app, ["usage", "--by", "prompt", "--key", "platform-dev", "--config", str(config)]
    )
    assert usage.exit_code == 0 and "mean ms" in usage.output, usage.output
    rows = json.loads(
        CliRunner()
        .invoke(app, ["usage", "--by", "prompt", "--team", "platform", "--json", "--config", str(config)])
        .output
    )
    assert {row["prompt"]: row["requests"] for row in rows if row["prompt"]} == {"review@1": 1, "review@2": 3}


def test_a_prompt_that_cannot_be_rendered_is_refused_and_never_sent(gw):
    raw = gw.keys["platform"]
    oa = openai.OpenAI(base_url=f"{gw.url}/v1", api_key=raw, max_retries=0)
    hi = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}

    def refused(status: int, header: str | None, **body) -> str:
        headers = {"x-xvckit-prompt": header} if header is not None else {}
        path = body.pop("path", "/v1/chat/completions")
        response = _get(gw, path, raw, method="POST", json={**hi, **body}, headers=headers)
        return _error(response, status)

    with pytest.raises(openai.NotFoundError, match="no label 'canary'"):
        oa.chat.completions.create(**hi, extra_headers={"x-xvckit-prompt": "review@canary"})
    assert (
        refused(404, "review@7", xvckit_prompt_variables={"diff": "x"})
        == "prompt review has no version 7 (1 to 2)"
    )
    assert refused(404, "etl", xvckit_prompt_variables={"table": "t"}) == "no prompt 'etl'"  # another team's
    assert refused(400, "review") == "prompt review@1: missing variable 'diff'"
    assert refused(400, None, xvckit_prompt_variables={"diff": "x"}) == (
        "xvckit_prompt_variables is only taken with an x-xvckit-prompt header"
    )
    assert "a JSON object" in refused(400, "review", xvckit_prompt_variables=["x"])
    assert "write name@label" in refused(400, "review@@")
    assert "at most 140 characters" in refused(400, "r" * 141)
    embed = refused(400, "review", path="/v1/embeddings", input="x", xvckit_prompt_variables={"diff": "x"})
    assert "on /v1/chat/completions, /v1/messages and /v1/responses only" in embed


async def test_mcp_over_http_answers_for_the_callers_key(gw):
    async with (
        httpx2.AsyncClient(headers={"authorization": f"Bearer {gw.keys['platform']}"}) as http,
        Client(streamable_http_client(f"{gw.url}/mcp", http_client=http)) as client,
    ):
        assert {tool.name for tool in (await client.list_tools()).tools} == TOOLS - {"context_pack"}
        rendered = _data(
            await client.call_tool("render_prompt", {"prompt": "review", "variables": {"diff": "+x"}})
        )
        assert (rendered["prompt"], rendered["text"]) == ("review@1", "Review this diff for bugs:\n+x")
        other = await client.call_tool("render_prompt", {"prompt": "etl", "variables": {"table": "t"}})
        assert other.is_error and "no prompt 'etl'" in other.content[0].text
        assert [p["name"] for p in _data(await client.call_tool("list_prompts", {}))] == ["review"]
        found = _data(await client.call_tool("search_knowledge_base", {"query": "database is locked"}))
        assert found[0]["slug"] == "platform-oncall"  # its team's entry
        usage = (await client.call_tool("usage", {"since": "1d"})).structured_content
        assert (
            usage["key_id"] == keys.get_key(gw.store, "platform-dev").id and usage["total"]["requests"] >= 3
        )

    async with (
        httpx2.AsyncClient(headers={"authorization": f"Bearer {gw.keys['data']}"}) as http,
        Client(streamable_http_client(f"{gw.url}/mcp", http_client=http)) as client,
    ):
        found = _data(await client.call_tool("search_knowledge_base", {"query": "database is locked"}))
        assert "platform-oncall" not in {entry["slug"] for entry in found}
        assert [p["name"] for p in _data(await client.call_tool("list_prompts", {}))] == ["etl"]


def test_mcp_needs_a_usable_key(gw):
    ping = {"jsonrpc": "2.0", "id": 1, "method": "ping"}
    for key in (None, "xvc-made-up", gw.keys["gone"]):
        answer = _get(gw, "/mcp", key, method="POST", json=ping)
        assert answer.status_code == 401 and answer.json()["error"]["type"]
    too_big = b'{"jsonrpc": "2.0", "id": 1, "method": "ping", "params": {"x": "' + b"x" * (5 << 20) + b'"}}'
    headers = {"content-type": "application/json", "accept": "application/json, text/event-stream"}
    answer = _get(gw, "/mcp", gw.keys["platform"], method="POST", content=too_big, headers=headers)
    assert answer.status_code == 413
