"""The store's schema, made and upgraded by one Alembic migration chain for SQLite and
PostgreSQL (src/xvckit/store/migrations/versions, revisions numbered 0001, 0002, ...).

`Store.open` calls `upgrade` first, so every command that opens a store finds it current.
An up-to-date store costs one query: Alembic (~0.15 s to import) is loaded only when a
store is behind. Upgrades hold a lock (a file beside a SQLite database, an advisory lock on
PostgreSQL), so a gateway, its ledger writer and the CLI starting together migrate once.
"""

from __future__ import annotations

import fcntl
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.engine import Engine

log = logging.getLogger("xvckit.store")
logging.getLogger("alembic").setLevel(logging.WARNING)  # its plugin and dialect notes are not news

_MIGRATIONS = Path(__file__).with_name("migrations")
_VERSION_TABLE = "alembic_version"
_PG_LOCK_ID = 0x78766B6D69677261  # "xvkmigra"


def head() -> str:
    """The newest revision: the highest-numbered file of the chain (a test holds Alembic's
    own reading of the chain to this)."""
    return max(path.name.split("_", 1)[0] for path in (_MIGRATIONS / "versions").glob("[0-9]*.py"))


def current(engine: Engine) -> str | None:
    """The revision a store is at; None for a store made before migrations, or none at all."""
    with engine.connect() as conn:
        return _current_in(conn)


def upgrade(engine: Engine) -> bool:
    """Bring the store to the newest revision; True when something was applied."""
    if current(engine) == head():
        return False
    from alembic import command

    with _migration_lock(engine), engine.begin() as conn:
        before = _current_in(conn)
        if before == head():  # another process did it while this one waited
            return False
        command.upgrade(_config(conn), "head")
    log.info("store schema upgraded from %s to %s", before or "unversioned", head())
    return True


@dataclass(frozen=True)
class Revision:
    id: str
    down: str | None
    doc: str


def history() -> list[Revision]:
    """The migration chain, oldest first."""
    from alembic.script import ScriptDirectory

    scripts = ScriptDirectory.from_config(_config(None))
    chain = [Revision(s.revision, s.down_revision, s.doc) for s in scripts.walk_revisions()]
    return chain[::-1]


def _config(conn: sa.Connection | None):
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(_MIGRATIONS))
    config.attributes["connection"] = conn
    return config


def _current_in(conn: sa.Connection) -> str | None:
    if not sa.inspect(conn).has_table(_VERSION_TABLE):
        return None
    return conn.execute(sa.text(f"SELECT version_num FROM {_VERSION_TABLE}")).scalar()


@contextmanager
def _migration_lock(engine: Engine) -> Iterator[None]:
    if engine.dialect.name == "postgresql":
        with engine.connect() as conn:
            conn.execute(sa.text("SELECT pg_advisory_lock(:id)"), {"id": _PG_LOCK_ID})
            try:
                yield
            finally:
                conn.execute(sa.text("SELECT pg_advisory_unlock(:id)"), {"id": _PG_LOCK_ID})
                conn.commit()
    elif engine.dialect.name == "sqlite" and engine.url.database not in (None, "", ":memory:"):
        with open(f"{engine.url.database}.migrate.lock", "a+b") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            yield
    else:
        yield
