"""Persistence: one SQLAlchemy Core schema on SQLite (default) or PostgreSQL."""

# imported for their tables, which `Store.open` creates with the rest of `schema.metadata`
from xvckit.store import audit, secrets
from xvckit.store.database import Store, StoreError, data_dir_of

__all__ = ["Store", "StoreError", "audit", "data_dir_of", "secrets"]
