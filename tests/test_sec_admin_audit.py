"""Issue 19, hole 10: a cut or emptied audit trail does not verify. The head is signed with a
key the database does not hold, so whoever edits the database can neither move it back nor
remove it, and a later append does not launder the cut. Admin changes go through the real
HTTP server; the tampering is SQL, as someone with database access would do it."""

from __future__ import annotations

import httpx
import pytest
import sqlalchemy as sa
import yaml
from typer.testing import CliRunner

from conftest import MASTER_KEY
from xvckit.cli import app


@pytest.fixture
def gw(make_gateway, store_url):
    return make_gateway({}, storage_url=store_url)


@pytest.fixture
def admin(gw):
    client = httpx.Client(base_url=f"{gw.url}/admin", headers={"authorization": f"Bearer {MASTER_KEY}"})
    assert client.post("/teams", json={"name": "blue"}).status_code == 201
    for name in ("a", "b", "c", "d"):
        assert client.post("/keys", json={"name": name, "team": "blue"}).status_code == 201
    assert client.get("/audit/verify").json()["ok"] is True
    return client


@pytest.fixture
def cli(tmp_path, store_url):
    config = tmp_path / "xvckit.yaml"
    config.write_text(yaml.safe_dump({"storage": {"url": store_url}}))

    def run(*args: str):
        return CliRunner().invoke(app, [*args, "--config", str(config)])

    return run


def sql(gw, statement: str, **params) -> None:
    with gw.gateway.store.engine.begin() as conn:
        conn.execute(sa.text(statement), params)


def head(gw) -> str:
    with gw.gateway.store.engine.connect() as conn:
        return conn.execute(sa.text("SELECT value FROM xvckit_meta WHERE key = 'audit_head'")).scalar()


def entry_hash(gw, entry_id: int) -> str:
    with gw.gateway.store.engine.connect() as conn:
        return conn.execute(sa.text("SELECT hash FROM audit_log WHERE id = :i"), {"i": entry_id}).scalar()


def fails(admin, cli, reason: str) -> None:
    verdict = admin.get("/audit/verify").json()
    assert verdict["ok"] is False and reason in verdict["reason"], verdict
    result = cli("audit", "verify")
    assert result.exit_code == 1 and reason in result.stdout


@pytest.mark.parametrize("keep_old_signature", [False, True])
def test_newest_entries_cut_and_head_moved_back(gw, admin, cli, keep_old_signature):
    last = int(head(gw).split(":")[0])
    signature = head(gw).split(":")[2:] if keep_old_signature else []
    sql(gw, "DELETE FROM audit_log WHERE id > :k", k=last - 2)
    moved = ":".join([str(last - 2), entry_hash(gw, last - 2), *signature])
    sql(gw, "UPDATE xvckit_meta SET value = :v WHERE key = 'audit_head'", v=moved)
    fails(admin, cli, "head record")
    # the next admin change extends the chain but does not vouch for the moved head
    assert admin.post("/keys", json={"name": "e", "team": "blue"}).status_code == 201
    fails(admin, cli, "head record")


def test_emptied_trail(gw, admin, cli):
    sql(gw, "DELETE FROM audit_log")
    sql(gw, "DELETE FROM xvckit_meta WHERE key = 'audit_head'")
    fails(admin, cli, "emptied")
    assert admin.post("/keys", json={"name": "e", "team": "blue"}).status_code == 201
    fails(admin, cli, "head record not signed")


def test_a_head_left_unsigned_by_0_1_is_signed_once_on_request(gw, admin, cli):
    last = int(head(gw).split(":")[0])
    sql(gw, "UPDATE xvckit_meta SET value = :v WHERE key = 'audit_head'", v=f"{last}:{entry_hash(gw, last)}")
    fails(admin, cli, "head record not signed")
    signed = cli("audit", "verify", "--sign-head")
    assert signed.exit_code == 0 and signed.stdout.startswith(f"ok: {last + 1} entries checked")
    assert admin.get("/audit?limit=1").json()[0]["action"] == "audit.sign_head"
    assert admin.post("/keys", json={"name": "e", "team": "blue"}).status_code == 201
    assert admin.get("/audit/verify").json()["ok"] is True


def test_sign_head_refuses_a_broken_chain(gw, admin, cli):
    last = int(head(gw).split(":")[0])
    sql(gw, "DELETE FROM audit_log WHERE id = 2")
    sql(gw, "UPDATE xvckit_meta SET value = :v WHERE key = 'audit_head'", v=f"{last}:{entry_hash(gw, last)}")
    refused = cli("audit", "verify", "--sign-head")
    assert refused.exit_code == 1 and "removed: entry #2" in refused.stdout
    fails(admin, cli, "removed: entry #2")


def test_a_process_with_another_secret_key_cannot_vouch_for_the_head(gw, admin, cli, monkeypatch):
    monkeypatch.setenv("XVCKIT_SECRET_KEY", "ab" * 32)
    fails(admin, cli, "signature does not match")
    assert admin.post("/keys", json={"name": "e", "team": "blue"}).status_code == 201  # the trail goes on
    monkeypatch.delenv("XVCKIT_SECRET_KEY")
    fails(admin, cli, "head record not signed")
    signed = cli("audit", "verify", "--sign-head")  # its holder knows what happened, and vouches
    assert signed.exit_code == 0 and signed.stdout.startswith("ok: ")
