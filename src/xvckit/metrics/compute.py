"""Each KPI's value over one period, from the sources at hand (kpis.py defines them)."""

from __future__ import annotations

import math
import statistics
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from xvckit.metrics import commits as c
from xvckit.metrics.builds import Coverage, TestRun
from xvckit.metrics.gitlog import History
from xvckit.metrics.incidents import Incident
from xvckit.metrics.kpis import KPIS, SOURCES
from xvckit.metrics.usage import Requests

DAY = 86400.0
HOUR = 3600.0
FEAT, FIX = 1, 2  # a change's type in Repo.change_kind


@dataclass(frozen=True, slots=True)
class Period:
    since: float
    until: float

    @property
    def days(self) -> float:
        return (self.until - self.since) / DAY

    def previous(self) -> Period:
        return Period(2 * self.since - self.until, self.since)

    def holds(self, when: float) -> bool:
        return self.since <= when < self.until


@dataclass(slots=True)
class Measured:
    value: float | str | None
    breakdown: dict[str, float] | None = None
    note: str | None = None


@dataclass(frozen=True, slots=True)
class Tag:
    name: str
    when: float
    commit: int  # index in the history


@dataclass(frozen=True, slots=True)
class Member:
    """A gateway key as the KPIs match it to commit authors."""

    key_id: str
    name: str
    team: str  # the team's name; "key <id>" for a key of no team


class Repo:
    """A history's facts as arrays, computed once per run."""

    def __init__(self, history: History, tags: list[Tag]) -> None:
        h = self.history = history
        self.tags = sorted(tags, key=lambda t: (t.when, t.name))
        # documentation counts per language, [public, documented], at the commits read
        self.docs: dict[int, dict[str, list[int]]] = {}
        self.ctime = np.array(h.ctime, dtype=float)
        self.atime = np.array(h.atime, dtype=float)
        flags = np.array(h.flags, dtype=np.int64)
        self.flags = flags
        self.added = np.array(h.added, dtype=np.int64)
        self.removed = np.array(h.removed, dtype=np.int64)
        self.plain = (flags & c.MERGE) == 0
        self.typed = np.array([k != "" for k in h.kind], dtype=bool)
        self.feat = np.array([k == "feat" for k in h.kind], dtype=bool)
        self.fix = np.array([k == "fix" for k in h.kind], dtype=bool)
        change = np.array(h.change, dtype=np.int64)
        self.mainline = np.flatnonzero(change == np.arange(len(h)))
        self.change_kind, self.change_author = self._changes(change)
        self.deployed = self._deploys()

    def _changes(self, change: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Per commit, its change's type if it is a mainline commit (FEAT, FIX or 0) and the
        change's author: a merge without a type of its own is a feat when it brings in a
        feat (its author: the oldest such commit's), else a fix when it brings in a fix."""
        kind = np.where(self.feat, FEAT, np.where(self.fix, FIX, 0)).astype(np.int8)
        author = np.array(self.history.author, dtype=np.int64)
        brought = (change >= 0) & (change != np.arange(len(change)))
        untyped = np.zeros(len(change), dtype=bool)
        untyped[self.mainline] = ((self.flags[self.mainline] & c.MERGE) != 0) & (kind[self.mainline] == 0)
        for code, own in ((FIX, self.fix), (FEAT, self.feat)):  # feat last: it wins over fix
            commits = np.flatnonzero(brought & own)
            merges, first = np.unique(change[commits], return_index=True)  # commits are oldest first
            typed = untyped[merges]
            kind[merges[typed]] = code
            author[merges[typed]] = author[commits[first[typed]]]
        not_mainline = np.ones(len(change), dtype=bool)
        not_mainline[self.mainline] = False
        kind[not_mainline] = 0
        return kind, author

    def _deploys(self) -> np.ndarray:
        """When each commit was first deployed (the first tag, by time, whose commit has it);
        NaN for never."""
        deployed = [math.nan] * len(self.history)
        seen = bytearray(len(self.history))
        parent, merged = self.history.parent, self.history.merged
        for tag in self.tags:
            stack = [tag.commit]
            while stack:
                i = stack.pop()
                if i >= 0 and not seen[i]:
                    seen[i] = 1
                    deployed[i] = tag.when
                    stack.append(parent[i])
                    if i in merged:
                        stack.extend(merged[i])
        return np.array(deployed, dtype=float)

    def in_period(self, period: Period) -> np.ndarray:
        """Non-merge commits whose committer time is in the period."""
        return self.plain & (self.ctime >= period.since) & (self.ctime < period.until)

    def changes_in(self, period: Period) -> list[int]:
        """Mainline commits (changes) whose committer time is in the period."""
        when = self.ctime[self.mainline]
        return self.mainline[(when >= period.since) & (when < period.until)].tolist()

    def tip_before(self, until: float) -> int | None:
        """The last first-parent commit whose committer time is before `until`."""
        before = self.mainline[self.ctime[self.mainline] < until]
        return int(before[-1]) if len(before) else None


@dataclass
class Sources:
    requests: Requests | None = None  # the current and the previous period's
    members: list[Member] = field(default_factory=list)
    repo: Repo | None = None
    junit: list[TestRun] | None = None
    coverage: list[Coverage] | None = None
    incidents: list[Incident] | None = None
    doctor: list[dict] | None = None

    def missing(self, needs: tuple[str, ...], period: Period) -> str | None:
        """Why a KPI needing `needs` has no value in `period`, or None."""
        gone = next((source for source in needs if not self._has(source, period)), None)
        return SOURCES[gone] if gone else None

    def _has(self, source: str, period: Period) -> bool:
        if source == "ledger":
            return self.requests is not None and len(self.requests.between(period.since, period.until)) > 0
        if source in ("git", "docs"):
            return self.repo is not None
        if source == "tags":
            return self.repo is not None and bool(self.repo.tags)
        if source == "incidents":
            return self.incidents is not None
        return bool(getattr(self, source))  # junit, coverage, doctor


def measure(sources: Sources, period: Period) -> dict[str, Measured]:
    """Every KPI's value in `period` (None, with a note, where a source is missing)."""
    out: dict[str, Measured] = {}
    for kpi in KPIS:
        why = sources.missing(kpi.sources, period)
        out[kpi.id] = Measured(None, note=why) if why else _MEASURES[kpi.id](sources, period)
    return out


def _ratio(top: float, bottom: float, note: str = "nothing to divide by") -> Measured:
    return Measured(top / bottom) if bottom else Measured(None, note=note)


def _percentile(values: np.ndarray, q: float, note: str) -> Measured:
    values = values[~np.isnan(values)]
    return Measured(float(np.percentile(values, q))) if len(values) else Measured(None, note=note)


# ledger


def _ok(r: Requests) -> np.ndarray:
    return np.array([e is None for e in r.error], dtype=bool)


def _upstream_ok(sources: Sources, period: Period) -> Requests:
    r = _period_requests(sources, period)
    return r.where(_ok(r) & ~r.cache_hit)


def _period_requests(sources: Sources, period: Period) -> Requests:
    return sources.requests.between(period.since, period.until)  # type: ignore[union-attr]


def _latency(q: float) -> Callable[[Sources, Period], Measured]:
    return lambda s, p: _percentile(_upstream_ok(s, p).latency, q, "no successful upstream request")


def _ttft(q: float) -> Callable[[Sources, Period], Measured]:
    return lambda s, p: _percentile(_upstream_ok(s, p).ttft, q, "no streamed request")


def _tokens(sources: Sources, period: Period, which: str) -> Measured:
    r = _period_requests(sources, period)
    ok = _ok(r)
    inputs = int(r.input[ok].sum())
    if which == "output":
        return _ratio(int(r.output[ok].sum()), inputs, "no input tokens")
    return _ratio(int(r.cached[ok].sum()), inputs, "no input tokens")


def _error_rate(sources: Sources, period: Period) -> Measured:
    r = _period_requests(sources, period)
    kinds = Counter(e for e in r.error if e is not None)
    total = len(r)
    return Measured(sum(kinds.values()) / total, {k: n / total for k, n in sorted(kinds.items())})


def _spend(sources: Sources, period: Period) -> Measured:
    return Measured(float(_period_requests(sources, period).cost.sum()))


# git


def _per_day(count: float, period: Period) -> Measured:
    return Measured(count / period.days)


def _features(sources: Sources, period: Period, kind: int = FEAT) -> list[int]:
    repo = sources.repo
    assert repo is not None
    changes = np.array(repo.changes_in(period), dtype=np.int64)
    return changes[repo.change_kind[changes] == kind].tolist()


def _untyped(sources: Sources, period: Period) -> str | None:
    """A note when no commit of the period has a Conventional Commit type: no feat and no fix
    there says nothing about features."""
    repo = sources.repo
    assert repo is not None
    if (repo.typed & (repo.ctime >= period.since) & (repo.ctime < period.until)).any():
        return None
    return "no commit in the period has a Conventional Commit type (feat: ..., fix: ...)"


def _features_per_day(sources: Sources, period: Period) -> Measured:
    note = _untyped(sources, period)
    return Measured(None, note=note) if note else _per_day(len(_features(sources, period)), period)


def _fixes_per_feature(sources: Sources, period: Period) -> Measured:
    note = _untyped(sources, period)
    if note:
        return Measured(None, note=note)
    return _ratio(
        len(_features(sources, period, FIX)), len(_features(sources, period)), "no feat change in the period"
    )


def _merges_per_day(sources: Sources, period: Period) -> Measured:
    repo = sources.repo
    assert repo is not None
    merges = [m for m in repo.changes_in(period) if repo.flags[m] & c.MERGE]
    return _per_day(len(merges), period)


def _commits(sources: Sources, period: Period) -> np.ndarray:
    assert sources.repo is not None
    return sources.repo.in_period(period)


def _ai(sources: Sources, period: Period) -> np.ndarray:
    repo = sources.repo
    assert repo is not None
    return _commits(sources, period) & ((repo.flags & c.AI) != 0)


def _ai_share(sources: Sources, period: Period) -> Measured:
    repo = sources.repo
    assert repo is not None
    mask = _commits(sources, period)
    ai = _ai(sources, period)
    tools = Counter(repo.history.ai_tool[i] for i in np.flatnonzero(ai))
    measured = _ratio(int(ai.sum()), int(mask.sum()), "no commits")
    measured.breakdown = dict(sorted(tools.items())) if measured.value is not None else None
    return measured


def _flagged(sources: Sources, period: Period, flag: int) -> np.ndarray:
    assert sources.repo is not None
    return _commits(sources, period) & ((sources.repo.flags & flag) != 0)


def _defects_per_kloc(sources: Sources, period: Period) -> Measured:
    repo = sources.repo
    assert repo is not None
    mask = _commits(sources, period)
    defects = mask & (repo.fix | ((repo.flags & c.REVERT) != 0))
    changed = int(repo.added[mask].sum() + repo.removed[mask].sum())
    return _ratio(int(defects.sum()), changed / 1000, "no lines changed")


def _corrections(sources: Sources, period: Period) -> Measured:
    kinds = {"fixup": c.FIXUP, "squash": c.SQUASH, "follow_up": c.FOLLOW_UP}
    total = _flagged(sources, period, c.FIXUP | c.SQUASH | c.FOLLOW_UP)
    return Measured(int(total.sum()), {k: int(_flagged(sources, period, f).sum()) for k, f in kinds.items()})


def _docs(sources: Sources, period: Period) -> Measured:
    repo = sources.repo
    assert repo is not None
    tip = repo.tip_before(period.until)
    if tip is None:
        return Measured(None, note="no commit before the period's end")
    counts = repo.docs[tip]
    public = sum(n for n, _ in counts.values())
    documented = sum(d for _, d in counts.values())
    measured = _ratio(documented, public, "no public modules, classes or functions")
    measured.breakdown = {lang: d / n for lang, (n, d) in sorted(counts.items()) if n} or None
    return measured


# DORA


def _deploys(sources: Sources, period: Period) -> list[Tag]:
    assert sources.repo is not None
    return [tag for tag in sources.repo.tags if period.holds(tag.when)]


def _lead_time(sources: Sources, period: Period) -> Measured:
    repo = sources.repo
    assert repo is not None
    deployed = repo.deployed
    with np.errstate(invalid="ignore"):
        first = repo.plain & (deployed >= period.since) & (deployed < period.until)
    hours = (deployed[first] - repo.atime[first]) / HOUR
    return Measured(float(np.median(hours))) if len(hours) else Measured(None, note="no commit deployed")


def _change_failure_rate(sources: Sources, period: Period) -> Measured:
    repo, incidents = sources.repo, sources.incidents
    assert repo is not None and incidents is not None
    deploys = _deploys(sources, period)
    if not deploys:
        return Measured(None, note="no deploys in the period")
    later = {id(tag): nxt.when for tag, nxt in zip(repo.tags, repo.tags[1:], strict=False)}
    failed = 0
    for tag in deploys:
        end = min(later.get(id(tag), period.until), period.until)
        failed += any(tag.when <= i.opened < end for i in incidents)
    return Measured(failed / len(deploys))


# incidents


def _opened(sources: Sources, period: Period) -> Measured:
    assert sources.incidents is not None
    opened = [i for i in sources.incidents if period.holds(i.opened)]
    return Measured(len(opened), dict(sorted(Counter(i.severity for i in opened).items())))


def _time_to_restore(sources: Sources, period: Period) -> Measured:
    assert sources.incidents is not None
    done = [i for i in sources.incidents if i.resolved is not None and period.holds(i.resolved)]
    if not done:
        return Measured(None, note="no incident resolved in the period")
    by: dict[str, list[float]] = {}
    for i in done:
        by.setdefault(i.severity, []).append((i.resolved - i.opened) / HOUR)  # type: ignore[operator]
    hours = [h for values in by.values() for h in values]
    return Measured(statistics.median(hours), {s: statistics.median(v) for s, v in sorted(by.items())})


# CI


def _runs(sources: Sources, period: Period) -> list[TestRun]:
    return [run for run in sources.junit or () if period.holds(run.when)]


def _build_success(sources: Sources, period: Period) -> Measured:
    runs = _runs(sources, period)
    return _ratio(sum(run.succeeded for run in runs), len(runs), "no JUnit file in the period")


def _pass_rate(sources: Sources, period: Period) -> Measured:
    runs = _runs(sources, period)
    ran = sum(run.tests - run.skipped for run in runs)
    return _ratio(sum(run.passed for run in runs), ran, "no test ran in the period")


def _coverages(sources: Sources, period: Period) -> list[Coverage]:
    return [report for report in sources.coverage or () if period.holds(report.when)]


def _coverage(sources: Sources, period: Period) -> Measured:
    reports = _coverages(sources, period)
    return Measured(reports[-1].rate) if reports else Measured(None, note="no coverage file in the period")


def _coverage_change(sources: Sources, period: Period) -> Measured:
    reports = _coverages(sources, period)
    if not reports:
        return Measured(None, note="no coverage file in the period")
    return Measured(reports[-1].rate - reports[0].rate)


# the ledger and git together


def _matched(sources: Sources) -> tuple[dict[int, Member], str | None]:
    """Commit authors (people indices) matched to gateway keys by name; with none matched,
    {} and a note saying everything counts as one team."""
    repo = sources.repo
    assert repo is not None
    by_name: dict[str, Member] = {}
    for member in sources.members:
        by_name.setdefault(member.name.strip().lower(), member)
    matched = {}
    for index, person in enumerate(repo.history.people):
        name, _, email = person.rpartition(" <")
        email = email.rstrip(">").lower()
        for candidate in (email, email.partition("@")[0], name.strip().lower()):
            if candidate in by_name:
                matched[index] = by_name[candidate]
                break
    if matched:
        return matched, None
    return {}, "no commit author matches a gateway key: all commits and all requests"


def _lines_per_1k_tokens(sources: Sources, period: Period) -> Measured:
    repo = sources.repo
    assert repo is not None
    matched, note = _matched(sources)
    commits = repo.in_period(period)
    r = _period_requests(sources, period)
    tokens = r.input + r.output
    if matched:
        authors = np.array([a in matched for a in repo.history.author], dtype=bool)
        commits &= authors
        keys = {m.key_id for m in matched.values()}
        tokens = tokens[np.array([k in keys for k in r.key], dtype=bool)]
    measured = _ratio(int(repo.added[commits].sum()), int(tokens.sum()) / 1000, "no tokens")
    measured.note = measured.note or note
    return measured


def _cost_per_feature(sources: Sources, period: Period) -> Measured:
    repo = sources.repo
    assert repo is not None
    matched, note = _matched(sources)
    team_of_key = {m.key_id: m.team for m in sources.members}
    r = _period_requests(sources, period)  # spend before the period's start is not counted
    teams = [team_of_key.get(k or "", "") if matched else "" for k in r.key]
    features: dict[str, list[float]] = {}
    for m in np.flatnonzero(repo.change_kind == FEAT):
        member = matched.get(int(repo.change_author[m])) if matched else None
        if matched and member is None:
            continue
        features.setdefault(member.team if member else "", []).append(float(repo.ctime[m]))
    costs: dict[str, list[float]] = {}
    for team, times in features.items():
        mask = np.array([t == team for t in teams], dtype=bool)
        ts, spent = r.ts[mask], np.cumsum(r.cost[mask])
        previous = period.since
        for when in sorted(times):
            if period.holds(when):
                costs.setdefault(team or "all", []).append(
                    _spent(ts, spent, max(previous, period.since), when)
                )
            previous = when
    if not costs:
        return Measured(None, note="no feat change by a matched author in the period")
    every = [cost for values in costs.values() for cost in values]
    breakdown = {team: sum(v) / len(v) for team, v in sorted(costs.items())} if matched else None
    return Measured(sum(every) / len(every), breakdown, note)


def _spent(ts: np.ndarray, cumulative: np.ndarray, start: float, end: float) -> float:
    """Spend of the requests with start <= ts < end, from sorted times and a running sum."""
    lo, hi = np.searchsorted(ts, [start, end], side="left")
    if hi == 0:
        return 0.0
    return float(cumulative[hi - 1] - (cumulative[lo - 1] if lo else 0.0))


# doctor


def _doctor_runs(sources: Sources, period: Period) -> list[dict]:
    return [run for run in sources.doctor or () if period.holds(run.get("started_at", 0))]


def _doctor_count(sources: Sources, period: Period) -> Measured:
    return Measured(len(_doctor_runs(sources, period)))


def _checks_met(sources: Sources, period: Period) -> Measured:
    statuses: Counter[str] = Counter()
    for run in _doctor_runs(sources, period):
        statuses.update({k: int(v) for k, v in (run.get("statuses") or {}).items()})
    judged = sum(n for status, n in statuses.items() if status != "unknown")
    return _ratio(statuses["minimum"] + statuses["optimal"], judged, "no judged check in the period")


def _band(sources: Sources, period: Period) -> Measured:
    runs = [run for run in _doctor_runs(sources, period) if run.get("velocity_band")]
    if not runs:
        return Measured(None, note="no doctor run with a velocity band in the period")
    band = runs[-1]["velocity_band"]
    return Measured(f"{band.get('band')} ({band.get('velocity')})")


def _git(count: Callable[[Sources, Period], float]) -> Callable[[Sources, Period], Measured]:
    return lambda s, p: _per_day(count(s, p), p)


_MEASURES: dict[str, Callable[[Sources, Period], Measured]] = {
    "api.requests": lambda s, p: Measured(len(_period_requests(s, p))),
    "api.latency_p50_ms": _latency(50),
    "api.latency_p95_ms": _latency(95),
    "api.ttft_p50_ms": _ttft(50),
    "api.ttft_p95_ms": _ttft(95),
    "tokens.output_per_input": lambda s, p: _tokens(s, p, "output"),
    "tokens.cache_read_share": lambda s, p: _tokens(s, p, "cached"),
    "tokens.lines_per_1k_tokens": _lines_per_1k_tokens,
    "api.error_rate": _error_rate,
    "velocity.features_per_day": _features_per_day,
    "velocity.merged_changes_per_day": _merges_per_day,
    "velocity.commits_per_day": _git(lambda s, p: int(_commits(s, p).sum())),
    "velocity.lines_added_per_day": _git(lambda s, p: int(s.repo.added[_commits(s, p)].sum())),  # type: ignore[union-attr]
    "velocity.ai_coauthored_share": _ai_share,
    "velocity.ai_lines_added_per_day": _git(lambda s, p: int(s.repo.added[_ai(s, p)].sum())),  # type: ignore[union-attr]
    "quality.fixes_per_feature": _fixes_per_feature,
    "quality.reverts": lambda s, p: Measured(int(_flagged(s, p, c.REVERT).sum())),
    "quality.defects_per_kloc": _defects_per_kloc,
    "quality.review_corrections": _corrections,
    "ci.build_success_rate": _build_success,
    "ci.test_pass_rate": _pass_rate,
    "ci.coverage": _coverage,
    "ci.coverage_change": _coverage_change,
    "docs.completeness": _docs,
    "incidents.opened": _opened,
    "incidents.time_to_restore_hours": _time_to_restore,
    "dora.deploys_per_day": _git(lambda s, p: len(_deploys(s, p))),
    "dora.lead_time_hours": _lead_time,
    "dora.change_failure_rate": _change_failure_rate,
    "cost.spend_usd": _spend,
    "cost.per_feature_usd": _cost_per_feature,
    "infra.doctor_runs": _doctor_count,
    "infra.checks_met_share": _checks_met,
    "guide.velocity_band": _band,
}
assert set(_MEASURES) == {kpi.id for kpi in KPIS}
