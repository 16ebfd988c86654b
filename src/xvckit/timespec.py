"""Durations ('30d', '12h', '15m', '90s', '2w') and moments ('7d' ago, '2026-11-01', ISO times)
as users type them on the command line and in the admin API."""

from __future__ import annotations

import datetime as dt
import re
import time

_DURATION = re.compile(r"\s*(\d+(?:\.\d+)?)\s*(s|m|min|h|d|w)\s*")
_UNITS = {"s": 1, "m": 60, "min": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
# the moments a date can name (years 1 to 9999), in epoch seconds; beyond them is a mistake
EARLIEST = dt.datetime.min.replace(tzinfo=dt.UTC).timestamp()
LATEST = dt.datetime.max.replace(tzinfo=dt.UTC).timestamp()


def parse_duration(text: str) -> float | None:
    """Seconds, or None when the text is not a duration."""
    match = _DURATION.fullmatch(text)
    return float(match[1]) * _UNITS[match[2]] if match else None


def parse_moment(text: str, now: float | None = None) -> float:
    """Epoch seconds of a duration ago, a UTC date or an ISO time (UTC unless it has an
    offset). ValueError, with the accepted forms, otherwise."""
    ago = parse_duration(text)
    if ago is not None:
        moment = (time.time() if now is None else now) - ago
        if moment < EARLIEST:
            raise ValueError(f"{text!r} reaches back before the year 1")
        return moment
    value = text.strip()
    try:
        moment = dt.datetime.fromisoformat(value.replace("Z", "+00:00") if value.endswith("Z") else value)
    except ValueError:
        raise ValueError(
            f"cannot read {text!r} as a time: use a duration like 7d, 24h, 30m or a date like 2026-11-01"
        ) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=dt.UTC)
    return moment.timestamp()
