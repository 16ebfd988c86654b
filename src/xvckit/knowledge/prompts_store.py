"""Prompts in the store, for teams without git and for the gateway to serve.

A version, once written, is never changed: adding one takes the next number, and `push` (the
files of a repository into the store) refuses a file whose version N differs from the stored
version N. Every change (a version added, a label moved, an owner set) is one transaction
with its audit entry; a label moved is read by the next request (nothing is cached).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

import sqlalchemy as sa

from xvckit.errors import Conflict, NotFound
from xvckit.knowledge.prompts import Prompt, Version, check_label, check_name, version_number
from xvckit.store import Store, audit, keys
from xvckit.store.schema import prompt_labels, prompt_versions, prompts


@dataclass(frozen=True)
class Owned:
    """A resolved version and who owns its prompt (the gateway's check reads `team_id`)."""

    name: str
    team_id: str | None
    version: Version


def add_version(
    store: Store,
    name: str,
    version: Version,
    actor: str,
    *,
    team: str | None = None,
    tags: tuple[str, ...] | None = None,
    labels: tuple[str, ...] = (),
) -> Version:
    """Store `version` as the prompt's next one (the prompt is made on its first version,
    owned by `team`), and point `labels` at it."""
    check_name(name)
    for label in labels:
        check_label(label)
    team_id = keys.get_team(store, team).id if team else None
    now = time.time()
    with audit.transaction(store) as conn:
        row = conn.execute(sa.select(prompts).where(prompts.c.name == name)).first()
        if row is None:
            conn.execute(
                prompts.insert().values(name=name, team_id=team_id, tags=list(tags or ()), created_at=now)
            )
        elif team_id and row.team_id != team_id:
            owner = "no team" if row.team_id is None else "another team"
            raise Conflict(f"prompt {name} belongs to {owner}, not {team}: add its versions without --team")
        number = _newest(conn, name) + 1
        stored = replace(version, version=number, created_at=now, created_by=actor[:200])
        conn.execute(prompt_versions.insert().values(name=name, **_version_row(stored)))
        for label in labels:
            _set_label(conn, name, label, number, now)
        audit.append_in(
            conn, actor, "prompt.add", f"{name}@{number}", {"digest": stored.digest, "labels": labels}
        )
    return stored


def set_label(store: Store, name: str, label: str, selector: str, actor: str) -> int:
    """Point `label` at a version (a number, or what another label names); returns it."""
    check_label(label)
    with audit.transaction(store) as conn:
        prompt = _read(conn, name)
        number = prompt.number(selector)
        before = prompt.labels.get(label)
        _set_label(conn, name, label, number, time.time())
        audit.append_in(conn, actor, "prompt.label", f"{name}:{label}", {"old": before, "new": number})
    return number


def get(store: Store, name: str) -> Prompt:
    with store.engine.connect() as conn:
        return _read(conn, name)


def resolve(
    store: Store, name: str, selector: str | None, may_use: Callable[[str | None], bool] | None = None
) -> Owned:
    """The version `name@selector` names now, in two small queries (the gateway asks on every
    use, so a moved label is served at once). A prompt whose owning team `may_use` refuses is
    not found, before its labels or versions are looked at."""
    with store.engine.connect() as conn:
        head = conn.execute(sa.select(prompts.c.team_id).where(prompts.c.name == name)).first()
        if head is None or (may_use is not None and not may_use(head.team_id)):
            raise NotFound(f"no prompt {name!r}")
        labels = dict(
            conn.execute(
                sa.select(prompt_labels.c.label, prompt_labels.c.version).where(prompt_labels.c.name == name)
            ).all()
        )
        number = version_number(name, selector, labels, _newest(conn, name))
        row = conn.execute(
            sa.select(prompt_versions).where(
                prompt_versions.c.name == name, prompt_versions.c.version == number
            )
        ).one()
    return Owned(name, head.team_id, _version_from(row))


def list_prompts(store: Store, team_id: str | None = None) -> list[Prompt]:
    """Every prompt (of one team when `team_id` is given), by name."""
    query = sa.select(prompts.c.name).order_by(prompts.c.name)
    if team_id is not None:
        query = query.where(prompts.c.team_id == team_id)
    with store.engine.connect() as conn:
        return [_read(conn, name) for name in conn.execute(query).scalars()]


def push(store: Store, prompt: Prompt, actor: str) -> dict[str, Any]:
    """A prompt read from files into the store: its new versions added, its labels and owner
    set as the file says. A version the store holds with other content is refused."""
    team_id = keys.get_team(store, prompt.team).id if prompt.team else None
    now = time.time()
    with audit.transaction(store) as conn:
        row = conn.execute(sa.select(prompts).where(prompts.c.name == prompt.name)).first()
        stored = _read(conn, prompt.name).versions if row is not None else []
        for old, new in zip(stored, prompt.versions, strict=False):
            if old.digest != new.digest:
                raise Conflict(
                    f"prompt {prompt.name}: version {old.version} differs from the stored one; "
                    "versions never change: add the change as a new version"
                )
        if len(stored) > len(prompt.versions):
            raise Conflict(
                f"prompt {prompt.name}: the store has {len(stored)} versions, the file {len(prompt.versions)}"
            )
        if row is None:
            conn.execute(
                prompts.insert().values(
                    name=prompt.name, team_id=team_id, tags=list(prompt.tags), created_at=now
                )
            )
        else:
            conn.execute(
                prompts.update()
                .where(prompts.c.name == prompt.name)
                .values(team_id=team_id, tags=list(prompt.tags))
            )
        added = prompt.versions[len(stored) :]
        for version in added:
            row_values = _version_row(replace(version, created_at=now, created_by=actor[:200]))
            conn.execute(prompt_versions.insert().values(name=prompt.name, **row_values))
        conn.execute(prompt_labels.delete().where(prompt_labels.c.name == prompt.name))
        for label, number in prompt.labels.items():
            _set_label(conn, prompt.name, label, number, now)
        detail = {"added": [v.version for v in added], "labels": prompt.labels, "team_id": team_id}
        audit.append_in(conn, actor, "prompt.push", prompt.name, detail)
    return {"name": prompt.name, "added": [v.version for v in added], "labels": prompt.labels}


def _set_label(conn: sa.Connection, name: str, label: str, number: int, now: float) -> None:
    key = (prompt_labels.c.name == name) & (prompt_labels.c.label == label)
    if not conn.execute(prompt_labels.update().where(key).values(version=number, updated_at=now)).rowcount:
        conn.execute(prompt_labels.insert().values(name=name, label=label, version=number, updated_at=now))


def _newest(conn: sa.Connection, name: str) -> int:
    query = sa.select(sa.func.max(prompt_versions.c.version)).where(prompt_versions.c.name == name)
    return conn.execute(query).scalar() or 0


def _read(conn: sa.Connection, name: str) -> Prompt:
    check_name(name)
    head = conn.execute(sa.select(prompts).where(prompts.c.name == name)).first()
    if head is None:
        raise NotFound(f"no prompt {name!r}")
    versions = conn.execute(
        sa.select(prompt_versions).where(prompt_versions.c.name == name).order_by(prompt_versions.c.version)
    ).all()
    labels = conn.execute(
        sa.select(prompt_labels.c.label, prompt_labels.c.version).where(prompt_labels.c.name == name)
    ).all()
    team = None
    if head.team_id:
        found = conn.execute(sa.select(keys.teams_table.c.name).where(keys.teams_table.c.id == head.team_id))
        team = found.scalar()
    return Prompt(name, team, tuple(head.tags or ()), [_version_from(r) for r in versions], dict(labels))


def _version_row(version: Version) -> dict[str, Any]:
    return {
        "version": version.version,
        "template": version.template,
        "variables": list(version.variables),
        "model": version.model,
        "parameters": version.parameters,
        "digest": version.digest,
        "note": version.note,
        "created_at": version.created_at,
        "created_by": version.created_by,
    }


def _version_from(row: Any) -> Version:
    return Version(
        row.version,
        row.template,
        tuple(row.variables),
        row.model,
        row.parameters or {},
        row.note,
        row.created_at,
        row.created_by,
    )
