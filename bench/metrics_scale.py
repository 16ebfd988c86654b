"""`xvckit metrics` on a synthetic repository of 100k commits: cold (no cache), warm (the same
HEAD) and after a few new commits, beside what git alone takes to stream the history.

    .venv/bin/python bench/metrics_scale.py                  # 100k commits (made once, ~40 s)
    .venv/bin/python bench/metrics_scale.py --commits 20000  # quicker look

The repository is made once with `git fast-import` under bench/.work/ (gitignored): 300 Python
files; each commit changes one to three of them (a line replaced, sometimes one inserted), one
commit a minute apart from a fixed end time backwards over the history; Conventional Commit
subjects (feat, fix, docs, refactor, test, chore), one commit in ten with a `Co-authored-by:
Claude` trailer, one in fifty a `fixup!`, one in two hundred a revert; every 20th change a merge
of a one-commit branch; an annotated tag every 1,000 commits. Then, side by side:

- git log alone: `git log --reverse --date-order -p -U0` of the whole history into /dev/null,
  the floor a cold run cannot go under with one process (the cold run reads it with two);
- cold: `xvckit metrics --repo R --since 30d --until END --json` as a new process, the cache
  (`.git/xvckit/`) removed first; the ledger is an empty store in a temporary data folder;
- warm: the same again (HEAD unchanged: nothing read from git), median of `--runs`;
- +10 commits: ten commits added, then the same command (reads `OLD..HEAD` only);
- startup only: `xvckit --version`, the part of every command that is not the metrics'.

Targets (issue 23): cold under 10 s, warm under 1 s on this 2-core machine. The machine is
shared: the numbers move between runs, the side-by-side ratios much less.
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from lib import say, table

ROOT = Path(__file__).resolve().parents[1]
XVCKIT = ROOT / ".venv" / "bin" / "xvckit"
END = 1_764_547_200  # 2025-12-01T00:00:00Z: the last commit's time
FILES = 300
TYPES = ("feat", "fix", "docs", "refactor", "test", "chore")


def build(path: Path, commits: int) -> None:
    """The synthetic repository (see the module's docstring)."""
    subprocess.run(["git", "init", "-q", "-b", "main", str(path)], check=True)
    rnd = random.Random(23)
    files = {f"src/pkg{i % 10}/m{i}.py": [f"x{i}_{j} = {j}\n" for j in range(40)] for i in range(FILES)}
    names = sorted(files)
    proc = subprocess.Popen(["git", "fast-import", "--quiet"], cwd=path, stdin=subprocess.PIPE)
    assert proc.stdin is not None
    write = proc.stdin.write
    mark = 0

    def commit(ref: str, when: int, message: str, parents: list[int]) -> int:
        nonlocal mark
        mark += 1
        who = f"Dev{mark % 7} <dev{mark % 7}@example.org> {when} +0000"
        data = message.encode()
        head = [f"commit {ref}", f"mark :{mark}", f"author {who}", f"committer {who}", f"data {len(data)}"]
        write(("\n".join(head) + "\n").encode() + data + b"\n")
        if parents:
            write(f"from :{parents[0]}\n".encode())
            for other in parents[1:]:
                write(f"merge :{other}\n".encode())
        for _ in range(rnd.randint(1, 3)):
            name = rnd.choice(names)
            lines = files[name]
            at = rnd.randrange(len(lines))
            lines[at] = f"y = {mark}\n"
            if rnd.random() < 0.3:
                lines.insert(at, f"z = {mark}\n")
            blob = "".join(lines).encode()
            write(f"M 100644 inline {name}\ndata {len(blob)}\n".encode() + blob + b"\n")
        write(b"\n")
        return mark

    tip = 0
    for n in range(commits):
        when = END - (commits - n) * 60
        kind = TYPES[n % len(TYPES)]
        message = f"{kind}: change {n}\n"
        if n % 10 == 3:
            message += "\nCo-authored-by: Claude <noreply@anthropic.com>\n"
        if n % 50 == 7:
            message = f"fixup! {kind}: change {n - 1}\n"
        if n % 200 == 11:
            message = f'Revert "change {n - 2}"\n\nThis reverts commit {n:040x}.\n'
        if n % 20 == 19 and tip:
            side = commit("refs/heads/side", when - 30, f"feat: side {n}\n", [tip])
            tip = commit("refs/heads/main", when, f"Merge branch 'side' ({n})\n", [tip, side])
        else:
            tip = commit("refs/heads/main", when, message, [tip] if tip else [])
        if n % 1000 == 999:
            tagger = f"tagger Release <r@example.org> {when} +0000"
            write(f"tag v{n // 1000}\nfrom :{tip}\n{tagger}\ndata 0\n\n".encode())
    proc.stdin.close()
    if proc.wait():
        sys.exit("git fast-import failed")
    subprocess.run(["git", "-C", str(path), "checkout", "-q", "main"], check=True)


def timed(command: list[str], **kwargs) -> float:
    start = time.perf_counter()
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL, **kwargs)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--commits", type=int, default=100_000)
    parser.add_argument("--runs", type=int, default=5, help="warm runs (the median is shown)")
    args = parser.parse_args()
    repo = ROOT / "bench" / ".work" / f"metrics-{args.commits}"
    if not (repo / ".git" / "xvckit-bench-done").exists():
        shutil.rmtree(repo, ignore_errors=True)
        say(f"building {repo} ({args.commits:,} commits)...")
        start = time.perf_counter()
        build(repo, args.commits)
        (repo / ".git" / "xvckit-bench-done").touch()
        say(f"built in {time.perf_counter() - start:.0f} s")
    count = subprocess.run(
        ["git", "-C", str(repo), "rev-list", "--count", "HEAD"], capture_output=True, text=True, check=True
    ).stdout.strip()
    with tempfile.TemporaryDirectory(prefix="xvckit-metrics-bench-") as data:
        until = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(END + 3600))
        command = [str(XVCKIT), "metrics", "--repo", str(repo), "--since", "30d", "--until", until]
        command += ["--json", "--data-dir", data]
        git_log = [
            "git", "-C", str(repo), "log", "--reverse", "--date-order", "-p", "-U0", "--diff-merges=off",
            "--format=%H %P%n%B",
        ]  # fmt: skip
        say("git log alone...")
        floor = timed(git_log)
        shutil.rmtree(repo / ".git" / "xvckit", ignore_errors=True)
        say("cold...")
        cold = timed(command)
        say("warm...")
        warm = statistics.median(timed(command) for _ in range(args.runs))
        startup = statistics.median(timed([str(XVCKIT), "--version"]) for _ in range(args.runs))
        scratch = Path(data) / "clone"
        subprocess.run(["git", "clone", "-q", "--shared", str(repo), str(scratch)], check=True)
        shutil.copytree(repo / ".git" / "xvckit", scratch / ".git" / "xvckit")
        for i in range(10):
            (scratch / "new.py").write_text(f"n = {i}\n")
            env = {"GIT_AUTHOR_DATE": f"@{END + i} +0000", "GIT_COMMITTER_DATE": f"@{END + i} +0000"}
            subprocess.run(["git", "-C", str(scratch), "add", "new.py"], check=True)
            subprocess.run(
                ["git", "-C", str(scratch), "-c", "user.name=B", "-c", "user.email=b@x", "commit", "-qm",
                 f"feat: new {i}"],
                check=True, env={**os.environ, **env},
            )  # fmt: skip
        incremental = timed([*command[:3], str(scratch), *command[4:]])
    rows = [
        ("git log alone (one process)", f"{floor:.2f}", "-", "-"),
        ("cold: no cache", f"{cold:.2f}", "< 10", f"{cold / floor:.2f}x git log"),
        ("warm: same HEAD", f"{warm:.2f}", "< 1", f"{warm / startup:.2f}x startup"),
        ("+10 commits", f"{incremental:.2f}", "-", f"{incremental / warm:.2f}x warm"),
        ("startup only (xvckit --version)", f"{startup:.2f}", "-", "-"),
    ]
    print(f"xvckit metrics on {count} commits (bench/metrics_scale.py)")
    print(table(["run", "seconds", "target", "ratio"], rows, "lrrr"))


if __name__ == "__main__":
    main()
