"""Knowledge-base entries: a pattern the team found, the problem it answers, the solution,
links and tags, written as Markdown a person reads and edits:

    ---
    tags: [sqlite, locking]
    links: [https://sqlite.org/wal.html]
    ---
    # Retry writes that meet SQLITE_BUSY

    ## Problem
    Two processes write at once and one fails with "database is locked".

    ## Solution
    Set a busy timeout and keep write transactions short.

The front matter is optional (`slug`, `tags`, `links`, `team`); a `## Links` section's bullets
are links too. The title is the pattern.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

import yaml

from xvckit.errors import UserError

SLUG = re.compile(r"[a-z0-9][a-z0-9-]{0,99}")
MAX_PATTERN_CHARS = 300
MAX_TEXT_CHARS = 50_000  # of the problem and of the solution
MAX_TAGS = 20
MAX_LINKS = 20
MAX_TERMS = 32  # of a search query
_SECTION = re.compile(r"^##\s+(.+?)\s*#*\s*$", re.M)
_WORD = re.compile(r"[^\W_]+")
_STOP_WORDS = """a an and are as at be but by can do does for from has have how i if in into is it its
not of on or should so that the their then there these this to was we what when where which while
who why will with you your"""
_STOP = frozenset(_STOP_WORDS.split())


@dataclass
class Entry:
    slug: str
    pattern: str
    problem: str
    solution: str
    tags: tuple[str, ...] = ()
    links: tuple[str, ...] = ()
    team: str | None = None  # the team whose keys see it; None: every key
    source: str | None = None
    score: float = 0.0  # a search's relevance, higher is better
    meta: dict[str, Any] = field(default_factory=dict)  # created_at, updated_at

    def public(self) -> dict[str, Any]:
        return {
            "slug": self.slug,
            "pattern": self.pattern,
            "problem": self.problem,
            "solution": self.solution,
            "tags": list(self.tags),
            "links": list(self.links),
            "team": self.team,
            "source": self.source,
            **({"score": round(self.score, 4)} if self.score else {}),
            **self.meta,
        }

    def markdown(self, *, front_matter: bool = True) -> str:
        """The entry as it is written (and edited)."""
        head = ""
        if front_matter:
            data = {"slug": self.slug, "tags": list(self.tags), "links": list(self.links)}
            if self.team:
                data["team"] = self.team
            head = "---\n" + yaml.safe_dump(data, sort_keys=False, default_flow_style=None) + "---\n"
        return f"{head}# {self.pattern}\n\n## Problem\n{self.problem}\n\n## Solution\n{self.solution}\n"


def parse(text: str, *, default_slug: str | None = None, where: str = "entry") -> Entry:
    """An entry from its Markdown; a missing part is an error naming it and `where`."""
    data: dict[str, Any] = {}
    if text.startswith("---\n"):
        end = text.find("\n---\n", 4)
        if end < 0:
            raise UserError(f"{where}: the front matter opened with --- is not closed")
        try:
            data = yaml.safe_load(text[4:end]) or {}
        except yaml.YAMLError as exc:
            raise UserError(
                f"{where}: front matter is not valid YAML: {getattr(exc, 'problem', exc)}"
            ) from None
        if not isinstance(data, dict):
            raise UserError(f"{where}: the front matter must be a mapping")
        text = text[end + 5 :]
        unknown = sorted(set(data) - {"slug", "tags", "links", "team"})
        if unknown:
            raise UserError(f"{where}: unknown front matter {', '.join(unknown)} (slug, tags, links, team)")
    title = re.search(r"^#\s+(.+?)\s*#*\s*$", text, re.M)
    if title is None:
        raise UserError(f"{where}: no '# title' line (the pattern)")
    sections = _sections(text)
    missing = [name for name in ("problem", "solution") if not sections.get(name)]
    if missing:
        raise UserError(f"{where}: no {' or '.join(f'## {m.title()}' for m in missing)} section")
    links = [*_strings(data.get("links"), "links", where), *_bullets(sections.get("links", ""))]
    slug = data.get("slug") or default_slug or slugify(title.group(1))
    return checked(
        Entry(
            str(slug),
            title.group(1),
            sections["problem"],
            sections["solution"],
            tuple(_strings(data.get("tags"), "tags", where)),
            tuple(dict.fromkeys(links)),
            team=data.get("team"),
        ),
        where,
    )


def checked(entry: Entry, where: str = "entry") -> Entry:
    """Bounds and shapes, each problem naming `where`; tags lower case."""
    if not SLUG.fullmatch(entry.slug):
        raise UserError(f"{where}: slug {entry.slug[:120]!r}: 1-100 lower case letters, digits and '-'")
    if not entry.pattern.strip() or len(entry.pattern) > MAX_PATTERN_CHARS:
        raise UserError(f"{where}: the pattern (title) must have 1-{MAX_PATTERN_CHARS} characters")
    for name in ("problem", "solution"):
        value = getattr(entry, name)
        if not value.strip() or len(value) > MAX_TEXT_CHARS:
            raise UserError(f"{where}: the {name} must have 1-{MAX_TEXT_CHARS:,} characters")
    tags = tuple(dict.fromkeys(t.strip().lower() for t in entry.tags if t.strip()))
    if len(tags) > MAX_TAGS or any(len(t) > 50 or not _WORD.fullmatch(t.replace("-", "x")) for t in tags):
        raise UserError(f"{where}: at most {MAX_TAGS} tags of letters, digits and '-' (50 characters each)")
    if len(entry.links) > MAX_LINKS or any(len(link) > 500 for link in entry.links):
        raise UserError(f"{where}: at most {MAX_LINKS} links of 500 characters each")
    entry.tags = tags
    return entry


def slugify(text: str) -> str:
    words = _WORD.findall(text.lower())
    return "-".join(words)[:100].strip("-") or "entry"


def query_terms(text: str) -> list[str]:
    """The words a search looks for: letters and digits only (nothing a query syntax reads),
    lower case, without common English words, at most MAX_TERMS."""
    words = [w for w in _WORD.findall(text.lower()) if w not in _STOP and len(w) <= 64]
    return list(dict.fromkeys(words))[:MAX_TERMS]


def _sections(text: str) -> dict[str, str]:
    marks = list(_SECTION.finditer(text))
    out = {}
    for i, mark in enumerate(marks):
        end = marks[i + 1].start() if i + 1 < len(marks) else len(text)
        out[mark.group(1).strip().lower()] = text[mark.end() : end].strip()
    return out


def _bullets(text: str) -> list[str]:
    return [m.group(1).strip() for m in re.finditer(r"^\s*[-*]\s+(.+)$", text, re.M)]


def _strings(value: Any, name: str, where: str) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise UserError(f"{where}: {name} must be a list of strings")
    return value
