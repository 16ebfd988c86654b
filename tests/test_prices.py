"""The price table: lookup by id and snapshot, costs with cache reads and writes, estimates,
overrides from config."""

from __future__ import annotations

import pytest

from xvckit.providers import anthropic, openai, prices
from xvckit.providers.prices import Price, cost_usd, estimate_usd, lookup, price_table
from xvckit.providers.usage import Usage


@pytest.mark.parametrize(
    ("model", "entry"),
    [
        ("gpt-4o", "gpt-4o"),
        ("gpt-4o-2024-08-06", "gpt-4o"),
        ("gpt-4o-mini-2024-07-18", "gpt-4o-mini"),
        ("gpt-4.1-nano-2025-04-14", "gpt-4.1-nano"),
        ("o4-mini-2025-04-16", "o4-mini"),
        ("o3-mini", "o3-mini"),
        ("gpt-5-mini-2025-08-07", "gpt-5-mini"),
        ("gpt-5-codex", "gpt-5"),
        ("GPT-4o", "gpt-4o"),
        ("openai/gpt-4.1", "gpt-4.1"),
        ("text-embedding-3-small", "text-embedding-3-small"),
        ("claude-sonnet-4-5-20250929", "claude-sonnet-4-5"),
        ("claude-sonnet-4-20250514", "claude-sonnet-4"),
        ("claude-opus-4-1-20250805", "claude-opus-4-1"),
        ("claude-3-7-sonnet-latest", "claude-3-7-sonnet"),
        ("claude-3-5-haiku-20241022", "claude-3-5-haiku"),
        ("claude-haiku-4-5", "claude-haiku-4-5"),
    ],
)
def test_lookup_by_id_and_snapshot(model, entry):
    assert lookup(model) == prices.PRICES[entry]


@pytest.mark.parametrize(
    "model",
    ["gpt-5.4", "gpt-4o2", "claude-opus-4-9", "claude-sonnet-4-7", "claude-sonnet-5-5", "llama-3", "", None],
)
def test_unknown_models_and_other_versions_have_no_price(model):
    assert lookup(model) is None
    assert cost_usd(model, Usage(input_tokens=10)) is None
    assert estimate_usd(model, 10, 10) is None


def test_anthropic_cache_prices_follow_the_multipliers():
    for name, price in prices.PRICES.items():
        if name.startswith("claude-") and name != "claude-3-haiku":
            assert price.cache_write == pytest.approx(price.input * 1.25), name
            assert price.cache_read == pytest.approx(price.input * 0.1), name
    assert lookup("claude-sonnet-4-5") == Price(3.0, 15.0, 0.3, 3.75)
    assert lookup("claude-opus-4-5") == Price(5.0, 25.0, 0.5, 6.25)
    assert lookup("claude-opus-4-1").input == 15.0


def test_openai_cached_tokens_are_part_of_prompt_tokens():
    usage = openai.usage_from_obj(
        {
            "prompt_tokens": 1_000_000,
            "completion_tokens": 100_000,
            "prompt_tokens_details": {"cached_tokens": 400_000},
        }
    )
    # gpt-4o: 600k fresh at $2.50, 400k cached at $1.25, 100k out at $10
    assert cost_usd("gpt-4o-2024-11-20", usage) == pytest.approx(1.5 + 0.5 + 1.0)


def test_anthropic_cache_reads_and_writes_are_billed_apart():
    usage = anthropic.usage_from_obj(
        {
            "input_tokens": 200_000,
            "cache_read_input_tokens": 1_000_000,
            "cache_creation_input_tokens": 100_000,
            "output_tokens": 50_000,
        }
    )
    assert usage.input_tokens == 1_300_000  # the reader adds them up; the price table splits them again
    # sonnet 4.5: 200k fresh at $3, 1M read at $0.30, 100k written at $3.75, 50k out at $15
    assert cost_usd("claude-sonnet-4-5-20250929", usage) == pytest.approx(0.6 + 0.3 + 0.375 + 0.75)


def test_embeddings_cost_input_only():
    assert cost_usd("text-embedding-3-large", Usage(input_tokens=2_000_000)) == pytest.approx(0.26)


def test_odd_usage_never_costs_less_than_zero():
    assert cost_usd("gpt-4o", Usage(input_tokens=10, cached_tokens=50)) == pytest.approx(50 * 1.25 / 1e6)
    assert cost_usd("gpt-4o", Usage()) == 0.0


def test_estimate_is_an_upper_bound_for_reservations():
    assert estimate_usd("gpt-4.1", 1_000_000, 500_000) == pytest.approx(2.0 + 4.0)
    usage = Usage(input_tokens=1_000_000, output_tokens=500_000, cached_tokens=900_000)
    assert cost_usd("gpt-4.1", usage) <= estimate_usd("gpt-4.1", 1_000_000, 500_000)


def test_overrides_from_config():
    table = price_table(
        {
            "gpt-4o": {"input": 2.0},  # a partial change keeps the other prices
            "my-local-model": {"input": 0.1, "output": 0.2},
            "GPT-5.4": {"input": 2.5, "output": 15.0, "cache_read": 0.25, "cache_write": None},
        }
    )
    assert table.lookup("gpt-4o-2024-08-06") == Price(2.0, 10.0, 1.25, 2.50)
    assert table.lookup("my-local-model") == Price(0.1, 0.2, 0.1, 0.1)
    assert table.lookup("gpt-5.4-2026-03-05") == Price(2.5, 15.0, 0.25, 2.5)
    assert table.cost_usd(
        "my-local-model", Usage(input_tokens=1_000_000, output_tokens=1_000_000)
    ) == pytest.approx(0.3)
    assert lookup("my-local-model") is None  # the built-in table is unchanged
    assert price_table(None) is prices.DEFAULT


def test_overrides_accept_pydantic_models():
    class Fake:
        def model_dump(self):
            return {"input": 1.0, "output": 2.0, "cache_read": None, "cache_write": None}

    assert price_table({"x-model": Fake()}).lookup("x-model") == Price(1.0, 2.0, 1.0, 1.0)


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"new-model": {"input": 1.0}}, "output is required"),
        ({"gpt-4o": {"inptu": 1.0}}, "unknown field 'inptu'"),
        ({"gpt-4o": {"input": -1}}, "must not be negative"),
        ({"gpt-4o": {"input": "cheap"}}, "must be a number"),
        ({"gpt-4o": {"input": float("nan")}}, "must be a number"),
        ({"gpt-4o": 3}, "expected a mapping"),
        ({" ": {"input": 1}}, "empty model name"),
    ],
)
def test_bad_overrides_say_what_is_wrong(overrides, message):
    with pytest.raises(ValueError, match=message):
        price_table(overrides)
