"""Secrets at rest: AES-GCM per value, bound to its name; the key from the environment or a 0600
file; config references; import of literal keys; no value in logs, output, errors or reprs."""

from __future__ import annotations

import base64
import json
import logging
import os
import pickle
import stat
import threading

import pytest
import sqlalchemy as sa
from typer.testing import CliRunner

from xvckit.cli import app
from xvckit.config import from_mapping, load
from xvckit.errors import UserError
from xvckit.store import Store, audit, secrets
from xvckit.store.secrets import SecretBox, SecretError, SecretKeyError, secrets_table

VALUE = "sk-live-Th1sIsTheProviderKeyNobodyMayS33"
OTHER = "sk-ant-AnotherProviderKeyThatMustStayHidden"
KEY = bytes(range(32))


@pytest.fixture(autouse=True)
def isolated(monkeypatch, tmp_path, caplog):
    """No real key or data dir of the user's; every log record captured, and checked."""
    monkeypatch.delenv(secrets.SECRET_KEY_ENV, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    caplog.set_level(logging.DEBUG)
    yield
    for secret in (VALUE, OTHER, base64.b64encode(KEY).decode(), KEY.hex()):
        assert secret not in caplog.text


@pytest.fixture
def store(store_url):
    opened = Store.open(store_url)
    yield opened
    opened.close()


@pytest.fixture
def box():
    return SecretBox(KEY, "test")


def raw_rows(store) -> list:
    with store.engine.connect() as conn:
        return [row._asdict() for row in conn.execute(sa.select(secrets_table))]


def everything_stored(store) -> bytes:
    """Every byte of the secrets and audit tables, to look for a plaintext value in."""
    with store.engine.connect() as conn:
        rows = [*conn.execute(sa.select(secrets_table)), *conn.execute(sa.select(audit.audit_log))]
    return b"".join(v if isinstance(v, bytes) else str(v).encode() for row in rows for v in row)


def test_round_trip_and_audit(store, box):
    assert secrets.put_secret(store, box, "openai-prod", VALUE, "cli:tester") is True
    assert secrets.get_secret(store, box, "openai-prod") == VALUE
    assert secrets.put_secret(store, box, "openai-prod", OTHER, "cli:tester") is False
    assert secrets.get_secret(store, box, "openai-prod") == OTHER
    secrets.put_secret(store, box, "a/b.c_d-e", "x", "admin")
    assert secrets.list_secret_names(store) == ["a/b.c_d-e", "openai-prod"]
    assert secrets.has_secret(store, "openai-prod") and not secrets.has_secret(store, "nope")

    (row,) = [r for r in raw_rows(store) if r["name"] == "openai-prod"]
    assert len(row["nonce"]) == 12 and row["key_id"] == box.key_id
    assert VALUE.encode() not in everything_stored(store) and OTHER.encode() not in everything_stored(store)

    assert secrets.delete_secret(store, "openai-prod", "cli:tester") is True
    assert secrets.delete_secret(store, "openai-prod", "cli:tester") is False
    with pytest.raises(SecretError, match="no secret named 'openai-prod'"):
        secrets.get_secret(store, box, "openai-prod")

    trail = [(e.action, e.target, e.detail) for e in audit.entries(store)]
    assert trail == [
        ("secret.put", "secret:openai-prod", {"created": True}),
        ("secret.put", "secret:openai-prod", {"created": False}),
        ("secret.put", "secret:a/b.c_d-e", {"created": True}),
        ("secret.delete", "secret:openai-prod", {}),
    ]
    assert audit.verify(store).ok


def test_same_value_never_seals_the_same_way(store, box):
    secrets.put_secret(store, box, "a", VALUE, "admin")
    secrets.put_secret(store, box, "b", VALUE, "admin")
    first, second = raw_rows(store)
    assert first["nonce"] != second["nonce"] and first["ciphertext"] != second["ciphertext"]


def test_bad_names_and_values(store, box):
    for name in ("", "-lead", "has space", "x" * 129, "semi;colon"):
        with pytest.raises(SecretError, match="is not valid"):
            secrets.put_secret(store, box, name, VALUE, "admin")
    with pytest.raises(SecretError, match="the value is empty"):
        secrets.put_secret(store, box, "ok", "", "admin")
    assert raw_rows(store) == []


def test_wrong_key_is_named_not_garbage(store, box):
    secrets.put_secret(store, box, "p", VALUE, "admin")
    other = SecretBox.generate()
    with pytest.raises(SecretKeyError, match="encrypted with another key") as caught:
        secrets.get_secret(store, other, "p")
    assert box.key_id in str(caught.value) and other.key_id in str(caught.value)
    # even with the fingerprint forged to match, the tag check refuses rather than decrypting to junk
    with store.engine.begin() as conn:
        conn.execute(secrets_table.update().values(key_id=other.key_id))
    with pytest.raises(SecretError, match="failed its integrity check"):
        secrets.get_secret(store, other, "p")


def test_a_second_key_is_refused(store, box):
    """A store's secrets are all sealed with one key: a put under another ($XVCKIT_SECRET_KEY set
    to another key, a key file made anew) is refused, and nothing is stored or audited."""
    secrets.put_secret(store, box, "p", VALUE, "admin")
    audited = len(audit.entries(store))
    other = SecretBox.generate()
    for name in ("p", "q"):  # replacing the only secret, or adding one
        with pytest.raises(
            SecretKeyError, match=f"encrypted with key {box.key_id}, the key from generated is"
        ):
            secrets.put_secret(store, other, name, OTHER, "admin")
    assert [(row["name"], row["key_id"]) for row in raw_rows(store)] == [("p", box.key_id)]
    assert len(audit.entries(store)) == audited


def test_no_new_key_file_beside_secrets_sealed_with_another(store):
    box = SecretBox.for_store(store)
    secrets.put_secret(store, box, "p", VALUE, "admin")
    key_file = store.data_dir / "secret.key"
    key_file.unlink()  # lost, or another data folder given
    with pytest.raises(
        SecretKeyError, match=f"encrypted with key {box.key_id}, and {key_file} does not exist"
    ):
        SecretBox.for_store(store)
    assert not key_file.exists()


def test_tampered_ciphertext(store, box):
    secrets.put_secret(store, box, "p", VALUE, "admin")
    (row,) = raw_rows(store)
    flipped = bytearray(row["ciphertext"])
    flipped[3] ^= 0x01
    with store.engine.begin() as conn:
        conn.execute(secrets_table.update().values(ciphertext=bytes(flipped)))
    with pytest.raises(SecretError, match="'p' failed its integrity check"):
        secrets.get_secret(store, box, "p")


def test_ciphertext_moved_to_another_name(store, box):
    secrets.put_secret(store, box, "mine", VALUE, "admin")
    secrets.put_secret(store, box, "theirs", OTHER, "admin")
    mine = next(r for r in raw_rows(store) if r["name"] == "mine")
    with store.engine.begin() as conn:
        conn.execute(
            secrets_table.update()
            .where(secrets_table.c.name == "theirs")
            .values(nonce=mine["nonce"], ciphertext=mine["ciphertext"])
        )
    with pytest.raises(SecretError, match=r"'theirs' failed its integrity check.*copied from another name"):
        secrets.get_secret(store, box, "theirs")
    assert secrets.get_secret(store, box, "mine") == VALUE


# --- the key --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        KEY.hex(),
        KEY.hex().upper(),
        base64.b64encode(KEY).decode(),
        base64.urlsafe_b64encode(KEY).decode().rstrip("="),
        f"  {base64.b64encode(KEY).decode()}\n",
    ],
)
def test_key_formats_accepted(text):
    assert secrets.parse_key(text) == KEY


BAD_KEYS = ["", "short", KEY.hex()[:-2], base64.b64encode(KEY[:31]).decode()]
BAD_KEYS += [base64.b64encode(KEY + b"x").decode(), "correct horse battery staple and more words", "Z" * 64]


@pytest.mark.parametrize("text", BAD_KEYS)
def test_key_formats_refused_without_echoing_them(text):
    with pytest.raises(SecretKeyError, match="XVCKIT_SECRET_KEY must be 32 random bytes") as caught:
        secrets.parse_key(text)
    if len(text) > 5:
        assert text.strip() not in str(caught.value)


def test_key_from_environment(monkeypatch, tmp_path):
    monkeypatch.setenv(secrets.SECRET_KEY_ENV, base64.b64encode(KEY).decode())
    box = SecretBox.load(tmp_path / "data")
    assert box.source == "XVCKIT_SECRET_KEY" and box.key_id == secrets.key_fingerprint(KEY)
    assert not (tmp_path / "data").exists()
    monkeypatch.setenv(secrets.SECRET_KEY_ENV, "not-a-key")
    with pytest.raises(SecretKeyError, match="XVCKIT_SECRET_KEY must be"):
        SecretBox.load(tmp_path / "data")


def test_key_file_created_0600_once(tmp_path):
    directory = tmp_path / "data"
    first = SecretBox.load(directory)
    path = directory / "secret.key"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert first.source == str(path) and len(secrets.parse_key(path.read_text())) == 32
    assert SecretBox.load(directory).key_id == first.key_id
    assert os.listdir(directory) == ["secret.key"]  # no temporary file left behind


def test_key_file_created_once_under_a_race(tmp_path):
    directory = tmp_path / "data"
    found, start = [], threading.Barrier(8)

    def load() -> None:
        start.wait()
        found.append(SecretBox.load(directory).key_id)

    threads = [threading.Thread(target=load) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(found) == 8 and len(set(found)) == 1


def test_key_file_readable_by_others_or_damaged(tmp_path):
    SecretBox.load(tmp_path)
    path = tmp_path / "secret.key"
    path.chmod(0o644)
    with pytest.raises(SecretKeyError, match=r"readable by others \(mode 644\); run: chmod 600"):
        SecretBox.load(tmp_path)
    path.chmod(0o600)
    path.write_text("damaged\n")
    with pytest.raises(SecretKeyError, match=f"key file {path} must be 32 random bytes"):
        SecretBox.load(tmp_path)


def test_key_file_beside_the_database(store, tmp_path):
    box = SecretBox.for_store(store)
    expected = tmp_path if store.engine.dialect.name == "sqlite" else tmp_path / "xdg/xvckit"
    assert box.source == str(expected / "secret.key")
    assert stat.S_IMODE((expected / "secret.key").stat().st_mode) == 0o600


def test_nothing_shows_a_key_or_value(store, box):
    text = repr(box) + str(box)
    assert KEY.hex() not in text and base64.b64encode(KEY).decode() not in text and "key_id" in text
    with pytest.raises(TypeError):
        pickle.dumps(box)
    secrets.put_secret(store, box, "p", VALUE, "admin")
    shown = repr(secrets.list_secrets(store)) + repr(audit.entries(store))
    assert VALUE not in shown and "p" in shown


# --- config references ------------------------------------------------------------------------------


def provider(name: str, *keys: str) -> dict:
    return {"name": name, "kind": "openai", "base_url": "https://example.invalid/v1", "api_keys": list(keys)}


def test_resolve_secret_refs(store, box):
    secrets.put_secret(store, box, "one", VALUE, "admin")
    secrets.put_secret(store, box, "two", OTHER, "admin")
    config = from_mapping(
        {"providers": [provider("a", "literal", "secret:one"), provider("b", "secret:two")]}
    )
    resolved = secrets.resolve_secret_refs(config, store, box)
    keys = [[k.get_secret_value() for k in p.api_keys] for p in resolved.providers]
    assert keys == [["literal", VALUE], [OTHER]]
    assert config.providers[0].api_keys[1].get_secret_value() == "secret:one"  # the input is untouched
    assert VALUE not in repr(resolved) and VALUE not in str(resolved.model_dump())

    broken = from_mapping({"providers": [provider("a", "secret:one"), provider("b", "x", "secret:missing")]})
    with pytest.raises(SecretError, match=r"^providers\[1\]\.api_keys\[1\]: no secret named 'missing'"):
        secrets.resolve_secret_refs(broken, store, box)


def test_resolve_without_refs_needs_no_key(store, tmp_path):
    config = from_mapping({"providers": [provider("a", "literal")]})
    assert secrets.resolve_secret_refs(config, store) is config
    assert not list(tmp_path.rglob("secret.key"))


def test_resolve_with_the_wrong_key_names_the_field(store, box):
    secrets.put_secret(store, box, "one", VALUE, "admin")
    config = from_mapping({"providers": [provider("a", "secret:one")]})
    with pytest.raises(SecretKeyError, match=r"^providers\[0\]\.api_keys\[0\]: secret 'one' was encrypted"):
        secrets.resolve_secret_refs(config, store, SecretBox.generate())


CONFIG = """\
# team gateway: comments and layout must survive the import
gateway:
  port: 4141   # the usual port

providers:
  - name: openai            # the main account
    kind: openai
    base_url: https://api.openai.com/v1
    api_keys:
      - {value}   # primary
      - env:BACKUP_KEY
      - 'secret:already'
  - name: Anthropic EU
    kind: anthropic
    base_url: https://api.anthropic.com
    api_keys: ["{other}", "{value}"]  # flow style
models: []
storage:
  url: {url}
"""


def test_import_literal_keys(store, store_url, box, tmp_path, monkeypatch):
    monkeypatch.setenv("BACKUP_KEY", "from-the-environment")
    path = tmp_path / "xvckit.yaml"
    path.write_text(CONFIG.format(value=VALUE, other=OTHER, url=store_url))
    path.chmod(0o640)
    result = secrets.import_literal_keys(path, store, box, "cli:tester")
    assert result.moved == [
        ("providers[0].api_keys[0]", "openai-key-1"),
        ("providers[1].api_keys[0]", "Anthropic-EU-key-1"),
        ("providers[1].api_keys[1]", "Anthropic-EU-key-2"),
    ]
    text = path.read_text()
    assert VALUE not in text and OTHER not in text
    assert stat.S_IMODE(path.stat().st_mode) == 0o640
    expected = (
        CONFIG.format(value=VALUE, other=OTHER, url=store_url)
        .replace(f"      - {VALUE}   # primary", '      - "secret:openai-key-1"   # primary')
        .replace(f'["{OTHER}", "{VALUE}"]', '["secret:Anthropic-EU-key-1", "secret:Anthropic-EU-key-2"]')
    )
    assert text == expected  # only the three values changed: comments, quotes and layout kept

    secrets.put_secret(store, box, "already", "stored-before", "admin")
    resolved = secrets.resolve_secret_refs(load(path), store, box)
    assert [[k.get_secret_value() for k in p.api_keys] for p in resolved.providers] == [
        [VALUE, "from-the-environment", "stored-before"],
        [OTHER, VALUE],
    ]
    again = secrets.import_literal_keys(path, store, box, "cli:tester")
    assert again.moved == [] and path.read_text() == text

    actions = [(e.action, e.detail.get("field")) for e in audit.entries(store)]
    assert actions[:4] == [
        ("secret.put", "providers[0].api_keys[0]"),
        ("secret.put", "providers[1].api_keys[0]"),
        ("secret.put", "providers[1].api_keys[1]"),
        ("config.rewrite", None),
    ]
    assert VALUE.encode() not in everything_stored(store) and OTHER.encode() not in everything_stored(store)


def test_import_keeps_crlf_and_reuses_or_avoids_names(store, box, tmp_path):
    secrets.put_secret(store, box, "p-key-1", "a-different-value", "admin")
    secrets.put_secret(store, box, "q-key-1", VALUE, "admin")
    path = tmp_path / "x.yaml"
    body = f"providers:\r\n  - {{name: p, kind: openai, base_url: http://x, api_keys: [{VALUE}]}}\r\n"
    body += f"  - {{name: q, kind: openai, base_url: http://y, api_keys: [{VALUE}]}}\r\n"
    path.write_bytes(body.encode())
    result = secrets.import_literal_keys(path, store, box, "admin")
    assert result.moved == [
        ("providers[0].api_keys[0]", "p-key-1-2"),
        ("providers[1].api_keys[0]", "q-key-1"),
    ]
    assert result.reused == 1
    rewritten = body.replace(f"[{VALUE}]}}\r\n  - {{name: q", '["secret:p-key-1-2"]}\r\n  - {name: q', 1)
    assert path.read_bytes() == rewritten.replace(f"[{VALUE}]", '["secret:q-key-1"]').encode()
    assert secrets.get_secret(store, box, "p-key-1") == "a-different-value"
    assert secrets.get_secret(store, box, "p-key-1-2") == VALUE


def test_import_refuses_anchors(store, box, tmp_path):
    path = tmp_path / "x.yaml"
    original = (
        f"keys: &main {VALUE}\n"
        "providers:\n  - {name: p, kind: openai, base_url: http://x, api_keys: [*main]}\n"
    )
    path.write_text(original)
    with pytest.raises(
        SecretError, match=r"providers\[0\]\.api_keys\[0\]: the key uses a YAML anchor"
    ) as caught:
        secrets.import_literal_keys(path, store, box, "admin")
    assert VALUE not in str(caught.value)
    assert path.read_text() == original and raw_rows(store) == []


def test_import_bad_yaml_does_not_echo_the_file(store, box, tmp_path):
    path = tmp_path / "x.yaml"
    path.write_text(f"providers:\n  - api_keys: [{VALUE}\n  bad: : :\n")
    with pytest.raises(SecretError, match="not valid YAML") as caught:
        secrets.import_literal_keys(path, store, box, "admin")
    assert VALUE not in str(caught.value)


# --- the CLI ---------------------------------------------------------------------------------------


@pytest.fixture
def config_file(store_url, tmp_path):
    path = tmp_path / "xvckit.yaml"
    path.write_text(f"storage:\n  url: {store_url}\n")
    return path


def test_cli_set_list_delete(store, config_file):
    runner = CliRunner()
    cfg = ["--config", str(config_file)]
    done = runner.invoke(app, ["secrets", "set", "openai-prod", *cfg], input=VALUE + "\n")
    assert done.exit_code == 0, done.output
    assert done.stdout.startswith("stored secret openai-prod (encrypted, key from ")
    assert "secret:openai-prod" in done.stdout
    assert secrets.get_secret(store, SecretBox.for_store(store), "openai-prod") == VALUE  # newline dropped

    again = runner.invoke(app, ["secrets", "set", "openai-prod", *cfg], input=OTHER)
    assert again.stdout.startswith("replaced secret openai-prod")

    refused = runner.invoke(app, ["secrets", "set", "openai-prod", VALUE, *cfg])  # a value in argv: refused
    assert isinstance(refused.exception, UserError) and "not from the command line" in str(refused.exception)
    assert VALUE not in str(refused.exception)
    assert secrets.get_secret(store, SecretBox.for_store(store), "openai-prod") == OTHER

    listed = runner.invoke(app, ["secrets", "list", *cfg])
    assert listed.exit_code == 0 and listed.stdout.startswith("openai-prod  updated ")
    as_json = runner.invoke(app, ["secrets", "list", *cfg, "--json"])
    assert [item["name"] for item in json.loads(as_json.stdout)] == ["openai-prod"]

    deleted = runner.invoke(app, ["secrets", "delete", "openai-prod", *cfg])
    assert deleted.exit_code == 0 and deleted.stdout == "deleted secret openai-prod\n"
    missing = runner.invoke(app, ["secrets", "delete", "openai-prod", *cfg])
    assert isinstance(missing.exception, UserError)
    assert "no secret named 'openai-prod'" in str(missing.exception)
    empty = runner.invoke(app, ["secrets", "set", "blank", *cfg], input="\n")
    assert isinstance(empty.exception, SecretError) and "value is empty" in str(empty.exception)

    for result in (done, again, refused, listed, as_json, deleted, missing, empty):
        assert VALUE not in result.output and OTHER not in result.output


def test_cli_set_refuses_a_second_key(store, config_file, monkeypatch):
    cfg = ["--config", str(config_file)]
    assert CliRunner().invoke(app, ["secrets", "set", "a", *cfg], input=VALUE).exit_code == 0
    monkeypatch.setenv(secrets.SECRET_KEY_ENV, base64.b64encode(KEY).decode())  # not the key file's
    refused = CliRunner().invoke(app, ["secrets", "set", "b", *cfg], input=OTHER)
    assert isinstance(refused.exception, SecretKeyError)
    assert str(refused.exception).startswith(
        "secret 'b' not stored: the store's secrets are encrypted with key "
    )
    assert secrets.list_secret_names(store) == ["a"]


def test_cli_delete_warns_about_references(store, box, tmp_path, store_url):
    path = tmp_path / "xvckit.yaml"
    path.write_text(
        f"storage: {{url: {store_url}}}\nproviders:\n"
        "  - {name: a, kind: openai, base_url: http://x, api_keys: [secret:gone]}\n"
    )
    secrets.put_secret(store, SecretBox.for_store(store), "gone", VALUE, "admin")
    result = CliRunner().invoke(app, ["secrets", "delete", "gone", "--config", str(path)])
    assert result.exit_code == 0
    assert "still refers to it at providers[0].api_keys[0]" in result.stderr


def test_cli_import(store, store_url, tmp_path):
    path = tmp_path / "xvckit.yaml"
    path.write_text(
        f"storage: {{url: {store_url}}}\n"
        "providers:\n"
        "  - name: openai\n"
        "    kind: openai\n"
        "    base_url: https://api.openai.com/v1\n"
        f"    api_keys: [{VALUE}]   # pasted from the dashboard\n"
    )
    runner = CliRunner()
    result = runner.invoke(app, ["secrets", "import", "--config", str(path)])
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith("providers[0].api_keys[0] -> secret:openai-key-1\n")
    assert "moved 1 key(s) into the store" in result.stdout
    assert VALUE not in result.output and VALUE not in path.read_text()
    assert "# pasted from the dashboard" in path.read_text()
    nothing = runner.invoke(app, ["secrets", "import", "--config", str(path), "--json"])
    assert json.loads(nothing.stdout)["moved"] == []
    box = SecretBox.for_store(store)
    resolved = secrets.resolve_secret_refs(load(path), store, box)
    assert resolved.providers[0].api_keys[0].get_secret_value() == VALUE
