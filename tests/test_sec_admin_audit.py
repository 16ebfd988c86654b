"""Issue 19, hole 10: a cut or emptied audit trail does not verify. The head is signed with a
key the database does not hold, so whoever edits the database can neither move it back nor
remove it, and a later append does not launder the cut. Admin changes go through the real
HTTP server; the tampering is SQL, as someone with database access would do it."""

from __future__ import annotations

import httpx
import pytest
import sqlalchemy as sa

from conftest import MASTER_KEY
from xvckit.store import audit


@pytest.fixture
def gw(make_gateway, store_url):
    return make_gateway({}, storage_url=store_url)


@pytest.fixture
def master(gw):
    """The admin API under the master key, on a store with nothing in it yet."""
    return httpx.Client(base_url=f"{gw.url}/admin", headers={"authorization": f"Bearer {MASTER_KEY}"})


@pytest.fixture
def admin(master):
    client = master
    assert client.post("/teams", json={"name": "blue"}).status_code == 201
    for name in ("a", "b", "c", "d"):
        assert client.post("/keys", json={"name": name, "team": "blue"}).status_code == 201
    assert client.get("/audit/verify").json()["ok"] is True
    return client


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


def config_loads(gw, count: int) -> list[str]:
    """`count` gateway starts (each writes `config.load`); the head after each."""
    heads = []
    for _ in range(count):
        audit.append(gw.gateway.store, "gateway", "config.load", "xvckit.yaml", {})
        heads.append(head(gw))
    return heads


def test_an_emptied_trail_of_config_loads_fails_verify(gw, master, cli):
    config_loads(gw, 3)
    assert master.get("/audit/verify").json()["ok"] is True  # only config.load: the store is "pristine"
    sql(gw, "DELETE FROM audit_log")
    sql(gw, "DELETE FROM xvckit_meta WHERE key = 'audit_head'")
    fails(master, cli, "the trail is shorter than this machine has seen: entry #3 is gone")
    config_loads(gw, 1)  # the next start does not sign over the cut
    fails(master, cli, "head record not signed")


def test_a_head_rolled_back_to_an_older_validly_signed_one_fails_verify(gw, master, cli, store_url):
    older = config_loads(gw, 3)[0]
    sql(gw, "DELETE FROM audit_log WHERE id > 1")
    sql(gw, "UPDATE xvckit_meta SET value = :v WHERE key = 'audit_head'", v=older)
    fails(master, cli, "entry #3 is gone")
    # emptied, and a new trail signed in its place by a replica on another machine (no record)
    sql(gw, "DELETE FROM audit_log")
    sql(gw, "DELETE FROM xvckit_meta WHERE key = 'audit_head'")
    seen = audit.seen_head_path(store_url)
    record = seen.read_text()
    seen.unlink()
    config_loads(gw, 3)
    seen.write_text(record)
    fails(master, cli, "entry #3 is not the one this machine has seen")


def test_a_fresh_store_verifies_and_records_its_head_0600(gw, master, cli, store_url):
    seen = audit.seen_head_path(store_url)
    assert not seen.exists()
    assert master.get("/audit/verify").json() == {
        "ok": True, "checked": 0, "head_id": None, "broken_id": None, "reason": None
    }  # fmt: skip
    assert cli("audit", "verify").exit_code == 0
    last = config_loads(gw, 2)[-1]
    assert seen.read_text().strip() == last and seen.stat().st_mode & 0o777 == 0o600


def test_another_machine_without_the_record_verifies_an_intact_trail(gw, master, cli, store_url):
    config_loads(gw, 3)
    seen = audit.seen_head_path(store_url)
    seen.unlink()
    assert master.get("/audit/verify").json()["ok"] is True
    result = cli("audit", "verify")
    assert result.exit_code == 0 and result.stdout.startswith("ok: 3 entries checked")
    seen.write_text(f"3:{'0' * 64}:{'0' * 64}\n")  # a record this key did not sign counts for nothing
    assert master.get("/audit/verify").json()["ok"] is True
