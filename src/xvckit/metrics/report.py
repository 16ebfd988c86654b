"""The metrics report: every KPI over a period beside the period before it, as the JSON
document `xvckit metrics --json` prints (SCHEMA, documented in docs/metrics.md), and as
Markdown for an issue or a pull request."""

from __future__ import annotations

import datetime as dt
import time
from typing import Any

from xvckit.metrics.compute import Measured, Period, Sources, measure
from xvckit.metrics.kpis import KPIS, Kpi

SCHEMA_ID = "xvckit.metrics/1"

_PERIOD = {
    "type": "object",
    "required": ["since", "until", "days"],
    "additionalProperties": False,
    "properties": {
        "since": {"type": "string", "description": "ISO 8601 UTC, included"},
        "until": {"type": "string", "description": "ISO 8601 UTC, excluded"},
        "days": {"type": "number"},
    },
}
_NUMBERS = {"type": ["object", "null"], "additionalProperties": {"type": "number"}}
_VALUE = {"type": ["number", "string", "null"]}


def _text(description: str) -> dict[str, Any]:
    return {"type": ["string", "null"], "description": description}


SCHEMA: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "$id": SCHEMA_ID,
    "title": "xvckit metrics --json",
    "type": "object",
    "required": ["schema", "generated_at", "period", "previous_period", "sources", "kpis"],
    "additionalProperties": False,
    "properties": {
        "schema": {"const": SCHEMA_ID},
        "generated_at": {"type": "string"},
        "period": _PERIOD,
        "previous_period": _PERIOD,
        "sources": {
            "type": "object",
            "description": "what each source held; null for a source not used",
            "additionalProperties": {"type": ["object", "null"]},
        },
        "kpis": {
            "type": "array",
            "items": {
                "type": "object",
                "required": [
                    "id",
                    "name",
                    "category",
                    "unit",
                    "better",
                    "value",
                    "previous",
                    "change",
                    "trend",
                    "assessment",
                    "breakdown",
                    "previous_breakdown",
                    "note",
                    "estimate",
                    "guide_says",
                ],
                "additionalProperties": False,
                "properties": {
                    "id": {"type": "string"},
                    "name": {"type": "string"},
                    "category": {"type": "string"},
                    "unit": {"enum": ["count", "share", "ratio", "ms", "hours", "per day", "usd", "text"]},
                    "better": {"enum": ["higher", "lower", None]},
                    "value": _VALUE,
                    "previous": _VALUE,
                    "change": {"type": ["number", "null"], "description": "value - previous"},
                    "trend": {"enum": ["up", "down", "flat", "changed", None]},
                    "assessment": {"enum": ["better", "worse", "same", None]},
                    "breakdown": _NUMBERS,
                    "previous_breakdown": _NUMBERS,
                    "note": _text("why there is no value, or what it is based on"),
                    "estimate": {"type": "boolean", "description": "the guide's estimate, not a measurement"},
                    "guide_says": _text("what the guide says about this KPI (not a measurement)"),
                },
            },
        },
    },
}


def build(sources: Sources, period: Period, used: dict[str, Any], now: float | None = None) -> dict[str, Any]:
    """The report document for `period` and the period of the same length before it."""
    previous = period.previous()
    current, before = measure(sources, period), measure(sources, previous)
    return {
        "schema": SCHEMA_ID,
        "generated_at": _iso(time.time() if now is None else now),
        "period": period_dict(period),
        "previous_period": period_dict(previous),
        "sources": used,
        "kpis": [_row(kpi, current[kpi.id], before[kpi.id]) for kpi in KPIS],
    }


def period_dict(period: Period) -> dict[str, Any]:
    """A period as the JSON documents write it."""
    return {"since": _iso(period.since), "until": _iso(period.until), "days": round(period.days, 4)}


def _iso(when: float) -> str:
    return dt.datetime.fromtimestamp(when, dt.UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def _round(kpi: Kpi, value: float | str | None) -> float | str | None:
    if value is None or isinstance(value, str):
        return value
    return round(value) if kpi.digits == 0 else round(float(value), kpi.digits)


def _numbers(kpi: Kpi, breakdown: dict[str, float] | None) -> dict[str, float] | None:
    if breakdown is None:
        return None
    return {k: v if isinstance(v, int) else round(float(v), max(kpi.digits, 4)) for k, v in breakdown.items()}


def _row(kpi: Kpi, now: Measured, before: Measured) -> dict[str, Any]:
    value, previous = _round(kpi, now.value), _round(kpi, before.value)
    change = trend = assessment = None
    if isinstance(value, int | float) and isinstance(previous, int | float):
        change = _round(kpi, value - previous)
        trend = "flat" if change == 0 else "up" if change > 0 else "down"  # type: ignore[operator]
        if kpi.better is not None:
            good = "up" if kpi.better == "higher" else "down"
            assessment = "same" if trend == "flat" else "better" if trend == good else "worse"
    elif isinstance(value, str) and isinstance(previous, str):
        trend = "flat" if value == previous else "changed"
    return {
        "id": kpi.id,
        "name": kpi.name,
        "category": kpi.category,
        "unit": kpi.unit,
        "better": kpi.better,
        "value": value,
        "previous": previous,
        "change": change,
        "trend": trend,
        "assessment": assessment,
        "breakdown": _numbers(kpi, now.breakdown),
        "previous_breakdown": _numbers(kpi, before.breakdown),
        "note": now.note,
        "estimate": kpi.estimate,
        "guide_says": kpi.guide,
    }


# rendering


def show(unit: str, value: float | str | None) -> str:
    """A value as a person reads it."""
    if value is None:
        return "n/a"
    if isinstance(value, str):
        return value
    if unit == "share":
        return f"{value * 100:.1f}%"
    if unit == "ms":
        return f"{value:,.0f} ms"
    if unit == "hours":
        return f"{value:,.1f} h"
    if unit == "per day":
        return f"{value:,.2f}/day"
    if unit == "usd":
        return f"${value:,.2f}" if abs(value) >= 1 else f"${value:.4f}"
    if unit == "count":
        return f"{int(value):,}"
    return f"{value:,.3g}" if abs(value) < 1000 else f"{value:,.0f}"


def show_change(row: dict[str, Any]) -> str:
    change = row["change"]
    if row["trend"] in (None, "changed"):
        return row["trend"] or ""
    if row["trend"] == "flat":
        return "flat"
    arrow = "up" if change > 0 else "down"
    amount = f"{change * 100:+.1f} pp" if row["unit"] == "share" else show(row["unit"], change)
    if row["unit"] != "share" and change > 0:
        amount = "+" + amount
    return f"{arrow} {amount}" + (f" ({row['assessment']})" if row["assessment"] else "")


def markdown(report: dict[str, Any]) -> str:
    """The report as Markdown: a table of measured KPIs, then the guide's estimates apart."""
    period = report["period"]
    lines = [
        f"### xvckit metrics: {period['since']} to {period['until']} ({_days(period['days'])}),"
        f" against the {_days(period['days'])} before",
        "",
        "| KPI | value | previous | trend |",
        "|---|---:|---:|---|",
    ]
    notes: dict[str, int] = {}  # a note's text -> its number: one note for all KPIs it is about
    category = None
    measured = [row for row in report["kpis"] if not row["estimate"]]
    for row in measured:
        if row["category"] != category:
            category = row["category"]
            lines.append(f"| **{category}** | | | |")
        value = show(row["unit"], row["value"])
        if row["note"]:
            value += f" [{notes.setdefault(row['note'], len(notes) + 1)}]"
        cells = [row["name"], value, show(row["unit"], row["previous"]), show_change(row)]
        lines.append("| " + " | ".join(_cell(cell) for cell in cells) + " |")
    if notes:
        lines += ["", *(f"[{i}] {_cell(note)}" for note, i in notes.items())]
    lines += ["", "**The guide's estimates** (not measured):", ""]
    for row in report["kpis"]:
        if row["estimate"]:
            value = show(row["unit"], row["value"])
            lines.append(f"- {row['name']}: {value}; the guide's table: {row['guide_says']}")
        elif row["guide_says"]:
            lines.append(f"- {row['name']}: {row['guide_says']}")
    return "\n".join(lines) + "\n"


def _days(days: float) -> str:
    return f"{days:g} day" + ("" if days == 1 else "s")


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")
