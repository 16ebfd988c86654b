"""`--apply-edits`: SEARCH/REPLACE blocks and unified diffs, applied all or nothing per file,
and `batch undo`. The formats are read and applied by `xvckit.batch.edits` directly; end to end,
a test upstream behind the real gateway answers each prompt with the prompt itself
(`batch_echo`), so an item's answer is the edit its JSONL line carries."""

from __future__ import annotations

import orjson
import pytest

from batch_echo import ECHO_MODEL, echo_gateway
from test_batch import batch
from xvckit.batch.edits import ALREADY, APPLIED, FAILED, SEARCH_REPLACE, UNIFIED_DIFF, apply, parse

CODE = "def greet(name):\n    return 'hello ' + name\n\n\ndef part():\n    return 1\n"


def edit_of(answer: str, default: str | None = "app.py", content: str | None = CODE):
    """The one file edit in `answer`, applied to `content`."""
    parsed = parse(answer, default)
    assert parsed.problems == []
    (edit,) = parsed.edits
    return edit, apply(content, edit)


# --- SEARCH/REPLACE ------------------------------------------------------------------------------

SR = """Here is the change.

app.py
```python
<<<<<<< SEARCH
    return 'hello ' + name
=======
    return f'hello {name}'
>>>>>>> REPLACE
```

```python
<<<<<<< SEARCH
def part():
    return 1
=======
def part():
    return 2
>>>>>>> REPLACE
```
"""


def test_search_replace_blocks_name_their_file_and_apply_in_order():
    edit, applied = edit_of(SR, default="other.py")
    assert (edit.path, edit.format, len(edit.changes)) == ("app.py", SEARCH_REPLACE, 2)
    assert applied.status == APPLIED and applied.problems == []
    assert applied.text == CODE.replace("'hello ' + name", "f'hello {name}'").replace("return 1", "return 2")


def test_a_block_without_a_file_name_edits_the_items_own_file():
    answer = "<<<<<<< SEARCH\ndef part():\n=======\ndef piece():\n>>>>>>> REPLACE\n"
    edit, applied = edit_of(answer, default="src/app.py")
    assert edit.path == "src/app.py" and "def piece():" in applied.text


def test_an_empty_search_creates_a_file_and_never_touches_an_existing_one():
    answer = "new/module.py\n<<<<<<< SEARCH\n=======\nVALUE = 1\n>>>>>>> REPLACE\n"
    edit, applied = edit_of(answer, content=None)
    assert (edit.creates, applied.status, applied.text) == (True, APPLIED, "VALUE = 1\n")
    assert apply("VALUE = 1\n", edit).status == ALREADY
    refused = apply("OTHER = 2\n", edit)
    assert (refused.status, refused.problems) == (FAILED, ["the file to create exists already"])


def test_an_edit_applied_twice_counts_as_already_applied():
    edit, applied = edit_of(SR)
    again = apply(applied.text, edit)
    assert (again.status, again.text) == (ALREADY, applied.text)


def test_a_file_is_changed_whole_or_not_at_all():
    answer = SR.replace("def part():\n    return 1\n=======", "def missing():\n    return 1\n=======")
    _, applied = edit_of(answer)
    assert applied.status == FAILED and applied.text == CODE  # the first block would apply
    assert applied.problems == ["change 2: the text to replace ('def missing():'...) is not in the file"]


def test_text_found_in_two_places_is_not_a_clean_edit():
    twice = CODE + "\n\ndef part():\n    return 1\n"
    edit, _ = edit_of(SR)
    applied = apply(twice, edit)
    assert applied.status == FAILED
    assert applied.problems == ["change 2: the text to replace ('def part():'...) is in 2 places"]


def test_a_block_that_is_not_closed_is_reported():
    parsed = parse("app.py\n<<<<<<< SEARCH\nx = 1\n=======\nx = 2\n")
    assert parsed.edits == [] and parsed.problems == ["app.py: the SEARCH/REPLACE block is not closed"]


def test_line_endings_and_a_missing_last_newline_are_kept():
    answer = "<<<<<<< SEARCH\nb = 2\n=======\nb = 3\n>>>>>>> REPLACE\n"
    _, applied = edit_of(answer, content="a = 1\r\nb = 2")
    assert applied.text == "a = 1\r\nb = 3"


# --- unified diffs -------------------------------------------------------------------------------

DIFF = """```diff
--- a/app.py
+++ b/app.py
@@ -1,2 +1,2 @@
 def greet(name):
-    return 'hello ' + name
+    return 'hi ' + name
@@ -5,2 +5,3 @@
 def part():
-    return 1
+    # one more line
+    return 2
```
"""


def test_a_unified_diff_applies_hunk_by_hunk():
    edit, applied = edit_of(DIFF, default=None)
    assert (edit.path, edit.format, len(edit.changes)) == ("app.py", UNIFIED_DIFF, 2)
    assert applied.status == APPLIED
    assert applied.text == CODE.replace("'hello '", "'hi '").replace(
        "    return 1", "    # one more line\n    return 2"
    )


def test_hunks_without_line_numbers_are_found_by_their_text():
    answer = "--- app.py\n+++ app.py\n@@ ... @@\n def part():\n-    return 1\n+    return 3\n"
    _, applied = edit_of(answer)
    assert applied.status == APPLIED and applied.text.endswith("def part():\n    return 3\n")


def test_a_diff_creates_and_deletes_files():
    create = "--- /dev/null\n+++ b/docs/new.md\n@@ -0,0 +1,2 @@\n+# New\n+text\n"
    edit, applied = edit_of(create, content=None)
    assert (edit.path, edit.creates, applied.text) == ("docs/new.md", True, "# New\ntext\n")
    delete = "--- a/old.txt\n+++ /dev/null\n@@ -1,1 +0,0 @@\n-gone\n"
    edit, applied = edit_of(delete, content="gone\n")
    assert (edit.path, edit.deletes, applied.status, applied.text) == ("old.txt", True, APPLIED, None)
    assert apply("kept\n", edit).status == FAILED


def test_a_hunk_whose_context_is_not_in_the_file_fails_the_file():
    answer = DIFF.replace(" def part():", " def other():")
    _, applied = edit_of(answer, default=None)
    assert applied.status == FAILED and applied.text == CODE
    assert applied.problems == ["change 2: the text to replace ('def other():'...) is not in the file"]


def test_a_diff_without_hunks_is_reported():
    parsed = parse("--- a/app.py\n+++ b/app.py\nno hunks here\n")
    assert parsed.edits == [] and parsed.problems == ["app.py: the diff has no hunks"]


# --- end to end: applied through a run, and undone -----------------------------------------------


@pytest.fixture(scope="module")
def echo_gw(make_module_gateway):
    yield from echo_gateway(make_module_gateway)


@pytest.fixture
def repo(tmp_path, tiktoken_encodings):
    """Files to edit, and JSONL items whose `edit` field is the answer the upstream will give."""
    (tmp_path / "app.py").write_text(CODE)
    (tmp_path / "b.py").write_text("x = 1\ny = 2\n")
    (tmp_path / "c.py").write_text("untouched = True\n")
    (tmp_path / "edit.j2").write_text("{{ edit }}")
    items = [
        {"path": "app.py", "edit": SR},
        {"path": "b.py", "edit": "--- a/b.py\n+++ b/b.py\n@@ -1,2 +1,2 @@\n x = 1\n-y = 2\n+y = 3\n"},
        {"path": "c.py", "edit": "<<<<<<< SEARCH\nnot there\n=======\nx\n>>>>>>> REPLACE\n"},
        {"id": "create", "edit": "pkg/new.py\n<<<<<<< SEARCH\n=======\nNEW = 1\n>>>>>>> REPLACE\n"},
        {"id": "escape", "edit": "../outside.py\n<<<<<<< SEARCH\n=======\nx\n>>>>>>> REPLACE\n"},
        {"id": "git", "edit": ".git/config\n<<<<<<< SEARCH\n=======\nx\n>>>>>>> REPLACE\n"},
    ]
    (tmp_path / "items.jsonl").write_bytes(b"\n".join(orjson.dumps(item) for item in items))
    return tmp_path


def _apply_run(monkeypatch, capsys, repo, gw) -> dict:
    code, out, err = batch(
        monkeypatch,
        capsys,
        repo,
        "run",
        "edit.j2",
        "--input",
        "items.jsonl",
        "--model",
        ECHO_MODEL,
        "--apply-edits",
        "--json",
        gw=gw,
    )
    assert code == 0, err
    return orjson.loads(out)


def test_edits_are_applied_with_a_summary_and_undone(monkeypatch, capsys, repo, echo_gw):
    result = _apply_run(monkeypatch, capsys, repo, echo_gw)
    assert (result["state"], result["done"]) == ("done", 6)
    assert result["edits"]["files"] == {APPLIED: 3, ALREADY: 0, FAILED: 3}
    failed = {(f["item"], f["path"]): f["problems"] for f in result["edits"]["failed"]}
    assert failed == {
        ("c.py", "c.py"): ["change 1: the text to replace ('not there'...) is not in the file"],
        ("escape", "../outside.py"): [f"../outside.py: outside {repo}"],
        ("git", ".git/config"): [".git/config: edits never touch .git/"],
    }
    assert (repo / "app.py").read_text() == edit_of(SR)[1].text
    assert (repo / "b.py").read_text() == "x = 1\ny = 3\n"
    assert (repo / "c.py").read_text() == "untouched = True\n"
    assert (repo / "pkg" / "new.py").read_text() == "NEW = 1\n"
    assert not (repo.parent / "outside.py").exists() and not (repo / ".git").exists()

    (repo / "b.py").write_text("x = 1\ny = 4\n")  # changed by hand since the run
    code, out, _ = batch(monkeypatch, capsys, repo, "undo", result["run"], "--json")
    assert code == 0
    assert orjson.loads(out) == [
        {"path": "app.py", "status": "restored"},
        {"path": "b.py", "status": "changed since the run: left as it is (--force restores it)"},
        {"path": "pkg/new.py", "status": "removed (the run created it)"},
    ]
    assert (repo / "app.py").read_text() == CODE and not (repo / "pkg" / "new.py").exists()
    assert (repo / "b.py").read_text() == "x = 1\ny = 4\n"

    code, out, _ = batch(monkeypatch, capsys, repo, "undo", result["run"], "--force", "--json")
    assert orjson.loads(out) == [{"path": "b.py", "status": "restored"}]
    assert (repo / "b.py").read_text() == "x = 1\ny = 2\n"
    code, out, _ = batch(monkeypatch, capsys, repo, "undo", result["run"], "--json")
    assert orjson.loads(out) == []  # nothing left to undo


def test_the_summary_table_says_what_applied_and_what_did_not(monkeypatch, capsys, repo, echo_gw):
    code, out, err = batch(
        monkeypatch,
        capsys,
        repo,
        "run",
        "edit.j2",
        "--input",
        "items.jsonl",
        "--model",
        ECHO_MODEL,
        "--apply-edits",
        gw=echo_gw,
    )
    assert code == 0, err
    assert "edits: 3 files changed, 0 already applied, 3 not applied" in out
    assert (
        "not applied: c.py (item c.py): change 1: the text to replace ('not there'...) is not in the file"
        in out
    )
