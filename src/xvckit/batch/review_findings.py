"""Findings: read from a model's answer, checked against the diff, merged into one review.

An answer is read leniently: the JSON alone, else the first fenced block that parses, else the
text from its first brace to its last; `{"findings": [...]}` or the bare list. An answer with
none of these is an error naming the file (never a crash). In each finding the severity is
mapped to error, warning or note (critical and high are errors, medium a warning, low and
info notes; a word not known is a warning), the category reduced to a slug, the line taken as
the new file's. A line the diff does not show (changed or around a change) is not a place the
change can be blamed for: the finding moves to the file as a whole, keeping the line the
model gave as `reported_line`. Entries that are not objects or have no reason are dropped and
counted. The merge drops duplicates (same file, line, category and reason: the more severe
kept), leaves out what is below the minimum severity, sorts (most severe first, then by file
and line) and keeps the first `max_findings`, counting the rest.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass

import orjson

from xvckit.batch.review_config import SEVERITIES
from xvckit.batch.review_git import FileDiff
from xvckit.errors import UserError

MAX_REASON_CHARS = 2_000
MAX_CATEGORY_CHARS = 40
DEFAULT_CATEGORY = "general"
_WORDS = {
    "error": ("error", "critical", "blocker", "high", "major", "severe", "fatal"),
    "warning": ("warning", "warn", "medium", "moderate"),
    "note": ("note", "info", "information", "informational", "low", "minor", "nit", "trivial", "style"),
}
SEVERITY_OF = {word: severity for severity, words in _WORDS.items() for word in words}
RANK = {severity: rank for rank, severity in enumerate(SEVERITIES)}
_FENCE = re.compile(r"```[ \t]*(?:json|JSON)?[ \t]*\n(.*?)```", re.DOTALL)


@dataclass(frozen=True, slots=True)
class Finding:
    file: str
    line: int | None  # the new file's line; None: the file as a whole
    severity: str
    category: str
    reason: str
    suggestion: str | None = None
    reported_line: int | None = None  # the model's line, outside the diff: moved to the file

    def as_dict(self) -> dict:
        return asdict(self)


@dataclass
class Merged:
    shown: list[Finding]
    counts: dict[str, int]  # by severity, every finding kept (shown or over the cap)
    omitted: int  # over max_findings
    below_minimum: int  # left out by min_severity
    duplicates: int
    moved: int  # kept findings whose line was outside the diff, moved to the file as a whole


def parse_answer(text: str) -> list:
    """The raw findings in an answer; UserError (the reason, the answer's start) when there are none."""
    candidates = [text.strip(), *(block.strip() for block in _FENCE.findall(text))]
    start, end = text.find("{"), text.rfind("}")
    if 0 <= start < end:
        candidates.append(text[start : end + 1])
    for candidate in candidates:
        try:
            data = orjson.loads(candidate)
        except orjson.JSONDecodeError:
            continue
        if isinstance(data, dict) and isinstance(data.get("findings"), list):
            return data["findings"]
        if isinstance(data, list):
            return data
    start_of = " ".join(text.split())[:80]
    raise UserError(f"the answer is not JSON findings (it begins {start_of!r})")


def findings_of(raw: list, diff: FileDiff) -> tuple[list[Finding], int]:
    """The file's findings from its answer's entries, and how many entries were dropped."""
    shown = diff.shown_lines()
    found, dropped = [], 0
    for entry in raw:
        reason = entry.get("reason") if isinstance(entry, dict) else None
        if not isinstance(reason, str) or not reason.strip():
            dropped += 1
            continue
        line = _line(entry.get("line"))
        reported = None
        if line is not None and line not in shown:
            line, reported = None, line
        suggestion = entry.get("suggestion")
        found.append(
            Finding(
                file=diff.path,
                line=line,
                severity=severity(entry.get("severity")),
                category=category(entry.get("category")),
                reason=_clip(reason),
                suggestion=_clip(suggestion) if isinstance(suggestion, str) and suggestion.strip() else None,
                reported_line=reported,
            )
        )
    return found, dropped


def severity(value) -> str:
    word = str(value or "").strip().lower()
    return SEVERITY_OF.get(word, "warning")


def category(value) -> str:
    slug = re.sub(r"[^a-z0-9]+", "-", str(value or "").lower()).strip("-")[:MAX_CATEGORY_CHARS].strip("-")
    return slug or DEFAULT_CATEGORY


def at_or_above(severity_name: str, threshold: str) -> bool:
    return RANK[severity_name] <= RANK[threshold]


def merge(findings: list[Finding], *, min_severity: str, max_findings: int) -> Merged:
    unique: dict[tuple, Finding] = {}
    for finding in findings:
        key = (finding.file, finding.line, finding.category, " ".join(finding.reason.lower().split()))
        kept = unique.get(key)
        if kept is None or RANK[finding.severity] < RANK[kept.severity]:
            unique[key] = finding
    duplicates = len(findings) - len(unique)
    kept = [f for f in unique.values() if at_or_above(f.severity, min_severity)]
    kept.sort(key=lambda f: (RANK[f.severity], f.file, f.line or 0, f.category, f.reason))
    counts = {name: sum(1 for f in kept if f.severity == name) for name in SEVERITIES}
    return Merged(
        shown=kept[:max_findings],
        counts=counts,
        omitted=max(0, len(kept) - max_findings),
        below_minimum=len(unique) - len(kept),
        duplicates=duplicates,
        moved=sum(1 for f in kept if f.reported_line is not None),
    )


def _line(value) -> int | None:
    """A line number as models write one: 12, "12", "12-15", "L12"; None for anything else."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value if value > 0 else None
    match = re.match(r"\s*L?(\d+)", value) if isinstance(value, str) else None
    return (int(match[1]) or None) if match else None


def _clip(text: str) -> str:
    text = text.strip()
    return text if len(text) <= MAX_REASON_CHARS else text[: MAX_REASON_CHARS - 1] + "…"
