"""The branch's change against its base, read from git: the files it changed and their hunks.

The review compares the merge base of `--base` and HEAD with HEAD (`git merge-base`), so it sees
what the branch did, not what the base did since. A base only a remote has (`origin/main` in a CI
checkout) is found as well. Paths come from `git diff --name-status -z`, exact whatever their
characters; the hunks from the same diff as text (one section per file, in the same order),
each line numbered in the new file, so a finding's line can be checked against the change.
"""

from __future__ import annotations

import re
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

from xvckit.errors import UserError

ADDED, MODIFIED, DELETED, RENAMED, COPIED, TYPE_CHANGED = (
    "added",
    "modified",
    "deleted",
    "renamed",
    "copied",
    "type changed",
)
_STATUS = {"A": ADDED, "M": MODIFIED, "D": DELETED, "R": RENAMED, "C": COPIED, "T": TYPE_CHANGED}
_HUNK = re.compile(r"^@@ -(\d+)(?:,(\d+))? \+(\d+)(?:,(\d+))? @@(.*)$")
# Settings of the user's that would change what `git diff` prints, turned off for the review.
_DIFF_FLAGS = ("--no-color", "--no-ext-diff", "--no-textconv", "--no-relative", "-M")


@dataclass(frozen=True, slots=True)
class Line:
    kind: str  # "+" added, "-" removed, " " unchanged
    new: int | None  # its number in the new file (None for a removed line)
    text: str


@dataclass(frozen=True, slots=True)
class Hunk:
    new_start: int
    new_count: int
    heading: str  # what git prints after the second @@: the enclosing function, often
    lines: tuple[Line, ...]


@dataclass
class FileDiff:
    path: str  # in the branch; a deleted file's old path
    status: str
    old_path: str | None = None  # what a renamed or copied file was
    binary: bool = False
    hunks: list[Hunk] = field(default_factory=list)

    def shown_lines(self) -> set[int]:
        """The new file's lines the diff shows, changed or around a change: where a finding may point."""
        return {line.new for hunk in self.hunks for line in hunk.lines if line.new is not None}

    def text(self) -> str:
        """The lines the diff shows, for the secret check."""
        return "\n".join(line.text for hunk in self.hunks for line in hunk.lines)


@dataclass
class Change:
    base_ref: str  # as found: `main`, or `origin/main`
    base: str  # the merge base's commit
    head: str
    root: Path
    files: list[FileDiff]
    untracked: list[str] = field(default_factory=list)  # files in the work tree git does not track


def changes(where: Path, base: str, context_lines: int) -> Change:
    """The files HEAD changed since its merge base with `base`, with `context_lines` around each change."""
    root = Path(_git(where, "rev-parse", "--show-toplevel", what="the current folder").strip())
    base_ref = _base_ref(root, base)
    head = _git(root, "rev-parse", "--verify", "HEAD^{commit}", what="HEAD").strip()
    try:
        merge_base = _git(root, "merge-base", base_ref, head, what=f"--base {base}").strip()
    except UserError:
        raise UserError(
            f"--base {base}: no common ancestor with HEAD (a shallow clone? fetch the history, "
            "e.g. actions/checkout with fetch-depth: 0)"
        ) from None
    names = _git(root, "diff", "--name-status", "-z", *_DIFF_FLAGS, merge_base, head, what="the diff")
    files = _name_status(names)
    patch = _git(root, "diff", f"-U{context_lines}", *_DIFF_FLAGS, merge_base, head, what="the diff")
    sections = _sections(patch)
    if len(sections) != len(files):
        raise UserError(f"git diff: {len(files)} files changed but {len(sections)} diffs printed")
    for diff, section in zip(files, sections, strict=True):
        diff.binary, diff.hunks = _hunks(section)
    others = _git(root, "ls-files", "-z", "--others", "--exclude-standard", what="untracked files")
    return Change(base_ref, merge_base, head, root, files, [p for p in others.split("\0") if p])


def _base_ref(root: Path, base: str) -> str:
    """`base` when it names a commit here, else `origin/<base>` (a CI checkout has no local branch)."""
    for ref in (base, f"origin/{base}"):
        found = subprocess.run(
            ["git", "-C", str(root), "rev-parse", "--verify", "--quiet", f"{ref}^{{commit}}"],
            capture_output=True,
        )
        if found.returncode == 0:
            return ref
    raise UserError(f"--base {base}: no such branch or commit (nor origin/{base})")


def _git(where: Path, *args: str, what: str) -> str:
    try:
        done = subprocess.run(["git", "-C", str(where), *args], capture_output=True)
    except FileNotFoundError:
        raise UserError("git is not installed: review reads the branch's diff with git") from None
    if done.returncode != 0:
        message = done.stderr.decode("utf-8", "replace").strip().splitlines()
        raise UserError(f"{what}: git {args[0]} failed: {message[-1] if message else done.returncode}")
    return done.stdout.decode("utf-8", "replace")


def _name_status(out: str) -> list[FileDiff]:
    fields = out.split("\0")
    files, i = [], 0
    while i < len(fields) and fields[i]:
        letter = fields[i][0]
        if letter in "RC":
            files.append(FileDiff(fields[i + 2], _STATUS[letter], old_path=fields[i + 1]))
            i += 3
        else:
            files.append(FileDiff(fields[i + 1], _STATUS.get(letter, MODIFIED)))
            i += 2
    return files


def _sections(patch: str) -> list[list[str]]:
    """The diff's lines per file (a file's section starts with `diff --git`)."""
    sections: list[list[str]] = []
    for line in patch.split("\n"):
        if line.startswith("diff --git "):
            sections.append([])
        elif sections:
            sections[-1].append(line)
    return sections


def _hunks(section: list[str]) -> tuple[bool, list[Hunk]]:
    """(binary, hunks) of one file's section; a hunk's end is where its counts run out."""
    hunks: list[Hunk] = []
    i = 0
    while i < len(section):
        line = section[i]
        i += 1
        if line.startswith("Binary files ") and not hunks:
            return True, []
        match = _HUNK.match(line)
        if not match:
            continue
        old_left = int(match[2]) if match[2] is not None else 1
        new_start = int(match[3])
        new_count = int(match[4]) if match[4] is not None else 1
        new_left, number, lines = new_count, new_start, []
        while i < len(section) and (old_left > 0 or new_left > 0):
            text = section[i]
            i += 1
            kind, body = (text[0], text[1:]) if text else (" ", "")
            if kind == "\\":  # "\ No newline at end of file"
                continue
            if kind == "+":
                lines.append(Line("+", number, body))
                number, new_left = number + 1, new_left - 1
            elif kind == "-":
                lines.append(Line("-", None, body))
                old_left -= 1
            else:
                lines.append(Line(" ", number, body))
                number, new_left, old_left = number + 1, new_left - 1, old_left - 1
        hunks.append(Hunk(new_start, new_count, match[5].strip(), tuple(lines)))
    return False, hunks
