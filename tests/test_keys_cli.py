"""`xvckit keys` and `xvckit teams` on the store, as a user types them."""

from __future__ import annotations

import orjson
import pytest
import yaml
from typer.testing import CliRunner

from xvckit.cli import app
from xvckit.store import Store, audit
from xvckit.store.keys import hash_key, keys_table


@pytest.fixture
def cli(tmp_path, store_url):
    config = tmp_path / "xvckit.yaml"
    config.write_text(yaml.safe_dump({"storage": {"url": store_url}}))
    runner = CliRunner()

    def run(*args: str, ok: bool = True):
        result = runner.invoke(app, [*args, "--config", str(config)])
        if ok:
            assert result.exit_code == 0, result.output
        return result

    run.store_url = store_url
    return run


def test_create_prints_the_key_once_and_stores_only_its_hash(cli):
    cli("teams", "create", "blue", "--budget", "10", "--period", "week")
    created = orjson.loads(
        cli(
            "keys",
            "create",
            "--name",
            "ci",
            "--team",
            "blue",
            "--models",
            "gpt-4o,claude-*",
            "--rpm",
            "60",
            "--tpm",
            "100000",
            "--budget",
            "2",
            "--period",
            "day",
            "--expires",
            "30d",
            "--json",
        ).stdout
    )[0]
    raw = created["key"]
    assert raw.startswith("xvc-") and created["models"] == ["gpt-4o", "claude-*"] and created["expires_at"]
    listed = cli("keys", "list", "--json").stdout
    assert raw not in listed and created["id"] in listed
    store = Store.open(cli.store_url)
    with store.engine.connect() as conn:
        rows = conn.execute(keys_table.select()).all()
    assert [r.key_hash for r in rows] == [hash_key(raw)]
    assert raw not in str([tuple(r) for r in rows])
    exported = [e.to_json() for e in audit.entries(store)]
    assert raw not in str(exported) and {"team.create", "key.create"} <= {e["action"] for e in exported}
    store.close()


def test_rotate_revoke_show_and_team_listing(cli):
    cli("teams", "create", "red")
    first = orjson.loads(cli("keys", "create", "--name", "a", "--team", "red", "--json").stdout)[0]
    rotated = orjson.loads(cli("keys", "rotate", first["id"], "--json").stdout)[0]
    assert rotated["id"] == first["id"] and rotated["key"] != first["key"]
    revoked = orjson.loads(cli("keys", "revoke", "a", "--json").stdout)[0]
    assert revoked["revoked_at"]
    assert orjson.loads(cli("keys", "list", "--active", "--json").stdout) == []
    team = orjson.loads(cli("teams", "show", "red", "--json").stdout)[0]
    assert [k["id"] for k in team["keys"]] == [first["id"]]
    assert "red" in cli("teams", "list").stdout


def test_user_errors_are_one_line(cli):
    for args, message in [
        (("keys", "create", "--name", "x", "--team", "ghost"), "no team 'ghost'"),
        (("keys", "create", "--name", "x", "--budget", "1", "--period", "year"), "budget period"),
        (("keys", "create", "--name", "x", "--expires", "soon"), "not a duration"),
        (("keys", "show", "key_nope"), "no key 'key_nope'"),
    ]:
        result = cli(*args, ok=False)
        assert result.exit_code != 0 and message in str(result.exception or result.output)
