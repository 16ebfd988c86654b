"""Teams and virtual API keys: what the store keeps (a key's hash, never the key) and the
admin actions on them, each one audited.

Keys carry 256 random bits, so a plain SHA-256 is the right hash: nothing to brute-force,
and a lookup stays one dict access in the gateway.

A reference to a key or a team is an id (`key_...`, `team_...`), which matches only the id,
or a name, which can never look like an id; a key's name is unique within its team (or
among the keys of no team), a team's among teams. So an id always finds its one key, and a
name finds at most one key per team.

An update changes the fields it names and keeps the others (None clears a limit or the
expiry), with the same checks as a create.
"""

from __future__ import annotations

import hashlib
import math
import secrets
import time
import unicodedata
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace

import sqlalchemy as sa

from xvckit.errors import Conflict, NotAllowed, NotFound, UserError
from xvckit.store import audit
from xvckit.store.database import Store
from xvckit.store.ledger import usage_report
from xvckit.store.schema import bump_version, meta, metadata

KEY_PREFIX = "xvc-"
ROLES: tuple[str, ...] = ("admin", "team-admin", "member")
PERIODS: tuple[str, ...] = ("day", "week", "month")
PRIORITIES: tuple[str, ...] = ("interactive", "batch")
CACHE_MODES: tuple[str, ...] = ("on", "off", "deterministic")
KEYS_VERSION = "keys_version"
MAX_INT = 2**31 - 1  # rpm and tpm are INTEGER columns: 32 bits on PostgreSQL
MAX_LIFETIME_S = 100 * 366 * 86400  # a later expiry is no expiry, and past what clocks print
_ID_PREFIXES = ("key_", "team_")
LIMIT_FIELDS = ("models", "rpm", "tpm", "budget_usd", "budget_period")
TEAM_FIELDS = ("name", *LIMIT_FIELDS)  # what `update_team` may change
KEY_FIELDS = (*TEAM_FIELDS, "role", "expires_at", "priority", "cache")  # and `update_key`

teams_table = sa.Table(
    "teams",
    metadata,
    sa.Column("id", sa.String(32), primary_key=True),
    sa.Column("name", sa.String(200), nullable=False, unique=True),
    sa.Column("models", sa.JSON),
    sa.Column("rpm", sa.Integer),
    sa.Column("tpm", sa.Integer),
    sa.Column("budget_usd", sa.Float),
    sa.Column("budget_period", sa.String(8)),
    sa.Column("created_at", sa.Float, nullable=False),
)

keys_table = sa.Table(
    "api_keys",
    metadata,
    sa.Column("id", sa.String(32), primary_key=True),
    sa.Column("name", sa.String(200), nullable=False),
    sa.Column("team_id", sa.String(32), sa.ForeignKey("teams.id")),
    sa.Column("role", sa.String(16), nullable=False),
    sa.Column("key_hash", sa.String(64), nullable=False, unique=True),
    sa.Column("hint", sa.String(16), nullable=False),
    sa.Column("models", sa.JSON),
    sa.Column("rpm", sa.Integer),
    sa.Column("tpm", sa.Integer),
    sa.Column("budget_usd", sa.Float),
    sa.Column("budget_period", sa.String(8)),
    sa.Column("expires_at", sa.Float),
    sa.Column("revoked_at", sa.Float),
    sa.Column("created_at", sa.Float, nullable=False),
    sa.Column("priority", sa.String(16)),  # interactive | batch; None: interactive
    sa.Column("cache", sa.String(16)),  # on | off | deterministic; None: the model's setting
)


@dataclass(frozen=True, slots=True)
class Limits:
    """What a key or a team may do; None means no limit of that kind."""

    models: tuple[str, ...] | None = None
    rpm: int | None = None
    tpm: int | None = None
    budget_usd: float | None = None
    budget_period: str | None = None

    @property
    def limited(self) -> bool:
        return not (self.models is None and self.rpm is None and self.tpm is None and self.budget_usd is None)

    def as_row(self) -> dict:
        return {
            "models": list(self.models) if self.models is not None else None,
            "rpm": self.rpm,
            "tpm": self.tpm,
            "budget_usd": self.budget_usd,
            "budget_period": self.budget_period if self.budget_usd is not None else None,
        }


@dataclass(frozen=True, slots=True)
class Team:
    id: str
    name: str
    limits: Limits = field(default_factory=Limits)
    created_at: float = 0.0

    def public(self) -> dict:
        return {"id": self.id, "name": self.name, **self.limits.as_row(), "created_at": self.created_at}


@dataclass(frozen=True, slots=True)
class ApiKey:
    id: str
    name: str
    role: str
    key_hash: str
    hint: str  # the first characters, so a person can tell keys apart
    team_id: str | None = None
    limits: Limits = field(default_factory=Limits)
    expires_at: float | None = None
    revoked_at: float | None = None
    created_at: float = 0.0
    priority: str | None = None
    cache: str | None = None

    def public(self) -> dict:
        """Everything an admin may see about a key: never the hash, never the key."""
        return {
            "id": self.id,
            "name": self.name,
            "role": self.role,
            "team_id": self.team_id,
            "hint": self.hint,
            **self.limits.as_row(),
            "expires_at": self.expires_at,
            "revoked_at": self.revoked_at,
            "created_at": self.created_at,
            "priority": self.priority,
            "cache": self.cache,
        }


@contextmanager
def _admin_change(store: Store, actor: str, action: str, target: str, detail: dict) -> Iterator:
    """One transaction for a change, its audit entry and the version bump that tells
    running gateways to reload: the change is never without its audit entry."""
    with audit.transaction(store) as conn:
        yield conn
        bump_version(conn, KEYS_VERSION)
        audit.append_in(conn, actor, action, target, detail)


def hash_key(raw: str | bytes) -> str:
    return hashlib.sha256(raw.encode() if isinstance(raw, str) else raw).hexdigest()


def new_raw_key() -> str:
    return KEY_PREFIX + secrets.token_urlsafe(32)


def _new_id(prefix: str) -> str:
    return f"{prefix}_{secrets.token_hex(6)}"


def outranks(role: str, other: str) -> bool:
    """True when `role` is above `other`: admin > team-admin > member."""
    return ROLES.index(role) < ROLES.index(other)


def check_name(name: str, kind: str) -> str:
    """A key's or a team's name: 1 to 200 printable characters, not all blank, that cannot be
    taken for an id, so a lookup by id can never meet a name."""
    if not name.strip():
        raise UserError(f"{kind} name must not be empty")
    if len(name) > 200:
        raise UserError(f"{kind} name must have at most 200 characters")
    if not _printable(name):
        raise UserError(f"{kind} name must not contain control characters or lone surrogates")
    if name.lower().startswith(_ID_PREFIXES):
        raise UserError(f"{kind} name {name!r} looks like an id (key_..., team_...); choose another")
    return name


def _printable(text: str) -> bool:
    """No control character, and no lone surrogate (which no database can store)."""
    return not any(unicodedata.category(c) in ("Cc", "Cs") for c in text)


def validate_limits(limits: Limits) -> Limits:
    if limits.budget_usd is not None:
        if not (math.isfinite(limits.budget_usd) and limits.budget_usd >= 0):
            raise UserError("budget must be a finite amount of zero or more (USD)")
        if limits.budget_period not in PERIODS:
            raise UserError(f"budget period must be one of {', '.join(PERIODS)}")
    for name in ("rpm", "tpm"):
        value = getattr(limits, name)
        if value is not None and not 0 < value <= MAX_INT:
            raise UserError(f"{name} must be a whole number from 1 to {MAX_INT}")
    if not all(1 <= len(model) <= 200 and _printable(model) for model in limits.models or ()):
        raise UserError("models must each have 1 to 200 characters and no control characters")
    return limits


def merged_limits(limits: Limits, changes: dict) -> Limits:
    """`limits` with the limit fields of `changes` (None clears one). A budget keeps its period
    unless a new one is given; a budget that had none is monthly, as at create."""
    row = {**limits.as_row(), **{k: v for k, v in changes.items() if k in LIMIT_FIELDS}}
    if row["budget_usd"] is None:
        if changes.get("budget_period") is not None:
            raise UserError("a budget period needs a budget (--budget)")
    elif row["budget_period"] is None:
        row["budget_period"] = "month"
    models = row.pop("models")
    return Limits(tuple(models) if models is not None else None, **row)


def _diff(before: dict, after: dict, fields: Iterable[str]) -> dict:
    """Each field that changed, as [old, new] (the audit entry of an update)."""
    return {f: [before[f], after[f]] for f in fields if before[f] != after[f]}


def _check_changes(changes: dict, fields: tuple[str, ...]) -> None:
    if not changes:
        raise UserError("nothing to change: give at least one setting")
    unknown = sorted(set(changes) - set(fields))
    if unknown:
        raise UserError(f"cannot change {', '.join(unknown)} (can: {', '.join(fields)})")
    for name in ("name", "role"):
        if name in changes and changes[name] is None:
            raise UserError(f"{name} cannot be removed, only changed")


def _team_from(row) -> Team:
    return Team(row.id, row.name, _limits_from(row), row.created_at)


def _key_from(row) -> ApiKey:
    return ApiKey(
        id=row.id,
        name=row.name,
        role=row.role,
        key_hash=row.key_hash,
        hint=row.hint,
        team_id=row.team_id,
        limits=_limits_from(row),
        expires_at=row.expires_at,
        revoked_at=row.revoked_at,
        created_at=row.created_at,
        priority=row.priority,
        cache=row.cache,
    )


def _limits_from(row) -> Limits:
    return Limits(
        models=tuple(row.models) if row.models is not None else None,
        rpm=row.rpm,
        tpm=row.tpm,
        budget_usd=row.budget_usd,
        budget_period=row.budget_period,
    )


# ---- teams -----------------------------------------------------------------------------


def create_team(store: Store, name: str, limits: Limits, actor: str) -> Team:
    check_name(name, "team")
    validate_limits(limits)
    team = Team(_new_id("team"), name, limits, time.time())
    with _admin_change(store, actor, "team.create", team.id, {"name": name, **limits.as_row()}) as conn:
        _check_team_name_free(conn, name)
        conn.execute(
            teams_table.insert().values(id=team.id, name=name, created_at=team.created_at, **limits.as_row())
        )
    return team


def update_team(store: Store, ref: str, changes: dict, actor: str) -> Team:
    """Change the TEAM_FIELDS in `changes`, keep the others."""
    _check_changes(changes, TEAM_FIELDS)
    team = get_team(store, ref)
    new = replace(team, name=changes.get("name", team.name), limits=merged_limits(team.limits, changes))
    if "name" in changes:
        check_name(new.name, "team")
    validate_limits(new.limits)
    diff = _diff(team.public(), new.public(), TEAM_FIELDS)
    if not diff:
        return team
    with _admin_change(store, actor, "team.update", team.id, {"name": team.name, "changed": diff}) as conn:
        if "name" in diff:
            _check_team_name_free(conn, new.name)
        row = new.public()
        conn.execute(
            teams_table.update().where(teams_table.c.id == team.id).values({f: row[f] for f in diff})
        )
    return get_team(store, team.id)


def _check_team_name_free(conn, name: str) -> None:
    if conn.execute(sa.select(teams_table.c.id).where(teams_table.c.name == name)).first():
        raise Conflict(f"a team named {name!r} exists already")


def get_team(store: Store, ref: str) -> Team:
    """A team by id (`team_...`) or else by name."""
    row = None
    if _printable(ref):
        column = teams_table.c.id if ref.startswith("team_") else teams_table.c.name
        with store.engine.connect() as conn:
            row = conn.execute(sa.select(teams_table).where(column == ref)).first()
    if row is None:
        raise NotFound(f"no team {ref!r}")
    return _team_from(row)


def list_teams(store: Store) -> list[Team]:
    with store.engine.connect() as conn:
        return [_team_from(r) for r in conn.execute(sa.select(teams_table).order_by(teams_table.c.name))]


# ---- keys ------------------------------------------------------------------------------


def create_key(
    store: Store,
    name: str,
    actor: str,
    *,
    team: str | None = None,
    role: str = "member",
    limits: Limits = Limits(),
    expires_at: float | None = None,
    priority: str | None = None,
    cache: str | None = None,
    ceiling: Team | None = None,
) -> tuple[ApiKey, str]:
    """A new key; the raw key is returned once and never stored. `ceiling`: see `update_key`."""
    check_name(name, "key")
    team_id = get_team(store, team).id if team else None
    raw = new_raw_key()
    key = ApiKey(
        id=_new_id("key"),
        name=name,
        role=role,
        key_hash=hash_key(raw),
        hint=raw[:8],
        team_id=team_id,
        limits=limits,
        expires_at=expires_at,
        created_at=time.time(),
        priority=priority,
        cache=cache,
    )
    _check_key(key, set(KEY_FIELDS), ceiling)
    with _admin_change(store, actor, "key.create", key.id, _audit_detail(key)) as conn:
        _check_name_free(conn, name, team_id)
        conn.execute(keys_table.insert().values(_key_row(key)))
    return key, raw


def update_key(store: Store, ref: str, changes: dict, actor: str, *, ceiling: Team | None = None) -> ApiKey:
    """Change the KEY_FIELDS in `changes` (None clears a limit or the expiry), keep the others.
    `ceiling`: a team whose rpm, tpm and budget the key's changed ones may not exceed (what a
    team-admin may give). The audit entry holds each changed field's old and new value."""
    _check_changes(changes, KEY_FIELDS)
    key = get_key(store, ref)
    if key.revoked_at is not None:
        raise UserError(f"key {key.id} is revoked; create a new one")
    plain = {k: v for k, v in changes.items() if k not in LIMIT_FIELDS}
    new = replace(key, limits=merged_limits(key.limits, changes), **plain)
    if "name" in changes:
        check_name(new.name, "key")
    _check_key(new, set(changes), ceiling)
    diff = _diff(key.public(), new.public(), KEY_FIELDS)
    if not diff:
        return key
    with _admin_change(store, actor, "key.update", key.id, {"name": key.name, "changed": diff}) as conn:
        if "name" in diff:
            _check_name_free(conn, new.name, key.team_id)
        row = _key_row(new)
        conn.execute(keys_table.update().where(keys_table.c.id == key.id).values({f: row[f] for f in diff}))
    return get_key(store, key.id)


def _check_key(key: ApiKey, changed: set[str], ceiling: Team | None) -> None:
    """What a created or updated key must be (its name is checked apart: an update that keeps
    a name an older xvckit let through must not fail on it)."""
    if key.role not in ROLES:
        raise UserError(f"role must be one of {', '.join(ROLES)}")
    if key.priority not in (None, *PRIORITIES):
        raise UserError(f"priority must be one of {', '.join(PRIORITIES)}")
    if key.cache not in (None, *CACHE_MODES):
        raise UserError(f"cache must be one of {', '.join(CACHE_MODES)}")
    validate_limits(key.limits)
    if "expires_at" in changed and key.expires_at is not None:
        now = time.time()
        if not key.expires_at > now:
            raise UserError("the expiry must be in the future: the key would be expired at once")
        if not key.expires_at <= now + MAX_LIFETIME_S:
            raise UserError(f"a key's lifetime must be at most {MAX_LIFETIME_S // 86400} days")
    if key.role == "team-admin" and key.team_id is None:
        raise UserError("a team-admin key needs a team (--team)")
    if ceiling is not None:
        _within(key.limits, changed, ceiling)


def _within(limits: Limits, changed: set[str], team: Team) -> None:
    """No rpm, tpm or budget above the team's: a budget over the same or a shorter period may
    not be larger (the team's model list binds its keys anyway, at every request)."""
    cap = team.limits
    for name in ("rpm", "tpm"):
        value, most = getattr(limits, name), getattr(cap, name)
        if name in changed and value is not None and most is not None and value > most:
            raise NotAllowed(f"{name} {value} is above the {most} of team {team.name!r}")
    budget, most = limits.budget_usd, cap.budget_usd
    if (
        changed & {"budget_usd", "budget_period"}
        and budget is not None
        and most is not None
        and PERIODS.index(limits.budget_period) <= PERIODS.index(cap.budget_period)
        and budget > most
    ):
        raise NotAllowed(
            f"a budget of ${budget:g} a {limits.budget_period} is above the ${most:g} a "
            f"{cap.budget_period} of team {team.name!r}"
        )


def _check_name_free(conn, name: str, team_id: str | None) -> None:
    """Names are unique within a team, revoked keys included (a name stays one key's in the
    usage and the audit trail). Race-free: the admin transaction holds the audit lock."""
    team = keys_table.c.team_id == team_id if team_id else keys_table.c.team_id.is_(None)
    if conn.execute(sa.select(keys_table.c.id).where(keys_table.c.name == name, team).limit(1)).first():
        where = "in its team" if team_id else "among the keys of no team"
        raise Conflict(f"a key named {name!r} exists already {where}; choose another name")


def _key_row(key: ApiKey) -> dict:
    return {
        "id": key.id,
        "name": key.name,
        "team_id": key.team_id,
        "role": key.role,
        "key_hash": key.key_hash,
        "hint": key.hint,
        "expires_at": key.expires_at,
        "revoked_at": key.revoked_at,
        "created_at": key.created_at,
        "priority": key.priority,
        "cache": key.cache,
        **key.limits.as_row(),
    }


def _audit_detail(key: ApiKey) -> dict:
    detail = key.public()
    detail.pop("hint")
    return detail


def find_keys(store: Store, ref: str) -> list[ApiKey]:
    """The key with id `ref` (`key_...`), else the keys named `ref` (at most one a team)."""
    if not _printable(ref):
        return []
    column = keys_table.c.id if ref.startswith("key_") else keys_table.c.name
    with store.engine.connect() as conn:
        return [_key_from(r) for r in conn.execute(sa.select(keys_table).where(column == ref))]


def one_key(ref: str, found: list[ApiKey]) -> ApiKey:
    """The one key a reference found, or a UserError saying none or which teams have one."""
    if not found:
        raise NotFound(f"no key {ref!r}")
    if len(found) > 1:
        teams = ", ".join(sorted(k.team_id or "no team" for k in found))
        raise UserError(f"{len(found)} keys are named {ref!r} ({teams}); use the key id or give its team")
    return found[0]


def get_key(store: Store, ref: str, team_id: str | None = None) -> ApiKey:
    """A key by id, or by name when one key has that name (among `team_id`'s keys if given)."""
    found = find_keys(store, ref)
    if team_id is not None:
        found = [k for k in found if k.team_id == team_id]
    return one_key(ref, found)


def by_hash(store: Store, digest: str) -> tuple[ApiKey, Team | None] | None:
    """The key with this hash and its team, or None: for a key the gateway does not hold yet."""
    with store.engine.connect() as conn:
        row = conn.execute(sa.select(keys_table).where(keys_table.c.key_hash == digest)).first()
        if row is None:
            return None
        team = conn.execute(sa.select(teams_table).where(teams_table.c.id == row.team_id)).first()
    return _key_from(row), _team_from(team) if team else None


def list_keys(store: Store, team_id: str | None = None, include_revoked: bool = True) -> list[ApiKey]:
    query = sa.select(keys_table).order_by(keys_table.c.created_at)
    if team_id is not None:
        query = query.where(keys_table.c.team_id == team_id)
    if not include_revoked:
        query = query.where(keys_table.c.revoked_at.is_(None))
    with store.engine.connect() as conn:
        return [_key_from(r) for r in conn.execute(query)]


def revoke_key(store: Store, ref: str, actor: str) -> ApiKey:
    key = get_key(store, ref)
    if key.revoked_at is None:
        with _admin_change(store, actor, "key.revoke", key.id, {"name": key.name}) as conn:
            conn.execute(keys_table.update().where(keys_table.c.id == key.id).values(revoked_at=time.time()))
    return get_key(store, key.id)


def rotate_key(store: Store, ref: str, actor: str) -> tuple[ApiKey, str]:
    """A new secret for the same key (same id, limits and usage); the old one stops working."""
    key = get_key(store, ref)
    if key.revoked_at is not None:
        raise UserError(f"key {key.id} is revoked; create a new one")
    raw = new_raw_key()
    with _admin_change(store, actor, "key.rotate", key.id, {"name": key.name}) as conn:
        conn.execute(
            keys_table.update().where(keys_table.c.id == key.id).values(key_hash=hash_key(raw), hint=raw[:8])
        )
    return get_key(store, key.id), raw


def snapshot(store: Store) -> tuple[dict[str, ApiKey], dict[str, Team], str | None]:
    """Every key by hash and every team by id, with the version they were read at."""
    with store.engine.connect() as conn:
        version = read_version(conn)
        keys = {r.key_hash: _key_from(r) for r in conn.execute(sa.select(keys_table))}
        teams = {r.id: _team_from(r) for r in conn.execute(sa.select(teams_table))}
    return keys, teams, version


def read_version(conn) -> str | None:
    return conn.execute(sa.select(meta.c.value).where(meta.c.key == KEYS_VERSION)).scalar()


# ---- spend -----------------------------------------------------------------------------


def spend(store: Store, key: ApiKey, now: float | None = None) -> list[dict]:
    """What the key, and its team, spent in the current period of each one's budget (this
    month without one) and what the budget leaves, from the usage ledger (which the gateway
    commits about once a second)."""
    rows = [_spend(store, "key", key.id, key.limits, now)]
    if key.team_id:
        team = get_team(store, key.team_id)
        rows.append(_spend(store, "team", team.id, team.limits, now))
    return rows


def _spend(store: Store, scope: str, ident: str, limits: Limits, now: float | None) -> dict:
    from xvckit.gateway.admission import period_bounds  # not at the top: admission imports this module

    period = limits.budget_period or "month"
    start, end = period_bounds(period, time.time() if now is None else now)
    found = usage_report(store, None, start, **{f"{scope}_id": ident})
    spent = float(found[0]["cost_usd"]) if found else 0.0
    budget = limits.budget_usd
    return {
        "scope": scope,
        "id": ident,
        "period": period,
        "started_at": start,
        "resets_at": end,
        "spent_usd": spent,
        "budget_usd": budget,
        "left_usd": None if budget is None else max(0.0, budget - spent),
    }


def with_names(rows: list[dict], keys: Iterable[ApiKey], teams: Iterable[Team]) -> list[dict]:
    """Usage rows with names beside the ids: `key_name` and its team's `team_name` in rows by
    key, `team_name` in rows by team; None for a key or team not among those given."""
    key_by_id = {k.id: k for k in keys}
    team_names = {t.id: t.name for t in teams}
    named = []
    for row in rows:
        if "key_id" in row:
            key = key_by_id.get(row["key_id"])
            team = team_names.get(key.team_id) if key and key.team_id else None
            row = {"key_id": row["key_id"], "key_name": key.name if key else None, "team_name": team, **row}
        elif "team_id" in row:
            row = {"team_id": row["team_id"], "team_name": team_names.get(row["team_id"]), **row}
        named.append(row)
    return named
