"""The ledger's figures per provider, read once per run (in a thread) for uptime and API tier.

A SQLite store that does not exist yet is not created just to find it empty: no file, no
history. Any failure to read becomes the reason the checks that wanted it say `unknown`.
The store (SQLAlchemy) is imported only when a check asks, so the rest of the doctor starts
without it.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import TYPE_CHECKING

from xvckit.doctor.runner import in_thread
from xvckit.errors import UserError

if TYPE_CHECKING:
    from xvckit.store.provider_stats import ProviderStats


class NoHistory(Exception):
    """Why there is no ledger history to read (one line)."""


class History:
    def __init__(self, storage_url: str, providers: list[str], days: float) -> None:
        self.storage_url = storage_url
        self.providers = providers
        self.days = days
        self._read: asyncio.Task[dict[str, ProviderStats]] | None = None

    async def of(self, provider: str) -> ProviderStats:
        """The provider's figures; NoHistory when there are none."""
        if self._read is None or self._read.get_loop() is not asyncio.get_running_loop():
            self._read = asyncio.ensure_future(in_thread(self._load))
        stats = (await asyncio.shield(self._read)).get(provider)
        if stats is None:
            raise NoHistory(f"no requests to {provider} in the ledger in the last {self.days:g} days")
        return stats

    def _load(self) -> dict[str, ProviderStats]:
        import sqlalchemy as sa

        from xvckit.store import Store
        from xvckit.store.provider_stats import provider_stats

        if self.storage_url.startswith("sqlite:///"):
            path = Path(self.storage_url.removeprefix("sqlite:///")).expanduser()
            if not path.exists():
                raise NoHistory(f"no ledger yet ({path} does not exist)")
        try:
            store = Store.open(self.storage_url)
        except UserError as exc:
            raise NoHistory(str(exc)) from None
        try:
            return provider_stats(store, self.providers, time.time() - self.days * 86400)
        except sa.exc.SQLAlchemyError as exc:
            raise NoHistory(f"cannot read the ledger: {str(exc).splitlines()[0]}") from None
        finally:
            store.close()
