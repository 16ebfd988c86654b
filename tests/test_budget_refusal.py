"""A budget refusal that waiting will not cure: the SDKs are told not to retry it, and its
message says what the request needed and what is left."""

from __future__ import annotations

import anthropic
import openai
import pytest

from test_gateway_e2e import HI
from test_gateway_keys import flush_ledger, new_key
from test_gateway_keys import gw as gw
from xvckit.store.keys import Limits
from xvckit.store.ledger import ledger_records


def test_openai_sdk_does_not_retry_a_budget_refusal(gw):
    # less than one output token ($0.001): nothing to cap max_tokens to, so a refusal
    key, raw = new_key(gw, limits=Limits(budget_usd=0.0005, budget_period="month"))
    sdk = openai.OpenAI(base_url=f"{gw.url}/v1", api_key=raw)  # the SDK's default: 2 retries
    with pytest.raises(openai.RateLimitError) as caught:
        sdk.chat.completions.create(model="gpt-4o-mini", messages=HI, max_tokens=10)
    response = caught.value.response
    assert response.headers["x-should-retry"] == "false"
    assert "retry-after" not in response.headers  # the period ends in days: no SDK should sleep on it
    message = caught.value.message
    assert "needs up to $0.01 and $0.0005 of $0.0005 is left this period" in message, message
    flush_ledger(gw)
    refused = [r for r in ledger_records(gw.store) if r.key_id == key.id]
    assert len(refused) == 1  # one request reached the gateway: the SDK sent no retry


def test_anthropic_sdk_does_not_retry_a_budget_refusal(gw):
    key, raw = new_key(gw, limits=Limits(budget_usd=0.0001, budget_period="day"))
    sdk = anthropic.Anthropic(base_url=gw.url, api_key=raw)
    with pytest.raises(anthropic.RateLimitError) as caught:
        sdk.messages.create(model="gpt-4o-mini", messages=HI, max_tokens=10)
    assert caught.value.response.headers["x-should-retry"] == "false"
    assert "$0.0001 of $0.0001 is left" in caught.value.message
    flush_ledger(gw)
    assert len([r for r in ledger_records(gw.store) if r.key_id == key.id]) == 1
