"""One check's result, and the one way to make one: judged against its threshold row."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from xvckit.doctor.thresholds import Status, Threshold, describe, judge

_SAME = object()


@dataclass(slots=True)
class Check:
    id: str  # stable: network.ttfb.<provider>, compute.ram, tuning.nofile, ...
    title: str
    threshold: str  # the row of thresholds.THRESHOLDS it was judged against
    value: Any
    unit: str
    minimum: Any
    optimal: Any
    status: Status
    fix: str | None  # one line; None when there is nothing to do
    detail: str | None = None  # how it was measured, or why it could not be
    samples: dict[str, float] | None = None  # repeated measurements: min, median, count

    @property
    def section(self) -> str:
        return self.id.split(".", 1)[0]

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "title": self.title,
            "threshold": self.threshold,
            "value": self.value,
            "unit": self.unit,
            "minimum": self.minimum,
            "optimal": self.optimal,
            "status": self.status.value,
            "fix": self.fix,
            "detail": self.detail,
            "samples": self.samples,
        }


class Judge:
    """Makes checks from measurements, with the bounds and unit of their threshold row."""

    def __init__(self, table: dict[str, Threshold]) -> None:
        self.table = table

    def measured(
        self,
        check_id: str,
        title: str,
        key: str,
        value: Any,
        *,
        fix: str | None,
        measure: Any = _SAME,
        detail: str | None = None,
        samples: dict[str, float] | None = None,
    ) -> Check:
        """A measured value; `measure` is what is compared when it differs from what is shown
        (a count of the tools found, the ceiling of a triple)."""
        row = self.table[key]
        status = judge(row, value if measure is _SAME else measure)
        check = self._check(
            check_id, title, key, value, status, None if status is Status.OPTIMAL else fix, detail
        )
        check.samples = samples
        return check

    def missing(
        self,
        check_id: str,
        title: str,
        key: str,
        reason: str,
        status: Status = Status.UNKNOWN,
        fix: str | None = None,
    ) -> Check:
        """Not measured, and why: `unknown` (left out of the verdict), or `unreachable` (a provider
        that does not answer, which limits everything)."""
        return self._check(check_id, title, key, None, status, fix, reason)

    def _check(
        self,
        check_id: str,
        title: str,
        key: str,
        value: Any,
        status: Status,
        fix: str | None,
        detail: str | None,
    ) -> Check:
        row = self.table[key]
        return Check(
            check_id,
            title,
            key,
            value,
            row.unit,
            describe(row.minimum),
            describe(row.optimal),
            status,
            fix,
            detail,
        )
