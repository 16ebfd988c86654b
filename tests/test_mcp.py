"""`xvckit mcp`: the team's knowledge as MCP tools, called through the official MCP client over
stdio (the server a real subprocess, as Claude Code or Codex starts it)."""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import pytest
import yaml
from mcp import Client
from mcp.client.stdio import StdioServerParameters

from test_context_pack import _own_cache as _own_cache  # the fixture: a cache of the test's own
from test_context_pack import service_repo
from xvckit.errors import UserError
from xvckit.knowledge import kb, kb_store, prompts_store
from xvckit.knowledge.mcp_server import stdio_caller
from xvckit.knowledge.prompts import new_version
from xvckit.knowledge.serving import OPERATOR
from xvckit.store import Store, keys
from xvckit.store.ledger import UsageRecord, write_records

CORPUS = Path(__file__).with_name("data") / "kb"
TOOLS = {"search_knowledge_base", "list_prompts", "render_prompt", "usage", "context_pack"}


def team_knowledge(store: Store) -> dict[str, str]:
    """Two teams, a member key in each, a prompt of each, the corpus and a platform-only entry,
    and ledger rows for both keys. Returns the raw keys."""
    made = {}
    for team in ("platform", "data"):
        keys.create_team(store, team, keys.Limits(), "test")
        _, made[team] = keys.create_key(store, f"{team}-dev", "test", team=team)
    review = new_version(1, "Review this diff for bugs:\n{{ diff }}", model="gpt-4o-mini")
    prompts_store.add_version(store, "review", review, "test", team="platform", labels=("production",))
    prompts_store.add_version(store, "etl", new_version(1, "Load {{ table }}"), "test", team="data")
    kb_store.import_dir(store, CORPUS, "test")
    secret = kb.Entry("platform-oncall", "Page the platform on-call for locked databases", "x", "y")
    secret.team = "platform"
    kb_store.add(store, secret, "test")
    platform, data = (keys.get_key(store, f"{t}-dev") for t in ("platform", "data"))
    now = time.time()
    write_records(
        store,
        [
            UsageRecord(
                f"req-{i}",
                "chat",
                ts=now - 60,
                key_id=platform.id,
                team_id=platform.team_id,
                model="gpt-4o",
                status=200,
                input_tokens=100,
                output_tokens=10,
                cost_usd=0.01,
            )
            for i in range(3)
        ]
        + [UsageRecord("req-data", "chat", ts=now - 60, key_id=data.id, model="gpt-4o", status=200)],
    )
    return made


@pytest.fixture
def configured(tmp_path, store_url):
    config = tmp_path / "xvckit.yaml"
    config.write_text(yaml.safe_dump({"storage": {"url": store_url}}))
    store = Store.open(store_url)
    made = team_knowledge(store)
    store.close()
    return config, made


def _server(config: Path, key: str | None) -> StdioServerParameters:
    env = {k: v for k, v in os.environ.items() if k not in ("XVCKIT_API_KEY", "OPENAI_API_KEY")}
    if key:
        env["XVCKIT_API_KEY"] = key
    return StdioServerParameters(
        command=sys.executable, args=["-m", "xvckit", "mcp", "--config", str(config)], env=env
    )


def _data(result):
    """A tool's answer: a list comes wrapped as {"result": [...]}, an object as itself."""
    assert not result.is_error, result.content
    data = result.structured_content
    return data["result"] if set(data) == {"result"} else data


async def test_tools_over_stdio_answer_for_the_callers_key(configured, tmp_path):
    config, made = configured
    async with Client(_server(config, made["platform"])) as client:
        assert {tool.name for tool in (await client.list_tools()).tools} == TOOLS

        found = _data(
            await client.call_tool("search_knowledge_base", {"query": "database is locked", "limit": 3})
        )
        slugs = [e["slug"] for e in found]
        assert slugs[0] == "platform-oncall" and "sqlite-busy" in slugs  # its team's entry too

        rendered = _data(
            await client.call_tool("render_prompt", {"prompt": "review", "variables": {"diff": "+x"}})
        )
        assert rendered == {
            "prompt": "review@1",
            "text": "Review this diff for bugs:\n+x",
            "model": "gpt-4o-mini",
            "parameters": {},
        }
        missing = await client.call_tool("render_prompt", {"prompt": "review@production"})
        assert missing.is_error and "missing variable 'diff'" in missing.content[0].text
        other_team = await client.call_tool("render_prompt", {"prompt": "etl", "variables": {"table": "t"}})
        assert other_team.is_error and "no prompt 'etl'" in other_team.content[0].text
        unknown_label = await client.call_tool("render_prompt", {"prompt": "review@canary", "variables": {}})
        assert unknown_label.is_error and "no label 'canary'" in unknown_label.content[0].text
        assert [p["name"] for p in _data(await client.call_tool("list_prompts", {}))] == ["review"]

        usage = (await client.call_tool("usage", {"since": "1d"})).structured_content
        assert (usage["total"]["requests"], usage["total"]["cost_usd"]) == (3, pytest.approx(0.03))
        assert [row["model"] for row in usage["by_model"]] == ["gpt-4o"]
        bad_since = await client.call_tool("usage", {"since": "last tuesday"})
        assert bad_since.is_error and "cannot read 'last tuesday' as a time" in bad_since.content[0].text

        repo = service_repo(tmp_path)
        pack = await client.call_tool(
            "context_pack", {"task": "the invoice database is locked", "repo": str(repo), "budget": 3000}
        )
        text = pack.content[0].text
        assert "## kb/sqlite-busy" in text and "invoice_total" in text
        too_big = await client.call_tool("context_pack", {"task": "x", "repo": str(repo), "budget": 10**9})
        assert too_big.is_error and "budget: 1 to 200,000 tokens" in too_big.content[0].text


async def test_the_other_team_sees_its_own_and_the_operator_everything(configured):
    config, made = configured
    async with Client(_server(config, made["data"])) as client:
        found = _data(await client.call_tool("search_knowledge_base", {"query": "database is locked"}))
        assert "platform-oncall" not in {e["slug"] for e in found}
        assert [p["name"] for p in _data(await client.call_tool("list_prompts", {}))] == ["etl"]
        assert (await client.call_tool("usage", {})).structured_content["total"]["requests"] == 1
    async with Client(_server(config, None)) as client:
        assert [p["name"] for p in _data(await client.call_tool("list_prompts", {}))] == ["etl", "review"]
        usage = await client.call_tool("usage", {})
        assert usage.is_error and "usage is a key's own" in usage.content[0].text


def test_a_stdio_key_must_be_known_and_live(store_url):
    store = Store.open(store_url)
    try:
        made = team_knowledge(store)
        assert stdio_caller(store, {}) is OPERATOR
        assert stdio_caller(store, {"OPENAI_API_KEY": "sk-upstream"}) is OPERATOR  # not one of ours
        caller = stdio_caller(store, {"OPENAI_API_KEY": made["data"]})
        assert (caller.role, caller.team_id) == ("member", keys.get_team(store, "data").id)
        with pytest.raises(UserError, match="unknown, revoked or expired"):
            stdio_caller(store, {"XVCKIT_API_KEY": "xvc-made-up"})
        keys.revoke_key(store, "data-dev", "test")
        with pytest.raises(UserError, match="unknown, revoked or expired"):
            stdio_caller(store, {"XVCKIT_API_KEY": made["data"]})
    finally:
        store.close()
