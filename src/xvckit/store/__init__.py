"""Persistence: one SQLAlchemy Core schema on SQLite (default) or PostgreSQL."""

# imported for their tables, which `Store.open` creates with the rest of `schema.metadata`
from xvckit.store import audit, secrets
from xvckit.store.database import Store, StoreError, data_dir_of, local_dir, open_store
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
    "ledger_request_ids",
    "local_dir",
    "open_store",
    "secrets",
    "usage_report",
]
