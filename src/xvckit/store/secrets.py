"""Secrets encrypted at rest: provider keys and anything the admin API stores.

Each value is sealed with AES-256-GCM under a fresh 96-bit nonce, with the secret's name in
the associated data, so a ciphertext copied to another name fails to open. The key comes
from `XVCKIT_SECRET_KEY` (32 bytes as base64, urlsafe base64 or 64 hex digits) or from
`secret.key` in the store's data folder (beside the SQLite database by default), generated once
(mode 0600). Each row records a short fingerprint of the key that sealed it, so a wrong key is
reported as such instead of as damage, and a second key is refused: a store's secrets are all
sealed with one.

Nothing here prints, logs or reprs a secret value; errors name the secret, never its value.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import datetime as dt
import hashlib
import hmac
import os
import re
import secrets as _random
import stat
from pathlib import Path
from typing import Any

import sqlalchemy as sa
import yaml
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from pydantic import SecretStr

from xvckit.config.schema import Config
from xvckit.errors import UserError
from xvckit.store import audit
from xvckit.store.schema import metadata

SECRET_KEY_ENV = "XVCKIT_SECRET_KEY"
KEY_FILE = "secret.key"
REF_PREFIX = "secret:"
_AAD_PREFIX = b"xvckit/secret/v1\0"
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.\-/]{0,127}")

secrets_table = sa.Table(
    "secrets",
    metadata,
    sa.Column("name", sa.String(128), primary_key=True),
    sa.Column("key_id", sa.String(16), nullable=False),  # fingerprint of the sealing key, not the key
    sa.Column("nonce", sa.LargeBinary, nullable=False),
    sa.Column("ciphertext", sa.LargeBinary, nullable=False),
    sa.Column("created_at", sa.String(32), nullable=False),
    sa.Column("updated_at", sa.String(32), nullable=False),
)


class SecretError(UserError):
    """A secret cannot be stored or read; the message names it, never its value."""


class SecretKeyError(SecretError):
    """The encryption key is missing, malformed or not the one the store was sealed with."""


@dataclasses.dataclass(frozen=True)
class SecretInfo:
    name: str
    created_at: str
    updated_at: str


@dataclasses.dataclass(frozen=True)
class ImportResult:
    path: Path
    moved: list[tuple[str, str]]  # (field path, secret name) for each literal key moved
    reused: int = 0  # secrets already in the store with the same value, used as they were


class SecretBox:
    """AES-GCM with one 256-bit key. Its repr, str and pickled form never show the key."""

    __slots__ = ("_aead", "_key", "key_id", "source")

    def __init__(self, key: bytes, source: str = "given") -> None:
        if len(key) != 32:
            raise SecretKeyError(f"secret key from {source} must be 32 bytes, not {len(key)}")
        self._aead = AESGCM(key)
        self._key = key
        self.key_id = key_fingerprint(key)
        self.source = source

    @classmethod
    def for_store(cls, store) -> SecretBox:
        """The box for a store: `XVCKIT_SECRET_KEY` if set, else the key file in its data folder,
        made only for a store that holds no secret yet: a new key beside secrets sealed with
        another would seal new ones that no single key opens along with the old."""
        path = store.data_dir / KEY_FILE
        if not os.environ.get(SECRET_KEY_ENV, "").strip() and not path.exists():
            sealed_with = _key_ids(store)
            if sealed_with:
                raise SecretKeyError(
                    f"the store's secrets are encrypted with key {sealed_with[0]}, and {path} does not "
                    f"exist: put that key file back or set {SECRET_KEY_ENV} to the key (no new key was made)"
                )
        return cls.load(store.data_dir)

    @classmethod
    def load(cls, directory: Path) -> SecretBox:
        """`XVCKIT_SECRET_KEY` if set, else `directory/secret.key`, created on first use."""
        text = os.environ.get(SECRET_KEY_ENV, "")
        if text.strip():
            return cls(parse_key(text, SECRET_KEY_ENV), SECRET_KEY_ENV)
        path = directory.expanduser() / KEY_FILE
        return cls(read_or_create_key_file(path), str(path))

    @classmethod
    def generate(cls) -> SecretBox:
        return cls(AESGCM.generate_key(bit_length=256), "generated")

    def derive(self, purpose: str) -> bytes:
        """A key of its own for another use (the audit head's HMAC), so the key itself only seals."""
        return hmac.new(self._key, b"xvckit/derive/" + purpose.encode(), hashlib.sha256).digest()

    def encrypt(self, name: str, value: str) -> tuple[bytes, bytes]:
        """(nonce, ciphertext with tag) for a value stored under `name`."""
        nonce = os.urandom(12)
        return nonce, self._aead.encrypt(nonce, value.encode("utf-8"), _AAD_PREFIX + name.encode("utf-8"))

    def decrypt(self, name: str, nonce: bytes, ciphertext: bytes) -> str:
        try:
            plain = self._aead.decrypt(bytes(nonce), bytes(ciphertext), _AAD_PREFIX + name.encode("utf-8"))
        except (InvalidTag, ValueError):
            raise SecretError(
                f"secret {name!r} failed its integrity check: the stored value was altered "
                "or copied from another name"
            ) from None
        return plain.decode("utf-8")

    def __repr__(self) -> str:
        return f"SecretBox(key_id={self.key_id!r}, source={self.source!r})"

    __str__ = __repr__

    def __reduce__(self):
        raise TypeError("SecretBox cannot be pickled")


def key_fingerprint(key: bytes) -> str:
    """16 hex digits that tell keys apart without revealing anything about them."""
    return hashlib.sha256(b"xvckit secret key id\0" + key).hexdigest()[:16]


def parse_key(text: str, source: str = SECRET_KEY_ENV) -> bytes:
    """32 bytes from base64, urlsafe base64 (padding optional) or 64 hex digits."""
    text = text.strip()
    if re.fullmatch(r"[0-9a-fA-F]{64}", text):
        return bytes.fromhex(text)
    if re.fullmatch(r"[A-Za-z0-9+/_\-]+={0,2}", text):
        padded = text.rstrip("=") + "=" * (-len(text.rstrip("=")) % 4)
        try:
            key = base64.b64decode(padded.replace("-", "+").replace("_", "/"), validate=True)
        except (binascii.Error, ValueError):
            key = b""
        if len(key) == 32:
            return key
    raise SecretKeyError(
        f"{source} must be 32 random bytes written as base64 or 64 hex digits "
        f"(it has {len(text)} characters that do not decode to 32 bytes); make one with: "
        "python -c 'import secrets; print(secrets.token_urlsafe(32))'"
    )


def read_or_create_key_file(path: Path) -> bytes:
    """Read the key file, or create it (0600, atomically: no reader ever sees a partial key)."""
    try:
        return _read_key_file(path)
    except FileNotFoundError:
        pass
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    key = AESGCM.generate_key(bit_length=256)
    data = (base64.urlsafe_b64encode(key).decode() + "\n").encode()
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{_random.token_hex(4)}")
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            os.fchmod(fd, 0o600)
            os.write(fd, data)
            os.fsync(fd)
        finally:
            os.close(fd)
        try:
            os.link(tmp, path)  # fails if another process published its key first
        except FileExistsError:
            pass
        except OSError:  # no hard links here: create the file itself exclusively
            try:
                fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            except FileExistsError:
                pass
            else:
                with os.fdopen(fd, "wb") as handle:
                    handle.write(data)
                    handle.flush()
                    os.fsync(handle.fileno())
    except OSError as exc:
        raise SecretKeyError(f"cannot create key file {path}: {exc.strerror or exc}") from None
    finally:
        tmp.unlink(missing_ok=True)
    return _read_key_file(path)


def _read_key_file(path: Path) -> bytes:
    try:
        info = path.stat()
        if os.name == "posix" and stat.S_IMODE(info.st_mode) & 0o077:
            raise SecretKeyError(
                f"key file {path} is readable by others (mode {stat.S_IMODE(info.st_mode):o}); "
                f"run: chmod 600 {path}"
            )
        text = path.read_text()
    except FileNotFoundError:
        raise
    except OSError as exc:
        raise SecretKeyError(f"cannot read key file {path}: {exc.strerror or exc}") from None
    return parse_key(text, f"key file {path}")


# --- the store ------------------------------------------------------------------------------------


def check_name(name: str) -> str:
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        raise SecretError(
            f"secret name {str(name)[:60]!r} is not valid: use letters, digits and _ . - / "
            "(up to 128, starting with a letter or digit)"
        )
    return name


def put_secret(store, box: SecretBox, name: str, value: str, actor: str, detail: dict | None = None) -> bool:
    """Store (or replace) a secret, audited as `secret.put`; True if it was new."""
    check_name(name)
    if not isinstance(value, str) or not value:
        raise SecretError(f"secret {name!r}: the value is empty")
    nonce, sealed = box.encrypt(name, value)
    now = _now()
    with audit.transaction(store) as conn:
        others = [key_id for key_id in _key_ids(conn) if key_id != box.key_id]
        if others:
            raise SecretKeyError(
                f"secret {name!r} not stored: the store's secrets are encrypted with key {others[0]}, "
                f"the key from {box.source} is {box.key_id}; set {SECRET_KEY_ENV} to the store's key "
                "(a second key would leave secrets that no single key opens)"
            )
        exists = conn.execute(sa.select(secrets_table.c.name).where(secrets_table.c.name == name)).first()
        if exists:
            conn.execute(
                secrets_table.update()
                .where(secrets_table.c.name == name)
                .values(key_id=box.key_id, nonce=nonce, ciphertext=sealed, updated_at=now)
            )
        else:
            conn.execute(
                secrets_table.insert().values(
                    name=name,
                    key_id=box.key_id,
                    nonce=nonce,
                    ciphertext=sealed,
                    created_at=now,
                    updated_at=now,
                )
            )
        audit.append_in(
            conn, actor, "secret.put", f"secret:{name}", {**(detail or {}), "created": not exists}
        )
    return not exists


def get_secret(store, box: SecretBox, name: str) -> str:
    """The value of a secret; SecretError if missing, SecretKeyError if sealed by another key."""
    with store.engine.connect() as conn:
        row = conn.execute(sa.select(secrets_table).where(secrets_table.c.name == name)).first()
    if row is None:
        raise SecretError(f"no secret named {name!r} in the store (add it with: xvckit secrets set {name})")
    return _open_row(box, row)


def _key_ids(source) -> list[str]:
    """The fingerprints of the keys that sealed the stored secrets (a store or a connection)."""
    query = sa.select(secrets_table.c.key_id).distinct().order_by(secrets_table.c.key_id)
    if isinstance(source, sa.Connection):
        return list(source.execute(query).scalars())
    with source.engine.connect() as conn:
        return list(conn.execute(query).scalars())


def has_secret(store, name: str) -> bool:
    with store.engine.connect() as conn:
        row = conn.execute(sa.select(secrets_table.c.name).where(secrets_table.c.name == name)).first()
    return row is not None


def list_secrets(store) -> list[SecretInfo]:
    with store.engine.connect() as conn:
        rows = conn.execute(
            sa.select(secrets_table.c.name, secrets_table.c.created_at, secrets_table.c.updated_at).order_by(
                secrets_table.c.name
            )
        ).all()
    return [SecretInfo(row.name, row.created_at, row.updated_at) for row in rows]


def list_secret_names(store) -> list[str]:
    return [info.name for info in list_secrets(store)]


def delete_secret(store, name: str, actor: str) -> bool:
    """Remove a secret, audited as `secret.delete`; False if there was none."""
    with audit.transaction(store) as conn:
        gone = conn.execute(secrets_table.delete().where(secrets_table.c.name == name)).rowcount
        if gone:
            audit.append_in(conn, actor, "secret.delete", f"secret:{name}")
    return bool(gone)


def _open_row(box: SecretBox, row: Any) -> str:
    if row.key_id != box.key_id:
        raise SecretKeyError(
            f"secret {row.name!r} was encrypted with another key (fingerprint {row.key_id}; "
            f"the key from {box.source} has {box.key_id}): set {SECRET_KEY_ENV} to the key used then"
        )
    return box.decrypt(row.name, row.nonce, row.ciphertext)


def _now() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


# --- configuration --------------------------------------------------------------------------------


def resolve_secret_refs(config: Config, store, box: SecretBox | None = None) -> Config:
    """The config with every `secret:NAME` in `providers[].api_keys` replaced by its value.

    With no box given, the store's box is opened only if the config has a reference."""
    providers = []
    changed = False
    for i, provider in enumerate(config.providers):
        keys = []
        for j, key in enumerate(provider.api_keys):
            text = key.get_secret_value()
            if text.startswith(REF_PREFIX):
                name = text.removeprefix(REF_PREFIX)
                box = box or SecretBox.for_store(store)
                try:
                    key = SecretStr(get_secret(store, box, name))
                except SecretError as exc:
                    raise type(exc)(f"providers[{i}].api_keys[{j}]: {exc}") from None
                changed = True
            keys.append(key)
        providers.append(provider.model_copy(update={"api_keys": keys}))
    return config.model_copy(update={"providers": providers}) if changed else config


def import_literal_keys(
    config_path: str | os.PathLike[str], store, box: SecretBox, actor: str | None = None
) -> ImportResult:
    """Move literal `providers[].api_keys` out of the YAML file into the encrypted store.

    Each literal becomes `"secret:<provider>-key-<n>"` in place: the file is edited only at
    those values, so comments, order and layout stay as they were. The new text is parsed
    and compared with the old before it replaces the file (atomically, same mode). `env:` and
    `secret:` entries are left alone; running it again changes nothing."""
    path = Path(config_path)
    actor = actor or audit.default_actor()
    try:
        text = path.read_bytes().decode("utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise SecretError(f"{path}: cannot read: {getattr(exc, 'strerror', None) or exc}") from None
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
        original = yaml.safe_load(text)
    except yaml.YAMLError as exc:  # never str(exc): its snippet of the file could show a key
        mark = getattr(exc, "problem_mark", None)
        where = f":{mark.line + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or "parse error"
        raise SecretError(f"{path}{where}: not valid YAML: {problem}") from None

    found = _literal_key_nodes(path, text, root)
    if not found:
        return ImportResult(path, [])
    taken = set(list_secret_names(store))
    planned: list[tuple[str, str, yaml.ScalarNode]] = []  # (field, secret name, node)
    reused: set[str] = set()
    names_in_file: dict[str, str] = {}
    for field, provider_name, index, node in found:
        base = f"{_slug(provider_name)}-key-{index + 1}"
        name, n = base, 1
        while True:
            if name in names_in_file:
                if names_in_file[name] == node.value:
                    break
            elif name not in taken:
                break
            elif get_secret(store, box, name) == node.value:
                reused.add(name)
                break
            n += 1
            name = f"{base}-{n}"
        names_in_file[name] = node.value
        planned.append((field, name, node))

    pieces, cursor = [], 0
    for _field, name, node in sorted(planned, key=lambda p: p[2].start_mark.index):
        start, end = node.start_mark.index, node.end_mark.index
        span = text[start:end]
        pieces += [text[cursor:start], f'"{REF_PREFIX}{name}"', span[len(span.rstrip()) :]]
        cursor = end
    new_text = "".join([*pieces, text[cursor:]])
    _check_rewrite(path, original, new_text, planned)

    stored = set(reused)
    for field, name, node in planned:
        if name not in stored:
            put_secret(store, box, name, node.value, actor, {"source": "import", "field": field})
            stored.add(name)
    _replace_file(path, new_text)
    fields = [field for field, _, _ in planned]
    audit.append(store, actor, "config.rewrite", str(path), {"fields": fields, "reason": "secrets import"})
    return ImportResult(path, [(field, name) for field, name, _ in planned], len(reused))


def _literal_key_nodes(path: Path, text: str, root: Any) -> list[tuple[str, str, int, yaml.ScalarNode]]:
    providers = _mapping_get(root, "providers")
    if not isinstance(providers, yaml.SequenceNode):
        return []
    found, seen = [], set()
    for i, provider in enumerate(providers.value):
        keys = _mapping_get(provider, "api_keys")
        if not isinstance(keys, yaml.SequenceNode):
            continue
        name_node = _mapping_get(provider, "name")
        provider_name = name_node.value if isinstance(name_node, yaml.ScalarNode) else f"provider{i}"
        for j, node in enumerate(keys.value):
            field = f"providers[{i}].api_keys[{j}]"
            if not isinstance(node, yaml.ScalarNode) or node.tag != "tag:yaml.org,2002:str":
                continue
            if node.value.startswith(("env:", REF_PREFIX)) or not node.value:
                continue
            raw = text[node.start_mark.index : node.end_mark.index]
            if id(node) in seen or raw.lstrip().startswith(("&", "!", "*")):
                raise SecretError(
                    f"{path}: {field}: the key uses a YAML anchor, alias or tag; write the key "
                    "itself there, then run the import again"
                )
            seen.add(id(node))
            found.append((field, provider_name, j, node))
    return found


def _mapping_get(node: Any, key: str) -> Any:
    if not isinstance(node, yaml.MappingNode):
        return None
    for k, v in node.value:
        if isinstance(k, yaml.ScalarNode) and k.value == key:
            return v
    return None


def _slug(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", name).strip("-._")[:100] or "provider"


def _check_rewrite(path: Path, original: Any, new_text: str, planned: list) -> None:
    """The rewritten file must mean exactly the old one with the keys replaced."""
    try:
        rewritten = yaml.safe_load(new_text)
    except yaml.YAMLError:
        rewritten = None
    expected = original
    for field, name, _node in planned:
        i, j = (int(n) for n in re.findall(r"\[(\d+)\]", field))
        expected["providers"][i]["api_keys"][j] = REF_PREFIX + name
    if rewritten != expected:
        raise SecretError(
            f"{path}: could not rewrite the file safely (its layout is unusual); nothing was changed. "
            "Store each key with `xvckit secrets set NAME` and write secret:NAME in its place"
        )


def _replace_file(path: Path, text: str) -> None:
    mode = stat.S_IMODE(path.stat().st_mode)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{_random.token_hex(4)}")
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as handle:
            handle.write(text.encode("utf-8"))
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise SecretError(f"{path}: cannot write: {exc.strerror or exc}") from None
