"""Every KPI, defined once: its id, what it measures and how, its unit, which way is better,
the sources it needs, and the guide's figures for it where it gives some (the guide's
estimates, never a measurement).

docs/metrics.md carries the table `markdown()` makes (a test keeps them the same), and every
KPI in `xvckit metrics --json` carries its id, name, unit and `better` from here.
"""

from __future__ import annotations

from dataclasses import dataclass

# sources, and what is missing when one is not there
SOURCES = {
    "ledger": "no requests in the ledger in this period",
    "git": "no git repository (--repo)",
    "junit": "no JUnit files (--junit GLOB)",
    "coverage": "no coverage files (--coverage GLOB)",
    "docs": "no git repository (--repo)",
    "incidents": "no incidents file (--incidents FILE)",
    "tags": "no tags (deploy markers) in the repository",
    "doctor": "no doctor runs saved (xvckit doctor --save)",
}

UNITS = {
    "count": "a number of things",
    "share": "a fraction, 0 to 1 (shown as a percentage)",
    "ratio": "one quantity per another",
    "ms": "milliseconds",
    "hours": "hours",
    "per day": "per day of the period",
    "usd": "US dollars",
    "text": "a name",
}


@dataclass(frozen=True, slots=True)
class Kpi:
    id: str
    name: str
    category: str
    unit: str  # a key of UNITS
    better: str | None  # "higher", "lower" or None (neither)
    sources: tuple[str, ...]  # keys of SOURCES, all needed
    definition: str
    guide: str | None = None  # the guide's figures for it (estimates), quoted or summarised
    digits: int = 3  # decimals kept in the JSON

    @property
    def estimate(self) -> bool:
        """A figure the guide's tables give for what was measured, not a measurement."""
        return self.category == "the guide's estimate"


_LATENCY_GUIDE = "response times: basic tier 5-10 s, professional < 2 s, enterprise sub-second"

KPIS: tuple[Kpi, ...] = (
    Kpi(
        "api.requests",
        "requests",
        "response time",
        "count",
        None,
        ("ledger",),
        "Requests in the ledger whose arrival time is in the period, whatever their outcome.",
        digits=0,
    ),
    Kpi(
        "api.latency_p50_ms",
        "latency p50",
        "response time",
        "ms",
        "lower",
        ("ledger",),
        "Median of the total time (arrival to last byte) of the period's successful requests "
        "that went upstream (status below 400, no error type, not a response-cache hit, not a "
        "provider batch's request: nobody waited for those).",
        _LATENCY_GUIDE,
        1,
    ),
    Kpi(
        "api.latency_p95_ms",
        "latency p95",
        "response time",
        "ms",
        "lower",
        ("ledger",),
        "95th percentile (linear interpolation) of the same latencies.",
        _LATENCY_GUIDE,
        1,
    ),
    Kpi(
        "api.ttft_p50_ms",
        "time to first token p50",
        "response time",
        "ms",
        "lower",
        ("ledger",),
        "Median time to the first streamed token of the same requests that were streamed.",
        digits=1,
    ),
    Kpi(
        "api.ttft_p95_ms",
        "time to first token p95",
        "response time",
        "ms",
        "lower",
        ("ledger",),
        "95th percentile of the same times to first token.",
        digits=1,
    ),
    Kpi(
        "tokens.output_per_input",
        "output tokens per input token",
        "token efficiency",
        "ratio",
        "higher",
        ("ledger",),
        "Output tokens over input tokens of the period's successful requests.",
        None,
        4,
    ),
    Kpi(
        "tokens.cache_read_share",
        "cache-read share of input",
        "token efficiency",
        "share",
        "higher",
        ("ledger",),
        "Input tokens read from the provider's prompt cache over all input tokens of the "
        "period's successful requests.",
        None,
        4,
    ),
    Kpi(
        "tokens.lines_per_1k_tokens",
        "lines landed per 1k tokens",
        "token efficiency",
        "ratio",
        "higher",
        ("ledger", "git"),
        "Lines added by the period's non-merge commits in HEAD's history over the period's "
        "tokens (input + output) / 1000, both for the commit authors matched to gateway keys "
        "(a key named like the author's email, its local part or the author's name, any case); "
        "when no author matches a key, all commits over all requests (the note says which).",
        digits=2,
    ),
    Kpi(
        "api.error_rate",
        "error rate",
        "errors",
        "share",
        "lower",
        ("ledger",),
        "Requests with an HTTP error status or a recorded error type over all requests; the "
        "breakdown gives each error type's share of all requests (the ledger's type, else "
        "http_<status>).",
        None,
        4,
    ),
    Kpi(
        "velocity.features_per_day",
        "features per day",
        "velocity",
        "per day",
        "higher",
        ("git",),
        "Changes of type feat landed in the period, per day. A change is a commit on HEAD's "
        "first-parent line; a merge there is one change with the commits it brings in, of type "
        "feat when its own subject or any commit it brings in is a feat (Conventional Commit "
        "types: feat, fix, docs, style, refactor, perf, test, build, ci, chore, revert; feature is "
        "read as feat, bugfix and hotfix as fix). Landed: the change's committer time is in the "
        "period. No value when no commit of the period has a type.",
        "10x per developer at optimal infrastructure; 3-5x (basic tier), 7-10x (professional), "
        "10-15x (enterprise): multipliers of a baseline the guide does not give in features",
    ),
    Kpi(
        "velocity.merged_changes_per_day",
        "merged changes per day",
        "velocity",
        "per day",
        "higher",
        ("git",),
        "Merge commits on HEAD's first-parent line landed in the period, per day.",
    ),
    Kpi(
        "velocity.commits_per_day",
        "commits per day",
        "velocity",
        "per day",
        "higher",
        ("git",),
        "Non-merge commits in HEAD's history whose committer time is in the period, per day.",
        None,
    ),
    Kpi(
        "velocity.lines_added_per_day",
        "lines added per day",
        "velocity",
        "per day",
        "higher",
        ("git",),
        "Lines added by those commits (their patches' added lines; binary files count none; "
        "renames are followed), per day.",
        None,
        1,
    ),
    Kpi(
        "velocity.ai_coauthored_share",
        "AI-co-authored share of commits",
        "velocity",
        "share",
        None,
        ("git",),
        "Those commits carrying an AI tool's signature (a Co-authored-by trailer naming one, "
        "'Generated with Claude Code', aider's 'aider: ' prefix or '(aider)' author, a tool's "
        "bot author: metrics/commits.py, SIGNATURES) over all of them; the breakdown counts "
        "commits per tool.",
        digits=4,
    ),
    Kpi(
        "velocity.ai_lines_added_per_day",
        "AI-co-authored lines added per day",
        "velocity",
        "per day",
        None,
        ("git",),
        "Lines added by the AI-co-authored commits among those, per day.",
        None,
        1,
    ),
    Kpi(
        "quality.fixes_per_feature",
        "fixes per feature",
        "quality",
        "ratio",
        "lower",
        ("git",),
        "Changes of type fix landed in the period over changes of type feat (a merge bringing "
        "no feat but a fix is a fix).",
        None,
        3,
    ),
    Kpi(
        "quality.reverts",
        "reverts",
        "quality",
        "count",
        "lower",
        ("git",),
        "Non-merge commits in the period that revert another ('Revert \"...\"', 'This reverts "
        "commit ...', or type revert).",
        digits=0,
    ),
    Kpi(
        "quality.defects_per_kloc",
        "defects per 1000 lines changed",
        "quality",
        "ratio",
        "lower",
        ("git",),
        "Non-merge commits in the period of type fix or reverting another, over the lines "
        "those commits added and removed / 1000.",
        digits=3,
    ),
    Kpi(
        "quality.review_corrections",
        "review corrections",
        "quality",
        "count",
        "lower",
        ("git",),
        "Non-merge commits in the period that are fixup!/squash!/amend! commits or follow-ups: "
        "commits that change or remove lines another commit added less than a day (author "
        "time) before (line positions followed through the history's hunks: "
        "metrics/lines.py). The breakdown counts each kind.",
        None,
        0,
    ),
    Kpi(
        "ci.build_success_rate",
        "build success rate",
        "ci",
        "share",
        "higher",
        ("junit",),
        "JUnit files (one build each, at the file's modification time) in the period with no "
        "failed and no errored test, over all of the period's JUnit files.",
        None,
        4,
    ),
    Kpi(
        "ci.test_pass_rate",
        "test pass rate",
        "ci",
        "share",
        "higher",
        ("junit",),
        "Passed tests over tests run (skipped ones left out), over the period's JUnit files.",
        None,
        4,
    ),
    Kpi(
        "ci.coverage",
        "line coverage",
        "ci",
        "share",
        "higher",
        ("coverage",),
        "Covered lines over valid lines in the period's newest coverage file (by modification time).",
        None,
        4,
    ),
    Kpi(
        "ci.coverage_change",
        "line coverage change in the period",
        "ci",
        "share",
        "higher",
        ("coverage",),
        "The period's newest coverage minus its oldest (0 with one file).",
        digits=4,
    ),
    Kpi(
        "docs.completeness",
        "documentation completeness",
        "docs",
        "share",
        "higher",
        ("docs",),
        "Documented public modules, classes and functions over all of them in the tree of the "
        "last first-parent commit before the period's end (rules per language: "
        "metrics/docs.py); the breakdown gives each language's share.",
        None,
        4,
    ),
    Kpi(
        "incidents.opened",
        "incidents opened",
        "incidents",
        "count",
        "lower",
        ("incidents",),
        "Incidents opened in the period; the breakdown counts them by severity.",
        None,
        0,
    ),
    Kpi(
        "incidents.time_to_restore_hours",
        "time to restore (median)",
        "incidents",
        "hours",
        "lower",
        ("incidents",),
        "Median hours from opened to resolved of the incidents resolved in the period "
        "(DORA's time to restore service); the breakdown gives the median per severity.",
        digits=2,
    ),
    Kpi(
        "dora.deploys_per_day",
        "deployment frequency",
        "dora",
        "per day",
        "higher",
        ("git", "tags"),
        "Tags (deploy markers) on commits of HEAD's history created in the period (the tagger's "
        "time, a lightweight tag's commit time), per day.",
    ),
    Kpi(
        "dora.lead_time_hours",
        "lead time for changes (median)",
        "dora",
        "hours",
        "lower",
        ("git", "tags"),
        "Median hours from a non-merge commit's author time to the first deploy that contains "
        "it, over the commits first deployed in the period.",
        digits=2,
    ),
    Kpi(
        "dora.change_failure_rate",
        "change failure rate",
        "dora",
        "share",
        "lower",
        ("git", "tags", "incidents"),
        "Deploys in the period followed by an incident opened before the next deploy (or the "
        "period's end), over the period's deploys.",
        digits=4,
    ),
    Kpi(
        "cost.spend_usd",
        "API spend",
        "cost",
        "usd",
        None,
        ("ledger",),
        "Cost of the period's requests (the ledger's cost, priced by the gateway's price table).",
        digits=4,
    ),
    Kpi(
        "cost.per_feature_usd",
        "cost per feature",
        "cost",
        "usd",
        "lower",
        ("ledger", "git"),
        "For each feat change landed in the period, what its author's team spent since the "
        "team's previous feat change (not before the period's start), averaged. A team is a "
        "gateway team (a key of no team is one of its own, named by its id); authors are matched "
        "to keys as for lines "
        "per 1k tokens; with no match, everyone is one team (the note says which).",
        digits=4,
    ),
    Kpi(
        "infra.doctor_runs",
        "doctor runs",
        "infrastructure",
        "count",
        None,
        ("doctor",),
        "Full `xvckit doctor --save` runs in the period.",
        None,
        0,
    ),
    Kpi(
        "infra.checks_met_share",
        "checks at the guide's minimum or better",
        "infrastructure",
        "share",
        "higher",
        ("doctor",),
        "Doctor checks at 'minimum' or 'optimal' over the checks judged (not 'unknown') in the "
        "period's runs.",
        digits=4,
    ),
    Kpi(
        "guide.velocity_band",
        "velocity band (the guide's)",
        "the guide's estimate",
        "text",
        None,
        ("doctor",),
        "The guide's velocity band for the environment the period's last doctor run measured "
        "(doctor/verdict.py): the guide's tables applied to measured checks, not a measured "
        "velocity.",
        "Optimal network: 10x+; good: 5-7x; poor: 2-3x (Impact on xVC Performance)",
    ),
)

BY_ID = {kpi.id: kpi for kpi in KPIS}
CATEGORIES = tuple(dict.fromkeys(kpi.category for kpi in KPIS))


def markdown() -> str:
    """The KPI table of docs/metrics.md."""
    lines = [
        "| id | name | unit | better | needs | definition | the guide says |",
        "|---|---|---|---|---|---|---|",
    ]
    for kpi in KPIS:
        cells = [
            f"`{kpi.id}`",
            kpi.name,
            kpi.unit,
            kpi.better or "-",
            ", ".join(kpi.sources),
            kpi.definition,
            kpi.guide or "-",
        ]
        lines.append("| " + " | ".join(cell.replace("|", "\\|") for cell in cells) + " |")
    return "\n".join(lines) + "\n"
