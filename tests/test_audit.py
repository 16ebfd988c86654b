"""The audit trail: a hash chain that shows edits, removals and a removed tail, on both back ends."""

from __future__ import annotations

import datetime as dt
import hashlib
import io
import itertools
import json
import threading

import pytest
import sqlalchemy as sa
from typer.testing import CliRunner

from xvckit.cli import app
from xvckit.errors import UserError
from xvckit.store import Store, audit

RAW_KEY = "sk-proj-Abcdefghijklmnopqrstuvwxyz0123456789"
VIRTUAL_KEY = "xvc-Zyxwvutsrqponmlkjihgfedcba9876543210"


@pytest.fixture
def store(store_url):
    opened = Store.open(store_url)
    yield opened
    opened.close()


def fill(store, n: int = 5) -> list[audit.AuditEntry]:
    return [
        audit.append(store, "cli:tester", "key.create", f"key_{i:04d}", {"name": f"k{i}", "rpm": i})
        for i in range(1, n + 1)
    ]


def sql(store, statement: str, **params) -> None:
    """Tamper with the table directly, as someone with database access would."""
    with store.engine.begin() as conn:
        conn.execute(sa.text(statement), params)


def test_chain_links_and_verifies(store):
    made = fill(store)
    assert [e.id for e in made] == [1, 2, 3, 4, 5]
    assert made[0].prev_hash == audit.GENESIS_HASH
    assert all(later.prev_hash == earlier.hash for earlier, later in itertools.pairwise(made))
    assert audit.entries(store) == made
    result = audit.verify(store)
    assert result.ok and result.checked == 5 and result.head_id == 5
    assert "5 entries checked, chain intact" in result.describe()


def test_empty_trail_verifies(store):
    assert audit.verify(store) == audit.VerifyResult(True, 0, None)


def test_hash_covers_every_field(store):
    entry = fill(store, 1)[0]
    row = [entry.id, audit._format_ts(entry.ts), entry.actor, entry.action, entry.target]
    expected = audit.canonical_json([*row, audit.canonical_json(entry.detail), entry.prev_hash])
    assert entry.hash == hashlib.sha256(expected.encode()).hexdigest()


@pytest.mark.parametrize(
    ("column", "value"),
    [("detail", '{"name":"k3","rpm":9999}'), ("actor", "admin"), ("ts", "2020-01-01T00:00:00.000000Z")],
)
def test_row_edited_in_the_database_is_named(store, column, value):
    fill(store)
    sql(store, f"UPDATE audit_log SET {column} = :v WHERE id = 3", v=value)
    result = audit.verify(store)
    assert not result.ok
    assert result.broken_id == 3 and result.reason.startswith("edited")
    assert result.checked == 2
    assert result.describe().startswith("broken at entry #3: edited")


def test_edit_with_recomputed_hash_breaks_the_next_link(store):
    fill(store)
    with store.engine.begin() as conn:
        row = conn.execute(sa.select(audit.audit_log).where(audit.audit_log.c.id == 3)).one()
        detail = '{"name":"k3","rpm":1}'
        forged = audit.entry_hash(row.id, row.ts, row.actor, row.action, row.target, detail, row.prev_hash)
        conn.execute(
            audit.audit_log.update().where(audit.audit_log.c.id == 3).values(detail=detail, hash=forged)
        )
    result = audit.verify(store)
    assert (result.broken_id, result.reason.split(":")[0]) == (4, "link broken")


def test_middle_row_removed(store):
    fill(store)
    sql(store, "DELETE FROM audit_log WHERE id = 3")
    result = audit.verify(store)
    assert not result.ok and result.broken_id == 4
    assert result.reason == "removed: entry #3 before it is missing"


def test_first_rows_removed(store):
    fill(store)
    sql(store, "DELETE FROM audit_log WHERE id <= 2")
    result = audit.verify(store)
    assert (result.ok, result.broken_id) == (False, 3)
    assert "#1..#2" in result.reason


def test_last_row_removed(store):
    fill(store)
    sql(store, "DELETE FROM audit_log WHERE id = 5")
    result = audit.verify(store)
    assert not result.ok and result.broken_id == 5 and result.checked == 4
    assert result.reason == "removed: the last entry #5"


def test_every_row_removed(store):
    fill(store, 3)
    sql(store, "DELETE FROM audit_log")
    result = audit.verify(store)
    assert (result.ok, result.broken_id, result.reason) == (False, 1, "removed: the last entries #1..#3")


def test_tail_removed_then_appended_stays_detected(store):
    fill(store)
    sql(store, "DELETE FROM audit_log WHERE id = 5")
    assert audit.append(store, "admin", "team.create", "team_x").id == 6  # numbering goes on from the head
    result = audit.verify(store)
    assert (result.broken_id, result.reason) == (6, "removed: entry #5 before it is missing")


def test_head_record_removed_or_forged(store):
    fill(store, 2)
    forged = "ab" * 32
    sql(store, "UPDATE xvckit_meta SET value = :v WHERE key = 'audit_head'", v=f"2:{forged}")
    assert audit.verify(store).reason.startswith("head record not signed")
    sql(store, "UPDATE xvckit_meta SET value = :v WHERE key = 'audit_head'", v=f"2:{forged}:{'cd' * 32}")
    assert audit.verify(store).reason.startswith("head record's signature does not match")
    signed = f"2:{forged}:{audit._mac(audit.head_key(store), 2, forged)}"  # as only the key's holder can
    sql(store, "UPDATE xvckit_meta SET value = :v WHERE key = 'audit_head'", v=signed)
    assert audit.verify(store).reason.startswith("head record does not match")
    sql(store, "DELETE FROM xvckit_meta WHERE key = 'audit_head'")
    assert audit.verify(store).reason.startswith("head record missing")


def test_row_added_behind_the_heads_back(store):
    made = fill(store, 2)
    forged = audit.entry_hash(
        3, "2030-01-01T00:00:00.000000Z", "admin", "key.create", "k", "{}", made[-1].hash
    )
    sql(
        store,
        "INSERT INTO audit_log (id, ts, actor, action, target, detail, prev_hash, hash) "
        "VALUES (3, '2030-01-01T00:00:00.000000Z', 'admin', 'key.create', 'k', '{}', :p, :h)",
        p=made[-1].hash,
        h=forged,
    )
    assert audit.verify(store).reason.startswith("appended outside xvckit")


def test_concurrent_appends_keep_one_chain(store_url):
    """Two engines (as two processes would have) and several threads each, all appending at once."""
    stores = [Store.open(store_url), Store.open(store_url)]
    threads_per_store, per_thread = 4, 12
    start = threading.Barrier(len(stores) * threads_per_store)
    errors: list[BaseException] = []

    def worker(store: Store, n: int) -> None:
        try:
            start.wait()
            for i in range(per_thread):
                audit.append(store, f"key:key_{n}", "key.update", f"key_{n}", {"i": i})
        except BaseException as exc:
            errors.append(exc)

    threads = [
        threading.Thread(target=worker, args=(store, n))
        for n, store in enumerate(s for s in stores for _ in range(threads_per_store))
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    try:
        assert not errors
        total = len(threads) * per_thread
        result = audit.verify(stores[0])
        assert result.ok and result.checked == total and result.head_id == total
        per_actor = {}
        for entry in audit.entries(stores[1]):
            per_actor.setdefault(entry.actor, []).append(entry.detail["i"])
        assert all(seen == list(range(per_thread)) for seen in per_actor.values())
    finally:
        for store in stores:
            store.close()


def test_transaction_groups_a_change_with_its_entry(store):
    fill(store, 1)
    with pytest.raises(RuntimeError), audit.transaction(store) as conn:
        audit.append_in(conn, "admin", "key.revoke", "key_0001")
        raise RuntimeError("the change failed")
    assert len(audit.entries(store)) == 1 and audit.verify(store).ok
    with audit.transaction(store) as conn:
        audit.append_in(conn, "admin", "key.revoke", "key_0001")
    assert audit.verify(store).head_id == 2


def test_no_secret_reaches_the_table(store):
    detail = {
        "api_key": "plain-provider-key",
        "new_secret": "hunter2-secret",
        "Authorization": "Bearer abcdefghijklmnop",
        "nested": {"password": "pa55word", "tokens": [{"token": "tok-123"}], "note": f"rotated {RAW_KEY}"},
        "X-Api-Key": "x-api-key-value",
        "keys": ["k-one", "k-two"],
        "headers": {"authorization": "anything"},
        "key_id": "key_ab12",
        "secret_name": "openai-prod",
        "max_tokens": 4096,
        "budget_usd": 1.5,
        "raw": b"bytes",
        "when": dt.datetime(2025, 1, 2, 3, 4, 5, tzinfo=dt.UTC),
        "list": [VIRTUAL_KEY, "fine"],
    }
    entry = audit.append(store, f"key:{VIRTUAL_KEY}", "key.create", f"key {RAW_KEY}", detail)
    assert entry.actor == "key:[redacted]" and entry.target == "key [redacted]"
    d = entry.detail
    assert d["api_key"] == d["new_secret"] == d["Authorization"] == d["X-Api-Key"] == d["raw"] == "[redacted]"
    assert d["nested"] == {
        "password": "[redacted]",
        "tokens": [{"token": "[redacted]"}],
        "note": "rotated [redacted]",
    }
    assert d["keys"] == ["[redacted]", "[redacted]"] and d["headers"] == {"authorization": "[redacted]"}
    assert (d["key_id"], d["secret_name"], d["max_tokens"], d["budget_usd"]) == (
        "key_ab12",
        "openai-prod",
        4096,
        1.5,
    )
    assert d["when"] == "2025-01-02T03:04:05.000000Z" and d["list"] == ["[redacted]", "fine"]
    with store.engine.connect() as conn:
        stored = json.dumps([list(row) for row in conn.execute(sa.select(audit.audit_log))])
    hidden = ["plain-provider-key", "hunter2", "abcdefghijklmnop", "pa55word", "tok-123", RAW_KEY]
    hidden += [VIRTUAL_KEY, "x-api-key-value", "k-one", "anything"]
    for secret in hidden:
        assert secret not in stored and secret not in repr(entry)
    assert audit.verify(store).ok


def test_bad_input_is_refused(store):
    for action in ("Key.Create", "create", "key.", "", "key create"):
        with pytest.raises(ValueError, match=r"object\.verb"):
            audit.append(store, "admin", action, "x")
    with pytest.raises(TypeError, match="JSON data"):
        audit.append(store, "admin", "key.create", "x", {"obj": object()})
    with pytest.raises(ValueError, match="actor"):
        audit.append(store, "", "key.create", "x")
    assert audit.entries(store) == []


def test_entries_filters(store):
    fill(store, 3)
    audit.append(store, "admin", "team.create", "team_a")
    audit.append(store, "admin", "key_x.revoke", "key_0001")  # not matched by the key.* prefix
    assert [e.id for e in audit.entries(store, limit=2)] == [4, 5]
    assert [e.id for e in audit.entries(store, action="team.create")] == [4]
    assert [e.id for e in audit.entries(store, action="key.*")] == [1, 2, 3]
    assert [e.id for e in audit.entries(store, action="key.*", limit=1)] == [3]
    assert len(audit.entries(store, since=dt.timedelta(minutes=5))) == 5
    assert audit.entries(store, since=dt.datetime.now(dt.UTC) + dt.timedelta(minutes=1)) == []
    sql(store, "UPDATE audit_log SET ts = '2001-01-01T00:00:00.000000Z' WHERE id <= 2")
    assert [e.id for e in audit.entries(store, since=dt.timedelta(days=7))] == [3, 4, 5]


def test_export_jsonl_carries_the_chain(store):
    made = fill(store, 3)
    buffer = io.StringIO()
    assert audit.export_jsonl(store, buffer, batch=2) == 3
    lines = [json.loads(line) for line in buffer.getvalue().splitlines()]
    assert lines == [e.to_json() for e in made]
    for line in lines:
        fields = [line[k] for k in ("id", "ts", "actor", "action", "target")]
        digest = audit.entry_hash(*fields, audit.canonical_json(line["detail"]), line["prev_hash"])
        assert digest == line["hash"]


def test_verify_pages_through_long_chains(store):
    fill(store, 7)
    assert audit.verify(store, batch=3).checked == 7
    sql(store, "DELETE FROM audit_log WHERE id = 6")
    assert audit.verify(store, batch=3).broken_id == 7


def test_parse_since():
    now = dt.datetime.now(dt.UTC)
    assert abs((now - audit.parse_since("7d")) - dt.timedelta(days=7)) < dt.timedelta(seconds=5)
    assert abs((now - audit.parse_since("90m")) - dt.timedelta(minutes=90)) < dt.timedelta(seconds=5)
    assert audit.parse_since("2025-01-31") == dt.datetime(2025, 1, 31, tzinfo=dt.UTC)
    with pytest.raises(UserError, match="--since: cannot read 'soon'"):
        audit.parse_since("soon")


def test_secret_like_names():
    for name in ("api_key", "apiKey", "APIKEY", "x-api-key", "secret", "client_secret", "token", "password",
                 "keys", "Authorization", "key_hash"):  # fmt: skip
        assert audit.secret_like_name(name), name
    for name in ("key_id", "secret_name", "key_prefix", "max_tokens", "input_tokens", "name", "models", "rpm",
                 "keyboard", "monkey"):  # fmt: skip
        assert not audit.secret_like_name(name), name


# --- the CLI ---------------------------------------------------------------------------------------


@pytest.fixture
def config_file(store_url, tmp_path):
    path = tmp_path / "xvckit.yaml"
    path.write_text(f"storage:\n  url: {store_url}\n")
    return path


def test_cli_list_verify_export(store, config_file, tmp_path):
    runner = CliRunner()
    fill(store, 3)
    audit.append(store, "admin", "secret.put", "secret:x", {"value": "s", "token": "sekrit-token"})

    shown = runner.invoke(app, ["audit", "list", "--config", str(config_file)])
    assert shown.exit_code == 0, shown.output
    assert "key_0003" in shown.stdout and "secret.put" in shown.stdout and "[redacted]" in shown.stdout
    assert "sekrit" not in shown.stdout

    as_json = runner.invoke(
        app, ["audit", "list", "-c", str(config_file), "--json", "--limit", "2", "--since", "1d"]
    )
    assert [e["id"] for e in json.loads(as_json.stdout)] == [3, 4]
    by_action = runner.invoke(app, ["audit", "list", "-c", str(config_file), "--json", "--action", "key.*"])
    assert len(json.loads(by_action.stdout)) == 3

    ok = runner.invoke(app, ["audit", "verify", "--config", str(config_file)])
    assert ok.exit_code == 0 and ok.stdout.startswith("ok: 4 entries checked")

    out = tmp_path / "audit.jsonl"
    exported = runner.invoke(app, ["audit", "export", "--config", str(config_file), "--out", str(out)])
    assert exported.exit_code == 0 and "wrote 4 audit entries" in exported.stderr
    assert [json.loads(line)["id"] for line in out.read_text().splitlines()] == [1, 2, 3, 4]
    to_stdout = runner.invoke(app, ["audit", "export", "--config", str(config_file)])
    assert to_stdout.stdout == out.read_text()

    sql(store, "UPDATE audit_log SET detail = :d WHERE id = 2", d='{"name":"k2","rpm":0}')
    broken = runner.invoke(app, ["audit", "verify", "--config", str(config_file)])
    assert broken.exit_code == 1
    assert broken.stdout.startswith("broken at entry #2: edited")
    as_json = runner.invoke(app, ["audit", "verify", "--config", str(config_file), "--json"])
    assert as_json.exit_code == 1 and json.loads(as_json.stdout)["broken_id"] == 2


def test_cli_bad_since_is_a_user_error(config_file):
    result = CliRunner().invoke(app, ["audit", "list", "--config", str(config_file), "--since", "lately"])
    assert isinstance(result.exception, UserError)
