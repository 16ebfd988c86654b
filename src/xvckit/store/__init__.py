"""Persistence: one SQLAlchemy Core schema on SQLite (default) or PostgreSQL."""

# imported for their tables, which `Store.open` creates with the rest of `schema.metadata`
from xvckit.store import audit, secrets
from xvckit.store.database import Store, StoreError, data_dir_of, local_dir, open_store
from xvckit.store.ledger import (
    Ledger,
    LedgerClosed,
    LedgerError,
    LedgerUnavailable,
    UsageRecord,
    ledger_request_ids,
    usage_report,
)

__all__ = [
    "Ledger",
    "LedgerClosed",
    "LedgerError",
    "LedgerUnavailable",
    "Store",
    "StoreError",
    "UsageRecord",
    "audit",
    "data_dir_of",
    "ledger_request_ids",
    "local_dir",
    "open_store",
    "secrets",
    "usage_report",
]
