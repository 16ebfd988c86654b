"""A provider batch's results in the usage ledger: one row per request the provider ran
(succeeded or errored; a canceled or expired request ran nowhere and costs nothing), priced at
the batch price (`PRICE_SHARE` of the price table), under the key that made the batch, with
endpoint `batch`. Each row's id is made from the batch's id and the request's `custom_id`, so
reading the results again (another replica, a retry after a failure half way) records nothing
twice: the ledger skips an id it has. Latency fields are 0: a batch request has no latency a
person waited for, and latency statistics leave the endpoint out."""

from __future__ import annotations

import hashlib

from xvckit.gateway.exchange import Exchange
from xvckit.providers import anthropic, openai
from xvckit.providers.batches import ERRORED, PRICE_SHARE, SUCCEEDED, Result
from xvckit.providers.prices import PriceTable
from xvckit.providers.usage import Usage
from xvckit.store.ledger import BATCH_ENDPOINT
from xvckit.store.provider_batches import Owned

ENDPOINT = BATCH_ENDPOINT
MASTER = "master"  # the owner the master key's batches are recorded under


def request_id(batch_id: str, custom_id: str) -> str:
    """The ledger row's id of one request of a batch: the same each time its results are read."""
    return "batch_" + hashlib.sha256(f"{batch_id}\n{custom_id}".encode()).hexdigest()[:40]


def ledger_row(result: Result, batch: Owned, prices: PriceTable) -> tuple | None:
    """The ledger row of one result, its model the one the request asked for (priced as its
    route's upstream id, as the proxy prices); None for a request that never ran."""
    if result.kind not in (SUCCEEDED, ERRORED):
        return None
    models: dict[str, str] = batch.detail.get("models") or {}
    asked = (batch.detail.get("model_of") or {}).get(result.custom_id) or next(iter(models), None)
    upstream = models.get(asked or "")
    ex = Exchange(request_id(batch.id, result.custom_id), ENDPOINT, path=f"batch {batch.id}")
    ex.key_id = None if batch.owner == MASTER else batch.owner
    ex.team_id, ex.authenticated = batch.team_id, True
    ex.model, ex.provider, ex.upstream_model = asked, batch.provider, upstream
    ex.deployment = f"{batch.provider}/{upstream}" if upstream else None
    ex.status = result.status or 500
    if result.kind == SUCCEEDED:
        ex.usage = _usage(batch.api, result.body or {})
    else:
        ex.error = f"upstream_{ex.status}"
    ex.cost_usd = (prices.cost_usd(upstream, ex.usage) or 0.0) * PRICE_SHARE
    return ex.ledger_row(ex.cost_usd)


def _usage(api: str, body: dict) -> Usage:
    """An answer's usage; none when its counts are not counts (the provider's odd answer is
    recorded, not fatal to the rest of the batch)."""
    try:
        return (anthropic if api == "anthropic" else openai).usage_from_body(body)
    except ValueError:
        return Usage()
