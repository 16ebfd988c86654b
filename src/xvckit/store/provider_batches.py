"""The gateway's record of the batches and files keys made at the providers (the
`xvckit_provider_batches` table): who owns each, where it is, what it may cost, whether its
results are in the ledger. Synchronous, for the gateway's worker threads."""

from __future__ import annotations

import secrets
import time
from dataclasses import dataclass

import sqlalchemy as sa

from xvckit.store.database import Store
from xvckit.store.schema import provider_batches as table

FILE, BATCH = "file", "batch"
# A batch create in progress under an Idempotency-Key holds the key with a row of this kind,
# whose id no caller can name (ids are checked against `[A-Za-z0-9][A-Za-z0-9_.-]*`), until the
# batch is made (the row becomes the batch's) or not (the row goes). A claim older than the
# longest a create can take (the caller's `ttl_s`) is a gateway that died mid-create: the next
# create under the key takes it over.
CLAIM = "claim"


@dataclass(frozen=True, slots=True)
class Owned:
    id: str
    kind: str  # FILE or BATCH
    api: str  # openai | anthropic
    provider: str
    owner: str  # the key's id, or "master"
    team_id: str | None
    created_at: float
    detail: dict
    ledgered_at: float | None = None


def add(store: Store, item: Owned, idempotency_key: str | None = None) -> bool:
    """Record `item`; False when its id is recorded already (an output file seen twice), or
    its owner's `idempotency_key` names another."""
    values = {
        "id": item.id,
        "kind": item.kind,
        "api": item.api,
        "provider": item.provider,
        "owner": item.owner,
        "team_id": item.team_id,
        "created_at": item.created_at,
        "detail": item.detail,
        "idempotency_key": idempotency_key,
    }
    try:
        with store.engine.begin() as conn:
            conn.execute(table.insert().values(**values))
    except sa.exc.IntegrityError:
        return False
    return True


def claim(store: Store, owner: str, team_id: str | None, key: str, ttl_s: float) -> str | Owned:
    """Hold `owner`'s `key` for a create about to be made: the claim's id, or what holds the key
    already (the batch made under it, or another create's claim, still in progress)."""
    ident = f"~{CLAIM}:{secrets.token_hex(16)}"
    values = {"id": ident, "kind": CLAIM, "api": "", "provider": "", "owner": owner, "team_id": team_id}
    for _ in range(3):  # a holder may go between the insert and the look-up: try again
        try:
            with store.engine.begin() as conn:
                conn.execute(
                    table.insert().values(**values, created_at=time.time(), detail={}, idempotency_key=key)
                )
            return ident
        except sa.exc.IntegrityError:
            holder = by_idempotency_key(store, owner, key)
        if holder is None:
            continue
        if not stale(holder, ttl_s):
            return holder
        release(store, holder.id)
    raise RuntimeError(f"Idempotency-Key of {owner} could not be claimed")


def stale(item: Owned, ttl_s: float) -> bool:
    """A claim left by a create that never finished (its gateway died)."""
    return item.kind == CLAIM and item.created_at < time.time() - ttl_s


def made(store: Store, claim_id: str, item: Owned) -> bool:
    """The claim becomes the batch made under it; False when it is gone (taken over as stale)
    or the batch's id is recorded already."""
    values = {
        "id": item.id,
        "kind": item.kind,
        "api": item.api,
        "provider": item.provider,
        "created_at": item.created_at,
        "detail": item.detail,
    }
    try:
        with store.engine.begin() as conn:
            done = conn.execute(table.update().where(table.c.id == claim_id).values(**values))
    except sa.exc.IntegrityError:
        return False
    return done.rowcount == 1


def release(store: Store, claim_id: str) -> None:
    with store.engine.begin() as conn:
        conn.execute(table.delete().where(table.c.id == claim_id, table.c.kind == CLAIM))


def find(store: Store, ident: str, owner: str, kind: str | None = None) -> Owned | None:
    """The item `ident` if `owner` owns it (of `kind`); None otherwise, as for an unknown id."""
    query = sa.select(table).where(table.c.id == ident, table.c.owner == owner)
    if kind is not None:
        query = query.where(table.c.kind == kind)
    with store.engine.connect() as conn:
        row = conn.execute(query).first()
    return _owned(row) if row else None


def by_idempotency_key(store: Store, owner: str, key: str) -> Owned | None:
    query = sa.select(table).where(table.c.owner == owner, table.c.idempotency_key == key)
    with store.engine.connect() as conn:
        row = conn.execute(query).first()
    return _owned(row) if row else None


def listing(store: Store, owner: str, kind: str, api: str, after: str | None, limit: int) -> list[Owned]:
    """`owner`'s items of `kind` on `api`, newest first, the page after the id `after`."""
    query = sa.select(table).where(table.c.owner == owner, table.c.kind == kind, table.c.api == api)
    with store.engine.connect() as conn:
        if after is not None:
            start = conn.execute(
                sa.select(table.c.created_at).where(table.c.id == after, table.c.owner == owner)
            ).scalar()
            if start is None:
                return []
            query = query.where(
                sa.or_(table.c.created_at < start, sa.and_(table.c.created_at == start, table.c.id < after))
            )
        rows = conn.execute(query.order_by(table.c.created_at.desc(), table.c.id.desc()).limit(limit)).all()
    return [_owned(row) for row in rows]


def unledgered(store: Store, since: float, limit: int) -> list[Owned]:
    """Batches made since `since` whose results are not in the ledger yet, oldest first."""
    query = (
        sa.select(table)
        .where(table.c.kind == BATCH, table.c.ledgered_at.is_(None), table.c.created_at >= since)
        .order_by(table.c.created_at)
        .limit(limit)
    )
    with store.engine.connect() as conn:
        return [_owned(row) for row in conn.execute(query)]


def ledgered(store: Store, ident: str) -> None:
    with store.engine.begin() as conn:
        conn.execute(table.update().where(table.c.id == ident).values(ledgered_at=time.time()))


def _owned(row) -> Owned:
    return Owned(
        row.id,
        row.kind,
        row.api,
        row.provider,
        row.owner,
        row.team_id,
        row.created_at,
        row.detail,
        row.ledgered_at,
    )
