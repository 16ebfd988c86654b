"""The knowledge base in the store, searched with the back end's own full-text search: SQLite
FTS5 (BM25, Porter stemming; the pattern weighs most, then tags, problem, solution) or
PostgreSQL's tsvector with a GIN index (`ts_rank` over the same weighted fields).

Queries are reduced to plain words (`kb.query_terms`), any of which may match, so no user
text reaches either query syntax. An entry with a team is seen by that team's keys only.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from xvckit.config import Config
from xvckit.errors import Conflict, NotFound, UserError
from xvckit.knowledge.kb import Entry, checked, parse, query_terms, slugify
from xvckit.store import Store, audit, keys
from xvckit.store.schema import KB_FTS, KB_VECTOR, kb_entries

MAX_RESULTS = 50
MAX_IMPORT_FILES = 5000
MAX_FILE_BYTES = 256 * 1024
# bm25() weights in the FTS5 table's column order: pattern, tags, problem, solution
_FTS_WEIGHTS = "10.0, 5.0, 2.0, 1.0"


def add(store: Store, entry: Entry, actor: str, *, overwrite: bool = False) -> str:
    """Store an entry; an existing slug is a Conflict unless `overwrite` (edit, import).
    Returns "added", "updated" or "unchanged"."""
    with audit.transaction(store) as conn:
        outcome = _upsert(conn, checked(entry), _team_ids(store, [entry]), overwrite)
        if outcome != "unchanged":
            audit.append_in(conn, actor, f"kb.{outcome[:-1]}", entry.slug, {"team": entry.team})
    return outcome


def import_dir(store: Store, folder: Path, actor: str, team: str | None = None) -> dict[str, Any]:
    """Every `*.md` under `folder` as an entry (slug: the file's name), added or updated; one
    transaction and one audit entry. A file that does not parse stops the import, named."""
    if not folder.is_dir():
        raise UserError(f"{folder}: not a folder")
    paths = sorted(folder.rglob("*.md"))
    if len(paths) > MAX_IMPORT_FILES:
        raise UserError(f"{folder}: {len(paths):,} Markdown files; at most {MAX_IMPORT_FILES:,} at once")
    entries = []
    for path in paths:
        if path.stat().st_size > MAX_FILE_BYTES:
            raise UserError(f"{path}: larger than {MAX_FILE_BYTES // 1024} KiB")
        entry = parse(path.read_text(errors="replace"), default_slug=slugify(path.stem), where=str(path))
        entry.team = entry.team or team
        entry.source = str(path.relative_to(folder))
        entries.append(entry)
    slugs = [e.slug for e in entries]
    twice = sorted({s for s in slugs if slugs.count(s) > 1})
    if twice:
        raise UserError(f"{folder}: several files have the slug {', '.join(twice)}")
    counts = {"added": 0, "updated": 0, "unchanged": 0}
    team_ids = _team_ids(store, entries)
    with audit.transaction(store) as conn:
        for entry in entries:
            counts[_upsert(conn, entry, team_ids, True)] += 1
        if counts["added"] or counts["updated"]:
            audit.append_in(conn, actor, "kb.import", str(folder)[:500], counts)
    return counts


def get(store: Store, slug: str) -> Entry:
    with store.engine.connect() as conn:
        row = conn.execute(_select().where(kb_entries.c.slug == slug)).first()
    if row is None:
        raise NotFound(f"no knowledge-base entry {slug[:120]!r}")
    return _entry(row)


def search(
    store: Store, text: str, limit: int = 5, *, team_id: str | None = None, every_team: bool = True
) -> list[Entry]:
    """The entries most relevant to `text`, best first. With `every_team` false, only the
    entries of no team and of `team_id` (a key's view)."""
    terms = query_terms(text)
    if not terms:
        return []
    limit = max(1, min(limit, MAX_RESULTS))
    if store.engine.dialect.name == "postgresql":
        query = " | ".join(terms)
        vector = sa.text(KB_VECTOR)
        tsquery = sa.func.to_tsquery("english", query)
        score = sa.func.ts_rank(vector, tsquery).label("score")
        select = _select(score).where(sa.literal_column(KB_VECTOR).op("@@")(tsquery))
        order = score.desc()
    else:
        fts = sa.table(KB_FTS, sa.column("rowid"))
        score = sa.literal_column(f"-bm25({KB_FTS}, {_FTS_WEIGHTS})").label("score")
        match = sa.literal_column(KB_FTS).op("MATCH")(" OR ".join(f'"{t}"' for t in terms))
        select = _select(score).join(fts, fts.c.rowid == kb_entries.c.id).where(match)
        order = score.desc()
    if not every_team:
        select = select.where(sa.or_(kb_entries.c.team_id.is_(None), kb_entries.c.team_id == team_id))
    with store.engine.connect() as conn:
        rows = conn.execute(select.order_by(order, kb_entries.c.slug).limit(limit)).all()
    found = []
    for row in rows:
        entry = _entry(row)
        entry.score = float(row.score)
        found.append(entry)
    return found


def notes_for_task(config: Config, task: str, limit: int = 5) -> list:
    """The entries relevant to a task, as notes for a context pack's core part; none while
    the store does not exist (a SQLite file is not made just to find it empty)."""
    from xvckit.context.pack import Note

    url = config.storage.url
    if url.startswith("sqlite:///") and not Path(url.removeprefix("sqlite:///")).expanduser().is_file():
        return []
    store = Store.configured(config)
    try:
        found = search(store, task, limit)
    finally:
        store.close()
    return [Note(f"kb/{e.slug}", e.markdown(front_matter=False), e.score) for e in found]


def list_entries(store: Store) -> list[Entry]:
    with store.engine.connect() as conn:
        return [_entry(row) for row in conn.execute(_select().order_by(kb_entries.c.slug))]


def _upsert(conn: sa.Connection, entry: Entry, team_ids: dict[str, str], overwrite: bool) -> str:
    now = time.time()
    values = {
        "pattern": entry.pattern,
        "problem": entry.problem,
        "solution": entry.solution,
        "tags": " ".join(entry.tags),
        "links": list(entry.links),
        "team_id": team_ids.get(entry.team) if entry.team else None,
        "source": entry.source,
    }
    row = conn.execute(sa.select(kb_entries).where(kb_entries.c.slug == entry.slug)).first()
    if row is None:
        conn.execute(kb_entries.insert().values(slug=entry.slug, created_at=now, updated_at=now, **values))
        return "added"
    if not overwrite:
        raise Conflict(
            f"a knowledge-base entry {entry.slug!r} exists already (edit it, or choose another slug)"
        )
    if all(getattr(row, name) == value for name, value in values.items()):
        return "unchanged"
    conn.execute(kb_entries.update().where(kb_entries.c.id == row.id).values(updated_at=now, **values))
    return "updated"


def _team_ids(store: Store, entries: Iterable[Entry]) -> dict[str, str]:
    return {name: keys.get_team(store, name).id for name in {e.team for e in entries if e.team}}


def _select(*extra: Any) -> sa.Select:
    team = keys.teams_table
    return sa.select(kb_entries, team.c.name.label("team_name"), *extra).outerjoin(
        team, team.c.id == kb_entries.c.team_id
    )


def _entry(row: Any) -> Entry:
    return Entry(
        row.slug,
        row.pattern,
        row.problem,
        row.solution,
        tuple(row.tags.split()),
        tuple(row.links or ()),
        team=row.team_name,
        source=row.source,
        meta={"created_at": row.created_at, "updated_at": row.updated_at},
    )
