"""`xvckit metrics` on sources of known content: a git repository built with fixed authors and
dates, JUnit, coverage and incident files, a ledger and doctor runs written through the store's
API; every KPI's value and its previous period's checked exactly."""

from __future__ import annotations

import datetime as dt
import os
from pathlib import Path

import jsonschema
import orjson
import pytest
import yaml
from typer.testing import CliRunner

from git_repo import T0, D, Git, H
from xvckit.cli import app
from xvckit.errors import UserError
from xvckit.metrics import kpis, report
from xvckit.store import Store
from xvckit.store.doctor_runs import save_run
from xvckit.store.keys import Limits, create_key, create_team
from xvckit.store.ledger import UsageRecord, write_records

UNTIL = "2026-01-11T00:00:00Z"  # the period is [T0, T0 + 10 days)


def iso(when: float) -> str:
    return dt.datetime.fromtimestamp(when, dt.UTC).isoformat()


A_PY = '"""Module a."""\ndef f():\n    """Doc."""\ndef g():\n    return 1\nclass K:\n    def m(self):\n        """Doc."""\n    def _p(self): pass\ndef _h(): pass\n'  # noqa: E501


def build_repo(path: Path) -> Git:
    """The history the expected values below are counted from (times relative to T0)."""
    g = Git(path)
    g.commit("feat: base", {"a.py": A_PY}, "alice", T0 - 9 * D)  # 10 lines
    p2 = g.commit(
        "fix: typo", {"a.py": A_PY.replace('"""Doc."""\ndef g', '"""Docs."""\ndef g')}, "bob", T0 - 8 * D + H
    )
    g("tag", "-a", "v0.1", "-m", "release 0.1", p2, when=T0 - 7 * D)
    c1 = g.commit(
        "feat(api): add b\n\nCo-authored-by: Claude <noreply@anthropic.com>",
        {"b.py": "x = 1\ny = 2\nz = 3\nw = 4\n"},
        "alice",
        T0 + D,
    )
    g.commit("fixup! feat(api): add b", {"b.py": "x = 1\ny = 20\nz = 3\nw = 4\n"}, "bob", T0 + D + 2 * H)
    a_now = (g.path / "a.py").read_text()
    g.commit("aider: fix: handle empty", {"a.py": a_now.replace("return 1", "return 2")}, "alice", T0 + 2 * D)
    g("checkout", "-q", "-b", "topic")
    g.commit("feat: c", {"c.py": 'def c():\n    """C."""\n    return 3\n'}, "alice", T0 + 3 * D)
    g.commit("test: c", {"tests/test_c.py": "def test_c():\n    pass\n"}, "carol", T0 + 3 * D + H)
    g("checkout", "-q", "main")
    g("merge", "-q", "--no-ff", "topic", "-m", "Merge branch 'topic'", when=T0 + 4 * D)
    c4 = g.commit(
        f'Revert "feat(api): add b"\n\nThis reverts commit {c1}.', {"b.py": None}, "bob", T0 + 5 * D
    )
    g("tag", "v0.2", c4)
    g.commit(
        "docs: readme\n\n🤖 Generated with [Claude Code](https://claude.com/claude-code)",
        {"README.md": "# a\ntext\n"},
        "dave",
        T0 + 6 * D,
    )
    return g


def write_sources(folder: Path, store: Store) -> dict[str, str]:
    """The JUnit, coverage and incident files, the keys, the ledger and a doctor run."""
    folder.mkdir(parents=True, exist_ok=True)
    junit = {
        "j0.xml": ('<testsuite tests="5" failures="0" errors="1" skipped="0"/>', T0 - 2 * D),
        "j1.xml": (
            '<testsuites><testsuite><testcase name="a"/><testcase name="b"/><testcase name="c"/>'
            '<testcase name="d"><failure message="no"/></testcase></testsuite></testsuites>',
            T0 + 2 * D,
        ),
        "j2.xml": (
            '<testsuite><testcase name="a"/><testcase name="b"/><testcase name="c"><skipped/></testcase>'
            "</testsuite>",
            T0 + 3 * D,
        ),
    }
    coverage = {
        "cv0.xml": ('<coverage lines-valid="100" lines-covered="70" line-rate="0.7"/>', T0 - 3 * D),
        "cv1.xml": ('<coverage lines-valid="200" lines-covered="150" line-rate="0.75"/>', T0 + D),
        "cv2.xml": ('<coverage line-rate="0.8"/>', T0 + 6 * D),
    }
    for kind, files in (("junit", junit), ("coverage", coverage)):
        (folder / kind).mkdir(exist_ok=True)
        for name, (text, when) in files.items():
            path = folder / kind / name
            path.write_text(text)
            os.utime(path, (when, when))
    incidents = [
        {
            "id": "i1",
            "opened": iso(T0 + 5 * D + 3 * H),
            "resolved": iso(T0 + 5 * D + 5 * H),
            "severity": "high",
        },
        {"id": "i2", "opened": iso(T0 - 8 * D), "resolved": iso(T0 - 8 * D + H / 2), "severity": "low"},
        {"id": "i3", "opened": iso(T0 + 8 * D), "severity": "low"},
    ]
    (folder / "incidents.yaml").write_text(yaml.safe_dump({"incidents": incidents}))
    team = create_team(store, "platform", Limits(), "test")
    alice = create_key(store, "alice", "test", team=team.id)[0].id
    bob = create_key(store, "bob", "test")[0].id
    write_records(
        store,
        [
            _req(
                "r1",
                T0 + D / 2,
                alice,
                input_tokens=1000,
                output_tokens=500,
                cached_tokens=200,
                cost_usd=1.0,
                latency_ms=100,
                ttft_ms=50,
            ),
            _req("r2", T0 + 1.5 * D, bob, input_tokens=2000, output_tokens=500, cost_usd=2.0, latency_ms=300),
            _req("r3", T0 + 3.5 * D, alice, status=429, error_type="rate_limited", latency_ms=10),
            # a provider batch's request: nobody waited for it, so no latency of 0 in the percentiles
            UsageRecord(request_id="b1", endpoint="batch", ts=T0 + 2.5 * D, key_id=bob, status=200),
            _req(
                "r4",
                T0 + 4.5 * D,
                alice,
                input_tokens=1000,
                output_tokens=500,
                cache_hit=True,
                latency_ms=5,
                ttft_ms=2,
            ),
            _req("r5", T0 + 6.5 * D, None, status=500, error_type="upstream_500", latency_ms=1000),
            _req(
                "r6",
                T0 + 7 * D,
                bob,
                input_tokens=1000,
                output_tokens=1000,
                cost_usd=4.0,
                latency_ms=200,
                ttft_ms=100,
            ),
            _req(
                "q1",
                T0 - 5 * D,
                alice,
                input_tokens=100,
                output_tokens=100,
                cost_usd=0.5,
                latency_ms=400,
                ttft_ms=200,
            ),
        ],
    )
    save_run(
        store,
        {
            "started_at": T0 + 2 * D,
            "host": "dev",
            "velocity_band": {"band": "good", "velocity": "5-7x"},
            "bottleneck": None,
            "statuses": {"optimal": 3, "minimum": 1, "below_minimum": 1, "unknown": 2},
        },
    )
    return {
        "junit": str(folder / "junit" / "*.xml"),
        "coverage": str(folder / "coverage" / "*.xml"),
        "incidents": str(folder / "incidents.yaml"),
    }


def _req(request_id: str, ts: float, key: str | None, status: int = 200, **fields) -> UsageRecord:
    return UsageRecord(request_id=request_id, endpoint="chat", ts=ts, key_id=key, status=status, **fields)


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """The repository, the files and a store with its config, made once for the module."""
    root = tmp_path_factory.mktemp("metrics")
    repo = build_repo(root / "repo")
    url = f"sqlite:///{root}/xvckit.db"
    store = Store.open(url)
    try:
        files = write_sources(root / "files", store)
    finally:
        store.close()
    config = root / "xvckit.yaml"
    config.write_text(yaml.safe_dump({"storage": {"url": url}}))
    return {"repo": repo, "config": str(config), **files}


def metrics(world, *args: str, ok: bool = True):
    result = CliRunner().invoke(app, ["metrics", "--config", world["config"], *args])
    if ok:
        assert result.exit_code == 0, result.output
    return result


def everything(world) -> list[str]:
    return [
        "--repo", str(world["repo"].path), "--since", "10d", "--until", UNTIL, "--junit", world["junit"],
        "--coverage", world["coverage"], "--incidents", world["incidents"],
    ]  # fmt: skip


# (value, previous) of every KPI, counted by hand from the sources above
EXPECTED = {
    "api.requests": (7, 1),
    "api.latency_p50_ms": (200.0, 400.0),  # r1, r2, r6: no errors, no cache hit, not batch
    "api.latency_p95_ms": (290.0, 400.0),  # 200 + 0.9 * (300 - 200)
    "api.ttft_p50_ms": (75.0, 200.0),  # r1 50, r6 100 (r2 not streamed)
    "api.ttft_p95_ms": (97.5, 200.0),
    "tokens.output_per_input": (0.5, 1.0),  # r1, r2, r4, r6: 2500 / 5000
    "tokens.cache_read_share": (0.04, 0.0),  # 200 / 5000
    "tokens.lines_per_1k_tokens": (1.2, 55.0),  # alice 8 + bob 1 lines over 7,500 tokens; 11 over 200
    "api.error_rate": (0.2857, 0.0),  # 2 of 7
    "velocity.features_per_day": (0.2, 0.1),  # c1 and the merge of topic (feat: c); p1
    "velocity.merged_changes_per_day": (0.1, 0.0),
    "velocity.commits_per_day": (0.7, 0.2),
    "velocity.lines_added_per_day": (1.3, 1.1),  # 4 + 1 + 1 + 3 + 2 + 0 + 2; 10 + 1
    "velocity.ai_coauthored_share": (0.4286, 0.0),  # c1 (claude), c3 (aider), c5 (claude-code) of 7
    "velocity.ai_lines_added_per_day": (0.7, 0.0),
    "quality.fixes_per_feature": (0.5, 1.0),
    "quality.reverts": (1, 0),
    "quality.defects_per_kloc": (105.263, 83.333),  # 2 / (19 / 1000); 1 / (12 / 1000)
    "quality.review_corrections": (1, 0),
    "ci.build_success_rate": (0.5, 0.0),
    "ci.test_pass_rate": (0.8333, 0.8),  # 5 of 6 run; 4 of 5
    "ci.coverage": (0.8, 0.7),
    "ci.coverage_change": (0.05, 0.0),
    "docs.completeness": (0.5714, 0.6),  # a.py 3 of 5, c.py 1 of 2; a.py 3 of 5
    "incidents.opened": (2, 1),
    "incidents.time_to_restore_hours": (2.0, 0.5),
    "dora.deploys_per_day": (0.1, 0.1),
    "dora.lead_time_hours": (60.0, 35.5),  # median of 96, 94, 72, 48, 47, 0; of 48, 23
    "dora.change_failure_rate": (1.0, 0.0),
    "cost.spend_usd": (7.0, 0.5),
    "cost.per_feature_usd": (0.5, 0.0),  # c1: r1's 1.00, the merge: r3's 0.00
    "infra.doctor_runs": (1, 0),
    "infra.checks_met_share": (0.8, None),
    "guide.velocity_band": ("good (5-7x)", None),
}


@pytest.fixture(scope="module")
def document(world) -> dict:
    return orjson.loads(metrics(world, *everything(world), "--json").stdout)


def test_every_kpi_has_its_expected_value_and_previous_value(document):
    got = {row["id"]: (row["value"], row["previous"]) for row in document["kpis"]}
    assert set(EXPECTED) == {kpi.id for kpi in kpis.KPIS}
    assert got == EXPECTED


def test_breakdowns_say_what_makes_up_a_value(document):
    rows = {row["id"]: row for row in document["kpis"]}
    assert rows["api.error_rate"]["breakdown"] == {"rate_limited": 0.1429, "upstream_500": 0.1429}
    assert rows["velocity.ai_coauthored_share"]["breakdown"] == {"aider": 1, "claude": 1, "claude-code": 1}
    assert rows["quality.review_corrections"]["breakdown"] == {"fixup": 1, "squash": 0, "follow_up": 1}
    assert rows["incidents.opened"]["breakdown"] == {"high": 1, "low": 1}
    assert rows["incidents.opened"]["previous_breakdown"] == {"low": 1}
    assert rows["docs.completeness"]["breakdown"] == {"python": 0.5714}
    assert rows["cost.per_feature_usd"]["breakdown"] == {"platform": 0.5}
    assert rows["tokens.lines_per_1k_tokens"]["note"] is None  # alice and bob matched their keys
    text = orjson.dumps(document).decode().lower()
    for private in ("alice", "bob", "example.org", "add b", "reverts commit"):  # names, emails, messages
        assert private not in text


def test_trends_compare_with_the_previous_period_in_the_kpis_direction(document):
    rows = {row["id"]: row for row in document["kpis"]}
    assert (rows["api.latency_p50_ms"]["change"], rows["api.latency_p50_ms"]["trend"]) == (-200.0, "down")
    assert rows["api.latency_p50_ms"]["assessment"] == "better"  # lower is better
    assert (rows["docs.completeness"]["trend"], rows["docs.completeness"]["assessment"]) == ("down", "worse")
    assert (rows["dora.deploys_per_day"]["trend"], rows["dora.deploys_per_day"]["assessment"]) == (
        "flat",
        "same",
    )
    assert rows["velocity.ai_coauthored_share"]["assessment"] is None  # neither direction is better
    assert rows["infra.checks_met_share"]["trend"] is None  # nothing to compare with


def test_the_json_follows_its_documented_schema_and_the_guides_figures_are_labelled(document, world):
    jsonschema.validate(document, report.SCHEMA)
    assert document["period"] == {
        "since": "2026-01-01T00:00:00Z",
        "until": "2026-01-11T00:00:00Z",
        "days": 10,
    }
    assert document["previous_period"]["since"] == "2025-12-22T00:00:00Z"
    git = document["sources"]["git"]
    assert (git["commits"], git["tags"]) == (10, 2)
    assert document["sources"]["junit"] == {"files": 3}
    estimates = [row["id"] for row in document["kpis"] if row["estimate"]]
    assert estimates == ["guide.velocity_band"]


def test_the_docs_define_every_kpi_and_the_schema_as_the_code_does():
    text = (Path(__file__).parents[1] / "docs" / "metrics.md").read_text()
    assert kpis.markdown() in text
    assert orjson.dumps(report.SCHEMA, option=orjson.OPT_INDENT_2).decode() in text


def test_markdown_for_an_issue_keeps_the_guides_estimates_apart(world):
    text = metrics(world, *everything(world), "--markdown").stdout
    assert text.startswith("### xvckit metrics: 2026-01-01T00:00:00Z to 2026-01-11T00:00:00Z (10 days)")
    assert "| latency p50 | 200 ms | 400 ms | down -200 ms (better) |" in text
    assert "| documentation completeness | 57.1% | 60.0% | down -2.9 pp (worse) |" in text
    measured, estimates = text.split("**The guide's estimates** (not measured):")
    assert "velocity band" not in measured
    assert "- velocity band (the guide's): good (5-7x); the guide's table:" in estimates


def test_the_terminal_table_shows_values_and_notes(world):
    text = metrics(world, "--repo", str(world["repo"].path), "--since", "10d", "--until", UNTIL).stdout
    assert "features per day" in text and "0.20/day" in text
    assert "no JUnit files (--junit GLOB)" in text


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--since", "soon"], "--since/--until: cannot read 'soon' as a time"),
        (
            ["--since", "2026-02-01", "--until", "2026-01-01"],
            "--since 2026-02-01 is not before the period's end",
        ),
        (["--junit", "nothing/*.xml"], "--junit nothing/*.xml: no file matches"),
        (["--json", "--markdown"], "--json and --markdown: choose one"),
        (["--incidents", "missing.yaml"], "--incidents missing.yaml: no such file"),
    ],
)
def test_mistakes_are_one_line_errors(world, args, message):
    result = metrics(world, "--no-ledger", *args, ok=False)
    assert isinstance(result.exception, UserError)  # `main` prints it as one line, exit status 2
    assert message in str(result.exception)


def test_a_folder_that_is_not_a_repository_is_an_error_only_when_named(world, tmp_path, monkeypatch):
    result = metrics(world, "--no-ledger", "--repo", str(tmp_path), ok=False)
    assert f"--repo {tmp_path}: not a git repository" in str(result.exception)
    monkeypatch.chdir(tmp_path)
    document = orjson.loads(metrics(world, "--no-ledger", "--json").stdout)
    rows = {row["id"]: row for row in document["kpis"]}
    assert rows["velocity.commits_per_day"]["note"] == "no git repository (--repo)"
    assert document["sources"]["git"] is None
