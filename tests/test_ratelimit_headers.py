"""Both providers' rate-limit headers: OpenAI durations, Anthropic RFC 3339 resets, retry-after."""

from __future__ import annotations

from datetime import UTC, datetime
from email.utils import format_datetime

import httpx2
import pytest

from xvckit.providers.ratelimit import (
    Limit,
    RateLimits,
    anthropic_headers,
    format_duration,
    format_rfc3339,
    openai_headers,
    parse_anthropic_headers,
    parse_duration,
    parse_openai_headers,
    parse_retry_after,
    parse_rfc3339,
)

NOW = 1_764_000_000.0  # 2025-11-24T16:00:00Z


def as_mapping(headers: list[tuple[bytes, bytes]]) -> httpx2.Headers:
    """Headers as a client library hands them over: case-insensitive, str."""
    return httpx2.Headers([(name.decode().upper(), value.decode()) for name, value in headers])


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("1s", 1.0),
        ("6m0s", 360.0),
        ("20ms", 0.02),
        ("9.816s", 9.816),
        ("2m59.56s", 179.56),
        ("1h0m0s", 3600.0),
        ("0s", 0.0),
        ("1.5µs", 1.5e-6),
        ("250ns", 2.5e-7),
        ("7", 7.0),
        (" 12ms ", 0.012),
    ],
)
def test_parse_duration(text: str, seconds: float) -> None:
    assert parse_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize("text", ["", "s", "1x", "1s2", "ms1", "abc", "1 s"])
def test_parse_duration_refuses_garbage(text: str) -> None:
    assert parse_duration(text) is None


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (0, "0s"),
        (0.02, "20ms"),
        (0.0201, "21ms"),  # rounded up: a client that waits this long is never early
        (1, "1s"),
        (9.816, "9.816s"),
        (59.5, "59.5s"),
        (360, "6m0s"),
        (361.25, "6m1.25s"),
        (3600, "1h0m0s"),
        (3723, "1h2m3s"),
    ],
)
def test_format_duration(seconds: float, text: str) -> None:
    assert format_duration(seconds) == text
    assert parse_duration(text) == pytest.approx(seconds, abs=1e-3)


def test_rfc3339_round_trip_rounds_up_to_the_second() -> None:
    assert format_rfc3339(NOW) == "2025-11-24T16:00:00Z"
    assert format_rfc3339(NOW + 0.2) == "2025-11-24T16:00:01Z"
    assert parse_rfc3339("2025-11-24T16:00:00Z") == NOW
    assert parse_rfc3339("2025-11-24T17:00:00+01:00") == NOW
    assert parse_rfc3339("2025-11-24T16:00:00.500Z") == NOW + 0.5
    assert parse_rfc3339("2025-11-24T16:00:00") == NOW  # no offset: UTC
    assert parse_rfc3339("yesterday") is None


def test_openai_headers_round_trip() -> None:
    limits = RateLimits(
        requests=Limit(500, 499, 0.12), tokens=Limit(30_000, 29_000, 360.0), retry_after_s=None
    )
    built = openai_headers(limits)
    assert dict(built) == {
        b"x-ratelimit-limit-requests": b"500",
        b"x-ratelimit-remaining-requests": b"499",
        b"x-ratelimit-reset-requests": b"120ms",
        b"x-ratelimit-limit-tokens": b"30000",
        b"x-ratelimit-remaining-tokens": b"29000",
        b"x-ratelimit-reset-tokens": b"6m0s",
    }
    assert parse_openai_headers(as_mapping(built), NOW) == limits


def test_anthropic_headers_round_trip() -> None:
    limits = RateLimits(
        requests=Limit(50, 0, 12.0),
        tokens=Limit(30_000, 100, 60.0),
        input_tokens=Limit(30_000, 100, 60.0),
        output_tokens=Limit(8_000, 8_000, 0.0),
        retry_after_s=11.2,
    )
    built = dict(anthropic_headers(limits, NOW))
    assert built[b"anthropic-ratelimit-requests-reset"] == b"2025-11-24T16:00:12Z"
    assert built[b"anthropic-ratelimit-output-tokens-limit"] == b"8000"
    assert built[b"retry-after"] == b"12"  # whole seconds, rounded up
    parsed = parse_anthropic_headers(as_mapping(list(built.items())), NOW)
    assert parsed == RateLimits(
        requests=Limit(50, 0, 12.0),
        tokens=Limit(30_000, 100, 60.0),
        input_tokens=Limit(30_000, 100, 60.0),
        output_tokens=Limit(8_000, 8_000, 0.0),
        retry_after_s=12.0,
    )


def test_a_reset_in_the_past_is_zero_seconds_away() -> None:
    headers = {
        "anthropic-ratelimit-requests-limit": "50",
        "anthropic-ratelimit-requests-remaining": "50",
        "anthropic-ratelimit-requests-reset": "2025-11-24T15:59:00Z",
    }
    assert parse_anthropic_headers(headers, NOW).requests == Limit(50, 50, 0.0)


def test_missing_or_malformed_headers_parse_to_none() -> None:
    assert parse_openai_headers({}, NOW) == RateLimits()
    assert parse_anthropic_headers({}, NOW) == RateLimits()
    broken = {
        "x-ratelimit-limit-requests": "many",
        "x-ratelimit-remaining-requests": "1",
        "x-ratelimit-limit-tokens": "100",
        "x-ratelimit-remaining-tokens": "5",
        "x-ratelimit-reset-tokens": "soon",
    }
    assert parse_openai_headers(broken, NOW) == RateLimits(tokens=Limit(100, 5, None))


def test_retry_after_forms() -> None:
    assert parse_retry_after({"retry-after": "20"}, NOW) == 20.0
    assert parse_retry_after({"retry-after": "0.5"}, NOW) == 0.5
    assert parse_retry_after({"retry-after-ms": "1500", "retry-after": "20"}, NOW) == 1.5
    date = format_datetime(datetime.fromtimestamp(NOW + 30, UTC), usegmt=True)
    assert parse_retry_after({"retry-after": date}, NOW) == 30.0
    assert parse_retry_after({"retry-after": "whenever"}, NOW) is None
    assert parse_retry_after({}, NOW) is None


def test_retry_after_is_at_least_one_second() -> None:
    assert dict(openai_headers(RateLimits(retry_after_s=0.01)))[b"retry-after"] == b"1"
