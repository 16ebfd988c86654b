"""The metrics sources one by one: commit messages, the follow-up tracker, the git history and
its cache, documentation counts per language, JUnit, coverage and incident files, the ledger."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from git_repo import T0, D, Git, H
from xvckit.errors import UserError
from xvckit.metrics import builds, commits, docs, gitlog, incidents
from xvckit.metrics.lines import Tracker
from xvckit.store import Store
from xvckit.store.ledger import UsageRecord, ledger_rows, write_records

# ten levels of ten references each: 3 GB of "lol" if an XML parser expanded it all
BILLION_LAUGHS = (
    '<!DOCTYPE c [<!ENTITY l0 "lol">'
    + "".join(f'<!ENTITY l{i} "{f"&l{i - 1};" * 10}">' for i in range(1, 10))
    + ']><coverage line-rate="&l9;"/>'
)

# commit messages


@pytest.mark.parametrize(
    ("message", "author", "kind", "flags", "tool"),
    [
        ("feat(api)!: drop v1", "A <a@x>", "feat", commits.BREAKING, ""),
        ("Feature: new", "A <a@x>", "feat", 0, ""),
        ("hotfix: now", "A <a@x>", "fix", 0, ""),
        ("fix: x\n\nBREAKING CHANGE: y", "A <a@x>", "fix", commits.BREAKING, ""),
        ("Update readme", "A <a@x>", "", 0, ""),
        ("Pacing: a component, not a type", "A <a@x>", "", 0, ""),
        ("Tests(ci): more", "A <a@x>", "test", 0, ""),
        ("fixup! feat: x", "A <a@x>", "", commits.FIXUP, ""),
        ("squash! feat: x", "A <a@x>", "", commits.SQUASH, ""),
        ("amend! feat: x", "A <a@x>", "", commits.SQUASH, ""),
        ('Revert "feat: x"\n\nThis reverts commit 0123456789abcdef.', "A <a@x>", "", commits.REVERT, ""),
        ("revert: feat x", "A <a@x>", "revert", commits.REVERT, ""),
        ("feat: x\n\nCo-authored-by: Claude <noreply@anthropic.com>", "A <a@x>", "feat", commits.AI, "claude"),  # noqa: E501
        ("x\n\n🤖 Generated with [Claude Code](https://claude.com/claude-code)", "A <a@x>", "", commits.AI, "claude-code"),  # noqa: E501
        ("aider: fix: y", "A <a@x>", "fix", commits.AI, "aider"),
        ("y", "Ann (aider) <a@x>", "", commits.AI, "aider"),
        ("y\n\nCo-authored-by: aider (gpt-4o) <noreply@aider.chat>", "A <a@x>", "", commits.AI, "aider"),
        ("y\n\nCo-Authored-By: Copilot <175728472+Copilot@users.noreply.github.com>", "A <a@x>", "", commits.AI, "copilot"),  # noqa: E501
        ("y", "Copilot <198982749+Copilot@users.noreply.github.com>", "", commits.AI, "copilot"),
        ("y\n\nCo-authored-by: Codex <codex@openai.com>", "A <a@x>", "", commits.AI, "codex"),
        ("y\n\nCo-authored-by: Cursor Agent <cursoragent@cursor.com>", "A <a@x>", "", commits.AI, "cursor"),
        ("y", "devin-ai-integration[bot] <158243242+devin-ai-integration[bot]@users.noreply.github.com>", "", commits.AI, "devin"),  # noqa: E501
        ("y\n\nCo-authored-by: Bob <bob@x>", "A <a@x>", "", 0, ""),
    ],
)  # fmt: skip
def test_a_commit_message_says_its_type_and_its_ai_coauthor(message, author, kind, flags, tool):
    assert commits.classify(message, author) == commits.Message(kind, flags, tool)


# the follow-up tracker


def test_a_change_to_lines_added_within_a_day_is_a_follow_up_wherever_they_moved():
    t = Tracker()
    assert not t.change("f", [(0, 0, 1, 10)], T0, 0)  # lines 1-10 added
    assert not t.change("f", [(0, 0, 1, 5)], T0 + H, 1)  # 5 inserted on top: they are 6-15 now
    assert not t.change("f", [(20, 0, 21, 2)], T0 + 2 * H, 2)  # below them: not theirs
    assert t.change("f", [(15, 1, 15, 1)], T0 + 3 * H, 3)  # the old line 10
    assert t.change("f", [(4, 1, 4, 1)], T0 + 3 * H, 4)  # line 4: commit 1 added it
    assert sorted(r[:2] for r in t.ranges["f"] if r[3] == 1) == [(1, 4), (5, 6)]


def test_a_day_or_more_later_it_is_not_a_follow_up_and_deleted_lines_are_forgotten():
    t = Tracker()
    t.change("f", [(0, 0, 1, 3)], T0, 0)
    assert not t.change("f", [(2, 1, 2, 1)], T0 + D, 1)  # exactly a day later
    t = Tracker()
    t.change("f", [(0, 0, 1, 3)], T0, 0)
    assert t.change("f", [(1, 3, 0, 0)], T0 + H, 1)  # removing them is a follow-up too
    assert t.ranges == {}  # nothing of theirs is left
    t.change("g", [(0, 0, 1, 2)], T0, 2)
    t.rename("g", "h")
    assert t.change("h", [(1, 1, 1, 1)], T0 + H, 3)
    t.expire(T0 + 2 * D)
    assert t.ranges == {}


# the git history and its cache


def _linear(path: Path, n: int) -> Git:
    g = Git(path)
    for i in range(n):
        g.commit(f"feat: {i}", {f"f{i % 3}.py": f"x = {i}\n" * (i + 1)}, "alice", T0 + i * H)
    return g


def test_a_rerun_reads_only_new_commits_and_a_rewritten_history_again(tmp_path):
    g = _linear(tmp_path / "r", 5)
    cache = tmp_path / "cache"
    history, read = gitlog.load(g.path, cache)
    assert (len(history), read) == (5, 5)
    assert gitlog.load(g.path, cache)[1] == 0
    g.commit("fix: 5", {"f0.py": "y\n"}, "bob", T0 + 10 * H)
    history, read = gitlog.load(g.path, cache)
    assert (len(history), read, history.kind[-1]) == (6, 1, "fix")
    assert (history.parent[-1], history.merged) == (4, {}) and history.change == list(range(6))
    g("commit", "-q", "--amend", "-m", "fix: five", when=T0 + 11 * H)
    history, read = gitlog.load(g.path, cache)
    assert (len(history), read) == (6, 6)
    (cache / "metrics-history.msgpack").write_bytes(b"not msgpack")
    assert gitlog.load(g.path, cache)[1] == 6


def test_two_git_logs_at_once_read_the_same_history_as_one(tmp_path, monkeypatch):
    g = _linear(tmp_path / "r", 12)
    g("checkout", "-q", "-b", "side", "HEAD~3")
    g.commit("feat: side", {"s.py": "s\n"}, "carol", T0 + 20 * H)
    g("checkout", "-q", "main")
    g("merge", "-q", "--no-ff", "side", "-m", "Merge side", when=T0 + 21 * H)
    one, _ = gitlog.load(g.path, None)
    monkeypatch.setattr(gitlog, "SPLIT_AT", 4)
    two, _ = gitlog.load(g.path, None)
    assert two == one
    merge = len(one) - 1
    assert one.flags[merge] & commits.MERGE and one.change[one.shas.index(g("rev-parse", "side"))] == merge


def test_paths_with_spaces_renames_binaries_and_deletions_are_followed(tmp_path):
    g = Git(tmp_path / "r")
    g.commit("feat: a", {"my file.txt": "a\nb\nc\n", "é.txt": "x\n"}, "alice", T0)
    g("mv", "my file.txt", "new näme.txt")
    (g.path / "new näme.txt").write_text("a\nB\nc\n")
    (g.path / "blob.bin").write_bytes(b"\0\1\2")
    g("add", "-A")
    g("rm", "-q", "é.txt")
    g("commit", "-q", "-m", "fix: b", when=T0 + H)
    history, _ = gitlog.load(g.path, None)
    assert (history.added, history.removed) == ([4, 1], [0, 2])  # the rename kept its lines
    assert history.flags[1] & commits.FOLLOW_UP  # line 2 of the renamed file, an hour later
    assert list(history.tracker) == ["new näme.txt"]


def test_outside_a_repository_and_in_an_empty_one(tmp_path):
    assert gitlog.git_dir(tmp_path) is None
    g = Git(tmp_path / "empty")
    assert gitlog.load(g.path, None) == (gitlog.empty(), 0)


# documentation


@pytest.mark.parametrize(
    ("language", "source", "public", "documented"),
    [
        (
            "python",
            '"""M."""\nclass A:\n    """A."""\n    @property\n    def x(self):\n        """X."""\n'
            "    @x.setter\n    def x(self, v): pass\n    def _y(self): pass\ndef f(): pass\n"
            "def _g(): pass\n",
            3,  # A, A.x, f (the setter and private names left out)
            2,
        ),
        (
            "go",
            "package p\n\n// Foo does.\nfunc Foo() {}\n\nfunc bar() {}\n\n// T is.\ntype T struct{}\n\n"
            "func (t T) M() {}\n",
            3,
            2,
        ),
        (
            "rust",
            "/// Doc.\n#[derive(Debug)]\npub struct S;\n\nimpl S {\n    /// m\n    pub fn m(&self) {}\n"
            "    fn p() {}\n}\n// plain\npub trait Tr { fn a(&self); }\n",
            4,  # S, S::m, Tr, Tr::a
            2,
        ),
        (
            "java",
            "/** C. */\npublic class C {\n  /** m. */\n  public void m() {}\n  void n() {}\n}\n"
            "interface I { void x(); }\n",
            2,
            2,
        ),
        (
            "typescript",
            "/** f */\nexport function f() {}\nfunction g() {}\nexport class K {\n  /** a */\n  a() {}\n"
            "  private b() {}\n  _c() {}\n}\n",
            3,  # f, K, K.a
            2,
        ),
        ("c", "/* add */\nint add(int a) { return a; }\nstatic int h(void) { return 0; }\nstruct P { int x; };\n", 2, 1),  # noqa: E501
    ],
)  # fmt: skip
def test_public_definitions_and_their_documentation_per_language(language, source, public, documented):
    assert docs.count(language, source.encode())[1:] == (public, documented)


def test_documentation_is_counted_per_tree_and_parsed_once_per_blob(tmp_path, monkeypatch):
    g = Git(tmp_path / "r")
    sha = g.commit(
        "feat: a",
        {
            "pkg/__init__.py": '"""P."""\n',
            "pkg/_private.py": "def f(): pass\n",
            "pkg/mod.py": "def f():\n    pass\n",
            "tests/test_mod.py": "def test_f(): pass\n",
            "web/app.test.ts": "export function t() {}\n",
            "docs/x.md": "# x\n",
        },
        "alice",
        T0,
    )
    parsed = []
    real = docs.count
    monkeypatch.setattr(docs, "count", lambda lang, data: parsed.append(lang) or real(lang, data))
    cache, used = docs.DocsCache(), set()
    # pkg (documented), pkg.mod and mod.f (not); _private and the tests left out
    assert docs.completeness(g.path, sha, cache, used) == {"python": [3, 1]}
    assert len(parsed) == 3 and len(used) == 3
    assert docs.completeness(g.path, sha, cache, set()) == {"python": [3, 1]}
    assert len(parsed) == 3


# JUnit, coverage, incidents


def _write(path: Path, text: str, when: float = T0) -> Path:
    path.write_text(text)
    os.utime(path, (when, when))
    return path


def test_junit_reads_test_cases_at_any_depth_or_the_suites_counts(tmp_path):
    nested = _write(
        tmp_path / "a.xml",
        "<testsuites><testsuite><testsuite><testcase/><testcase><error/></testcase></testsuite>"
        "<testcase><skipped/></testcase></testsuite></testsuites>",
    )
    counted = _write(
        tmp_path / "b.xml",
        '<testsuites><testsuite tests="4" failures="1" skip="1"/><testsuite tests="2"/></testsuites>',
        T0 + 1,
    )
    runs = builds.junit([nested, counted])
    assert [(r.tests, r.failures, r.errors, r.skipped, r.passed, r.succeeded) for r in runs] == [
        (3, 0, 1, 1, 1, False),
        (6, 1, 0, 1, 4, False),
    ]


def test_parsed_files_are_kept_until_they_change(tmp_path):
    path = _write(tmp_path / "c.xml", '<coverage line-rate="0.5"/>')
    cache = builds.FileCache()
    assert builds.coverage([path], cache)[0].rate == 0.5
    cache.files[f"coverage:{path.resolve()}"][2][0] = 0.25  # what a re-run takes from the cache
    assert builds.coverage([path], cache)[0].rate == 0.25
    _write(path, '<coverage line-rate="0.75" />')
    assert builds.coverage([path], cache)[0].rate == 0.75


@pytest.mark.parametrize(
    ("kind", "text", "message"),
    [
        ("junit", "<testsuite", "not JUnit XML: unclosed token"),
        ("junit", "<report/>", "not JUnit XML: the root element is <report>, not <testsuites>"),
        ("junit", '<testsuite tests="x"/>', "<testsuite> tests='x' is not a number"),
        ("coverage", "<coverage/>", "<coverage> has neither lines-valid/lines-covered nor line-rate"),
        ("coverage", '<coverage line-rate="1.5"/>', "line-rate 1.5 is not between 0 and 1"),
        ("coverage", '<coverage lines-valid="10" lines-covered="-1"/>', "lines-covered='-1' is not a count"),
        ("coverage", BILLION_LAUGHS, "not Cobertura/coverage.py XML: limit on input amplification factor"),
    ],
)
def test_unreadable_ci_files_are_one_line_errors_naming_the_file(tmp_path, kind, text, message):
    path = _write(tmp_path / "r.xml", text)
    with pytest.raises(UserError, match=r"r\.xml: ") as error:
        getattr(builds, kind)([path])
    assert message in str(error.value)


def test_globs_name_files_once_and_a_glob_naming_none_is_an_error(tmp_path):
    (tmp_path / "a").mkdir()
    one = _write(tmp_path / "a" / "x.xml", "<testsuite/>")
    assert builds.expand([str(tmp_path / "**" / "*.xml"), str(one)], "--junit") == [one]
    with pytest.raises(UserError, match=r"--junit .*\*\.json: no file matches"):
        builds.expand([str(tmp_path / "*.json")], "--junit")


def test_incidents_from_csv_and_yaml(tmp_path):
    csv = _write(
        tmp_path / "i.csv",
        "ID,Opened,Resolved,Severity\n1,2026-01-02T10:00:00Z,2026-01-02T12:30:00Z,SEV1\n2,2026-01-01,,\n",
    )
    assert incidents.load(csv) == [
        incidents.Incident(T0, None, "unknown"),
        incidents.Incident(T0 + D + 10 * H, T0 + D + 12.5 * H, "sev1"),
    ]
    listed = _write(
        tmp_path / "i.yaml", f"- opened: 2026-01-01 00:00:00\n  resolved: {T0 + H}\n  severity: high\n"
    )
    assert incidents.load(listed) == [incidents.Incident(T0, T0 + H, "high")]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("opened: 1", "expected a list of incidents"),
        ("- resolved: 2026-01-01", "incident 1: opened: missing"),
        ("- {opened: 2026-01-02, resolved: 2026-01-01}", "incident 1: resolved is before opened"),
        ("- {opened: 2026-01-01, owner: me}", "incident 1: unknown field 'owner'"),
        ("- {opened: yesterday}", "incident 1: opened: cannot read 'yesterday' as a time"),
        ("- {opened: 7d}", "incident 1: opened: cannot read '7d' as a time"),
        ("- [1, 2]", "incident 1: expected a mapping"),
        ("- {opened: .nan}", "incident 1: opened: nan is not a time"),
        ("{", "not YAML"),
    ],
)
def test_unreadable_incidents_are_one_line_errors(tmp_path, text, message):
    with pytest.raises(UserError, match=r"--incidents .*i\.yaml: ") as error:
        incidents.load(_write(tmp_path / "i.yaml", text))
    assert message in str(error.value)


# the ledger


def test_ledger_rows_reads_a_time_range_in_order(store_url):
    store = Store.open(store_url)
    try:
        write_records(
            store,
            [
                UsageRecord(request_id=f"r{i}", endpoint="chat", ts=T0 + 10 - i, status=200 + i)
                for i in range(5)
            ],
        )
        assert ledger_rows(store, T0 + 7, T0 + 10, ["ts", "status"]) == [
            (T0 + 7, 203),
            (T0 + 8, 202),
            (T0 + 9, 201),
        ]
        with pytest.raises(ValueError, match="not a ledger column: 'secret'"):
            ledger_rows(store, T0, T0 + 1, ["secret"])
    finally:
        store.close()
