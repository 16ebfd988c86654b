"""Issue 21: key and team management on the CLI as a team lead expects it: `update` changes
the settings given and keeps the others, `keys show` says what was spent this period, names
work wherever ids do (in `usage` too, and in its output), and mistakes are one-line errors.
On SQLite and PostgreSQL (the `cli` fixture's store)."""

from __future__ import annotations

import csv
import io
import time

import orjson
import pytest
import yaml
from typer.testing import CliRunner

from xvckit.cli import app
from xvckit.errors import UserError
from xvckit.store import Store, audit
from xvckit.store.ledger import UsageRecord, write_records


def ok(result) -> list[dict]:
    assert result.exit_code == 0, (result.output, result.exception)
    return orjson.loads(result.stdout)


def refused(result, message: str) -> None:
    assert isinstance(result.exception, UserError) and message in str(result.exception), (
        result.output,
        result.exception,
    )


@pytest.fixture
def store(store_url):
    opened = Store.open(store_url)
    yield opened
    opened.close()


def last_change(store: Store, action: str) -> dict:
    return next(e for e in reversed(audit.entries(store)) if e.action == action).to_json()["detail"]


def test_teams_update_changes_one_limit_and_keeps_the_others(cli, store):
    ok(cli("teams", "create", "platform", "--budget", "200", "--period", "month", "--rpm", "600", "--json"))
    team = ok(cli("teams", "update", "platform", "--rpm", "300", "--json"))[0]
    assert (team["rpm"], team["budget_usd"], team["budget_period"]) == (300, 200, "month")
    assert last_change(store, "team.update")["changed"] == {"rpm": [600, 300]}
    team = ok(cli("teams", "update", "platform", "--period", "week", "--models", "gpt-4o*", "--json"))[0]
    assert (team["rpm"], team["budget_usd"], team["budget_period"]) == (300, 200, "week")
    team = ok(cli("teams", "update", "platform", "--clear", "budget,models", "--name", "infra", "--json"))[0]
    assert (team["name"], team["rpm"], team["budget_usd"], team["budget_period"], team["models"]) == (
        "infra",
        300,
        None,
        None,
        None,
    )
    refused(cli("teams", "update", "infra", "--period", "day"), "a budget period needs a budget")
    refused(cli("teams", "update", "infra"), "nothing to change")
    ok(cli("teams", "create", "red", "--json"))
    refused(cli("teams", "update", "infra", "--name", "red"), "a team named 'red' exists already")


def test_keys_update_changes_one_setting_and_keeps_the_others(cli, store):
    ok(cli("teams", "create", "platform", "--json"))
    args = ["--team", "platform", "--rpm", "60", "--budget", "20", "--period", "day", "--expires", "90d"]
    made = ok(cli("keys", "create", "--name", "alice", *args, "--models", "gpt-4o*", "--json"))[0]
    key = ok(cli("keys", "update", "alice", "--rpm", "120", "--json"))[0]
    unchanged = ("budget_usd", "budget_period", "expires_at", "models", "tpm", "role", "hint", "team_id")
    assert key["rpm"] == 120 and {f: key[f] for f in unchanged} == {f: made[f] for f in unchanged}
    assert last_change(store, "key.update") == {"name": "alice", "changed": {"rpm": [60, 120]}}
    key = ok(cli("keys", "update", made["id"], "--clear", "budget,expires", "--priority", "batch", "--json"))[
        0
    ]
    assert (key["budget_usd"], key["budget_period"], key["expires_at"], key["priority"]) == (
        None,
        None,
        None,
        "batch",
    )
    assert key["rpm"] == 120 and key["models"] == ["gpt-4o*"]
    key = ok(cli("keys", "update", "alice", "--name", "alicia", "--role", "team-admin", "--json"))[0]
    assert (key["name"], key["role"]) == ("alicia", "team-admin")
    assert last_change(store, "key.update")["changed"] == {
        "name": ["alice", "alicia"],
        "role": ["member", "team-admin"],
    }
    ok(cli("keys", "create", "--name", "bob", "--team", "platform", "--json"))
    for args, message in [
        (("alicia",), "nothing to change"),
        (("alicia", "--rpm", "5", "--clear", "rpm"), "--clear rpm and a new value"),
        (("alicia", "--clear", "name"), "--clear name: not one of"),
        (("alicia", "--expires", "0s"), "the expiry must be in the future"),
        (("alicia", "--period", "week"), "a budget period needs a budget"),
        (("alicia", "--name", "bob"), "a key named 'bob' exists already"),
        (("alicia", "--name", " "), "key name must not be empty"),
        (("alicia", "--rpm", "2147483648"), "rpm must be a whole number"),
        (("alicia", "--models", ","), "--models: give at least one"),
        (("ghost", "--rpm", "5"), "no key 'ghost'"),
    ]:
        refused(cli("keys", "update", *args), message)
    ok(cli("keys", "revoke", "bob", "--json"))
    refused(cli("keys", "update", "bob", "--rpm", "5"), "is revoked")


def test_keys_show_spend_and_budget_left_this_period(cli, store):
    ok(cli("teams", "create", "platform", "--budget", "100", "--period", "month", "--json"))
    key = ok(
        cli(
            "keys",
            "create",
            "--name",
            "alice",
            "--team",
            "platform",
            "--budget",
            "5",
            "--period",
            "day",
            "--json",
        )
    )[0]
    now = time.time()
    write_records(
        store,
        [
            UsageRecord("r1", "chat", ts=now - 1, key_id=key["id"], team_id=key["team_id"], cost_usd=1.25),
            UsageRecord("r2", "chat", ts=now - 2, key_id="key_other", team_id=key["team_id"], cost_usd=2.0),
            UsageRecord(
                "r3", "chat", ts=now - 40 * 86400, key_id=key["id"], team_id=key["team_id"], cost_usd=9
            ),
        ],
    )
    shown = ok(cli("keys", "show", "alice", "--json"))[0]
    mine, team = shown["spend"]
    assert (mine["scope"], mine["period"], mine["spent_usd"], mine["left_usd"]) == ("key", "day", 1.25, 3.75)
    assert mine["started_at"] <= now < mine["resets_at"] == mine["started_at"] + 86400
    assert (team["scope"], team["period"], team["spent_usd"], team["left_usd"]) == (
        "team",
        "month",
        3.25,
        96.75,
    )
    table = cli("keys", "show", "alice").stdout
    assert "3.7500" in table and "96.7500" in table and "spent_usd" in table


def test_names_wherever_ids_in_usage_and_its_output(cli, store):
    ok(cli("teams", "create", "platform", "--json"))
    ok(cli("teams", "create", "research", "--json"))
    alice = ok(cli("keys", "create", "--name", "alice", "--team", "platform", "--json"))[0]
    other = ok(cli("keys", "create", "--name", "alice", "--team", "research", "--json"))[0]
    now = time.time()
    write_records(
        store,
        [
            UsageRecord(f"r{i}", "chat", ts=now - 10, key_id=k["id"], team_id=k["team_id"], cost_usd=1.0)
            for i, k in enumerate([alice, alice, other])
        ],
    )
    refused(cli("usage", "--key", "alice"), "2 keys are named 'alice'")
    rows = ok(cli("usage", "--key", "alice", "--team", "platform", "--json"))
    assert rows[0]["requests"] == 2
    assert ok(cli("usage", "--team", "research", "--json"))[0]["requests"] == 1
    refused(cli("usage", "--team", "ghost"), "no team 'ghost'")
    refused(cli("usage", "--key", "bob"), "no key 'bob'")
    by_key = ok(cli("usage", "--by", "key", "--json"))
    assert sorted((r["key_name"], r["team_name"], r["requests"]) for r in by_key) == [
        ("alice", "platform", 2),
        ("alice", "research", 1),
    ]
    by_team = list(csv.DictReader(io.StringIO(cli("usage", "--by", "team", "--csv").stdout)))
    assert sorted((r["team_name"], r["team_id"], r["requests"]) for r in by_team) == sorted(
        [("platform", alice["team_id"], "2"), ("research", other["team_id"], "1")]
    )
    table = cli("usage", "--by", "key").stdout
    assert "platform" in table and "research" in table and "alice" in table, table


def test_no_empty_names_no_expired_keys(cli):
    for args, message in [
        (("keys", "create", "--name", ""), "key name must not be empty"),
        (("keys", "create", "--name", "  "), "key name must not be empty"),
        (("teams", "create", " "), "team name must not be empty"),
        (("keys", "create", "--name", "x", "--expires", "0s"), "the expiry must be in the future"),
        (("keys", "create", "--name", "x", "--models", ""), "--models: give at least one"),
    ]:
        refused(cli(*args), message)
    assert ok(cli("keys", "list", "--json")) == []


def test_a_warning_for_model_patterns_no_route_serves(tmp_path, store_url):
    config = tmp_path / "routes.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "storage": {"url": store_url},
                "providers": [{"name": "oa", "kind": "openai", "base_url": "http://127.0.0.1:9/v1"}],
                "models": [{"name": "gpt-4o", "provider": "oa"}, {"name": "claude-*", "provider": "oa"}],
            }
        )
    )

    def run(*args: str):
        return CliRunner().invoke(app, [*args, "--config", str(config)])

    made = run("keys", "create", "--name", "a", "--models", "gpt-4o*,claude-sonnet-4-6,gtp-4o", "--json")
    assert made.exit_code == 0 and orjson.loads(made.stdout)[0]["models"] == [
        "gpt-4o*",
        "claude-sonnet-4-6",
        "gtp-4o",
    ]
    assert made.stderr.splitlines() == ["xvckit: warning: model pattern 'gtp-4o' matches no configured route"]
    updated = run("keys", "update", "a", "--models", "gpt-5*", "--json")
    assert updated.exit_code == 0 and "'gpt-5*' matches no configured route" in updated.stderr
    assert run("keys", "update", "a", "--rpm", "5", "--json").stderr == ""  # models not changed
    team = run("teams", "create", "t", "--models", "gemini-*", "--json")
    assert team.exit_code == 0 and "'gemini-*' matches no configured route" in team.stderr
