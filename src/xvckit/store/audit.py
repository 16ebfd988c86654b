"""The audit trail: every admin action, appended to a SHA-256 hash chain.

Each entry holds who (`actor`), what (`action`), on what (`target`), when (`ts`, UTC) and a
JSON `detail`, plus the previous entry's hash and its own hash over a canonical encoding of
all of these. The head of the chain (last id and hash) is kept in `xvckit_meta` and updated
in the same transaction as the row, so `verify` notices an edited row (its hash no longer
matches), a removed row (an id gap and a broken `prev_hash` link) and a removed tail (the
head names an entry that is gone).

A plain hash chain proves that rows were not changed by anyone who did not also recompute
every later hash and the head. The head closes that gap: it carries an HMAC of the last id
and hash under a key derived from the store's secret key (`XVCKIT_SECRET_KEY` or the key
file, see `secrets`), which the database does not hold. So whoever can write the database
but not read that key cannot cut the newest entries and move the head back, and cannot
empty the trail either: without a head, an empty trail verifies only on a store holding no
teams, keys or secrets (each is made with an entry). A head that a transaction cannot vouch
for is never signed by it (appending would launder a cut): the trail goes on, its head
unsigned, and `verify` says so until someone holding the key checks and signs it
(`sign_head`, recorded in the trail).

Nothing in the database can prove that a trail which is now empty once had entries, so each
machine also keeps the newest head it signed in a file beside the key (`seen_head_path`): an
emptied trail, a head moved back before it, or another entry under its id fails `verify`
there, and is never signed over. The file is per machine (replicas elsewhere keep their own;
a new machine has none and checks nothing more); delete it only when the store was recreated
on purpose.

Vocabulary (free-form, but keep to it):

- actors: `admin` (the master key over the admin API), `key:<key id>` (a virtual key acting
  through the admin API), `cli:<os user>` (a CLI command; see `default_actor`),
  `gateway` (the service itself, e.g. `config.load` at start).
- actions: `<object>.<verb>`, lower case: `key.create`, `key.update`, `key.revoke`,
  `key.rotate`, `team.create`, `team.update`, `team.delete`, `config.load`,
  `config.rewrite`, `secret.put`, `secret.delete`, `audit.sign_head`.

No secret is ever stored here: `detail` values under names like key/secret/token/password
and any string that looks like an API key (`sk-...`, `xvc-...`) are replaced by
`[redacted]` before hashing, and the same scrub is applied to `actor` and `target`.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import enum
import getpass
import hashlib
import hmac
import json
import os
import re
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from decimal import Decimal
from pathlib import Path, PurePath
from typing import Any, TextIO

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from xvckit.errors import UserError
from xvckit.store.schema import meta, metadata
from xvckit.timespec import parse_moment

GENESIS_HASH = "0" * 64
HEAD_KEY = "audit_head"
REDACTED = "[redacted]"
_TS_FORMAT = "%Y-%m-%dT%H:%M:%S.%fZ"  # fixed width: text order is time order
_PG_LOCK_ID = 0x78766B6175646974  # "xvkaudit": the advisory lock that serialises appends
_HEAD = re.compile(r"(\d+):([0-9a-f]{64})(?::([0-9a-f]{64}))?")  # id:hash[:hmac]
_SIGNING = "xvckit.audit.signing"  # in a transaction's conn.info: the key for its heads, or None
_SIGNED = "xvckit.audit.signed"  # in a transaction's conn.info: the last head it signed
_MADE_WITH_AN_ENTRY = ("teams", "api_keys", "secrets")  # tables only ever written with an entry

audit_log = sa.Table(
    "audit_log",
    metadata,
    sa.Column(
        "id", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True, autoincrement=False
    ),
    sa.Column("ts", sa.String(32), nullable=False, index=True),
    sa.Column("actor", sa.String(200), nullable=False),
    sa.Column("action", sa.String(64), nullable=False, index=True),
    sa.Column("target", sa.String(500), nullable=False),
    sa.Column("detail", sa.Text, nullable=False),  # canonical JSON, hashed byte for byte
    sa.Column("prev_hash", sa.String(64), nullable=False),
    sa.Column("hash", sa.String(64), nullable=False),
)


@dataclasses.dataclass(frozen=True)
class AuditEntry:
    id: int
    ts: dt.datetime
    actor: str
    action: str
    target: str
    detail: dict[str, Any]
    prev_hash: str
    hash: str

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "ts": _format_ts(self.ts),
            "actor": self.actor,
            "action": self.action,
            "target": self.target,
            "detail": self.detail,
            "prev_hash": self.prev_hash,
            "hash": self.hash,
        }


@dataclasses.dataclass(frozen=True)
class VerifyResult:
    ok: bool
    checked: int  # entries whose hash and link were checked
    head_id: int | None = None  # the last entry according to the head record
    broken_id: int | None = None  # the first entry where the chain breaks
    reason: str | None = None  # why, in words: "edited", "removed", ...

    def describe(self) -> str:
        checked = f"{self.checked} entr{'y' if self.checked == 1 else 'ies'}"
        if self.ok:
            head = f", head #{self.head_id}" if self.head_id else ""
            return f"ok: {checked} checked, chain intact{head}"
        return f"broken at entry #{self.broken_id}: {self.reason} ({checked} intact before it)"

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclasses.dataclass(frozen=True)
class _Head:
    """The head record: the last entry's id and hash, and their HMAC (None: written unsigned,
    by xvckit 0.1 or by someone without the key)."""

    id: int
    hash: str
    mac: str | None

    def signed_with(self, key: bytes) -> bool:
        return self.mac is not None and hmac.compare_digest(self.mac, _mac(key, self.id, self.hash))


def _mac(key: bytes, entry_id: int, digest: str) -> str:
    return hmac.new(key, f"{entry_id}:{digest}".encode(), hashlib.sha256).hexdigest()


def head_key(store) -> bytes:
    """The key that signs the head, derived from the store's secret key (kept outside the
    database: `XVCKIT_SECRET_KEY`, else the key file in the store's data folder)."""
    from xvckit.store.secrets import SecretBox  # secrets appends entries: imported when used

    return SecretBox.for_store(store).derive("audit-head")


def seen_head_path(store_url: str, data_dir: Path | None = None) -> Path:
    """This machine's record of the newest head it signed for the store: beside the key file in
    the data folder (default: the URL's, as `Store` has it), one per store (PostgreSQL stores
    may share a data folder)."""
    from xvckit.store.database import local_dir

    name = hashlib.sha256(store_url.encode()).hexdigest()[:16]
    return (data_dir or local_dir(store_url)).expanduser() / f"audit-{name}.head"


# --- writing --------------------------------------------------------------------------------------


def default_actor() -> str:
    """`cli:<os user>` for commands run from a shell."""
    try:
        user = getpass.getuser()
    except (OSError, KeyError):
        user = f"uid{os.getuid()}" if hasattr(os, "getuid") else "unknown"
    return f"cli:{user}"


@contextmanager
def transaction(store) -> Iterator[Connection]:
    """A write transaction holding the audit lock, committed on exit, rolled back on error.

    Use it to make an admin change and its audit entry one atomic unit:

        with audit.transaction(store) as conn:
            conn.execute(keys.insert()...)
            audit.append_in(conn, actor, "key.create", key_id, {...})

    SQLite takes the database write lock up front (BEGIN IMMEDIATE), PostgreSQL a
    transaction-scoped advisory lock, so concurrent appends from any number of threads
    or processes line up and the chain never forks, and whatever a transaction reads
    before it writes (a name still free?) is still true when it commits.
    """
    key = head_key(store)
    seen_path = seen_head_path(store.url, store.data_dir)
    with store.engine.connect() as conn:
        if conn.dialect.name == "sqlite":
            conn.exec_driver_sql("BEGIN IMMEDIATE")
        elif conn.dialect.name == "postgresql":
            conn.execute(sa.text("SELECT pg_advisory_xact_lock(:id)"), {"id": _PG_LOCK_ID})
        try:
            conn.info[_SIGNING] = _signing_key(conn, key, seen_path)
            yield conn
        except BaseException:
            conn.rollback()
            raise
        finally:
            conn.info.pop(_SIGNING, None)
            signed = conn.info.pop(_SIGNED, None)
        conn.commit()
    if signed is not None:
        _record_seen(seen_path, key, signed)


def _signing_key(conn: Connection, key: bytes, seen_path: Path) -> bytes | None:
    """The key to sign this transaction's heads with, or None when the head it extends is one
    this process cannot vouch for (signing it would launder a cut)."""
    if _behind_seen(conn, key, seen_path):
        return None
    head = _read_head(conn)
    if head is None:
        return key if _pristine(conn) else None
    return key if head.signed_with(key) else None


def _pristine(conn: Connection) -> bool:
    """No entry, and none of the rows only ever made with one: a new store, not an emptied trail."""
    tables = [audit_log, *(metadata.tables[name] for name in _MADE_WITH_AN_ENTRY)]
    return not any(conn.execute(sa.select(sa.literal(1)).select_from(t).limit(1)).first() for t in tables)


def append(store, actor: str, action: str, target: str, detail: dict[str, Any] | None = None) -> AuditEntry:
    """Append one entry in its own transaction (synchronous; call from a worker thread)."""
    with transaction(store) as conn:
        return append_in(conn, actor, action, target, detail)


def append_in(
    conn: Connection, actor: str, action: str, target: str, detail: dict[str, Any] | None = None
) -> AuditEntry:
    """Append one entry on a connection opened by `transaction` (its lock must be held)."""
    if _SIGNING not in conn.info:
        raise ValueError("audit.append_in needs a connection opened by audit.transaction")
    if not _ACTION.fullmatch(action or ""):
        raise ValueError(f"audit action must look like 'object.verb' in lower case, not {action!r}")
    actor = scrub_text(actor)[:200]
    target = scrub_text(target)[:500]
    if not actor:
        raise ValueError("audit actor must not be empty")
    detail_json = canonical_json(redact(detail or {}))
    head = _read_head(conn)
    if head is None:
        last = conn.execute(
            sa.select(audit_log.c.id, audit_log.c.hash).order_by(audit_log.c.id.desc()).limit(1)
        ).first()
        entry_id, prev_hash = (last.id + 1, last.hash) if last else (1, GENESIS_HASH)
    else:
        entry_id, prev_hash = head.id + 1, head.hash
    ts = _format_ts(dt.datetime.now(dt.UTC))
    digest = entry_hash(entry_id, ts, actor, action, target, detail_json, prev_hash)
    conn.execute(
        audit_log.insert().values(
            id=entry_id,
            ts=ts,
            actor=actor,
            action=action,
            target=target,
            detail=detail_json,
            prev_hash=prev_hash,
            hash=digest,
        )
    )
    _write_head(conn, entry_id, digest, conn.info[_SIGNING])
    if conn.info[_SIGNING]:
        conn.info[_SIGNED] = _Head(entry_id, digest, _mac(conn.info[_SIGNING], entry_id, digest))
    detail_out = json.loads(detail_json)
    return AuditEntry(entry_id, _parse_ts(ts), actor, action, target, detail_out, prev_hash, digest)


def entry_hash(entry_id: int, ts: str, actor: str, action: str, target: str, detail: str, prev: str) -> str:
    """SHA-256 over the canonical JSON array of an entry's fields (detail as stored text)."""
    encoded = canonical_json([entry_id, ts, actor, action, target, detail, prev]).encode()
    return hashlib.sha256(encoded).hexdigest()


def canonical_json(value: Any) -> str:
    return json.dumps(
        value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False, default=_jsonable
    )


# --- keeping secrets out --------------------------------------------------------------------------

_ACTION = re.compile(r"[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)+")
_SECRET_WORDS = frozenset(
    {
        "key", "keys", "apikey", "apikeys", "secret", "secrets", "token", "password", "passwd",
        "passphrase", "pwd", "credential", "credentials", "authorization", "auth", "cookie",
    }
)  # fmt: skip
# names that only point at a secret (`key_id`, `secret_name`, `key_prefix`), or count tokens
_SAFE_LAST_WORDS = frozenset({"id", "ids", "name", "names", "prefix", "count", "kind", "type", "header"})
_KEY_LIKE = re.compile(
    r"(?<![A-Za-z0-9])(?:sk|xvc|rk|pk)-[A-Za-z0-9_\-]{16,}"  # OpenAI, Anthropic (sk-ant-), xvckit keys
    r"|(?i:bearer)\s+[A-Za-z0-9._~+/\-]{12,}=*"  # an Authorization header value
)


def secret_like_name(name: str) -> bool:
    """True for field names that hold secrets: `api_key`, `secret`, `X-Api-Key`, `password`..."""
    words = [w.lower() for w in re.findall(r"[A-Z]+(?![a-z])|[A-Z]?[a-z]+|[0-9]+", name)]
    if not words:
        return False
    if words[-1] in _SAFE_LAST_WORDS:
        return False
    joined = "".join(words)
    return any(w in _SECRET_WORDS for w in words) or joined in _SECRET_WORDS


def scrub_text(text: str) -> str:
    """The text with anything that looks like an API key replaced by `[redacted]`."""
    return _KEY_LIKE.sub(REDACTED, str(text))


def redact(value: Any, *, _under_secret: bool = False) -> Any:
    """A copy of a JSON-like value that is safe to store in the audit trail."""
    if isinstance(value, dict):
        out = {}
        for k, v in value.items():
            name = str(k)
            out[scrub_text(name)] = redact(v, _under_secret=_under_secret or secret_like_name(name))
        return out
    if isinstance(value, list | tuple | set | frozenset):
        items = sorted(value, key=repr) if isinstance(value, set | frozenset) else value
        return [redact(v, _under_secret=_under_secret) for v in items]
    if isinstance(value, bytes | bytearray) or type(value).__name__ in {"SecretStr", "SecretBytes"}:
        return REDACTED
    if isinstance(value, str):
        return REDACTED if _under_secret and value else scrub_text(value)
    if value is None or isinstance(value, bool | int | float):
        return value  # counts, limits and flags are not secrets, whatever their field is called
    return redact(_jsonable(value), _under_secret=_under_secret)


def _jsonable(value: Any) -> Any:
    if isinstance(value, dt.datetime):
        return _format_ts(value)
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, dt.timedelta):
        return value.total_seconds()
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, PurePath):
        return str(value)
    raise TypeError(f"audit detail values must be JSON data, not {type(value).__name__}")


# --- reading --------------------------------------------------------------------------------------


def entries(
    store,
    since: dt.datetime | dt.timedelta | None = None,
    limit: int | None = None,
    action: str | None = None,
) -> list[AuditEntry]:
    """Entries in chain order (oldest first). `since`: a time or an age; `limit`: the newest N;
    `action`: exact (`key.create`) or a prefix ending in `*` (`key.*`)."""
    query = sa.select(audit_log)
    if since is not None:
        when = dt.datetime.now(dt.UTC) - since if isinstance(since, dt.timedelta) else since
        query = query.where(audit_log.c.ts >= _format_ts(when))
    if action:
        if action.endswith("*"):
            prefix = action.rstrip("*").replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
            query = query.where(audit_log.c.action.like(prefix + "%", escape="\\"))
        else:
            query = query.where(audit_log.c.action == action)
    if limit is not None:
        query = query.order_by(audit_log.c.id.desc()).limit(max(limit, 0))
    else:
        query = query.order_by(audit_log.c.id)
    with store.engine.connect() as conn:
        rows = conn.execute(query).all()
    found = [_entry(row) for row in rows]
    return sorted(found, key=lambda e: e.id) if limit is not None else found


def export_jsonl(store, file: TextIO, *, batch: int = 5000) -> int:
    """Write every entry as one JSON object per line, in chain order; return how many."""
    count = 0
    with store.engine.connect() as conn:
        _begin_snapshot(conn)
        for rows in _pages(conn, batch):
            for row in rows:
                file.write(json.dumps(_entry(row).to_json(), ensure_ascii=False, sort_keys=True) + "\n")
                count += 1
        conn.rollback()
    return count


def verify(store, *, batch: int = 5000) -> VerifyResult:
    """Walk the chain from the first entry; report the first broken link.

    Reads one consistent snapshot, so appends made during the walk cannot look like damage.
    """
    key = head_key(store)
    with store.engine.connect() as conn:
        _begin_snapshot(conn)
        try:
            walked = _walk(conn, _read_head(conn, strict=False), key, batch)
            behind = walked.ok and _behind_seen(conn, key, seen_head_path(store.url, store.data_dir))
            return VerifyResult(False, walked.checked, walked.head_id, *behind) if behind else walked
        finally:
            conn.rollback()


def sign_head(store, actor: str, *, batch: int = 5000) -> VerifyResult:
    """Vouch for a head written without this key, once every entry up to it checks out, and
    record that (`audit.sign_head`); then verify. Only for a head whose writer is known (xvckit
    0.1 before an upgrade, a process given another key): it cannot tell a cut tail."""
    key = head_key(store)
    with transaction(store) as conn:
        head = _read_head(conn)
        if head is not None and not head.signed_with(key):
            walked = _walk(conn, head, None, batch)
            if not walked.ok:
                return walked
            conn.info[_SIGNING] = key
            append_in(conn, actor, "audit.sign_head", f"audit:#{head.id}", {"head_id": head.id})
    return verify(store, batch=batch)


def _walk(conn: Connection, head: _Head | str | None, key: bytes | None, batch: int) -> VerifyResult:
    """The chain checked entry by entry, then against its head, whose signature is checked
    with `key` (None: the head is taken as written)."""
    head_id = head.id if isinstance(head, _Head) else None
    expected_id, prev_hash, checked = 1, GENESIS_HASH, 0

    def broken(entry_id: int, reason: str) -> VerifyResult:
        return VerifyResult(False, checked, head_id, entry_id, reason)

    for rows in _pages(conn, batch):
        for row in rows:
            if row.id != expected_id:
                missing = f"#{expected_id}" if row.id == expected_id + 1 else f"#{expected_id}..#{row.id - 1}"
                if row.id < expected_id:
                    return broken(row.id, "id out of order (row re-inserted or renumbered)")
                return broken(row.id, f"removed: entry {missing} before it is missing")
            digest = entry_hash(row.id, row.ts, row.actor, row.action, row.target, row.detail, row.prev_hash)
            if digest != row.hash:
                return broken(row.id, "edited: its content does not match its hash")
            if row.prev_hash != prev_hash:
                return broken(
                    row.id,
                    "link broken: its prev_hash does not match the entry before it "
                    "(an entry was removed, replaced or rewritten)",
                )
            expected_id, prev_hash = row.id + 1, row.hash
            checked += 1
    last_id = expected_id - 1
    if head is None:
        if checked:
            return broken(last_id, "head record missing from xvckit_meta (the end cannot be confirmed)")
        if not _pristine(conn):
            return broken(1, "emptied: no entries and no head, but the store has teams, keys or secrets")
        return VerifyResult(True, 0, None)
    if isinstance(head, str):
        return broken(last_id + 1 if checked else 1, f"head record unreadable: {head}")
    if key is not None and not head.signed_with(key):
        return broken(last_id + 1, _UNSIGNED if head.mac is None else _MISSIGNED)
    if head.id > last_id:
        gone = f"#{last_id + 1}" if head.id == last_id + 1 else f"#{last_id + 1}..#{head.id}"
        return broken(last_id + 1, f"removed: the last entr{'y' if head.id == last_id + 1 else 'ies'} {gone}")
    if head.id < last_id:
        return broken(head.id + 1, f"appended outside xvckit: the head record ends at #{head.id}")
    if head.hash != prev_hash:
        return broken(last_id, "head record does not match the last entry (last entry replaced)")
    return VerifyResult(True, checked, head_id)


_WITHOUT_KEY = (
    "written without this secret key: by someone editing the database, by a process given another "
    "XVCKIT_SECRET_KEY, or by xvckit 0.1; only if you know it was one of the last two: "
    "`xvckit audit verify --sign-head`"
)
_UNSIGNED = f"head record not signed, {_WITHOUT_KEY}"
_MISSIGNED = f"head record's signature does not match, {_WITHOUT_KEY}"


def _behind_seen(conn: Connection, key: bytes, path: Path) -> tuple[int, str] | None:
    """(entry id, why) when the trail lacks or differs at the newest head this machine signed;
    None when it holds it, or there is no such record (a new machine) or it is not ours."""
    seen = _read_seen(path)
    if seen is None or not seen.signed_with(key):
        return None
    digest = conn.execute(sa.select(audit_log.c.hash).where(audit_log.c.id == seen.id)).scalar()
    seen_in = f"(seen in {path})"
    if digest is None:
        return seen.id, f"the trail is shorter than this machine has seen: entry #{seen.id} is gone {seen_in}"
    if digest != seen.hash:
        return seen.id, f"entry #{seen.id} is not the one this machine has seen: its hash differs {seen_in}"
    return None


def _read_seen(path: Path) -> _Head | None:
    try:
        match = _HEAD.fullmatch(path.read_text().strip())
    except (OSError, UnicodeDecodeError):
        return None
    return _Head(int(match[1]), match[2], match[3]) if match else None


def _record_seen(path: Path, key: bytes, head: _Head) -> None:
    """Move this machine's record forward to `head` (0600, atomically: temp file and rename);
    best effort, as the record only adds a check."""
    seen = _read_seen(path)
    if seen is not None and seen.signed_with(key) and seen.id >= head.id:
        return
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}")
    try:
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(f"{head.id}:{head.hash}:{head.mac}\n")
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except OSError:
        tmp.unlink(missing_ok=True)


def _pages(conn: Connection, batch: int) -> Iterator[list[Any]]:
    after = None
    while True:
        query = sa.select(audit_log).order_by(audit_log.c.id).limit(batch)
        if after is not None:
            query = query.where(audit_log.c.id > after)
        rows = conn.execute(query).all()
        if not rows:
            return
        yield rows
        after = rows[-1].id


def _begin_snapshot(conn: Connection) -> None:
    """Make every following read on `conn` see the same committed state."""
    if conn.dialect.name == "sqlite":
        conn.exec_driver_sql("BEGIN")  # WAL: the snapshot is taken at the first read
    elif conn.dialect.name == "postgresql":
        conn.exec_driver_sql("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")


def _read_head(conn: Connection, *, strict: bool = True) -> _Head | str | None:
    value = conn.execute(sa.select(meta.c.value).where(meta.c.key == HEAD_KEY)).scalar()
    if value is None:
        return None
    match = _HEAD.fullmatch(value)
    if match:
        return _Head(int(match[1]), match[2], match[3])
    if strict:
        raise UserError(f"the audit head in xvckit_meta is damaged ({HEAD_KEY}); run `xvckit audit verify`")
    return "not '<id>:<sha256>:<hmac>'"


def _write_head(conn: Connection, entry_id: int, digest: str, key: bytes | None) -> None:
    """The head after `entry_id`, signed with `key` (None: left unsigned, see `_signing_key`)."""
    value = f"{entry_id}:{digest}" + (f":{_mac(key, entry_id, digest)}" if key else "")
    updated = conn.execute(meta.update().where(meta.c.key == HEAD_KEY).values(value=value)).rowcount
    if not updated:
        conn.execute(meta.insert().values(key=HEAD_KEY, value=value))


def _entry(row: Any) -> AuditEntry:
    try:
        detail = json.loads(row.detail)
    except ValueError:
        detail = {"unparsable": True}
    ts = _parse_ts(row.ts)
    return AuditEntry(row.id, ts, row.actor, row.action, row.target, detail, row.prev_hash, row.hash)


def _format_ts(when: dt.datetime) -> str:
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.UTC)
    return when.astimezone(dt.UTC).strftime(_TS_FORMAT)


def _parse_ts(text: str) -> dt.datetime:
    try:
        return dt.datetime.strptime(text, _TS_FORMAT).replace(tzinfo=dt.UTC)
    except ValueError:
        return dt.datetime.fromisoformat(text.replace("Z", "+00:00"))


def parse_since(text: str) -> dt.datetime:
    """`7d`, `12h`, `30m`, `2w`, `90s`, or an ISO date/time (UTC unless it says otherwise)."""
    try:
        return dt.datetime.fromtimestamp(parse_moment(text), dt.UTC)
    except ValueError as exc:
        raise UserError(f"--since: {exc}") from None
