"""The guide's estimate from the checks: a velocity band and the one check that limits it.

Each judged check maps to a row of one of the guide's velocity tables: an API tier to its
row of the tier table (§3), any other check by its status to the network-quality table
(§1: below minimum Poor 2-3x, minimum Good 5-7x, optimal 10x+), which is the guide's one
statement of how quality turns into velocity. An unreachable provider counts as below
minimum (it limits everything); a check that could not be measured (`unknown`) is left out
and named, never the bottleneck, and the band is then a ceiling: what was not measured
could only lower it. The band is the lowest row reached; the bottleneck is the check that
reached it (network first, then API, compute, tools, tuning). Estimates from a table, not
measurements."""

from __future__ import annotations

from dataclasses import dataclass

from xvckit.doctor.checks import Check
from xvckit.doctor.thresholds import BAND_BY_STATUS, Band, Status, tier_band

SECTION_ORDER = ("network", "api", "compute", "tools", "tuning")
BASIS = (
    "the guide's estimate, not a measurement: the lowest row reached in its network-quality "
    "table (§1) by any layer, API tiers by its tier table (§3)"
)


@dataclass(frozen=True, slots=True)
class Verdict:
    band: Band | None  # None: nothing could be judged
    bottleneck: Check | None  # None: every judged check is optimal
    judged: int
    not_measured: list[Check]  # `unknown`: left out of the band, in report order


def band_of(check: Check) -> Band | None:
    if check.status is Status.UNKNOWN:
        return None
    if check.status is Status.UNREACHABLE:
        return BAND_BY_STATUS[Status.BELOW_MINIMUM]
    if check.threshold == "api.tier":
        return tier_band(check.value)
    return BAND_BY_STATUS[check.status]


def verdict(checks: list[Check]) -> Verdict:
    ranked = [
        (band.low, SECTION_ORDER.index(check.section), position, band, check)
        for position, check in enumerate(checks)
        if (band := band_of(check)) is not None
    ]
    not_measured = [check for check in checks if check.status is Status.UNKNOWN]
    if not ranked:
        return Verdict(None, None, 0, not_measured)
    *_, band, limiting = min(ranked, key=lambda row: row[:3])
    bottleneck = None if limiting.status is Status.OPTIMAL else limiting
    return Verdict(band, bottleneck, len(ranked), not_measured)
