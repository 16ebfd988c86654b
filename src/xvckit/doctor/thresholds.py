"""The guide's numbers in one table: every doctor check is judged against a row of it.

"The guide" is the seed user guide, `000_07c826429273f59b.txt` (the xVC Infrastructure and
Scaling Guide). Each row names the section its numbers come from; the few rows the guide
gives no number for say so and why xvckit picked its own. `doctor.thresholds` in
xvckit.yaml overrides a row's minimum and optimal by its id.

Bounds: a number (the `better` direction says which side passes, boundaries included), a
tuple of numbers compared field by field (sysctl triples), a set of words the value must be
one of, or None for "the guide states no minimum" (only a recommendation: anything short of
it is `minimum`, never `below_minimum`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from enum import StrEnum
from typing import Any

from xvckit.errors import UserError
from xvckit.providers.tiers import TIERS

Bound = float | tuple[float, ...] | frozenset[str] | None

HIGHER = "higher"
LOWER = "lower"


class Status(StrEnum):
    BELOW_MINIMUM = "below_minimum"
    MINIMUM = "minimum"
    OPTIMAL = "optimal"
    UNKNOWN = "unknown"
    UNREACHABLE = "unreachable"


@dataclass(frozen=True, slots=True)
class Threshold:
    unit: str
    minimum: Bound
    optimal: Bound
    better: str = HIGHER  # for numbers: which way is better


def _words(*words: str) -> frozenset[str]:
    return frozenset(words)


_PROFESSIONAL, _ENTERPRISE = TIERS["professional"], TIERS["enterprise"]

THRESHOLDS: dict[str, Threshold] = {
    # §1 Network Requirements, "Minimum Specifications" / "Optimal Specifications":
    # 10 Mbps / 100+ Mbps; <200 ms / <50 ms to API endpoints; <0.1% / 0% loss; 99% / 99.9% uptime.
    "network.bandwidth": Threshold("Mbit/s", 10, 100),
    "network.latency": Threshold("ms", 200, 50, LOWER),
    "network.packet_loss": Threshold("%", 0.1, 0, LOWER),
    "network.uptime": Threshold("%", 99, 99.9),
    # §2 Compute Resources, "Minimum Requirements" / "Optimal Configuration": 4 / 8+ cores,
    # 2.5 / 3.5+ GHz, 16 / 32+ GB RAM, 250 GB SSD / 1 TB NVMe SSD, Linux/macOS/Windows 10+ /
    # Linux/macOS. GB are the guide's decimal GB (MemTotal of 16 GiB installed is ~16.6 GB).
    "compute.cpu_cores": Threshold("cores", 4, 8),
    "compute.cpu_clock": Threshold("GHz", 2.5, 3.5),
    "compute.ram": Threshold("GB", 16, 32),
    "compute.storage_size": Threshold("GB", 250, 1000),
    "compute.storage_type": Threshold("", _words("ssd", "nvme"), _words("nvme")),
    "compute.os": Threshold("", _words("linux", "macos", "windows 10+"), _words("linux", "macos")),
    # Not numbers in the guide, which says only "File I/O operations need speed" and "Build
    # processes run locally" (§2 "Why Local Resources Matter"). xvckit's choices: 10 GB free
    # holds a build and its caches, 50 GB several; an fsync of 10 ms is a 7,200 rpm disk's
    # seek plus rotation, 1 ms flash with a write cache; 200 MB/s sustained writes is a
    # SATA SSD's floor, 1,000 MB/s takes NVMe (SATA stops at 600).
    "compute.storage_free": Threshold("GB", 10, 50),
    "compute.disk_fsync": Threshold("ms", 10, 1, LOWER),
    "compute.disk_write": Threshold("MB/s", 200, 1000),
    # §4 Development Environment, "Essential Tools": 1. Git with LFS support, 2. an AI-aware
    # editor, 3. tmux/screen, 4. language-specific toolchains. Essential: absent is below
    # minimum. AI coding tools are not on that list (§"Scaling Patterns", Phase 3: "Custom
    # tool integrations"), so none is `minimum`, one or more `optimal`.
    "tools.git": Threshold("found", 1, 1),
    "tools.git_lfs": Threshold("found", 1, 1),
    "tools.editor": Threshold("found", 1, 1),
    "tools.multiplexer": Threshold("found", 1, 1),
    "tools.toolchains": Threshold("missing", 0, 0, LOWER),
    "tools.ai_tools": Threshold("found", 0, 1),
    # §4 "Environment Optimization" script: ulimit -n 65536; rmem_max/wmem_max 134217728;
    # tcp_rmem "4096 87380 134217728"; tcp_wmem "4096 65536 134217728"; governor performance.
    # The script is a recommendation with no minimum.
    "tuning.nofile": Threshold("files", None, 65536),
    "tuning.rmem_max": Threshold("bytes", None, 134217728),
    "tuning.wmem_max": Threshold("bytes", None, 134217728),
    "tuning.tcp_rmem": Threshold("bytes", None, (4096, 87380, 134217728)),
    "tuning.tcp_wmem": Threshold("bytes", None, (4096, 65536, 134217728)),
    "tuning.cpu_governor": Threshold("", None, _words("performance")),
    # §3 API Service Tiers; §"Scaling Patterns" Phase 1 "Use professional tier APIs" makes
    # Professional the minimum. Response times from the tier table (providers/tiers.py, which
    # quotes §3): "<2s" Professional, "sub-second" Enterprise.
    "api.tier": Threshold("", _words("professional", "enterprise"), _words("enterprise")),
    "api.response_time": Threshold(
        "s", _PROFESSIONAL.response_s_range[1], _ENTERPRISE.response_s_range[1], LOWER
    ),
}


@dataclass(frozen=True, slots=True)
class Band:
    """A row of one of the guide's velocity tables."""

    name: str
    low: float
    high: float | None  # None: open-ended ("10x+")

    @property
    def velocity(self) -> str:
        return f"{self.low:g}x+" if self.high is None else f"{self.low:g}-{self.high:g}x"


# §1 "Impact on xVC Performance": Poor (<5 Mbps) 2-3x, Good (10-50) 5-7x, Optimal (100+) 10x+.
# Its rows line up with the minimum (10 Mbps) and optimal (100+) specifications, so a layer
# below minimum is Poor, at minimum Good, optimal Optimal. API tiers have their own table (§3
# "Cost-Benefit Analysis", TIERS[...].velocity).
BAND_BY_STATUS: dict[Status, Band] = {
    Status.BELOW_MINIMUM: Band("poor", 2, 3),
    Status.MINIMUM: Band("good", 5, 7),
    Status.OPTIMAL: Band("optimal", 10, None),
}


def tier_band(tier_name: str) -> Band:
    low, high = TIERS[tier_name].velocity
    return Band(tier_name, low, high)


def judge(threshold: Threshold, measure: Any) -> Status:
    """Where `measure` stands against the threshold."""
    if _meets(threshold.optimal, measure, threshold.better):
        return Status.OPTIMAL
    if _meets(threshold.minimum, measure, threshold.better):
        return Status.MINIMUM
    return Status.BELOW_MINIMUM


def _meets(bound: Bound, measure: Any, better: str) -> bool:
    if bound is None:
        return True
    if isinstance(bound, frozenset):
        return measure in bound
    if isinstance(bound, tuple):
        return len(bound) == len(measure) and all(
            _meets(b, m, better) for b, m in zip(bound, measure, strict=True)
        )
    return measure >= bound if better == HIGHER else measure <= bound


def with_overrides(overrides: Mapping[str, Any]) -> dict[str, Threshold]:
    """The table with `doctor.thresholds` applied; a one-line error names a bad entry."""
    table = dict(THRESHOLDS)
    for key, override in overrides.items():
        where = f"doctor.thresholds.{key}"
        if key not in table:
            raise UserError(f"{where}: no such threshold (known: {', '.join(sorted(table))})")
        row = table[key]
        changes = {
            name: _bound(f"{where}.{name}", getattr(row, name), row.optimal, value)
            for name in ("minimum", "optimal")
            if (value := getattr(override, name)) is not None
        }
        table[key] = replace(row, **changes)
    return table


def _bound(where: str, current: Bound, optimal: Bound, value: Any) -> Bound:
    """`value` in the shape of the row's own bounds (words stay words, triples triples)."""
    shape = current if current is not None else optimal
    if isinstance(shape, frozenset) and isinstance(value, list) and all(isinstance(v, str) for v in value):
        return frozenset(value)
    numbers = isinstance(value, list) and all(isinstance(v, int | float) for v in value)
    if isinstance(shape, tuple) and numbers and len(value) == len(shape):
        return tuple(float(v) for v in value)
    if isinstance(shape, int | float) and isinstance(value, int | float):
        return float(value)
    raise UserError(f"{where}: {value!r} does not fit this threshold (like {describe(shape)})")


def describe(bound: Bound) -> Any:
    """A bound as JSON and tables show it: words sorted, triples as lists."""
    if isinstance(bound, frozenset):
        return sorted(bound)
    if isinstance(bound, tuple):
        return [int(b) if float(b).is_integer() else b for b in bound]
    if isinstance(bound, float) and bound.is_integer():
        return int(bound)
    return bound
