"""What a run will cost, before it runs and while it runs, from the gateway's price table.

Input tokens are counted with the model's tokenizer (`providers.models`: tiktoken, cl100k_base
standing in for Claude's); the output is unknown until it is written, so an estimate gives
its ceiling, `max_tokens` per item, and the cost range from input alone to input plus every
output token allowed. The cost cap counts each request in flight at that ceiling.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from xvckit.batch.requests import Request
from xvckit.context.tokens import DEFAULT_ENCODING, count, model_info
from xvckit.providers.prices import PriceTable, price_table


def prices(overrides: Mapping | None) -> PriceTable:
    """The built-in table with `prices:` from xvckit.yaml over it (as the gateway prices)."""
    return price_table({m: p.model_dump(exclude_none=True) for m, p in (overrides or {}).items()})


def tokens(model: str, text: str) -> int:
    info = model_info(model)
    return count(text, info[0] if info else DEFAULT_ENCODING)


def worst_usd(table: PriceTable, request: Request) -> float | None:
    return table.estimate_usd(request.model, request.input_tokens, request.max_tokens)


def estimate(table: PriceTable, requests: Iterable[Request], share: float = 1.0) -> list[dict]:
    """Per model: items, input tokens, the output ceiling, and the cost from input alone to
    input plus the whole ceiling (None for a model without a price), at `share` of the price
    table (a provider batch's half)."""
    rows: dict[str, dict] = {}
    for r in requests:
        row = rows.setdefault(
            r.model,
            {
                "model": r.model,
                "items": 0,
                "input_tokens": 0,
                "output_tokens_max": 0,
                "priced": r.model in table,
            },
        )
        row["items"] += 1
        row["input_tokens"] += r.input_tokens
        row["output_tokens_max"] += r.max_tokens
    for row in rows.values():
        priced = row.pop("priced")
        low = table.estimate_usd(row["model"], row["input_tokens"], 0)
        high = table.estimate_usd(row["model"], row["input_tokens"], row["output_tokens_max"])
        row["cost_min_usd"] = low * share if priced and low is not None else None
        row["cost_max_usd"] = high * share if priced and high is not None else None
    return list(rows.values())
