"""The store opens on both back ends and survives being opened again."""

from xvckit.store import Store


def test_open_ping_reopen(store_url):
    store = Store.open(store_url)
    store.ping()
    store.close()
    again = Store.open(store_url)
    again.ping()
    again.close()
