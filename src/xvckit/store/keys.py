"""Teams and virtual API keys: what the store keeps (a key's hash, never the key) and the
admin actions on them, each one audited.

Keys carry 256 random bits, so a plain SHA-256 is the right hash: nothing to brute-force,
and a lookup stays one dict access in the gateway.
"""

from __future__ import annotations

import hashlib
import secrets
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import sqlalchemy as sa

from xvckit.errors import UserError
from xvckit.store import audit
from xvckit.store.database import Store
from xvckit.store.schema import bump_version, meta, metadata

KEY_PREFIX = "xvc-"
ROLES: tuple[str, ...] = ("admin", "team-admin", "member")
PERIODS: tuple[str, ...] = ("day", "week", "month")
PRIORITIES: tuple[str, ...] = ("interactive", "batch")
CACHE_MODES: tuple[str, ...] = ("on", "off", "deterministic")
KEYS_VERSION = "keys_version"

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


def validate_limits(limits: Limits) -> Limits:
    if limits.budget_usd is not None:
        if limits.budget_usd < 0:
            raise UserError("budget must be zero or more (USD)")
        if limits.budget_period not in PERIODS:
            raise UserError(f"budget period must be one of {', '.join(PERIODS)}")
    for name in ("rpm", "tpm"):
        value = getattr(limits, name)
        if value is not None and value <= 0:
            raise UserError(f"{name} must be a positive whole number")
    return limits


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
    validate_limits(limits)
    team = Team(_new_id("team"), name, limits, time.time())
    with _admin_change(store, actor, "team.create", team.id, {"name": name, **limits.as_row()}) as conn:
        if conn.execute(sa.select(teams_table.c.id).where(teams_table.c.name == name)).first():
            raise UserError(f"a team named {name!r} exists already")
        conn.execute(
            teams_table.insert().values(id=team.id, name=name, created_at=team.created_at, **limits.as_row())
        )
    return team


def update_team(store: Store, ref: str, limits: Limits, actor: str) -> Team:
    validate_limits(limits)
    team = get_team(store, ref)
    with _admin_change(store, actor, "team.update", team.id, limits.as_row()) as conn:
        conn.execute(teams_table.update().where(teams_table.c.id == team.id).values(**limits.as_row()))
    return get_team(store, team.id)


def get_team(store: Store, ref: str) -> Team:
    """A team by id or by name."""
    with store.engine.connect() as conn:
        row = conn.execute(
            sa.select(teams_table).where((teams_table.c.id == ref) | (teams_table.c.name == ref))
        ).first()
    if row is None:
        raise UserError(f"no team {ref!r}")
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
) -> tuple[ApiKey, str]:
    """A new key; the raw key is returned once and never stored."""
    if role not in ROLES:
        raise UserError(f"role must be one of {', '.join(ROLES)}")
    if priority not in (None, *PRIORITIES):
        raise UserError(f"priority must be one of {', '.join(PRIORITIES)}")
    if cache not in (None, *CACHE_MODES):
        raise UserError(f"cache must be one of {', '.join(CACHE_MODES)}")
    validate_limits(limits)
    team_id = get_team(store, team).id if team else None
    if role == "team-admin" and team_id is None:
        raise UserError("a team-admin key needs a team (--team)")
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
    with _admin_change(store, actor, "key.create", key.id, _audit_detail(key)) as conn:
        conn.execute(keys_table.insert().values(_key_row(key)))
    return key, raw


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


def get_key(store: Store, ref: str) -> ApiKey:
    """A key by id, or by name when the name is unique."""
    with store.engine.connect() as conn:
        rows = conn.execute(
            sa.select(keys_table).where((keys_table.c.id == ref) | (keys_table.c.name == ref))
        ).all()
    if not rows:
        raise UserError(f"no key {ref!r}")
    if len(rows) > 1:
        raise UserError(f"{len(rows)} keys are named {ref!r}; use the key id")
    return _key_from(rows[0])


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
