"""A repository's history as the KPIs need it, read from one streamed `git log` and cached.

One process reads the whole history oldest first (`git log --reverse --date-order -p -U0`):
each commit's header (hash, parents, author, author and committer times, message) and its
patch, of which only the file headers and the hunk headers (`@@ -a,b +c,d @@`) are looked at.
The hunk headers give the lines added and removed (what `--numstat` gives) and where they are,
which the follow-up tracker (lines.py) needs. Merges show no patch (`--diff-merges=off`): the
lines of a merged branch count once, in its own commits.

The result is cached in the repository's git folder (`.git/xvckit/`), keyed by the HEAD it was
read at: the next run with the same HEAD reads nothing from git; after new commits it reads
`OLD..HEAD` only; when the old HEAD is no longer in HEAD's history (a rebase, a reset) it reads
everything again.

Mainline and changes: HEAD's first-parent chain is the mainline; each mainline commit is one
change, and a merge on it also lands the commits its other parents bring in (`change` maps
every commit to the mainline commit that landed it).
"""

from __future__ import annotations

import codecs
import itertools
import re
import subprocess
import tempfile
from collections.abc import Callable, Iterable
from pathlib import Path

import msgspec

from xvckit.errors import UserError
from xvckit.metrics import cache as cache_files
from xvckit.metrics import commits
from xvckit.metrics.lines import Added, Hunk, Tracker

VERSION = 3  # a new version when what a commit's columns hold changes: caches are read again
_FORMAT = "%x1e%H %P%x1f%an%x1f%ae%x1f%at%x1f%ct%x1f%B%x1d"
_LOG = (
    "log",
    "--reverse",
    "--date-order",
    "-p",
    "-U0",
    "-M",
    "--diff-merges=off",
    "--no-color",
    "--no-ext-diff",
    "--no-textconv",
    "--no-show-signature",
    "--src-prefix=a/",
    "--dst-prefix=b/",
    "--encoding=UTF-8",
    f"--format={_FORMAT}",
)
_HUNK = re.compile(rb"@@ -(\d+)(?:,(\d+))? \+(\d+)(?:,(\d+))? @@")
SPLIT_AT = 20_000
_EXPIRE_EVERY = 2000  # commits between sweeps of the tracker's old ranges


class History(msgspec.Struct, array_like=True):
    """Every commit in HEAD's history, oldest first (parents before children), as columns."""

    version: int
    head: str
    shas: list[str]
    # parents as indices: the first (-1: none, or outside the history, as in a shallow clone),
    # and a merge's others (two columns: a list per commit took most of a warm run's decoding)
    parent: list[int]
    merged: dict[int, list[int]]
    people: list[str]  # "name <email>", each once
    author: list[int]  # index into people
    atime: list[int]  # author time, epoch seconds
    ctime: list[int]  # committer time
    kind: list[str]  # Conventional Commit type or ""
    flags: list[int]  # commits.MERGE | AI | REVERT | ...
    added: list[int]
    removed: list[int]
    ai_tool: list[str]
    change: list[int]  # the mainline commit that landed it; -1 for none
    tracker: dict[str, list[Added]]

    def __len__(self) -> int:
        return len(self.shas)


def empty(head: str = "") -> History:
    return History(VERSION, head, [], [], {}, [], [], [], [], [], [], [], [], [], [], {})


def git(repo: Path, *args: str) -> str:
    """Run one git command in `repo` and return its output; a UserError naming it on failure."""
    try:
        done = subprocess.run(
            ["git", "-C", str(repo), "-c", "core.quotePath=false", *args],
            capture_output=True,
            check=False,
        )
    except OSError as exc:
        raise UserError(f"cannot run git: {exc.strerror}") from None
    if done.returncode:
        message = done.stderr.decode(errors="replace").strip().splitlines()
        raise UserError(f"git {args[0]} in {repo}: {message[-1] if message else 'failed'}")
    return done.stdout.decode(errors="replace")


def git_dir(repo: Path) -> Path | None:
    """The repository's common git folder, or None when `repo` is not in a git work tree."""
    try:
        return Path(git(repo, "rev-parse", "--path-format=absolute", "--git-common-dir").strip())
    except UserError:
        return None


def head_of(repo: Path) -> str:
    """HEAD's commit; "" in a repository without commits."""
    try:
        return git(repo, "rev-parse", "--verify", "-q", "HEAD^{commit}").strip()
    except UserError:
        return ""


def is_ancestor(repo: Path, old: str, new: str) -> bool:
    done = subprocess.run(
        ["git", "-C", str(repo), "merge-base", "--is-ancestor", old, new], capture_output=True, check=False
    )
    return done.returncode == 0


def load(
    repo: Path, cache_dir: Path | None, progress: Callable[[int], None] | None = None
) -> tuple[History, int]:
    """HEAD's history, from the cache as far as it goes, the rest read from git (and cached);
    and how many commits were read from git."""
    head = head_of(repo)
    cache = cache_dir / "metrics-history.msgpack" if cache_dir else None
    history = _cached(cache)
    if history is not None and history.head == head:
        return history, 0
    if not head:
        return empty(), 0
    if history is None or not history.head or not is_ancestor(repo, history.head, head):
        history, since = empty(), None
    else:
        since = history.head
    known = len(history)
    read(repo, history, since, head, progress)
    history.head = head
    history.change = mainline_changes(history)
    if cache is not None:
        cache_files.save(cache, history)
    return history, len(history) - known


def read(
    repo: Path, history: History, since: str | None, head: str, progress: Callable[[int], None] | None = None
) -> None:
    """Append the commits of `since..head` (all of head's history when since is None).

    A whole history of more than SPLIT_AT first-parent commits is read by two `git log`s at
    once, the older half streamed and the newer half written to a temporary file meanwhile:
    git's diffs are most of the time, and a second core halves it (100k commits: ~8 s of git
    alone)."""
    middle = _middle(repo, head) if since is None else None
    if middle is None:
        _run(repo, f"{since}..{head}" if since else head, history, progress)
        return
    with tempfile.TemporaryFile() as newer:
        later = _GitLog(repo, f"{middle}..{head}", newer)
        try:
            _run(repo, middle, history, progress)
        finally:
            later.wait()
        newer.seek(0)
        _parse(newer, history, progress)


def _middle(repo: Path, head: str) -> str | None:
    """The commit halfway down head's first-parent chain, when the chain is long."""
    chain = git(repo, "rev-list", "--first-parent", head).split()
    return chain[len(chain) // 2] if len(chain) > SPLIT_AT else None


def _run(repo: Path, span: str, history: History, progress: Callable[[int], None] | None) -> None:
    log = _GitLog(repo, span, subprocess.PIPE)
    assert log.proc.stdout is not None
    try:
        _parse(log.proc.stdout, history, progress)
    finally:
        log.proc.stdout.close()
        log.wait()


class _GitLog:
    """One `git log` of `span` writing to `out`; its errors go to a file (a pipe that nobody
    reads while the output is read could fill and stop git)."""

    def __init__(self, repo: Path, span: str, out) -> None:
        self.repo = repo
        self.errors = tempfile.TemporaryFile()  # noqa: SIM115 (closed by wait)
        try:
            self.proc = subprocess.Popen(
                ["git", "-C", str(repo), "-c", "core.quotePath=false", *_LOG, span],
                stdout=out,
                stderr=self.errors,
                bufsize=1 << 20,
            )
        except OSError as exc:
            self.errors.close()
            raise UserError(f"cannot run git: {exc.strerror}") from None

    def wait(self) -> None:
        """Wait for git to end; a UserError with its last line of errors if it failed."""
        code = self.proc.wait()
        self.errors.seek(0)
        lines = self.errors.read(65536).decode(errors="replace").strip().splitlines()
        self.errors.close()
        if code:
            raise UserError(f"git log in {self.repo}: {lines[-1] if lines else f'exit {code}'}")


class _Reader:
    """The parse state of one `git log` stream."""

    def __init__(self, history: History) -> None:
        self.h = history
        self.index = {sha: i for i, sha in enumerate(history.shas)}
        self.person = {p: i for i, p in enumerate(history.people)}
        self.tracker = Tracker(history.tracker)
        self.commit = -1
        self.when = 0
        self.follow_up = False
        self.added = self.removed = 0
        self._file_reset()

    def _file_reset(self) -> None:
        self.old: str | None = None
        self.new: str | None = None
        self.renamed = self.deleted = False
        self.hunks: list[Hunk] = []

    def header(self, raw: bytes) -> None:
        """A commit's header: `hash parents\\x1fname\\x1femail\\x1fatime\\x1fctime\\x1fmessage`."""
        self.finish()
        ids, name, email, atime, ctime, message = raw.split(b"\x1f", 5)
        sha, *parents = ids.decode().split()
        h = self.h
        person = f"{name.decode(errors='replace')} <{email.decode(errors='replace')}>"
        who = self.person.get(person)
        if who is None:
            who = self.person[person] = len(h.people)
            h.people.append(person)
        text = message.decode(errors="replace")
        found = commits.classify(text, person)
        self.commit = len(h.shas)
        self.index[sha] = self.commit
        self.when = int(atime)
        h.shas.append(sha)
        h.parent.append(self.index.get(parents[0], -1) if parents else -1)
        others = [self.index[p] for p in parents[1:] if p in self.index]
        if others:
            h.merged[self.commit] = others
        h.author.append(who)
        h.atime.append(self.when)
        h.ctime.append(int(ctime))
        h.kind.append(found.kind)
        h.flags.append(found.flags | (commits.MERGE if len(parents) > 1 else 0))
        h.ai_tool.append(found.ai_tool)
        self.follow_up = False
        self.added = self.removed = 0
        if self.commit % _EXPIRE_EVERY == 0:
            self.tracker.expire(self.when)

    def file(self) -> None:
        """The end of one file's patch: the tracker learns what it did."""
        if self.renamed and self.old and self.new:
            self.tracker.rename(self.old, self.new)
        path = self.new or self.old
        if self.hunks and path and self.tracker.change(path, self.hunks, self.when, self.commit):
            self.follow_up = True
        if self.deleted and self.old:
            self.tracker.delete(self.old)
        self._file_reset()

    def finish(self) -> None:
        """The end of a commit."""
        self.file()
        if self.commit >= 0 and len(self.h.added) == self.commit:
            self.h.added.append(self.added)
            self.h.removed.append(self.removed)
            if self.follow_up:
                self.h.flags[self.commit] |= commits.FOLLOW_UP


def _parse(stream: Iterable[bytes], history: History, progress: Callable[[int], None] | None) -> None:
    r = _Reader(history)
    pending: list[bytes] | None = None  # a header split over lines (the message has several)
    in_header = False  # between a file's `diff --git` line and its first hunk
    lines = iter(stream)
    for line in lines:
        if pending is not None:
            pending.append(line)
            if b"\x1d" in line:
                r.header(b"".join(pending).rpartition(b"\x1d")[0])
                pending = None
                if progress and r.commit % 1000 == 0:
                    progress(r.commit)
            continue
        first = line[:1]
        if first == b"@":
            match = _HUNK.match(line)
            if match:
                in_header = False
                old, new = match[2], match[4]
                old_size = 1 if old is None else int(old)
                new_size = 1 if new is None else int(new)
                r.removed += old_size
                r.added += new_size
                r.hunks.append((int(match[1]), old_size, int(match[3]), new_size))
                # the hunk's lines, skipped in C (a "\\ No newline" line among them leaves one
                # line for the loop, which ignores content lines)
                next(itertools.islice(lines, old_size + new_size, old_size + new_size), None)
        elif first == b"\x1e":
            pending = [line[1:]]
            if b"\x1d" in line:
                r.header(line[1:].rpartition(b"\x1d")[0])
                pending = None
        elif line.startswith(b"diff --git "):
            r.file()
            in_header = True
        elif in_header:
            if line.startswith(b"--- "):
                r.old = _path(line[4:])
            elif line.startswith(b"+++ "):
                r.new = _path(line[4:])
                r.deleted = r.new is None
            elif line.startswith(b"rename from "):
                r.old, r.renamed = _path(line[12:], prefixed=False), True
            elif line.startswith(b"rename to "):
                r.new, r.renamed = _path(line[10:], prefixed=False), True
    r.finish()
    if progress:
        progress(len(history))


def _path(raw: bytes, prefixed: bool = True) -> str | None:
    """A path from a patch header line (C-quoted when it has special characters; a tab after
    it when it has spaces); None for /dev/null."""
    raw = raw.rstrip(b"\n").rstrip(b"\t")
    if raw.startswith(b'"') and raw.endswith(b'"'):
        raw = codecs.escape_decode(raw[1:-1])[0]
    if raw == b"/dev/null":
        return None
    if prefixed:
        raw = raw[2:]
    return raw.decode(errors="replace")


def mainline_changes(history: History) -> list[int]:
    """For each commit, the mainline commit (HEAD's first-parent chain) that landed it."""
    change = [-1] * len(history)
    line: list[int] = []
    at = len(history) - 1 if history.shas else -1
    while at >= 0:
        line.append(at)
        first = history.parent[at]
        at = first if first < at else -1  # parents come first
    for landing in reversed(line):
        change[landing] = landing
        stack = list(history.merged.get(landing, ()))
        while stack:
            c = stack.pop()
            if c >= 0 and change[c] < 0:
                change[c] = landing
                stack.append(history.parent[c])
                stack.extend(history.merged.get(c, ()))
    return change


def _cached(cache: Path | None) -> History | None:
    """The cached history, or None when there is none or it does not hold together."""
    history = cache_files.load(cache, History)
    if history is None:
        return None
    n = len(history.shas)
    columns = (
        history.parent,
        history.author,
        history.atime,
        history.ctime,
        history.kind,
        history.flags,
        history.added,
        history.removed,
        history.ai_tool,
        history.change,
    )
    if history.version != VERSION or any(len(column) != n for column in columns):
        return None
    if not _within(history.author, 0, len(history.people)) or not _within(history.change, -1, n):
        return None
    if not _within(history.parent, -1, n) or not _within(history.merged, 0, n):
        return None
    if not _within(itertools.chain.from_iterable(history.merged.values()), 0, n):
        return None
    return history


def _within(values: Iterable[int], low: int, end: int) -> bool:
    """Every value in [low, end) (checked in C: a warm run reads 100k commits' worth)."""
    values = list(values)
    return not values or (min(values) >= low and max(values) < end)
