"""The price table: USD per 1M tokens for each model, and the cost of one request.

Sources, read 2026-11-27 (update the date with the numbers):
- OpenAI: https://developers.openai.com/api/docs/pricing and the model pages under
  https://developers.openai.com/api/docs/models/ ("Text tokens": input, cached input, output;
  embeddings: one price). OpenAI does not bill cache writes, so `cache_write` is the input price.
- Anthropic: https://platform.claude.com/docs/en/about-claude/pricing ("Model pricing": base
  input, 5-minute cache writes = 1.25x input, cache hits = 0.1x input, output). The 1-hour cache
  write (2x input) is not told apart in `Usage`; every cache write is priced at the 5-minute rate.

Batch, regional (data residency) and long-context surcharges are not modelled. Models that are
not here cost `None` (unknown); `price_table(overrides)` adds or corrects entries from config.

Lookup: the exact id (lower case), else the longest entry that is a prefix ending at a `-`
(dated snapshots: `gpt-4o-2024-08-06`, `claude-sonnet-4-5-20250929`, `...-latest`). A prefix
match is refused when the rest starts with a short version number (`claude-opus-4` does not
price `claude-opus-4-7`, `gpt-5` does not price `gpt-5.4`): a wrong price is worse than none.
A `provider/` prefix (`openai/gpt-4o`) is ignored.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, replace

from xvckit.providers.usage import Usage

PER = 1_000_000


@dataclass(frozen=True, slots=True)
class Price:
    """USD per 1M tokens."""

    input: float
    output: float
    cache_read: float
    cache_write: float


def _openai(input: float, output: float, cached: float | None = None) -> Price:
    return Price(input, output, input if cached is None else cached, input)


def _anthropic(input: float, output: float) -> Price:
    return Price(input, output, round(input * 0.1, 6), round(input * 1.25, 6))


PRICES: dict[str, Price] = {
    # OpenAI
    "gpt-4o": _openai(2.50, 10.00, 1.25),
    "gpt-4o-mini": _openai(0.15, 0.60, 0.075),
    "gpt-4.1": _openai(2.00, 8.00, 0.50),
    "gpt-4.1-mini": _openai(0.40, 1.60, 0.10),
    "gpt-4.1-nano": _openai(0.10, 0.40, 0.025),
    "o1": _openai(15.00, 60.00, 7.50),
    "o3": _openai(2.00, 8.00, 0.50),
    "o3-mini": _openai(1.10, 4.40, 0.55),
    "o3-pro": _openai(20.00, 80.00),
    "o4-mini": _openai(1.10, 4.40, 0.275),
    "gpt-5": _openai(1.25, 10.00, 0.125),
    "gpt-5-mini": _openai(0.25, 2.00, 0.025),
    "gpt-5-nano": _openai(0.05, 0.40, 0.005),
    "gpt-5-pro": _openai(15.00, 120.00),
    "gpt-5.1": _openai(1.25, 10.00, 0.125),
    "gpt-5.2": _openai(1.75, 14.00, 0.175),
    "text-embedding-3-small": _openai(0.02, 0.0),
    "text-embedding-3-large": _openai(0.13, 0.0),
    # Anthropic
    "claude-opus-4-8": _anthropic(5.00, 25.00),
    "claude-opus-4-7": _anthropic(5.00, 25.00),
    "claude-opus-4-6": _anthropic(5.00, 25.00),
    "claude-opus-4-5": _anthropic(5.00, 25.00),
    "claude-opus-4-1": _anthropic(15.00, 75.00),
    "claude-opus-4-0": _anthropic(15.00, 75.00),
    "claude-opus-4": _anthropic(15.00, 75.00),
    "claude-sonnet-4-6": _anthropic(3.00, 15.00),
    "claude-sonnet-4-5": _anthropic(3.00, 15.00),
    "claude-sonnet-4-0": _anthropic(3.00, 15.00),
    "claude-sonnet-4": _anthropic(3.00, 15.00),
    "claude-haiku-4-5": _anthropic(1.00, 5.00),
    "claude-3-7-sonnet": _anthropic(3.00, 15.00),
    "claude-3-5-sonnet": _anthropic(3.00, 15.00),
    "claude-3-5-haiku": _anthropic(0.80, 4.00),
    "claude-3-opus": _anthropic(15.00, 75.00),
    "claude-3-haiku": Price(0.25, 1.25, 0.03, 0.30),
    "claude-opus-5": _anthropic(5.00, 25.00),
    "claude-sonnet-5": _anthropic(2.00, 10.00),
}

_VERSION_STEP = re.compile(r"\d{1,2}(?:-|$)")
_FIELDS = ("input", "output", "cache_read", "cache_write")


class PriceTable:
    def __init__(self, prices: Mapping[str, Price]) -> None:
        self._prices = {name.lower(): price for name, price in prices.items()}
        self._by_length = sorted(self._prices, key=len, reverse=True)
        self._memo: dict[str, Price | None] = {}

    def __contains__(self, model: str) -> bool:
        return self.lookup(model) is not None

    def items(self) -> list[tuple[str, Price]]:
        return sorted(self._prices.items())

    def lookup(self, model: str | None) -> Price | None:
        if not model:
            return None
        try:
            return self._memo[model]
        except KeyError:
            pass
        found = self._find(model.lower().rsplit("/", 1)[-1])
        if len(self._memo) < 4096:  # model names come from clients: keep the memo bounded
            self._memo[model] = found
        return found

    def _find(self, name: str) -> Price | None:
        exact = self._prices.get(name)
        if exact is not None:
            return exact
        for prefix in self._by_length:
            end = len(prefix)
            if (
                name.startswith(prefix)
                and name[end : end + 1] == "-"
                and not _VERSION_STEP.match(name, end + 1)
            ):
                return self._prices[prefix]
        return None

    def cost_usd(self, model: str | None, usage: Usage) -> float | None:
        """What one request cost; None for a model without a price.

        `usage.input_tokens` counts every input token, cache reads and writes included (as
        OpenAI's `prompt_tokens` does; the Anthropic reader adds them up the same way)."""
        price = self.lookup(model)
        if price is None:
            return None
        # Conditionals, not max(): a builtin call costs more than the arithmetic (hot path).
        cached = usage.cached_tokens if usage.cached_tokens > 0 else 0
        written = usage.cache_write_tokens if usage.cache_write_tokens > 0 else 0
        fresh = usage.input_tokens - cached - written
        output = usage.output_tokens
        return (
            (fresh if fresh > 0 else 0) * price.input
            + cached * price.cache_read
            + written * price.cache_write
            + (output if output > 0 else 0) * price.output
        ) / PER

    def estimate_usd(self, model: str | None, input_tokens: int, max_output_tokens: int) -> float | None:
        """An upper bound before the request runs (for budget reservations): every input token
        at the uncached price, the whole output allowance at the output price."""
        price = self.lookup(model)
        if price is None:
            return None
        return (
            (input_tokens if input_tokens > 0 else 0) * price.input
            + (max_output_tokens if max_output_tokens > 0 else 0) * price.output
        ) / PER

    def with_overrides(self, overrides: Mapping[str, Mapping[str, float]] | None) -> PriceTable:
        """This table with entries added or changed, from config:
        `{model: {input, output, cache_read, cache_write}}` in USD per 1M tokens.

        For a model already priced, missing (or None) fields keep their value; a new model needs
        `input` and `output`, and its cache prices default to the input price. Raises ValueError."""
        if not overrides:
            return self
        merged = dict(self._prices)
        for model, fields in overrides.items():
            name = str(model).strip().lower()
            if not name:
                raise ValueError("price override: empty model name")
            if hasattr(fields, "model_dump"):  # the config's pydantic `Price`
                fields = fields.model_dump()
            if not isinstance(fields, Mapping):
                raise ValueError(f"price override for {model!r}: expected a mapping of {', '.join(_FIELDS)}")
            unknown = sorted(set(fields) - set(_FIELDS))
            if unknown:
                raise ValueError(
                    f"price override for {model!r}: unknown field {unknown[0]!r} (use {', '.join(_FIELDS)})"
                )
            values = {}
            for field, value in fields.items():
                if value is None:  # not given
                    continue
                if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
                    raise ValueError(f"price override for {model!r}: {field} must be a number")
                if value < 0:
                    raise ValueError(f"price override for {model!r}: {field} must not be negative")
                values[field] = float(value)
            base = merged.get(name) or self.lookup(name)
            if base is None:
                missing = [field for field in ("input", "output") if field not in values]
                if missing:
                    raise ValueError(f"price override for new model {model!r}: {missing[0]} is required")
                base = Price(values["input"], values["output"], values["input"], values["input"])
            merged[name] = replace(base, **values)
        return PriceTable({name: price for name, price in merged.items()})


DEFAULT = PriceTable(PRICES)


def price_table(overrides: Mapping[str, Mapping[str, float]] | None = None) -> PriceTable:
    """The built-in table, with the config's overrides applied."""
    return DEFAULT.with_overrides(overrides)


def lookup(model: str | None) -> Price | None:
    return DEFAULT.lookup(model)


def cost_usd(model: str | None, usage: Usage) -> float | None:
    return DEFAULT.cost_usd(model, usage)


def estimate_usd(model: str | None, input_tokens: int, max_output_tokens: int) -> float | None:
    return DEFAULT.estimate_usd(model, input_tokens, max_output_tokens)
