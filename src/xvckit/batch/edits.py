"""Edits in a model's answer, applied to the files they name, all or nothing per file; undo.

Two formats, as models write them:
- SEARCH/REPLACE blocks (aider's): the file's path on the line before the block (or before
  its ``` fence; else the previous block's file, else the item's own path), then
  `<<<<<<< SEARCH`, the text to find, `=======`, its replacement, `>>>>>>> REPLACE`. An empty
  SEARCH creates a file that does not exist.
- unified diffs: `--- a/path`, `+++ b/path`, hunks `@@ -l,s +l,s @@` (the numbers may be
  missing, as aider's diffs leave them); `/dev/null` creates or deletes the file.

Each change must find its text in exactly one place (lines compared without trailing blanks;
a diff hunk found in several places takes the one nearest its line number). A change whose
text is gone but whose replacement is there counts as already applied (a re-run after a crash
between the file write and the journal's). If any change of a file fails, the file is left
as it was and the reasons are reported. Files outside the run's folder, in `.git` or in
`.xvckit` are never touched.

Before a file's first change the run keeps its original (`originals/<path>` in the run
folder; a file the run created is noted as new), and the journal the SHA-256 of what the run
wrote: `undo` restores the originals of the files still as the run left them.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from pathlib import Path

from xvckit.batch.journal import Journal
from xvckit.batch.outputs import write_atomic
from xvckit.batch.requests import Request
from xvckit.errors import UserError

SEARCH_REPLACE, UNIFIED_DIFF = "search/replace", "unified diff"
APPLIED, ALREADY, FAILED = "applied", "already applied", "failed"

_SEARCH = re.compile(r"^<{5,9} ?SEARCH\b")
_DIVIDER = re.compile(r"^={5,9}\s*$")
_REPLACE = re.compile(r"^>{5,9} ?REPLACE\b")
_FENCE = re.compile(r"^\s*(```|~~~)")
_HUNK = re.compile(r"^@@ -(\d+)(?:,\d+)? \+\d+(?:,\d+)? @@")
_NEVER_TOUCHED = (".git", ".xvckit")


@dataclass
class Change:
    old: list[str]
    new: list[str]
    line: int | None = None  # where a diff says `old` starts (0-based)


@dataclass
class FileEdit:
    path: str
    format: str
    changes: list[Change] = field(default_factory=list)
    creates: bool = False
    deletes: bool = False


@dataclass
class Parsed:
    edits: list[FileEdit]
    problems: list[str]  # blocks that could not be read


def parse(answer: str, default_path: str | None = None) -> Parsed:
    """Every edit in `answer`, merged per file in the order they appear."""
    lines = answer.splitlines()
    by_path: dict[str, FileEdit] = {}
    problems: list[str] = []
    last_path = None
    i = 0
    while i < len(lines):
        if _SEARCH.match(lines[i]):
            path = _filename_before(lines, i) or last_path or default_path
            i, change = _search_block(lines, i + 1)
            if change is None:
                problems.append(f"{path or 'a SEARCH block'}: the SEARCH/REPLACE block is not closed")
                break
            if path is None:
                problems.append("a SEARCH/REPLACE block names no file")
                continue
            last_path = path
            edit = by_path.setdefault(path, FileEdit(path, SEARCH_REPLACE, creates=True))
            edit.creates = edit.creates and not change.old
            edit.changes.append(change)
        elif lines[i].startswith("--- ") and i + 1 < len(lines) and lines[i + 1].startswith("+++ "):
            old, new = _diff_path(lines[i][4:]), _diff_path(lines[i + 1][4:])
            path = new if new != "/dev/null" else old
            i, changes = _hunks(lines, i + 2)
            if not changes:
                problems.append(f"{path}: the diff has no hunks")
                continue
            last_path = path
            edit = by_path.setdefault(path, FileEdit(path, UNIFIED_DIFF))
            edit.creates, edit.deletes = old == "/dev/null", new == "/dev/null"
            edit.changes += changes
        else:
            i += 1
    return Parsed(list(by_path.values()), problems)


def _filename_before(lines: list[str], at: int) -> str | None:
    """The path written on the line before a block or before its opening fence."""
    for j in range(at - 1, max(at - 4, -1), -1):
        text = lines[j].strip()
        if not text or _FENCE.match(text):
            continue
        name = text.strip("`*#").strip().rstrip(":").strip()
        looks_like_path = ("." in name or "/" in name) and " " not in name and len(name) < 256
        return name if looks_like_path else None
    return None


def _search_block(lines: list[str], i: int) -> tuple[int, Change | None]:
    old: list[str] = []
    while i < len(lines) and not _DIVIDER.match(lines[i]):
        old.append(lines[i])
        i += 1
    new: list[str] = []
    i += 1
    while i < len(lines) and not _REPLACE.match(lines[i]):
        new.append(lines[i])
        i += 1
    if i >= len(lines):
        return i, None
    return i + 1, Change(old, new)


def _diff_path(text: str) -> str:
    path = text.split("\t")[0].strip()
    if path != "/dev/null" and path[:2] in ("a/", "b/"):
        path = path[2:]
    return path


def _hunks(lines: list[str], i: int) -> tuple[int, list[Change]]:
    changes = []
    while i < len(lines) and lines[i].startswith("@@"):
        numbers = _HUNK.match(lines[i])
        change = Change([], [], int(numbers[1]) - 1 if numbers else None)
        i += 1
        blank_tail = 0  # blank lines at the end are the text after the diff, not context
        while i < len(lines):
            line = lines[i]
            if (
                line.startswith("@@")
                or _FENCE.match(line)
                or (line.startswith("--- ") and i + 1 < len(lines) and lines[i + 1].startswith("+++ "))
            ):
                break
            if line.startswith("\\"):  # "\ No newline at end of file"
                i += 1
                continue
            kind, text = line[:1], line[1:]
            if kind not in ("+", "-", " ", ""):
                break
            blank_tail = blank_tail + 1 if kind == "" else 0
            if kind != "+":
                change.old.append(text)
            if kind != "-":
                change.new.append(text)
            i += 1
        if blank_tail:
            del change.old[-blank_tail:], change.new[-blank_tail:]
        changes.append(change)
    return i, changes


# --- applying ------------------------------------------------------------------------------------


@dataclass
class Applied:
    status: str
    text: str | None  # the file's new text; None: the file is to be deleted
    problems: list[str] = field(default_factory=list)


def apply(content: str | None, edit: FileEdit) -> Applied:
    """The file's text after `edit` (`content` None: the file does not exist)."""
    if edit.deletes:
        if content is None:
            return Applied(ALREADY, None)
        whole = [line for change in edit.changes for line in change.old]
        same = _same(content.splitlines(), whole)
        return (
            Applied(APPLIED, None)
            if same
            else Applied(FAILED, content, ["the file to delete has other text"])
        )
    if edit.creates:
        created = "\n".join(line for change in edit.changes for line in change.new) + "\n"
        if content is None:
            return Applied(APPLIED, created)
        if _same(content.splitlines(), created.splitlines()):
            return Applied(ALREADY, content)
        return Applied(FAILED, content, ["the file to create exists already"])
    if content is None:
        return Applied(FAILED, None, ["no such file"])
    lines = content.splitlines(keepends=True)
    eol = "\r\n" if "\r\n" in content else "\n"
    problems, already, offset = [], 0, 0
    for n, change in enumerate(edit.changes, 1):
        hint = None if change.line is None else change.line + offset
        if not change.old:
            problems.append(f"change {n}: names no text to find in an existing file")
            continue
        at, found = _locate(lines, change.old, hint)
        if found != 1:
            if found == 0 and change.new and _locate(lines, change.new, hint)[1] == 1:
                already += 1
                continue
            where = "is not in the file" if found == 0 else f"is in {found} places"
            problems.append(f"change {n}: the text to replace ({_first(change.old)!r}...) {where}")
            continue
        end = at + len(change.old)
        last_has_eol = lines[end - 1].endswith("\n")
        new = [line + eol for line in change.new]
        if new and not last_has_eol and end == len(lines):
            new[-1] = new[-1][: -len(eol)]
        lines[at:end] = new
        offset += len(change.new) - len(change.old)
    if problems:
        return Applied(FAILED, content, problems)
    if already == len(edit.changes):
        return Applied(ALREADY, content)
    return Applied(APPLIED, "".join(lines))


def _same(a: list[str], b: list[str]) -> bool:
    return len(a) == len(b) and all(x.rstrip() == y.rstrip() for x, y in zip(a, b, strict=True))


def _locate(lines: list[str], block: list[str], hint: int | None) -> tuple[int, int]:
    """(where `block` starts, how many places it is in); several places with a hint: the
    nearest to it, counted as one."""
    want = [line.rstrip() for line in block]
    first, size = want[0], len(want)
    places = [
        at
        for at in range(len(lines) - size + 1)
        if lines[at].rstrip() == first and all(lines[at + k].rstrip() == want[k] for k in range(1, size))
    ]
    if len(places) > 1 and hint is not None:
        return min(places, key=lambda at: abs(at - hint)), 1
    return (places[0] if places else -1), len(places)


def _first(lines: list[str]) -> str:
    return next((line.strip() for line in lines if line.strip()), "")[:60]


def sha(data: bytes | None) -> str | None:
    return hashlib.sha256(data).hexdigest() if data is not None else None


# --- the sink and undo ---------------------------------------------------------------------------


class EditsSink:
    """Applies the edits in each answer to the files under `root`, keeping originals for undo."""

    def __init__(self, root: Path, run_dir: Path, journal: Journal) -> None:
        self.root = root.resolve()
        self.originals = run_dir / "originals"
        self.journal = journal

    def accept(self, request: Request, answer: str) -> dict:
        parsed = parse(answer, request.names.get("path"))
        results = [{"path": None, "status": FAILED, "problems": [p]} for p in parsed.problems]
        results += [self._apply(edit, request.hash) for edit in parsed.edits]
        return {"edits": results}

    def finish(self, journal: Journal) -> None:
        pass

    def _apply(self, edit: FileEdit, item_hash: str) -> dict:
        result = {"path": edit.path, "format": edit.format, "changes": len(edit.changes)}
        try:
            target, rel = inside(self.root, edit.path)
            before = target.read_bytes() if target.is_file() else None
            applied = apply(before.decode("utf-8") if before is not None else None, edit)
        except (UserError, UnicodeDecodeError) as exc:
            return result | {"status": FAILED, "problems": [str(exc)]}
        if applied.status == APPLIED:
            after = applied.text.encode() if applied.text is not None else None
            if self.journal.edited(rel) is None and before is not None:
                write_atomic(self.originals / rel, before)
            self.journal.record_edit(rel, before is not None, sha(after), item_hash)
            if after is None:
                target.unlink()
            else:
                write_atomic(target, after)
        return result | {"path": rel, "status": applied.status, "problems": applied.problems}


def inside(root: Path, path: str) -> tuple[Path, str]:
    """The file `path` names under `root`, and its path relative to it; UserError elsewhere."""
    target = (root / path).resolve()
    if not target.is_relative_to(root) or target == root:
        raise UserError(f"{path}: outside {root}")
    rel = target.relative_to(root).as_posix()
    if rel.split("/")[0] in _NEVER_TOUCHED:
        raise UserError(f"{path}: edits never touch {rel.split('/')[0]}/")
    return target, rel


def undo(journal: Journal, run_dir: Path, root: Path, force: bool = False) -> list[dict]:
    """Restore every file the run changed and that is still as the run left it (`force`:
    whatever it holds now); files the run created are removed."""
    results = []
    for rel, existed, after_sha in journal.edits():
        target = root / rel
        now = target.read_bytes() if target.is_file() else None
        original = (run_dir / "originals" / rel).read_bytes() if existed else None
        if now == original:
            status = "as before the run"
        elif sha(now) != after_sha and not force:
            results.append(
                {"path": rel, "status": "changed since the run: left as it is (--force restores it)"}
            )
            continue
        elif original is None:
            target.unlink()
            status = "removed (the run created it)"
        else:
            write_atomic(target, original)
            status = "restored"
        journal.undone(rel)
        results.append({"path": rel, "status": status})
    return results


def summary(journal: Journal) -> dict:
    """Edits of the run's done items: how many files per status, and the ones that failed."""
    counts = {APPLIED: 0, ALREADY: 0, FAILED: 0}
    failed = []
    for row in journal.rows(("done",)):
        for edit in (row.output or {}).get("edits", ()):
            counts[edit["status"]] += 1
            if edit["status"] == FAILED:
                failed.append({"item": row.item_id, "path": edit["path"], "problems": edit["problems"]})
    return {"files": counts, "failed": failed}
