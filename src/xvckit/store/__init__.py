"""Persistence: one SQLAlchemy Core schema on SQLite (default) or PostgreSQL."""

from xvckit.store.database import Store, StoreError, data_dir_of

__all__ = ["Store", "StoreError", "data_dir_of"]
