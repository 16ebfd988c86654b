"""Persistence: one SQLAlchemy Core schema on SQLite (default) or PostgreSQL."""

# imported for their tables: `schema.metadata` declares every table (the migrations make them)
from xvckit.store import audit, infra, keys, secrets
from xvckit.store.database import (
    Store,
    StoreError,
    data_dir_of,
    engine_for,
    local_dir,
    open_store,
    safe_url,
)
from xvckit.store.ledger import UsageRecord, ledger_request_ids, usage_report
from xvckit.store.ledger_feed import Ledger, LedgerClosed

__all__ = [
    "Ledger",
    "LedgerClosed",
    "Store",
    "StoreError",
    "UsageRecord",
    "audit",
    "data_dir_of",
    "engine_for",
    "infra",
    "keys",
    "ledger_request_ids",
    "local_dir",
    "open_store",
    "safe_url",
    "secrets",
    "usage_report",
]
