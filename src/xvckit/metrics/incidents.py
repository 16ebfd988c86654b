"""Production incidents from a YAML or CSV file: when each was opened and resolved, and its
severity.

YAML: a list of mappings, or a mapping whose `incidents` key holds one. CSV: a header line
naming the columns. Fields: `opened` (required), `resolved` (empty or absent while open),
`severity` (any text; `unknown` when absent), and optionally `id` and `title`, which are kept
for the reader but not used. Times are ISO dates or times (UTC unless they carry an offset)
or epoch seconds.
"""

from __future__ import annotations

import csv
import datetime as dt
import math
from dataclasses import dataclass
from pathlib import Path

import yaml

from xvckit.errors import UserError
from xvckit.timespec import parse_moment

FIELDS = ("opened", "resolved", "severity", "id", "title")


@dataclass(frozen=True, slots=True)
class Incident:
    opened: float
    resolved: float | None
    severity: str


def load(path: Path) -> list[Incident]:
    """The incidents in `path`, oldest first; a UserError naming the file, the incident and
    the field for anything unreadable."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise UserError(f"--incidents {path}: {getattr(exc, 'strerror', None) or exc}") from None
    rows = _csv(path, text) if path.suffix.lower() == ".csv" else _yaml(path, text)
    incidents = [_incident(path, number, row) for number, row in enumerate(rows, 1)]
    return sorted(incidents, key=lambda i: i.opened)


def _yaml(path: Path, text: str) -> list:
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise UserError(f"--incidents {path}: not YAML: {str(exc).splitlines()[0]}") from None
    if isinstance(data, dict) and "incidents" in data:
        data = data["incidents"]
    if data is None:
        return []
    if not isinstance(data, list):
        raise UserError(f"--incidents {path}: expected a list of incidents (or incidents: [...])")
    return data


def _csv(path: Path, text: str) -> list:
    reader = csv.DictReader(text.splitlines())
    if reader.fieldnames is None:
        return []
    names = [name.strip().lower() for name in reader.fieldnames]
    if "opened" not in names:
        raise UserError(f"--incidents {path}: the header line has no 'opened' column")
    reader.fieldnames = names
    return [{k: v for k, v in row.items() if k is not None and v not in (None, "")} for row in reader]


def _incident(path: Path, number: int, row) -> Incident:
    where = f"--incidents {path}: incident {number}"
    if not isinstance(row, dict):
        raise UserError(f"{where}: expected a mapping with opened, resolved, severity")
    unknown = sorted(str(k) for k in row if k not in FIELDS)
    if unknown:
        raise UserError(f"{where}: unknown field {unknown[0]!r} (fields: {', '.join(FIELDS)})")
    if row.get("opened") is None:
        raise UserError(f"{where}: opened: missing")
    opened = _time(where, "opened", row["opened"])
    resolved = None if row.get("resolved") is None else _time(where, "resolved", row["resolved"])
    if resolved is not None and resolved < opened:
        raise UserError(f"{where}: resolved is before opened")
    severity = str(row.get("severity") or "unknown").strip().lower() or "unknown"
    return Incident(opened, resolved, severity[:64])


def _time(where: str, name: str, value) -> float:
    """A YAML date or datetime (PyYAML reads unquoted ones), epoch seconds, or a text time."""
    if isinstance(value, dt.datetime):
        return (value if value.tzinfo else value.replace(tzinfo=dt.UTC)).timestamp()
    if isinstance(value, dt.date):
        return dt.datetime(value.year, value.month, value.day, tzinfo=dt.UTC).timestamp()
    if isinstance(value, int | float) and not isinstance(value, bool):
        if not math.isfinite(value):
            raise UserError(f"{where}: {name}: {value} is not a time")
        return float(value)
    text = str(value).strip()
    try:
        return float(text) if text.replace(".", "", 1).isdigit() else _moment(text)
    except ValueError as exc:
        raise UserError(f"{where}: {name}: {exc}") from None


def _moment(text: str) -> float:
    """An ISO date or time; durations ("7d") are not times here."""
    if text[:1].isdigit() and "-" in text:
        return parse_moment(text)
    raise ValueError(f"cannot read {text!r} as a time: use an ISO date or time like 2026-11-01T10:00Z")
