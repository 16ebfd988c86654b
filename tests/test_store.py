"""The store opens on both back ends and survives being opened again."""

import sqlalchemy as sa

from xvckit.store import Store
from xvckit.store.ledger import UsageRecord, ledger_records, write_records


def test_open_ping_reopen(store_url):
    store = Store.open(store_url)
    store.ping()
    store.close()
    again = Store.open(store_url)
    again.ping()
    again.close()


def test_a_column_declared_after_the_database_was_made_is_added_on_open(store_url):
    """A database made before `client_request_id` existed gets it, and takes rows with it."""
    store = Store.open(store_url)
    with store.engine.begin() as conn:
        conn.execute(sa.text("ALTER TABLE xvckit_usage DROP COLUMN client_request_id"))
    store.close()
    store = Store.open(store_url)
    write_records(store, [UsageRecord("req-1", "chat", status=200, client_request_id="trace-1")])
    assert [r.client_request_id for r in ledger_records(store)] == ["trace-1"]
    store.close()
