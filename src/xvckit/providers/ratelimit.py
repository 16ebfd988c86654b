"""Both providers' rate-limit headers: built by the simulator, parsed by the gateway.

OpenAI (https://platform.openai.com/docs/guides/rate-limits, "Rate limits in headers"):
    x-ratelimit-limit-requests / x-ratelimit-limit-tokens          the limits
    x-ratelimit-remaining-requests / x-ratelimit-remaining-tokens  what is left of them
    x-ratelimit-reset-requests / x-ratelimit-reset-tokens          time until the limit is back to
        its initial state, as a Go duration: "1s", "6m0s", "20ms", "9.816s", "1h2m3s"
Anthropic (https://docs.anthropic.com/en/api/rate-limits, "Response headers"):
    anthropic-ratelimit-{requests,tokens,input-tokens,output-tokens}-{limit,remaining,reset}
        reset is the RFC 3339 time ("2025-10-25T12:01:00Z") at which the limit is fully
        replenished; the `tokens` family reports the most restrictive token limit in effect.
Both send `retry-after` in whole seconds on a 429 (RFC 9110 also allows an HTTP date; the SDKs
read `retry-after-ms` first, so the parser does too).

Parsers take any case-insensitive header mapping (httpx, aiohttp) or a dict with lower-case keys.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

Headers = list[tuple[bytes, bytes]]


@dataclass(frozen=True, slots=True)
class Limit:
    limit: int
    remaining: int
    reset_s: float | None = None  # seconds until fully replenished


@dataclass(frozen=True, slots=True)
class RateLimits:
    requests: Limit | None = None
    tokens: Limit | None = None
    input_tokens: Limit | None = None  # Anthropic only
    output_tokens: Limit | None = None  # Anthropic only
    retry_after_s: float | None = None


# --- OpenAI's Go-style durations -------------------------------------------------------------

_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|us|µs|μs|ns|h|m|s)")
_UNIT_S = {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 1e-3, "us": 1e-6, "µs": 1e-6, "μs": 1e-6, "ns": 1e-9}


def format_duration(seconds: float) -> str:
    """`seconds` as OpenAI writes a reset: "0s", "20ms", "1s", "9.816s", "6m0s", "1h0m0s".

    Rounded up to the millisecond, so a client that waits this long is never early.
    """
    total_ms = max(0, math.ceil(seconds * 1000 - 1e-6))
    if total_ms == 0:
        return "0s"
    if total_ms < 1000:
        return f"{total_ms}ms"
    hours, rest = divmod(total_ms, 3_600_000)
    minutes, rest = divmod(rest, 60_000)
    whole, millis = divmod(rest, 1000)
    secs = f"{whole}.{millis:03d}".rstrip("0") if millis else str(whole)
    if hours:
        return f"{hours}h{minutes}m{secs}s"
    if minutes:
        return f"{minutes}m{secs}s"
    return f"{secs}s"


def parse_duration(text: str) -> float | None:
    """Seconds in a Go duration ("6m0s" -> 360.0, "20ms" -> 0.02); a bare number is seconds."""
    text = text.strip()
    try:
        return float(text)
    except ValueError:
        pass
    total = 0.0
    position = 0
    for match in _DURATION_PART.finditer(text):
        if match.start() != position:
            return None
        total += float(match[1]) * _UNIT_S[match[2]]
        position = match.end()
    return total if position and position == len(text) else None


# --- Anthropic's RFC 3339 times --------------------------------------------------------------


def format_rfc3339(epoch_s: float) -> str:
    """A Unix time as Anthropic writes a reset, rounded up to the second: "2025-10-25T12:01:00Z"."""
    return datetime.fromtimestamp(math.ceil(epoch_s), UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_rfc3339(text: str) -> float | None:
    """The Unix time of an RFC 3339 timestamp (a missing offset is taken as UTC)."""
    try:
        moment = datetime.fromisoformat(text.strip().replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.timestamp()


# --- building --------------------------------------------------------------------------------


def retry_after_value(seconds: float) -> bytes:
    """`retry-after` in whole seconds, rounded up and at least 1 (0 would invite a hot loop)."""
    return str(max(1, math.ceil(seconds - 1e-6))).encode()


def _names(template: str, kind: str) -> tuple[bytes, bytes, bytes]:
    return tuple(template.format(kind=kind, part=part).encode() for part in ("limit", "remaining", "reset"))


_OPENAI_NAMES = {kind: _names("x-ratelimit-{part}-{kind}", kind) for kind in ("requests", "tokens")}
_ANTHROPIC_NAMES = {
    kind: _names("anthropic-ratelimit-{kind}-{part}", kind)
    for kind in ("requests", "tokens", "input-tokens", "output-tokens")
}


def _family(headers: Headers, names: tuple[bytes, bytes, bytes], limit: Limit, reset: str | None) -> None:
    headers.append((names[0], str(limit.limit).encode()))
    headers.append((names[1], str(limit.remaining).encode()))
    if reset is not None:
        headers.append((names[2], reset.encode()))


def openai_headers(limits: RateLimits) -> Headers:
    headers: Headers = []
    for kind, limit in (("requests", limits.requests), ("tokens", limits.tokens)):
        if limit is not None:
            reset = None if limit.reset_s is None else format_duration(limit.reset_s)
            _family(headers, _OPENAI_NAMES[kind], limit, reset)
    if limits.retry_after_s is not None:
        headers.append((b"retry-after", retry_after_value(limits.retry_after_s)))
    return headers


def anthropic_headers(limits: RateLimits, now: float) -> Headers:
    """Anthropic's headers; `now` (Unix time) turns the resets into timestamps."""
    headers: Headers = []
    for kind, limit in (
        ("requests", limits.requests),
        ("tokens", limits.tokens),
        ("input-tokens", limits.input_tokens),
        ("output-tokens", limits.output_tokens),
    ):
        if limit is not None:
            reset = None if limit.reset_s is None else format_rfc3339(now + limit.reset_s)
            _family(headers, _ANTHROPIC_NAMES[kind], limit, reset)
    if limits.retry_after_s is not None:
        headers.append((b"retry-after", retry_after_value(limits.retry_after_s)))
    return headers


# --- parsing ---------------------------------------------------------------------------------


def _int(headers: Mapping[str, str], name: str) -> int | None:
    value = headers.get(name)
    if value is None:
        return None
    try:
        return int(value.strip())
    except ValueError:
        return None


def _limit(headers: Mapping[str, str], prefix: str, suffix: str, reset_s: float | None) -> Limit | None:
    limit = _int(headers, f"{prefix}limit{suffix}")
    remaining = _int(headers, f"{prefix}remaining{suffix}")
    if limit is None or remaining is None:
        return None
    return Limit(limit, remaining, reset_s)


def parse_retry_after(headers: Mapping[str, str], now: float) -> float | None:
    """Seconds to wait from `retry-after-ms`, else `retry-after` (seconds or an HTTP date)."""
    millis = headers.get("retry-after-ms")
    if millis is not None:
        try:
            return max(0.0, float(millis) / 1000)
        except ValueError:
            pass
    value = headers.get("retry-after")
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        return max(0.0, parsedate_to_datetime(value).timestamp() - now)
    except (TypeError, ValueError):
        return None


def parse_openai_headers(headers: Mapping[str, str], now: float) -> RateLimits:
    def reset(kind: str) -> float | None:
        value = headers.get(f"x-ratelimit-reset-{kind}")
        return None if value is None else parse_duration(value)

    return RateLimits(
        requests=_limit(headers, "x-ratelimit-", "-requests", reset("requests")),
        tokens=_limit(headers, "x-ratelimit-", "-tokens", reset("tokens")),
        retry_after_s=parse_retry_after(headers, now),
    )


def parse_anthropic_headers(headers: Mapping[str, str], now: float) -> RateLimits:
    """Anthropic's headers; resets become seconds from `now` (Unix time), never negative."""

    def family(kind: str) -> Limit | None:
        prefix = f"anthropic-ratelimit-{kind}-"
        value = headers.get(prefix + "reset")
        moment = None if value is None else parse_rfc3339(value)
        return _limit(headers, prefix, "", None if moment is None else max(0.0, moment - now))

    return RateLimits(
        requests=family("requests"),
        tokens=family("tokens"),
        input_tokens=family("input-tokens"),
        output_tokens=family("output-tokens"),
        retry_after_s=parse_retry_after(headers, now),
    )
