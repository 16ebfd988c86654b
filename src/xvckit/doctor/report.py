"""A doctor run as data: the `--json` document, Markdown, and the rows of `doctor history`."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from xvckit.doctor.checks import Check
from xvckit.doctor.thresholds import Status
from xvckit.doctor.verdict import BASIS, Verdict, verdict
from xvckit.errors import UserError

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

    @property
    def headline(self) -> str:
        return headline(self.verdict, self.sections)

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
                "unknown_checks": len(found.not_measured),
            },
            "bottleneck": None if found.bottleneck is None else _brief(found.bottleneck),
            "not_measured": [check.id for check in found.not_measured],
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
        lines += [f"**{self.headline}**", "", f"_{BASIS}._", ""]
        return "\n".join(lines)


def _brief(check: Check) -> dict[str, Any]:
    return {
        k: v for k, v in check.to_dict().items() if k in ("id", "title", "value", "unit", "status", "fix")
    }


def _when(epoch: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(epoch))


def headline(found: Verdict, sections: tuple[str, ...] = SECTIONS) -> str:
    """One line: the band and the bottleneck, or why there are none; the sections it covers
    when not all ran, and the checks that could not be measured (the band is then a ceiling)."""
    scope = "" if _full(sections) else f", {','.join(sections)} only"
    missing = ", ".join(check.id for check in found.not_measured)
    if found.band is None:
        return f"velocity band{scope}: unknown (" + (f"not measured: {missing})" if missing else "no checks)")
    text = f"velocity band (guide's estimate{scope}): {found.band.name}, {found.band.velocity}"
    text += " at best" if missing else ""
    if found.bottleneck is None:
        text += "; no bottleneck: every measured check is optimal"
    else:
        check = found.bottleneck
        shown = check.status.value if check.value is None else f"{show_value(check)}, {check.status.value}"
        text += f"; bottleneck: {check.title} ({check.id}: {shown})"
    return text + (f"; not measured: {missing}" if missing else "")


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


def _full(sections: Iterable[str]) -> bool:
    return set(sections) == set(SECTIONS)


def history_rows(
    runs: list[dict[str, Any]],
    limit: int,
    *,
    check_id: str | None = None,
    known_ids: Iterable[str] = (),
    partial: bool = False,
) -> tuple[list[dict[str, Any]], str | None]:
    """The rows of `doctor history`, the latest `limit`, and a note on what they leave out.

    Bands: the full runs only (the machine's band), or with `partial` the `--only` runs only,
    with their sections: a band over some sections is never set beside the machine's. One
    check (`check_id`): its value in every run that measured it, full or not; an id neither
    in a saved run nor among `known_ids` (what the doctor measures now) is an error."""
    if check_id is not None:
        if partial:
            raise UserError("--partial goes without --check (a check's trend takes every run with it)")
        return _trend(runs, check_id, known_ids)[-limit:], None
    kept = [run for run in runs if _full(run["sections"]) != partial]
    rows = []
    for run in kept[-limit:]:
        row: dict[str, Any] = {"run": run["run"], "started_at": run["started_at"]}
        if partial:
            row["sections"] = ",".join(run["sections"])
        row["velocity"] = (run.get("velocity_band") or {}).get("velocity")
        row["bottleneck"] = (run.get("bottleneck") or {}).get("id")
        row.update({status.value: run.get("statuses", {}).get(status.value, 0) for status in Status})
        rows.append(row)
    left_out = len(runs) - len(kept)
    note = None
    if left_out and not partial:
        note = f"{left_out} run(s) made with --only not shown (a band of some sections): see --partial"
    return rows, note


def _trend(runs: list[dict[str, Any]], check_id: str, known_ids: Iterable[str]) -> list[dict[str, Any]]:
    measured = [(run, checks[check_id]) for run in runs if check_id in (checks := _checks_of(run))]
    known = set(known_ids)
    if not measured and check_id not in known:
        ids = sorted(known.union(*map(_checks_of, runs)))
        raise UserError(f"--check {check_id}: no such check; choose from {', '.join(ids)}")
    return [
        {
            "run": run["run"],
            "started_at": run["started_at"],
            "value": check["value"],
            "unit": check["unit"],
            "status": check["status"],
        }
        for run, check in measured
    ]


def _checks_of(run: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {check["id"]: check for checks in run["sections"].values() for check in checks}
