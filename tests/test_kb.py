"""The knowledge base: Markdown entries, full-text ranking on both stores, the CLI, and its
entries in a context pack's core part."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import yaml

from test_context_pack import _own_cache as _own_cache  # the fixture: a cache of the test's own
from test_context_pack import service_repo
from xvckit.errors import Conflict, UserError
from xvckit.knowledge import kb, kb_store
from xvckit.store import Store, keys

CORPUS = Path(__file__).with_name("data") / "kb"

# A query a person would type, and the entry that must come first.
EXPECTED_FIRST = {
    "database is locked when two workers write": "sqlite-busy",
    "postgres refuses connections under load: too many clients": "postgres-connection-pool",
    "the provider returns 429 too many requests, how should we retry?": "rate-limit-backoff",
    "our tests sleep and are flaky on CI": "flaky-tests-time",
    "cut the input token cost with prompt caching": "prompt-caching",
    "an API key leaked into the logs": "secrets-in-logs",
    "docker builds in CI are slow": "docker-layer-cache",
    "the conversation exceeds the model's context window": "context-window-overflow",
    "merge conflict in package-lock.json": "lock-file-merge-conflicts",
    "a provider connection hangs forever and blocks workers": "upstream-deadlines",
}


@pytest.fixture
def store(store_url):
    opened = Store.open(store_url)
    yield opened
    opened.close()


def test_ranking_on_a_fixed_corpus(store):
    assert kb_store.import_dir(store, CORPUS, "test") == {"added": 10, "updated": 0, "unchanged": 0}
    firsts = {query: [e.slug for e in kb_store.search(store, query, 3)] for query in EXPECTED_FIRST}
    assert {query: found[0] for query, found in firsts.items()} == EXPECTED_FIRST
    # weighting: a word in a pattern outranks the same word in another entry's solution
    assert next(e.slug for e in kb_store.search(store, "lock files", 2)) == "lock-file-merge-conflicts"
    scores = [e.score for e in kb_store.search(store, "timeouts deadline connection", 5)]
    assert scores == sorted(scores, reverse=True) and scores[0] > 0
    # nothing of a query syntax reaches the back end: quotes, operators, NEAR, tsquery symbols
    for hostile in ('" OR 1=1 --', "pattern:* NEAR(a b)", "a & !b | (c:*)", "'); DROP TABLE x; --"):
        kb_store.search(store, hostile)
    assert kb_store.search(store, "the and of") == []  # only common words: nothing to look for


def test_import_again_changes_only_what_changed(store, tmp_path):
    folder = tmp_path / "kb"
    folder.mkdir()
    for path in sorted(CORPUS.glob("*.md"))[:3]:
        (folder / path.name).write_text(path.read_text())
    assert kb_store.import_dir(store, folder, "test") == {"added": 3, "updated": 0, "unchanged": 0}
    assert kb_store.import_dir(store, folder, "test") == {"added": 0, "updated": 0, "unchanged": 3}
    first = sorted(folder.glob("*.md"))[0]
    first.write_text(first.read_text().replace("## Solution\n", "## Solution\nAsk Ann first.\n"))
    assert kb_store.import_dir(store, folder, "test") == {"added": 0, "updated": 1, "unchanged": 2}
    assert kb_store.get(store, first.stem).solution.startswith("Ask Ann first.")
    assert kb_store.search(store, "ask ann")[0].slug == first.stem  # the search index followed the edit

    (folder / "broken.md").write_text("# A title\n\n## Problem\nonly a problem\n")
    with pytest.raises(UserError, match=r"broken\.md: no ## Solution section"):
        kb_store.import_dir(store, folder, "test")


def test_an_entry_of_a_team_is_seen_by_that_team_only(store):
    keys.create_team(store, "platform", keys.Limits(), "test")
    keys.create_team(store, "data", keys.Limits(), "test")
    shared = kb.Entry("shared-runbook", "Restart the shared runbook service", "it hangs", "restart it")
    own = kb.Entry("platform-runbook", "Restart the platform runbook service", "it hangs", "restart it")
    own.team = "platform"
    kb_store.add(store, shared, "test")
    kb_store.add(store, own, "test")
    with pytest.raises(Conflict, match="exists already"):
        kb_store.add(store, shared, "test")
    platform, data = (keys.get_team(store, name).id for name in ("platform", "data"))

    def seen(**scope) -> set[str]:
        return {e.slug for e in kb_store.search(store, "runbook service", **scope)}

    assert seen() == {"shared-runbook", "platform-runbook"}
    assert seen(team_id=platform, every_team=False) == {"shared-runbook", "platform-runbook"}
    assert seen(team_id=data, every_team=False) == {"shared-runbook"}
    assert seen(team_id=None, every_team=False) == {"shared-runbook"}
    assert kb_store.get(store, "platform-runbook").team == "platform"


def test_markdown_entries_parse_and_print_back():
    text = (CORPUS / "sqlite-busy.md").read_text()
    entry = kb.parse(text, default_slug="sqlite-busy")
    assert (entry.pattern, entry.tags, entry.links) == (
        "Retry writes that meet SQLITE_BUSY",
        ("sqlite", "locking"),
        ("https://www.sqlite.org/wal.html",),
    )
    again = kb.parse(entry.markdown())
    assert (again.slug, again.problem, again.solution) == (entry.slug, entry.problem, entry.solution)
    with_links = kb.parse("# P\n## Problem\nx\n## Solution\ny\n## Links\n- https://a.example\n* b.md\n")
    assert (with_links.slug, with_links.links) == ("p", ("https://a.example", "b.md"))
    for bad, message in (
        ("## Problem\nx\n## Solution\ny\n", "no '# title' line"),
        ("---\nowner: x\n---\n# P\n## Problem\nx\n## Solution\ny\n", "unknown front matter owner"),
        ("---\ntags: x\n# P\n", "front matter opened with --- is not closed"),
        ("---\nslug: Bad Slug\n---\n# P\n## Problem\nx\n## Solution\ny\n", "slug 'Bad Slug'"),
    ):
        with pytest.raises(UserError, match=message):
            kb.parse(bad, where="e.md")


def test_cli_add_search_show_edit_import(cli, tmp_path, monkeypatch):
    imported = cli("kb", "import", str(CORPUS), "--json")
    assert json.loads(imported.output) == [{"added": 10, "updated": 0, "unchanged": 0}]
    added = cli(
        "kb",
        "add",
        "--pattern",
        "Warm the tiktoken cache offline",
        "--problem",
        "tiktoken downloads its encodings on first use, which fails offline",
        "--solution",
        "Set TIKTOKEN_CACHE_DIR to a folder with the encodings",
        "--tag",
        "offline",
    )
    assert added.output == "added warm-the-tiktoken-cache-offline\n"
    found = json.loads(cli("kb", "search", "tiktoken fails offline", "--json").output)
    assert found[0]["slug"] == "warm-the-tiktoken-cache-offline" and found[0]["tags"] == ["offline"]
    shown = cli("kb", "show", "sqlite-busy").output
    assert shown.startswith("---\nslug: sqlite-busy\n") and "# Retry writes that meet SQLITE_BUSY" in shown

    editor = tmp_path / "editor.py"  # what $EDITOR does to the file it is given
    editor.write_text(
        "import sys, pathlib\np = pathlib.Path(sys.argv[1])\n"
        "p.write_text(p.read_text().replace('use WAL mode', 'turn on WAL mode'))\n"
    )
    monkeypatch.setenv("EDITOR", f"{sys.executable} {editor}")
    edited = cli("kb", "edit", "sqlite-busy")
    assert edited.output == "sqlite-busy: updated\n", edited.exception
    assert "turn on WAL mode" in json.loads(cli("kb", "show", "sqlite-busy", "--json").output)["solution"]

    renamed = tmp_path / "renamed.md"
    renamed.write_text(shown.replace("slug: sqlite-busy", "slug: other"))
    refused = cli("kb", "edit", "sqlite-busy", "--file", str(renamed))
    assert isinstance(refused.exception, UserError) and "the slug stays 'sqlite-busy'" in str(
        refused.exception
    )


def test_context_pack_puts_relevant_entries_in_the_core_within_their_share(tmp_path):
    from typer.testing import CliRunner

    from xvckit.cli import app
    from xvckit.context.pack import NOTES_SHARE

    repo = service_repo(tmp_path)
    config = tmp_path / "xvckit.yaml"
    config.write_text(yaml.safe_dump({"storage": {"url": f"sqlite:///{tmp_path}/data/xvckit.db"}}))
    task = "the invoice database is locked when two workers write"
    argv = ["context", "pack", task, "--repo", str(repo), "--budget", "3000", "--format", "json"]
    before = json.loads(CliRunner().invoke(app, [*argv, "--config", str(config)]).stdout)
    assert not any(f["level"] == "note" for f in before["files"])  # no store yet: none made for it
    assert not (tmp_path / "data").exists()

    store = Store.open(f"sqlite:///{tmp_path}/data/xvckit.db")
    kb_store.import_dir(store, CORPUS, "test")
    store.close()
    result = CliRunner().invoke(app, [*argv, "--config", str(config)])
    packed = json.loads(result.stdout)
    notes = [f for f in packed["files"] if f["level"] == "note"]
    assert notes[0]["path"] == "kb/sqlite-busy" and all(f["section"] == "core" for f in notes)
    core_budget = packed["sections"]["core"]["budget"]
    assert sum(f["tokens"] for f in notes) <= core_budget * NOTES_SHARE
    core_text = packed["blocks"][0]["text"]
    assert core_text.index("## AGENTS.md") < core_text.index("## kb/sqlite-busy")  # guidance first
    assert "PRAGMA busy_timeout=5000" in core_text
    assert packed["tokens"] <= packed["budget"]

    without = json.loads(CliRunner().invoke(app, [*argv, "--no-kb", "--config", str(config)]).stdout)
    assert not any(f["level"] == "note" for f in without["files"])
    small = json.loads(
        CliRunner()
        .invoke(app, [*argv[:-4], "--budget", "400", "--format", "json", "--config", str(config)])
        .stdout
    )
    small_notes = sum(f["tokens"] for f in small["files"] if f["level"] == "note")
    assert small_notes <= small["sections"]["core"]["budget"] * NOTES_SHARE and small["tokens"] <= 400
