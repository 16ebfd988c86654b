"""The store's schema comes from one migration chain on SQLite and PostgreSQL: a new store,
a store written before migrations existed, and the tables the code declares all agree."""

from __future__ import annotations

import base64
import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from typer.testing import CliRunner

from xvckit.cli import app
from xvckit.store import Store, audit, engine_for, keys, migrate
from xvckit.store.doctor_runs import list_runs
from xvckit.store.ledger import UsageRecord, ledger_records, usage_report, write_records
from xvckit.store.schema import KB_SEARCH_TABLES, metadata
from xvckit.store.secrets import SecretBox, get_secret

DATA = Path(__file__).with_name("data")
# The fixtures were written by xvckit at 5158e6f (the last schema made by `create_all`) with
# XVCKIT_SECRET_KEY set to these bytes: a team, a key, a usage record, a doctor run, a secret.
FIXTURE_SECRET_KEY = base64.b64encode(bytes(range(32))).decode()


def _load_fixture(url: str) -> None:
    """Write the first release's store (its schema and rows, no migration table) at `url`."""
    dialect = "sqlite" if url.startswith("sqlite") else "postgresql"
    script = (DATA / f"store_0.1_{dialect}.sql").read_text()
    engine = engine_for(url)
    try:
        with engine.begin() as conn:
            if dialect == "sqlite":
                conn.connection.driver_connection.executescript(script)
            else:
                conn.exec_driver_sql(script)
    finally:
        engine.dispose()


def test_a_store_from_the_first_release_opens_with_its_rows(store_url, monkeypatch):
    monkeypatch.setenv("XVCKIT_SECRET_KEY", FIXTURE_SECRET_KEY)
    _load_fixture(store_url)
    assert migrate.current(engine_for(store_url)) is None

    store = Store.open(store_url)
    try:
        assert migrate.current(store.engine) == migrate.head()
        team = keys.get_team(store, "platform")
        assert (team.limits.rpm, team.limits.budget_usd, team.limits.budget_period) == (600, 200.0, "month")
        alice = keys.get_key(store, "alice")
        assert (alice.team_id, alice.priority, alice.cache) == (team.id, "batch", "deterministic")
        assert alice.limits.models == ("gpt-4o*",)
        [row] = usage_report(store, "key", None)
        assert (row["key_id"], row["requests"], row["input_tokens"]) == (alice.id, 1, 1200)
        assert row["cost_usd"] == pytest.approx(0.006)
        assert [run["host"] for run in list_runs(store, 10)] == ["fixture-host"]
        assert get_secret(store, SecretBox.for_store(store), "openai-prod") == "sk-fixture-not-a-real-key"
        assert "not signed" in audit.verify(store).reason  # 0.1 did not sign the audit head
        report = audit.sign_head(store, "cli:upgrader")  # what the operator runs once, then
        assert report.ok and report.checked >= 4
        keys.create_key(store, "bob", "admin", team="platform")  # the upgraded store takes new rows
        assert audit.verify(store).ok
    finally:
        store.close()


def test_migrations_make_the_tables_the_code_declares(store_url):
    """A table or column declared without a migration fails here. The knowledge base's search
    index (FTS5 tables, a GIN index) is made by its migration alone."""
    store = Store.open(store_url)
    try:
        with store.engine.connect() as conn:
            declared = {"compare_type": True, "include_name": lambda name, *_: name not in KB_SEARCH_TABLES}
            context = MigrationContext.configure(conn, opts=declared)
            assert compare_metadata(context, metadata) == []
    finally:
        store.close()


def test_a_store_missing_later_columns_gains_them(store_url):
    url = store_url
    _load_fixture(url)
    engine = engine_for(url)
    with engine.begin() as conn:  # as a store made before these columns were added
        for table, column in (("api_keys", "cache"), ("xvckit_usage", "client_request_id")):
            conn.exec_driver_sql(f"ALTER TABLE {table} DROP COLUMN {column}")
    engine.dispose()
    store = Store.open(url)
    try:
        assert keys.get_key(store, "alice").cache is None
        write_records(store, [UsageRecord("req-2", "chat", status=200, client_request_id="trace-1")])
        assert [r.client_request_id for r in ledger_records(store, ["req-2"])] == ["trace-1"]
    finally:
        store.close()


def test_the_chain_is_linear_and_head_reads_it_as_alembic_does():
    config = Config()
    config.set_main_option("script_location", str(Path(migrate.__file__).with_name("migrations")))
    scripts = ScriptDirectory.from_config(config)
    assert scripts.get_heads() == [migrate.head()]
    ids = [revision.id for revision in migrate.history()]
    assert ids == [f"{n:04d}" for n in range(1, len(ids) + 1)]


def test_processes_opening_a_new_store_together_migrate_it_once(store_url):
    code = "import sys; from xvckit.store import Store; Store.open(sys.argv[1]).close()"
    procs = [subprocess.Popen([sys.executable, "-c", code, store_url]) for _ in range(4)]
    assert [p.wait(timeout=60) for p in procs] == [0, 0, 0, 0]
    engine = engine_for(store_url)
    with engine.connect() as conn:
        assert conn.exec_driver_sql("SELECT version_num FROM alembic_version").scalars().all() == [
            migrate.head()
        ]
    engine.dispose()


def test_db_commands_say_where_a_store_stands_and_upgrade_it(tmp_path):
    config = tmp_path / "xvckit.yaml"
    url = f"sqlite:///{tmp_path}/data/xvckit.db"
    config.write_text(yaml.safe_dump({"storage": {"url": url}}))
    _load_fixture(url)
    runner = CliRunner()

    def run(*args: str) -> str:
        result = runner.invoke(app, ["db", *args])
        assert result.exit_code == 0, result.output
        return result.output

    assert json.loads(run("current", "--config", str(config), "--json"))["current"] is None
    assert f"upgraded from unversioned to {migrate.head()}" in run("upgrade", "--config", str(config))
    assert json.loads(run("current", "--config", str(config), "--json")) == {
        "store": url,
        "current": migrate.head(),
        "head": migrate.head(),
    }
    assert "the newest revision" in run("upgrade", "--config", str(config))
    assert run("history").startswith("0001  ")
