"""`xvckit roi`: the guide's tiers priced on a ledger of known requests."""

from __future__ import annotations

import orjson
import pytest
import yaml
from typer.testing import CliRunner

from xvckit.cli import app
from xvckit.errors import UserError
from xvckit.metrics.roi import queue_wait_s
from xvckit.store import Store
from xvckit.store.ledger import UsageRecord, write_records

T0 = 1_767_225_600  # 2026-01-01T00:00:00Z; the period is that day: a month is 30 of it
MONTH = 30


@pytest.fixture
def roi(tmp_path):
    """`xvckit roi --json ARGS` on a ledger: minute 0 has 20 requests of gpt-4o (1,000 input and
    100 output tokens, 2 s each), minute 1 has 5 more and one answered 429."""
    url = f"sqlite:///{tmp_path}/xvckit.db"
    store = Store.open(url)
    records = [
        UsageRecord(
            request_id=f"r{i}",
            endpoint="chat",
            ts=T0 + (0 if i < 20 else 60) + i,
            key_id="k1",
            model="gpt-4o",
            status=200,
            input_tokens=1000,
            output_tokens=100,
            latency_ms=2000,
        )
        for i in range(25)
    ]
    records.append(UsageRecord(request_id="limited", endpoint="chat", ts=T0 + 90, model="gpt-4o", status=429))
    write_records(store, records)
    store.close()
    config = tmp_path / "xvckit.yaml"
    config.write_text(yaml.safe_dump({"storage": {"url": url}}))

    def run(*args: str):
        result = CliRunner().invoke(
            app, ["roi", "--since", "2026-01-01", "--until", "2026-01-02", "--config", str(config), *args]
        )
        return result

    return run


def test_each_tier_is_priced_on_measured_usage_with_the_hours_it_would_lose(roi):
    result = roi("--developers", "1", "--hourly-rate", "100", "--json")
    assert result.exit_code == 0, result.output
    doc = orjson.loads(result.stdout)
    spend = 25 * (1000 * 2.50 + 100 * 10.00) / 1e6 * MONTH  # gpt-4o: $2.50 in, $10 out per 1M
    assert doc["measured_per_month"] == {
        "requests": 26 * MONTH,
        "input_tokens": 25_000 * MONTH,
        "output_tokens": 2_500 * MONTH,
        "spend_usd": round(spend, 4),
        "unpriced_requests": 0,
        "latency_hours": round(25 * 2 / 3600 * MONTH, 3),
        "rate_limited": MONTH,
        "peak_requests_per_minute": 20,
        "peak_tokens_per_minute": 22_000,
        "queue_wait_hours": None,
    }
    tiers = {t["tier"]: t for t in doc["tiers"]}
    # basic: 15 requests a minute: 5 of minute 0's 20 wait one minute; 5 over the limit
    basic = tiers["basic"]
    assert basic["rate_limit_wait_hours"] == round(5 * 60 / 3600 * MONTH, 3)
    assert basic["over_limit_requests"] == 5 * MONTH
    answers = {"basic": (7.5, 45), "professional": (1.5, 104), "enterprise": (0.5, 131)}
    for name, (ttft_s, speed) in answers.items():
        assert tiers[name]["answer_wait_hours"] == round((26 * ttft_s + 2500 / speed) / 3600 * MONTH, 3)
    assert tiers["professional"]["rate_limit_wait_hours"] == tiers["enterprise"]["rate_limit_wait_hours"] == 0
    assert [tiers[n]["fee_usd"] for n in answers] == [[20, 50], [200, 500], [2000, None]]
    lost = 5 * 60 / 3600 * MONTH + (26 * 7.5 + 2500 / 45) / 3600 * MONTH
    assert basic["total_usd"] == round(20 + spend + lost * 100, 2)
    assert doc["recommended"]["tier"] == "professional"
    assert doc["recommended"]["reasons"][0].startswith("professional has the lowest monthly total")
    step = doc["break_even"][0]
    saved = basic["hours_lost"] - tiers["professional"]["hours_lost"]
    assert (step["from"], step["to"], step["extra_fee_usd"], step["hours_saved"]) == (
        "basic",
        "professional",
        180,
        round(saved, 3),
    )
    assert step["break_even_hourly_rate_usd"] == round(180 / saved, 2)
    assert step["pays_at_hourly_rate"] is True
    assert doc["break_even"][1]["pays_at_hourly_rate"] is False  # enterprise's $1,800 for ~0.25 h
    assert tiers["basic"]["guide_estimate"] == {
        "monthly_cost_usd": [20, 50],
        "velocity": [3, 5],
        "break_even": "2-3 months",
    }


def test_a_low_hourly_rate_recommends_the_cheapest_fee_and_the_table_labels_the_guides_figures(roi):
    doc = orjson.loads(roi("--developers", "1", "--hourly-rate", "10", "--json").stdout)
    assert doc["recommended"]["tier"] == "basic"  # 4.5 h lost at $10/h is less than $180 more fee
    text = roi("--developers", "3").stdout
    assert "tiers for 3 developer(s) at $100/h" in text
    assert "$60-150" in text  # the guide's basic fee for three
    assert "the guide's estimates, not measurements" in text


def test_developers_default_to_the_keys_seen_and_an_empty_ledger_is_an_error(roi, tmp_path):
    assert orjson.loads(roi("--json").stdout)["developers"] == 1
    result = CliRunner().invoke(app, ["roi", "--data-dir", str(tmp_path / "empty")])
    assert isinstance(result.exception, UserError)  # `main` prints it as one line, exit status 2
    assert "no requests in the ledger in the period (30d)" in str(result.exception)


def test_the_queue_model_carries_a_backlog_over_minutes():
    import numpy as np

    # 30 in minute 0 at 10 a minute: 20 wait through minute 0, 10 through minute 1
    waited, over = queue_wait_s(np.array([30]), np.array([300]), 10, None)
    assert (waited, over) == ((20 + 10) * 60, 20)
    # tokens: 3 requests of 100 tokens at 100 tokens a minute: 2 then 1 request-equivalents wait
    waited, over = queue_wait_s(np.array([3]), np.array([300]), None, 100)
    assert (waited, over) == ((2 + 1) * 60, 0)
    assert queue_wait_s(np.array([1000]), np.array([10**9]), None, None) == (0.0, 0)
