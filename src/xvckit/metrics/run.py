"""One `xvckit metrics` run: the sources gathered for a period and the one before it, then
the report. Every source is optional; each says in the report's `sources` what it held."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from xvckit.errors import UserError
from xvckit.metrics import builds, cache, docs, gitlog, incidents, report, usage
from xvckit.metrics.compute import Member, Period, Repo, Sources, Tag

if TYPE_CHECKING:
    from xvckit.store.database import Store


@dataclass
class Options:
    period: Period
    repo: Path = Path(".")
    repo_given: bool = False  # a path that is not a repository is an error only when given
    junit: list[str] = field(default_factory=list)
    coverage: list[str] = field(default_factory=list)
    incidents: Path | None = None


Progress = Callable[[int], None] | None  # told how many commits were read so far


def run(options: Options, store: Store | None, progress: Progress = None) -> dict[str, Any]:
    """The report document (report.SCHEMA)."""
    sources, used = collect(options, store, progress)
    return report.build(sources, options.period, used)


def collect(
    options: Options, store: Store | None, progress: Progress = None
) -> tuple[Sources, dict[str, Any]]:
    sources = Sources()
    used: dict[str, Any] = dict.fromkeys(("ledger", "git", "junit", "coverage", "incidents", "doctor"))
    whole = Period(options.period.previous().since, options.period.until)
    git_folder = gitlog.git_dir(options.repo)
    if git_folder is None and options.repo_given:
        raise UserError(f"--repo {options.repo}: not a git repository")
    folder = git_folder / "xvckit" if git_folder else None
    if git_folder is not None:
        sources.repo, used["git"] = _repo(options.repo, folder, options.period, progress)  # type: ignore[arg-type]
    files = cache.load(folder / "metrics-files.msgpack", builds.FileCache) if folder else None
    files = files or builds.FileCache()
    if options.junit:
        sources.junit = builds.junit(builds.expand(options.junit, "--junit"), files)
        used["junit"] = {"files": len(sources.junit)}
    if options.coverage:
        sources.coverage = builds.coverage(builds.expand(options.coverage, "--coverage"), files)
        used["coverage"] = {"files": len(sources.coverage)}
    if folder and (options.junit or options.coverage):
        cache.save(folder / "metrics-files.msgpack", files)
    if options.incidents is not None:
        sources.incidents = incidents.load(options.incidents)
        used["incidents"] = {"file": str(options.incidents), "incidents": len(sources.incidents)}
    if store is not None:
        _store_sources(store, sources, used, whole)
    return sources, used


def _repo(path: Path, folder: Path, period: Period, progress: Progress) -> tuple[Repo, dict[str, Any]]:
    """The history (cached), its tags, and documentation counts at the ends of the period and
    of the one before it."""
    history, read = gitlog.load(path, folder, progress)
    repo = Repo(history, _tags(path, history))
    docs_cache = cache.load(folder / "metrics-docs.msgpack", docs.DocsCache) or docs.DocsCache()
    used_blobs: set[str] = set()
    for until in (period.since, period.until):
        tip = repo.tip_before(until)
        if tip is not None and tip not in repo.docs:
            repo.docs[tip] = docs.completeness(path, history.shas[tip], docs_cache, used_blobs)
    docs_cache.blobs = {key: docs_cache.blobs[key] for key in used_blobs}
    cache.save(folder / "metrics-docs.msgpack", docs_cache)
    return repo, {
        "repo": str(path.resolve()),
        "head": history.head or None,
        "commits": len(history),
        "commits_read": read,
        "tags": len(repo.tags),
    }


def _tags(path: Path, history: gitlog.History) -> list[Tag]:
    """Tags on commits of the history: the tagger's time, or a lightweight tag's commit's."""
    if not history.shas:
        return []
    index = {sha: i for i, sha in enumerate(history.shas)}
    listing = gitlog.git(
        path,
        "for-each-ref",
        "--format=%(objectname)%00%(*objectname)%00%(creatordate:unix)%00%(refname:short)",
        "refs/tags",
    )
    tags = []
    for line in listing.splitlines():
        parts = line.split("\0")
        if len(parts) != 4 or not parts[2].lstrip("-").isdigit():
            continue
        target = index.get(parts[1] or parts[0])
        if target is not None:
            tags.append(Tag(parts[3], float(parts[2]), target))
    return tags


def _store_sources(store: Store, sources: Sources, used: dict[str, Any], whole: Period) -> None:
    from xvckit.store import keys as key_store
    from xvckit.store.doctor_runs import list_runs

    sources.requests = usage.read(store, whole.since, whole.until)
    used["ledger"] = {"requests": len(sources.requests)}
    teams = {team.id: team.name for team in key_store.list_teams(store)}
    sources.members = [
        Member(key.id, key.name, teams.get(key.team_id or "", f"key {key.id}"))
        for key in key_store.list_keys(store)
    ]
    runs = [r for r in list_runs(store) if whole.holds(float(r.get("started_at") or 0))]
    sources.doctor = runs
    used["doctor"] = {"runs": len(runs)}
