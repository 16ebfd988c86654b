"""A doctor run as data: the `--json` document, Markdown, and the rows of `doctor history`."""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass
from typing import Any

from xvckit.doctor.checks import Check
from xvckit.doctor.thresholds import Status
from xvckit.doctor.verdict import BASIS, Verdict, verdict

SECTIONS = ("network", "compute", "tools", "tuning", "api")  # as --only names them, in report order
NO_CHECKS = "no checks here: they are per provider, and xvckit.yaml configures none"


@dataclass(slots=True)
class Report:
    started_at: float
    duration_s: float
    host: str
    sections: tuple[str, ...]
    checks: list[Check]

    @property
    def verdict(self) -> Verdict:
        return verdict(self.checks)

    def section(self, name: str) -> list[Check]:
        return [check for check in self.checks if check.section == name]

    def to_dict(self) -> dict[str, Any]:
        found = self.verdict
        band = found.band
        return {
            "started_at": self.started_at,
            "duration_s": round(self.duration_s, 2),
            "host": self.host,
            "velocity_band": None
            if band is None
            else {
                "band": band.name,
                "velocity": band.velocity,
                "low": band.low,
                "high": band.high,
                "basis": BASIS,
                "judged_checks": found.judged,
                "unknown_checks": found.unknown,
            },
            "bottleneck": None if found.bottleneck is None else _brief(found.bottleneck),
            "statuses": dict(Counter(check.status.value for check in self.checks)),
            "sections": {name: [c.to_dict() for c in self.section(name)] for name in self.sections},
        }

    def to_markdown(self) -> str:
        lines = [f"# xvckit doctor: {self.host}, {_when(self.started_at)}", ""]
        for name in self.sections:
            lines += [f"## {name}", ""]
            if not self.section(name):
                lines += [f"_{NO_CHECKS}_", ""]
                continue
            lines += ["| check | value | minimum | optimal | status | fix |", "|---|---|---|---|---|---|"]
            for check in self.section(name):
                title = f"{check.title}<br>`{check.id}`" + (f"<br>{check.detail}" if check.detail else "")
                cells = [
                    title,
                    show_value(check),
                    show_bound(check, check.minimum),
                    show_bound(check, check.optimal),
                ]
                cells += [check.status.value, check.fix or ""]
                lines.append("| " + " | ".join(cell.replace("|", "\\|") for cell in cells) + " |")
            lines.append("")
        lines += [f"**{headline(self.verdict)}**", "", f"_{BASIS}._", ""]
        return "\n".join(lines)


def _brief(check: Check) -> dict[str, Any]:
    return {
        k: v for k, v in check.to_dict().items() if k in ("id", "title", "value", "unit", "status", "fix")
    }


def _when(epoch: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(epoch))


def headline(found: Verdict) -> str:
    """One line: the band and the bottleneck, or why there are none."""
    if found.band is None:
        return "velocity band: unknown (nothing could be judged)"
    text = f"velocity band (guide's estimate): {found.band.name}, {found.band.velocity}"
    if found.bottleneck is None:
        return text + "; no bottleneck: every judged check is optimal"
    check = found.bottleneck
    shown = check.status.value if check.value is None else f"{show_value(check)}, {check.status.value}"
    return text + f"; bottleneck: {check.title} ({check.id}: {shown})"


def show_value(check: Check) -> str:
    if check.value is None:
        return "unreachable" if check.status is Status.UNREACHABLE else "-"
    return _show(check.value, check.unit)


def show_bound(check: Check, bound: Any) -> str:
    return "-" if bound is None else _show(bound, check.unit)


def _show(value: Any, unit: str) -> str:
    """Numbers (and lists of them) with their unit; words, lists of words and maps as they are."""
    if isinstance(value, dict):
        return ", ".join(f"{k} {v}" for k, v in value.items()) or "none"
    items = value if isinstance(value, list) else [value]
    if not items:
        return "none"
    if not all(isinstance(v, int | float) for v in items):
        return ", ".join(map(str, items))
    text = " ".join(f"{v:g}" if isinstance(v, float) else str(v) for v in items)
    return f"{text} {unit}" if unit else text


def history_rows(runs: list[dict[str, Any]], check_id: str | None = None) -> list[dict[str, Any]]:
    """One row per saved run: its band and bottleneck, or the value of one check."""
    rows = []
    for run in runs:
        row: dict[str, Any] = {"run": run["run"], "started_at": run["started_at"]}
        band = run.get("velocity_band") or {}
        if check_id is None:
            row["velocity"] = band.get("velocity")
            row["bottleneck"] = (run.get("bottleneck") or {}).get("id")
            row.update({status.value: run.get("statuses", {}).get(status.value, 0) for status in Status})
        else:
            found = next(
                (c for checks in run["sections"].values() for c in checks if c["id"] == check_id), None
            )
            row.update(
                {"value": None, "unit": None, "status": None} if found is None else _trend_cells(found)
            )
        rows.append(row)
    return rows


def _trend_cells(check: dict[str, Any]) -> dict[str, Any]:
    return {"value": check["value"], "unit": check["unit"], "status": check["status"]}
