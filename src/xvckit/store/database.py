"""Open the store by URL; SQLite in WAL mode, PostgreSQL through psycopg.

The engine is synchronous and used from worker threads: the gateway never blocks its
event loop on the database, and one code path serves both back ends.
"""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from xvckit.config import Config, load
from xvckit.config.schema import data_dir_of, default_data_dir
from xvckit.errors import UserError
from xvckit.store import migrate

# sqlite3 binds a None or a bool only after an adapter lookup that raises and clears a formatted
# AttributeError; an adapter for each makes that one dict lookup and binds the same values (the
# ledger writer binds two or three of them a row: -0.4 us of its ~6).
sqlite3.register_adapter(bool, int)
sqlite3.register_adapter(type(None), lambda value: None)


class StoreError(UserError):
    """The store cannot be opened or used; the message names the URL without credentials."""


def local_dir(url: str) -> Path:
    """Where xvckit keeps its local files (keys, journal) for a store opened by URL alone:
    beside a SQLite database, else in the default data folder."""
    return data_dir_of(url) or default_data_dir()


def _engine_url(url: str) -> str:
    if url.startswith("sqlite:///"):
        path = Path(url.removeprefix("sqlite:///")).expanduser()
        path.parent.mkdir(parents=True, exist_ok=True)
        return f"sqlite:///{path}"
    if url.startswith("postgresql://"):
        return "postgresql+psycopg://" + url.removeprefix("postgresql://")
    return url


def safe_url(url: str) -> str:
    """A store URL fit to print: the password hidden."""
    try:
        return sa.make_url(url).render_as_string(hide_password=True)
    except sa.exc.ArgumentError:
        return "<not a database URL>"


def engine_for(url: str) -> Engine:
    """An engine for a store URL (SQLite with WAL and a busy timeout), its schema untouched."""
    try:
        engine = sa.create_engine(_engine_url(url), pool_pre_ping=True, hide_parameters=True)
    except (sa.exc.SQLAlchemyError, OSError) as exc:
        raise StoreError(f"cannot open store {safe_url(url)}: {_first_line(exc)}") from None
    if engine.dialect.name == "sqlite":
        sa.event.listen(engine, "connect", _sqlite_pragmas)
    return engine


class Store:
    """A database and its data folder (`storage.data_dir`): the local files that go with it."""

    def __init__(self, engine: Engine, url: str, data_dir: Path | None = None) -> None:
        self.engine = engine
        self.url = url
        self.data_dir = data_dir.expanduser() if data_dir else local_dir(url)

    @classmethod
    def open(cls, url: str, data_dir: Path | None = None) -> Store:
        """The store at `url`, its schema brought up to date first."""
        engine = engine_for(url)
        try:
            migrate.upgrade(engine)
        except (sa.exc.SQLAlchemyError, OSError) as exc:
            engine.dispose()
            raise StoreError(f"cannot open store {safe_url(url)}: {_first_line(exc)}") from None
        return cls(engine, url, data_dir)

    @classmethod
    def configured(cls, config: Config) -> Store:
        """The store of a configuration, with its data folder."""
        return cls.open(config.storage.url, config.storage.data_dir)

    def ping(self) -> None:
        """Raise StoreError unless a round trip to the database works."""
        try:
            with self.engine.connect() as conn:
                conn.execute(sa.text("SELECT 1"))
        except sa.exc.SQLAlchemyError as exc:
            raise StoreError(_first_line(exc)) from None

    def close(self) -> None:
        self.engine.dispose()


def _sqlite_pragmas(dbapi_connection, _record) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA busy_timeout=5000")
    cursor.close()


def _first_line(exc: BaseException) -> str:
    text = str(getattr(exc, "orig", None) or exc)
    return text.strip().splitlines()[0] if text.strip() else type(exc).__name__


def open_store(
    config_path: str | os.PathLike[str] | None, data_dir: str | os.PathLike[str] | None = None
) -> tuple[Config, Store]:
    """The configuration and its store, for CLI commands that work on the data directly
    (`data_dir`: their --data-dir)."""
    config = load(config_path, data_dir=data_dir)
    return config, Store.configured(config)
